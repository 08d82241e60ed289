"""Sigstore trusted roots (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`).

The document Sigstore clients load to know which transparency logs to trust (protobuf-specs
`dev.sigstore.trustroot.v1.TrustedRoot`, DESIGN §2). tlog writes one holding the logs a user
pinned, so sigstore-python, sigstore-go or cosign can check bundles from those logs with
the same keys `tlog verify` uses. Certificate authorities and CT logs are listed when the user
names them (`tlog trust root --ca`, `--ct-log-key`): an organisation's CA whose certificates
sign with `tlog sign --certificate`, and the CT log whose SCTs those certificates embed
(Sigstore clients such as sigstore-python require one SCT in every signing certificate).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlog.core.keys import LogPublicKey
from tlog.core.signingcert import check_issued, load_certificates
from tlog.core.trusted import TrustedLog
from tlog.errors import InvalidInput

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

# The pinned key says nothing about when the log started; the Unix epoch puts no lower
# bound on the entries it is trusted for.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_instance(url: str, key: LogPublicKey, start: str) -> dict[str, Any]:
    """A `TransparencyLogInstance`: a transparency log's or a CT log's key and log ID."""
    return {
        "baseUrl": url,
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(key.spki_der()).decode("ascii"),
            "keyDetails": key.key_details,
            "validFor": {"start": start},
        },
        "logId": {"keyId": base64.b64encode(key.log_id()).decode("ascii")},
    }


def certificate_authority(pem: bytes) -> dict[str, Any]:
    """A `CertificateAuthority` from a PEM file of CA certificates, the issuing CA first and
    each issued by the next (the root last, or omitted). `validFor` is when the whole chain
    is valid (protobuf-specs: at most the interval all its certificates share)."""
    chain = load_certificates(pem, "CA file")
    for cert in chain:
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise InvalidInput(f"CA file: {cert.subject.rfc4514_string()} is not a CA certificate "
                               "(basicConstraints CA:TRUE)")
    check_issued(chain[0], chain[1:])
    issuer = chain[0].subject

    def attribute(oid: x509.ObjectIdentifier) -> str:
        values = issuer.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return {
        "subject": {"organization": attribute(x509.NameOID.ORGANIZATION_NAME),
                    "commonName": attribute(x509.NameOID.COMMON_NAME)},
        "certChain": {"certificates": [
            {"rawBytes": base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")}
            for c in chain]},
        "validFor": {"start": _time(max(c.not_valid_before_utc for c in chain)),
                     "end": _time(min(c.not_valid_after_utc for c in chain))},
    }


def trusted_root(logs: Sequence[TrustedLog], valid_from: datetime = EPOCH, *,
                 authorities: Sequence[dict[str, Any]] = (),
                 ct_logs: Sequence[LogPublicKey] = ()) -> dict[str, Any]:
    """A trusted root naming `logs`, each trusted for entries since `valid_from`, and the
    certificate `authorities` (from `certificate_authority`) and CT log keys given."""
    start = _time(valid_from)
    return {
        "mediaType": MEDIA_TYPE,
        "tlogs": [_log_instance(lg.url, lg.public_key, start) for lg in logs],
        "certificateAuthorities": list(authorities),
        "ctlogs": [_log_instance("", key, start) for key in ct_logs],
        "timestampAuthorities": [],
    }

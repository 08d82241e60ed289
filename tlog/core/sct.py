"""Signed certificate timestamps embedded in a precertificate-based leaf (RFC 6962 §3).

Fulcio logs every certificate to a CT log before issuing it and embeds the log's SCT. An
SCT signs (RFC 6962 §3.2, `digitally-signed struct`):

    sct_version(0) ‖ signature_type(0 = certificate_timestamp) ‖ timestamp(uint64 ms)
    ‖ entry_type(1 = precert_entry) ‖ issuer_key_hash(SHA-256 of the issuer's SPKI)
    ‖ opaque TBSCertificate<1..2^24-1> (the leaf's TBS without the SCT extension)
    ‖ opaque extensions<0..2^16-1>

verified with the key of the CT log the trusted root lists under the SCT's log ID.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.certificate_transparency import LogEntryType, SignedCertificateTimestamp

from tlog.core.checks import CheckFailed
from tlog.core.sigstore_root import LogInstance, verify_signature


def sct_signed_data(sct: SignedCertificateTimestamp, leaf: x509.Certificate,
                    issuer: x509.Certificate) -> bytes:
    """The bytes a precertificate SCT signs (RFC 6962 §3.2)."""
    issuer_key_hash = hashlib.sha256(issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).digest()
    tbs = leaf.tbs_precertificate_bytes
    ext = sct.extension_bytes
    millis = int(sct.timestamp.timestamp() * 1000)
    return (struct.pack(">BBQH", 0, 0, millis, 1) + issuer_key_hash
            + struct.pack(">I", len(tbs))[1:] + tbs + struct.pack(">H", len(ext)) + ext)


def verify_scts(leaf: x509.Certificate, issuer: x509.Certificate, ctlogs: Sequence[LogInstance]) -> None:
    """At least one embedded SCT verifies with a CT log of the trusted root; an SCT from a
    listed log that does not verify is a failure, not skipped."""
    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise CheckFailed("SCT", "the signing certificate has no embedded SCT") from None
    verified = 0
    for sct in scts:
        if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
            continue
        log = next((lg for lg in ctlogs if lg.log_id == sct.log_id), None)
        if log is None:
            continue
        if not verify_signature(log.key, sct.signature, sct_signed_data(sct, leaf, issuer)):
            raise CheckFailed("SCT", f"the SCT from CT log {log.base_url or sct.log_id.hex()} "
                                     "does not verify")
        verified += 1
    if not verified:
        raise CheckFailed("SCT", "no embedded SCT is from a CT log of the trusted root")

"""Reading a Sigstore TrustedRoot (protobuf-specs `dev.sigstore.trustroot.v1.TrustedRoot`).

tlog.core.trustroot writes a trusted root for the logs a user pinned; this module reads any
one — Sigstore's public-good root, a staging root, a private deployment's — into what
verification needs: transparency logs and CT logs (`TransparencyLogInstance`: key, log ID,
`validFor`), certificate authorities and timestamp authorities (`CertificateAuthority`: a
certificate chain, leaf/intermediate first and root last, and `validFor`).

`validFor` is a `TimeRange` (protobuf-specs `sigstore_common.proto`): a closed interval,
`start` required, `end` optional (still valid). A missing start is a malformed root, not an
unbounded one: `CheckFailed("trust-root validity")`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from tlog.core.checks import CheckFailed
from tlog.core.sigstore_bundle import b64

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

# The hash an ECDSA key signs with, by curve (protobuf-specs PublicKeyDetails PKIX_ECDSA_*).
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}


def load_public_key(der: bytes) -> PublicKey:
    """A DER SubjectPublicKeyInfo (or PKCS#1 RSAPublicKey, as some CT log keys are given)."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ValueError(f"not a DER public key: {e}") from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey)):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    return key


def verify_signature(key: PublicKey, signature: bytes, data: bytes, *, prehashed: bool = False) -> bool:
    """Whether `signature` verifies over `data` with `key`: ECDSA with its curve's hash,
    RSA PKCS#1 v1.5 with SHA-256, Ed25519 pure. With `prehashed`, `data` is already the
    digest (ECDSA and RSA only)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if prehashed:
                return False
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            algo = _CURVE_HASH.get(key.curve.name, hashes.SHA256)()
            key.verify(signature, data, ec.ECDSA(Prehashed(algo) if prehashed else algo))
        else:
            key.verify(signature, data, padding.PKCS1v15(),
                       Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class ValidFor:
    """A closed time interval; `end` None means open-ended."""

    start: datetime
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        return self.start <= when and (self.end is None or when <= self.end)


@dataclass(frozen=True)
class LogInstance:
    """A transparency log or CT log the root trusts."""

    base_url: str
    log_id: bytes
    key: PublicKey
    valid_for: ValidFor


@dataclass(frozen=True)
class Authority:
    """A certificate or timestamp authority: its chain (root last) and validity window."""

    uri: str
    certificates: tuple[x509.Certificate, ...]
    valid_for: ValidFor


@dataclass(frozen=True)
class TrustedRoot:
    tlogs: tuple[LogInstance, ...]
    ctlogs: tuple[LogInstance, ...]
    certificate_authorities: tuple[Authority, ...]
    timestamp_authorities: tuple[Authority, ...]

    def tlog(self, log_id: bytes) -> LogInstance | None:
        return next((lg for lg in self.tlogs if lg.log_id == log_id), None)


def _fail(reason: str) -> CheckFailed:
    return CheckFailed("trust-root validity", reason)


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, str):
        raise _fail(f"{path} must be an RFC 3339 timestamp")
    try:
        when = datetime.fromisoformat(value)  # 3.11 reads RFC 3339 "Z"
    except ValueError:
        raise _fail(f"{path} is not an RFC 3339 timestamp: {value!r}") from None
    if when.tzinfo is None:
        raise _fail(f"{path} has no time zone")
    return when


def _valid_for(value: object, path: str) -> ValidFor:
    if not isinstance(value, dict) or "start" not in value:
        raise _fail(f"{path}.start is required")
    end = value.get("end")
    return ValidFor(_time(value["start"], path + ".start"),
                    None if end is None else _time(end, path + ".end"))


def _log(value: object, path: str) -> LogInstance:
    if not isinstance(value, dict):
        raise _fail(f"{path} must be an object")
    pk = value.get("publicKey")
    log_id = value.get("logId")
    if not isinstance(pk, dict) or not isinstance(log_id, dict):
        raise _fail(f"{path} needs publicKey and logId")
    try:
        key = load_public_key(b64(pk.get("rawBytes"), path + ".publicKey.rawBytes"))
        return LogInstance(str(value.get("baseUrl", "")), b64(log_id.get("keyId"), path + ".logId.keyId"),
                           key, _valid_for(pk.get("validFor"), path + ".publicKey.validFor"))
    except CheckFailed as e:
        raise _fail(e.reason) from None
    except ValueError as e:
        raise _fail(f"{path}.publicKey: {e}") from None


def _authority(value: object, path: str) -> Authority:
    if not isinstance(value, dict) or not isinstance(value.get("certChain"), dict):
        raise _fail(f"{path} needs a certChain")
    raw = value["certChain"].get("certificates")
    if not isinstance(raw, list) or not raw:
        raise _fail(f"{path}.certChain.certificates must be a non-empty array")
    try:
        certs = tuple(x509.load_der_x509_certificate(b64(c.get("rawBytes") if isinstance(c, dict) else None,
                                                         f"{path}.certChain.certificates[{i}]"))
                      for i, c in enumerate(raw))
    except CheckFailed as e:
        raise _fail(e.reason) from None
    except ValueError as e:
        raise _fail(f"{path}: not a DER certificate: {e}") from None
    return Authority(str(value.get("uri", "")), certs, _valid_for(value.get("validFor"), path + ".validFor"))


def parse_trusted_root(data: bytes) -> TrustedRoot:
    """Decode a TrustedRoot JSON document; CheckFailed("trust-root validity") if malformed."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(f"not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _fail("a trusted root is a JSON object")

    def items(name: str) -> list[object]:
        value = doc.get(name, [])
        if not isinstance(value, list):
            raise _fail(f"{name} must be an array")
        return value

    return TrustedRoot(
        tuple(_log(v, f"tlogs[{i}]") for i, v in enumerate(items("tlogs"))),
        tuple(_log(v, f"ctlogs[{i}]") for i, v in enumerate(items("ctlogs"))),
        tuple(_authority(v, f"certificateAuthorities[{i}]")
              for i, v in enumerate(items("certificateAuthorities"))),
        tuple(_authority(v, f"timestampAuthorities[{i}]")
              for i, v in enumerate(items("timestampAuthorities"))))

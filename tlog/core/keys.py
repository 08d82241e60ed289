"""The log's signing key: Ed25519 or ECDSA P-256, as Sigstore clients trust it.

A log key is identified by its logID, SHA-256 of the DER SubjectPublicKeyInfo (RFC 6962
§3.2 key ID; DESIGN §2), and it signs checkpoints and SETs: ECDSA as an ASN.1 DER
signature over SHA-256 of the data, Ed25519 (RFC 8032, pure) over the data itself.
These are the two `PublicKeyDetails` a Sigstore trusted root names for a log
(`PKIX_ECDSA_P256_SHA_256`, `PKIX_ED25519`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Literal, NoReturn, get_args

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from tlog.errors import InvalidInput, VerificationError

KeyType = Literal["ed25519", "ecdsa-p256"]

KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)

# Sigstore protobuf-specs `PublicKeyDetails` names, as written in a trusted root.
_KEY_DETAILS: dict[KeyType, str] = {
    "ed25519": "PKIX_ED25519",
    "ecdsa-p256": "PKIX_ECDSA_P256_SHA_256",
}

_PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
_PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

_PKCS8_LABEL = b"-----BEGIN PRIVATE KEY-----"
_PKCS8_END = b"-----END PRIVATE KEY-----"


def _key_type_of(key: object) -> KeyType:
    """The KeyType of a cryptography key object; InvalidInput for any other algorithm."""
    if isinstance(key, (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)):
        return "ed25519"
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        if isinstance(key.curve, ec.SECP256R1):
            return "ecdsa-p256"
        raise InvalidInput(
            f"unsupported log key: ECDSA on {key.curve.name}; a log key must be "
            "Ed25519 or ECDSA P-256"
        )
    _unsupported(key)


def _unsupported(key: object) -> NoReturn:
    raise InvalidInput(
        f"unsupported log key type {type(key).__name__}; a log key must be "
        "Ed25519 or ECDSA P-256"
    )


class LogPublicKey:
    """The public half of a log key, pinned by verifiers."""

    __slots__ = ("_key", "_spki", "key_type")

    def __init__(self, key: _PublicKey) -> None:
        self.key_type: KeyType = _key_type_of(key)
        self._key = key
        # Always our own re-encoding: the logID must be the hash of the same bytes every
        # client derives (sigstore-python hashes cryptography's DER re-encoding too).
        self._spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def from_der(cls, data: bytes) -> LogPublicKey:
        """Load a DER SubjectPublicKeyInfo (the `rawBytes` of a trusted root's log key)."""
        return cls._load(serialization.load_der_public_key, data, "DER SubjectPublicKeyInfo")

    @classmethod
    def from_pem(cls, data: bytes) -> LogPublicKey:
        """Load a PEM `PUBLIC KEY` (what `GET /api/v1/log/publicKey` serves)."""
        return cls._load(serialization.load_pem_public_key, data, "PEM public key")

    @classmethod
    def _load(cls, load: Callable[[bytes], PublicKeyTypes], data: bytes, form: str) -> LogPublicKey:
        try:
            key = load(data)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise InvalidInput(f"log public key is not a valid {form}: {e}") from e
        if not isinstance(key, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
            _unsupported(key)
        return cls(key)

    def pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def spki_der(self) -> bytes:
        return self._spki

    def log_id(self) -> bytes:
        """SHA-256 of the DER SubjectPublicKeyInfo (RFC 6962 §3.2; DESIGN §2 logID)."""
        return hashlib.sha256(self._spki).digest()

    @property
    def key_details(self) -> str:
        """The Sigstore `PublicKeyDetails` name for this key in a trusted root."""
        return _KEY_DETAILS[self.key_type]

    def raw_ed25519(self) -> bytes | None:
        """The 32-byte RFC 8032 public key, or None for an ECDSA key."""
        if isinstance(self._key, ed25519.Ed25519PublicKey):
            return self._key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        return None

    def verify(self, signature: bytes, data: bytes) -> None:
        """Check a log signature over data; raises VerificationError if it does not verify."""
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                # Pure Ed25519 signs the message itself (RFC 8032 §5.1.6).
                self._key.verify(signature, data)
            else:
                # ASN.1 DER ECDSA over SHA-256(data), as Rekor and sigstore-python expect.
                self._key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError) as e:
            raise VerificationError(
                f"signature does not verify with the log key {self.log_id().hex()}"
            ) from e

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogPublicKey) and self._spki == other._spki

    def __hash__(self) -> int:
        return hash(self._spki)

    def __repr__(self) -> str:
        return f"LogPublicKey({self.key_type}, logID={self.log_id().hex()})"


class LogKey:
    """The log's private signing key."""

    __slots__ = ("_key", "key_type", "_public")

    def __init__(self, key: _PrivateKey) -> None:
        self.key_type: KeyType = _key_type_of(key)
        self._key = key
        self._public = LogPublicKey(key.public_key())

    @classmethod
    def generate(cls, key_type: KeyType) -> LogKey:
        if key_type == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if key_type == "ecdsa-p256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise InvalidInput(
            f"unknown log key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}"
        )

    @classmethod
    def from_pem(cls, data: bytes) -> LogKey:
        """Load an unencrypted PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).

        Only PKCS#8 is accepted so that a key file has one meaning; other encodings get an
        error saying how to convert them rather than a guess.
        """
        stripped = data.strip()
        if stripped.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"):
            raise InvalidInput(
                "the log key file is encrypted; decrypt it first "
                "(openssl pkcs8 -in KEY -nocrypt -topk8 -out KEY.pem)"
            )
        if not (stripped.startswith(_PKCS8_LABEL) and stripped.endswith(_PKCS8_END)):
            raise InvalidInput(
                "the log key file must be one unencrypted PKCS#8 PEM block "
                "(-----BEGIN PRIVATE KEY-----); convert it with "
                "openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pem"
            )
        if stripped.count(b"-----BEGIN ") != 1:
            raise InvalidInput("the log key file must hold exactly one PEM block")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError as e:  # cryptography: "Password was not given but ... encrypted"
            raise InvalidInput(f"the log key file is encrypted: {e}") from e
        except (ValueError, UnsupportedAlgorithm) as e:
            raise InvalidInput(f"the log key file is not a valid PKCS#8 private key: {e}") from e
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
            _unsupported(key)
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; protect the file, not the bytes."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public_key(self) -> LogPublicKey:
        return self._public

    def raw_ed25519_seed(self) -> bytes | None:
        """The 32-byte RFC 8032 private seed, or None for an ECDSA key.

        Needed to sign C2SP Ed25519 note lines with the same key (DESIGN §2).
        """
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        return None

    def sign(self, data: bytes) -> bytes:
        """Sign data: raw Ed25519 over data, or ASN.1 DER ECDSA over SHA-256(data)."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            return self._key.sign(data)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))

    def __repr__(self) -> str:
        return f"LogKey({self.key_type}, logID={self._public.log_id().hex()})"

"""Signers' keys: the keys users sign artifacts with (not the log's key, see tlog.core.keys).

A user key signs a *digest*, because a `hashedrekord` entry records the digest and the log
checks the signature against it (DESIGN §2): ECDSA as ASN.1 DER over the prehashed digest,
RSA as PKCS#1 v1.5 — what `openssl dgst -sign` and cosign produce. Private keys are PKCS#8
PEM, encrypted (PBES2, AES-256-CBC) when there is a passphrase.
"""

from __future__ import annotations

from typing import Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from tlog.errors import InvalidInput
from tlog.core.entries.hashedrekord import public_key_fingerprint_of_pem

UserKeyType = Literal["ecdsa-p256", "ecdsa-p384", "rsa-3072"]

USER_KEY_TYPES: tuple[UserKeyType, ...] = get_args(UserKeyType)

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ecdsa-p256": ec.SECP256R1,
    "ecdsa-p384": ec.SECP384R1,
}
_SIGNING_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_MIN_RSA_BITS = 2048
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def is_encrypted(pem: bytes) -> bool:
    """True for a passphrase-protected PEM private key (PKCS#8 or OpenSSL's legacy form)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


class SigningKey:
    """A user's private key that signs artifact digests."""

    __slots__ = ("_key",)

    def __init__(self, key: _SigningKey) -> None:
        _check_signing_key(key)
        self._key = key

    @classmethod
    def generate(cls, key_type: UserKeyType) -> SigningKey:
        if key_type in _CURVES:
            return cls(ec.generate_private_key(_CURVES[key_type]()))
        if key_type == "rsa-3072":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=3072))
        raise InvalidInput(f"unknown key type {key_type!r}; choose one of "
                           f"{', '.join(USER_KEY_TYPES)}")

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> SigningKey:
        """Load a PEM private key (PKCS#8, or OpenSSL's EC/RSA forms).

        The passphrase is used only if the key is encrypted. A wrong or missing one is an
        InvalidInput that says so, never a decryption error from deep inside OpenSSL.
        """
        if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
            hint = " (this is a public key; sign with the private .key file)" \
                if b"PUBLIC KEY-----" in data else ""
            raise InvalidInput(f"not a PEM private key{hint}")
        encrypted = is_encrypted(data)
        if encrypted and not passphrase:
            raise InvalidInput("the private key is encrypted and no passphrase was given (set "
                               "TLOG_PASSWORD, pipe it on standard input, or run in a terminal)")
        try:
            key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
        except ValueError as e:
            if encrypted and "password" in str(e).lower():
                raise InvalidInput("wrong passphrase for the private key") from None
            raise InvalidInput(f"not a valid PEM private key: {e}") from None
        except (TypeError, UnsupportedAlgorithm) as e:
            raise InvalidInput(f"cannot load the private key: {e}") from None
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            _check_signing_key(key)
        return cls(key)  # type: ignore[arg-type]

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with the passphrase if there is one (an empty one is none)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase
            else serialization.NoEncryption())
        return self._key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8, encryption)

    def public_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM: what goes in the log entry and in `PREFIX.pub`."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign_digest(self, digest: bytes, algorithm: str = "sha256") -> bytes:
        """Sign a digest: ECDSA (DER) or RSA PKCS#1 v1.5 over the prehashed value."""
        hash_type = _HASHES.get(algorithm)
        if hash_type is None:
            raise InvalidInput(f"unsupported digest algorithm {algorithm!r}")
        if len(digest) != hash_type.digest_size:
            raise InvalidInput(f"a {algorithm} digest is {hash_type.digest_size} bytes, "
                               f"got {len(digest)}")
        prehashed = utils.Prehashed(hash_type())
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(digest, ec.ECDSA(prehashed))
        return self._key.sign(digest, padding.PKCS1v15(), prehashed)

    @property
    def description(self) -> str:
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return f"ECDSA {self._key.curve.name}"
        return f"RSA {self._key.key_size}"


def key_fingerprint(public_pem: bytes) -> str:
    """`SHA256:<hex>` of the DER SubjectPublicKeyInfo: how people compare keys by eye."""
    return "SHA256:" + public_key_fingerprint_of_pem(public_pem).hex()


def _check_signing_key(key: object) -> None:
    """Only keys the log can check a digest signature with (DESIGN §2)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _SIGNING_CURVES:
            raise InvalidInput(f"unsupported elliptic curve {key.curve.name}; "
                               "use P-256, P-384 or P-521")
        return
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _MIN_RSA_BITS:
            raise InvalidInput(f"RSA key of {key.key_size} bits is too weak; "
                               f"at least {_MIN_RSA_BITS} required")
        return
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise InvalidInput("Ed25519 keys sign the message, not a digest, so the log cannot "
                           "check them; use `tlog keygen --type ecdsa-p256`")
    raise InvalidInput(f"unsupported private key type {type(key).__name__}; "
                       "use ECDSA (P-256/P-384/P-521) or RSA")

"""Signers' keys: the keys users sign artifacts with (not the log's key, see tlog.core.keys).

A user key signs a *digest*, because a `hashedrekord` entry records the digest and the log
checks the signature against it (DESIGN §2): ECDSA as ASN.1 DER over the prehashed digest,
RSA as PKCS#1 v1.5 — what `openssl dgst -sign` and cosign produce.

Private keys with a passphrase are written the way cosign writes them (sigstore/cosign
pkg/cosign/keys.go): an `ENCRYPTED SIGSTORE PRIVATE KEY` PEM block whose body is the JSON of
go-securesystemslib's `encrypted` package — the PKCS#8 DER of the key sealed with NaCl
secretbox (XSalsa20-Poly1305) under a key derived by scrypt (N=2^16, r=8, p=1, ~64 MiB). Why
this format: scrypt is memory-hard where `cryptography` can only write PBKDF2 into PKCS#8, and
cosign and tlog then read each other's keys. Without a passphrase a key is plain PKCS#8 PEM.
Keys tlog wrote before (PKCS#8 PBES2 with PBKDF2) and OpenSSL's forms are still read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any, Literal, get_args

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from tlog.core.digests import DIGESTS
from tlog.core.entries.hashedrekord import _pem, digest_for_key, public_key_fingerprint_of_pem
from tlog.errors import InvalidInput

UserKeyType = Literal["ecdsa-p256", "ecdsa-p384", "rsa-3072"]

USER_KEY_TYPES: tuple[UserKeyType, ...] = get_args(UserKeyType)

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "ecdsa-p256": ec.SECP256R1,
    "ecdsa-p384": ec.SECP384R1,
}
_SIGNING_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_MIN_RSA_BITS = 2048

_SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# cosign's PEM types (pkg/cosign/keys.go): SIGSTORE is what it writes, COSIGN what it wrote
# before; it reads both, and so do we.
SIGSTORE_KEY_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
_COSIGN_KEY_PEM = re.compile(
    rb"-----BEGIN (ENCRYPTED (?:SIGSTORE|COSIGN) PRIVATE KEY)-----(.*?)-----END \1-----", re.DOTALL)
# go-securesystemslib/encrypted: the scrypt parameter sets it accepts (Legacy, Standard, OWASP)
# — any other is refused before any work, so a key file cannot make us spend gigabytes — and
# the one it writes (Standard, what `cosign generate-key-pair` writes today).
_SCRYPT_PARAMS = ((1 << 15, 8, 1), (1 << 16, 8, 1), (1 << 17, 8, 1))
_SCRYPT_WRITE = _SCRYPT_PARAMS[1]
_SCRYPT_SALT_SIZE = 32


class WrongPassphrase(InvalidInput):
    """The passphrase does not open the key (it fails to authenticate or decrypt)."""


_NO_PASSPHRASE = ("the private key is encrypted and no passphrase was given (set TLOG_PASSWORD or "
                  "COSIGN_PASSWORD, pipe it on standard input, or run in a terminal)")


def is_encrypted(pem: bytes) -> bool:
    """True for a passphrase-protected PEM private key: cosign's, PKCS#8, or OpenSSL's
    legacy form."""
    return (b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem
            or _COSIGN_KEY_PEM.search(pem) is not None)


def _box_key(passphrase: bytes, salt: bytes, params: tuple[int, int, int]) -> bytes:
    """The secretbox key: scrypt(passphrase, salt, N, r, p), 32 bytes (`encrypted`'s Key)."""
    n, r, p = params
    return Scrypt(salt=salt, length=nacl.secret.SecretBox.KEY_SIZE, n=n, r=r, p=p).derive(passphrase)


def seal_cosign_key(der: bytes, passphrase: bytes) -> bytes:
    """PKCS#8 DER → an `ENCRYPTED SIGSTORE PRIVATE KEY` PEM, byte for byte the JSON layout of
    go-securesystemslib's `encrypted.Encrypt` (Go marshals []byte as padded base64)."""
    salt = os.urandom(_SCRYPT_SALT_SIZE)
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    n, r, p = _SCRYPT_WRITE
    box = nacl.secret.SecretBox(_box_key(passphrase, salt, _SCRYPT_WRITE))
    sealed = box.encrypt(der, nonce).ciphertext  # Poly1305 tag ‖ XSalsa20 ciphertext, as Go's Seal
    salt64, nonce64, sealed64 = (base64.b64encode(b).decode("ascii") for b in (salt, nonce, sealed))
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p}, "salt": salt64},
           "cipher": {"name": "nacl/secretbox", "nonce": nonce64}, "ciphertext": sealed64}
    return _pem(SIGSTORE_KEY_PEM_TYPE, json.dumps(doc, separators=(",", ":")).encode("ascii"))


def open_cosign_key(pem: bytes, passphrase: bytes) -> bytes:
    """An `ENCRYPTED SIGSTORE|COSIGN PRIVATE KEY` PEM → the PKCS#8 DER inside (cosign's
    LoadPrivateKey, go-securesystemslib `encrypted.Decrypt`). InvalidInput says what is wrong:
    the file, its parameters, or the passphrase."""
    m = _COSIGN_KEY_PEM.search(pem)
    if m is None:
        raise InvalidInput("not a cosign private key (no ENCRYPTED SIGSTORE PRIVATE KEY block)")
    try:
        doc = json.loads(base64.b64decode(b"".join(m.group(2).split()), validate=True))
        kdf, cipher = _field(doc, "kdf", dict), _field(doc, "cipher", dict)
        params = _field(kdf, "params", dict)
        kdf_name, cipher_name = _field(kdf, "name", str), _field(cipher, "name", str)
        scrypt = (_field(params, "N", int), _field(params, "r", int), _field(params, "p", int))
        salt, nonce, sealed = (base64.b64decode(_field(d, k, str), validate=True)
                               for d, k in ((kdf, "salt"), (cipher, "nonce"), (doc, "ciphertext")))
    except (binascii.Error, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidInput(f"not a valid cosign private key: {e}") from None
    if kdf_name != "scrypt" or cipher_name != "nacl/secretbox":
        raise InvalidInput(f"unsupported cosign key encryption {kdf_name!r} + {cipher_name!r}; "
                           "expected 'scrypt' + 'nacl/secretbox'")
    if scrypt not in _SCRYPT_PARAMS:
        raise InvalidInput("unsupported scrypt parameters N={}, r={}, p={} (cosign uses N=2^15 to "
                           "2^17, r=8, p=1)".format(*scrypt))
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise InvalidInput(f"the cosign key's nonce is {len(nonce)} bytes, not "
                           f"{nacl.secret.SecretBox.NONCE_SIZE}")
    box = nacl.secret.SecretBox(_box_key(passphrase, salt, scrypt))
    try:
        return box.decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise WrongPassphrase("wrong passphrase for the private key") from None


def _unseal_cosign_key(pem: bytes, passphrase: bytes | None) -> bytes:
    """open_cosign_key, where no passphrase may be fine: cosign seals keys under an empty one
    too (COSIGN_PASSWORD=""), so it is tried, and if it fails the passphrase was missing."""
    try:
        return open_cosign_key(pem, passphrase or b"")
    except WrongPassphrase:
        if passphrase:
            raise
        raise InvalidInput(_NO_PASSPHRASE) from None


def _field(doc: Any, name: str, kind: type[Any]) -> Any:
    """doc[name], which must be a `kind` (ValueError otherwise: a malformed key file)."""
    value = doc.get(name) if isinstance(doc, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name!r} is missing or not a {kind.__name__}")
    return value


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
        """Load a PEM private key: cosign's encrypted form, PKCS#8, or OpenSSL's EC/RSA forms.

        The passphrase is used only if the key is encrypted. A wrong or missing one is an
        InvalidInput that says so, never a decryption error from deep inside OpenSSL.
        """
        if b"-----BEGIN" not in data or b"PRIVATE KEY-----" not in data:
            hint = " (this is a public key; sign with the private .key file)" \
                if b"PUBLIC KEY-----" in data else ""
            raise InvalidInput(f"not a PEM private key{hint}")
        cosign = _COSIGN_KEY_PEM.search(data) is not None
        encrypted = is_encrypted(data)
        if encrypted and not passphrase and not cosign:  # cosign keys: see _unseal_cosign_key
            raise InvalidInput(_NO_PASSPHRASE)
        try:
            if cosign:
                key = serialization.load_der_private_key(_unseal_cosign_key(data, passphrase), None)
            else:
                key = serialization.load_pem_private_key(data, passphrase if encrypted else None)
        except ValueError as e:
            if encrypted and "password" in str(e).lower():
                raise WrongPassphrase("wrong passphrase for the private key") from None
            if encrypted and not cosign:
                # PKCS#8 PBES2 (RFC 8018 §6.2) encrypts with CBC and no integrity check: about
                # one wrong passphrase in 256 passes the padding check and decrypts to bytes
                # that are no key, which OpenSSL reports as a parse error, not a bad password.
                raise WrongPassphrase("wrong passphrase for the private key (it decrypts to no "
                                      "valid key)") from None
            raise InvalidInput(f"not a valid PEM private key: {e}") from None
        except (TypeError, UnsupportedAlgorithm) as e:
            raise InvalidInput(f"cannot load the private key: {e}") from None
        if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
            _check_signing_key(key)
        return cls(key)  # type: ignore[arg-type]

    def to_pem(self, passphrase: bytes | None) -> bytes:
        """With a passphrase, cosign's `ENCRYPTED SIGSTORE PRIVATE KEY` (scrypt + secretbox,
        see the module's docstring); without one (an empty one is none), plain PKCS#8 PEM."""
        if not passphrase:
            return self._key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        der = self._key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        return seal_cosign_key(der, passphrase)

    def public_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM: what goes in the log entry and in `PREFIX.pub`."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def digest_algorithm(self) -> str:
        """What this key signs digests of: the curve's hash for ECDSA (P-384 signs sha384:
        Sigstore's algorithm registry, which the log enforces), sha256 for RSA."""
        return digest_for_key(self._key.public_key())

    def sign_digest(self, digest: bytes, algorithm: str | None = None) -> bytes:
        """Sign a digest (by default of `digest_algorithm`): ECDSA (DER) or RSA PKCS#1
        v1.5 over the prehashed value."""
        algorithm = algorithm or self.digest_algorithm
        known = DIGESTS.get(algorithm)  # the one digest table (tlog.core.digests)
        if known is None:
            raise InvalidInput(f"unsupported digest algorithm {algorithm!r}")
        hash_alg = known.algorithm()
        if len(digest) != hash_alg.digest_size:
            raise InvalidInput(f"a {algorithm} digest is {hash_alg.digest_size} bytes, "
                               f"got {len(digest)}")
        prehashed = utils.Prehashed(hash_alg)
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

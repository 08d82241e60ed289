"""tlog.core.userkeys: signers' keys, their encodings and digest signatures the log accepts."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from tlog.core.entries.hashedrekord import parse_request, proposed_entry
from tlog.core.userkeys import USER_KEY_TYPES, SigningKey, is_encrypted, key_fingerprint
from tlog.errors import InvalidInput

from .cosign_keys import cosign_json, cosign_open, cosign_pem, cosign_seal

DIGEST = hashlib.sha256(b"artifact").digest()


@pytest.fixture(scope="module", params=USER_KEY_TYPES)
def key(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


def test_digest_signatures_are_accepted_by_the_log(key: SigningKey) -> None:
    # Each key signs its own digest algorithm (Sigstore's registry: P-384 signs sha384).
    algorithm = key.digest_algorithm
    assert algorithm == {"ECDSA secp384r1": "sha384"}.get(key.description, "sha256")
    digest = hashlib.new(algorithm, b"artifact").digest()
    sig = key.sign_digest(digest)
    entry = parse_request(proposed_entry(algorithm, digest, sig, key.public_pem()))
    assert entry.digest == digest and entry.signature == sig


def test_encrypted_key_is_cosigns_scrypt_format_and_round_trips(key: SigningKey) -> None:
    pem = key.to_pem(b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----") and is_encrypted(pem)
    doc = cosign_json(pem)
    assert doc["kdf"]["name"] == "scrypt" and doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert doc["cipher"]["name"] == "nacl/secretbox"
    # Decrypted from the spec alone (hashlib's scrypt, PyNaCl's SecretBox): PKCS#8 DER inside.
    der = cosign_open(doc, b"s3cret")
    assert serialization.load_der_private_key(der, None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == key.public_pem()
    assert SigningKey.from_pem(pem, b"s3cret").public_pem() == key.public_pem()
    with pytest.raises(InvalidInput, match=r"^wrong passphrase"):
        SigningKey.from_pem(pem, b"wrong")
    with pytest.raises(InvalidInput, match="encrypted and no passphrase"):
        SigningKey.from_pem(pem, None)


def test_cosign_key_from_an_independent_implementation_loads() -> None:
    """A key sealed from go-securesystemslib's `encrypted` spec, not by tlog: each scrypt
    strength cosign has written, both PEM types, and an empty passphrase (cosign allows it)."""
    k = ec.generate_private_key(ec.SECP256R1())
    for n, label, secret in ((1 << 15, "ENCRYPTED COSIGN PRIVATE KEY", b"pw"),
                             (1 << 16, "ENCRYPTED SIGSTORE PRIVATE KEY", b""),
                             (1 << 17, "ENCRYPTED SIGSTORE PRIVATE KEY", "pässword".encode())):
        pem = cosign_seal(_der(k), secret, n=n, label=label)
        assert SigningKey.from_pem(pem, secret).public_pem() == SigningKey(k).public_pem()


@pytest.mark.parametrize("change,message", [
    ({"kdf": {"name": "pbkdf2"}}, "unsupported cosign key encryption 'pbkdf2'"),
    ({"cipher": {"name": "aes-gcm"}}, "'aes-gcm'"),
    # A hostile N would make scrypt allocate gigabytes: refused before any work.
    ({"kdf": {"params": {"N": 1 << 24, "r": 8, "p": 1}}}, "unsupported scrypt parameters N=16777216"),
    ({"kdf": {"params": {"N": "32768", "r": 8, "p": 1}}}, "'N' is missing or not a int"),
    ({"cipher": {"nonce": base64.b64encode(b"short").decode()}}, "nonce is 5 bytes"),
    ({"ciphertext": "not base64!"}, "not a valid cosign private key"),
])
def test_bad_cosign_key_files_are_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    doc = json.loads(cosign_seal(_der(ec.generate_private_key(ec.SECP256R1())), b"pw", n=1 << 15,
                                 raw=True))
    for field, value in change.items():
        doc[field] = {**doc[field], **value} if isinstance(value, dict) else value
    with pytest.raises(InvalidInput, match=re.escape(message)):
        SigningKey.from_pem(cosign_pem(json.dumps(doc).encode()), b"pw")
    with pytest.raises(InvalidInput, match="not a valid cosign private key"):
        SigningKey.from_pem(cosign_pem(b"{not json"), b"pw")


def test_old_pbkdf2_pkcs8_keys_still_load(key: SigningKey) -> None:
    """Keys tlog wrote before (PKCS#8 PBES2, PBKDF2) and keys openssl encrypts."""
    pem = key._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"s3cret"))
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") and is_encrypted(pem)
    assert SigningKey.from_pem(pem, b"s3cret").public_pem() == key.public_pem()
    with pytest.raises(InvalidInput, match=r"^wrong passphrase"):
        SigningKey.from_pem(pem, b"wrong")
    with pytest.raises(InvalidInput, match="encrypted and no passphrase"):
        SigningKey.from_pem(pem, b"")


def test_a_wrong_passphrase_that_passes_the_padding_check_is_still_a_wrong_passphrase() -> None:
    """PBES2's CBC has no integrity check: about one wrong passphrase in 256 decrypts to
    well-padded bytes that are no key (OpenSSL: an ASN.1 error, not a bad password). Found
    here by trying passphrases until one does; it must still say "wrong passphrase"."""
    key = SigningKey.generate("ecdsa-p256")
    pem = key._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"s3cret"))
    for n in range(4000):
        try:
            serialization.load_pem_private_key(pem, f"wrong{n}".encode())
        except ValueError as e:
            if "password" in str(e).lower():
                continue
        break
    else:
        pytest.fail("no wrong passphrase passed the padding check in 4,000 tries")
    with pytest.raises(InvalidInput, match=r"^wrong passphrase for the private key \(it decrypts to no"):
        SigningKey.from_pem(pem, f"wrong{n}".encode())


def test_empty_passphrase_writes_plain_pkcs8(key: SigningKey) -> None:
    pem = key.to_pem(None)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----") and not is_encrypted(pem)
    # A passphrase offered for a plain key is simply not needed.
    assert SigningKey.from_pem(pem, b"unused").public_pem() == key.public_pem()


def test_openssl_encrypted_keys_load() -> None:
    key = SigningKey.generate("ecdsa-p256")
    r = subprocess.run(["openssl", "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", "pass:s3cret"],
                       input=key.to_pem(None), capture_output=True, check=True)
    assert SigningKey.from_pem(r.stdout, b"s3cret").public_pem() == key.public_pem()


def _der(k: PrivateKeyTypes) -> bytes:
    return k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _pem(k: PrivateKeyTypes) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


@pytest.mark.parametrize("data,message", [
    (b"hello", "not a PEM private key"),
    (SigningKey.generate("ecdsa-p256").public_pem(), "this is a public key"),
    (_pem(ed25519.Ed25519PrivateKey.generate()), "Ed25519 keys sign the message"),
    (_pem(ec.generate_private_key(ec.SECP256K1())), "unsupported elliptic curve"),
    (_pem(rsa.generate_private_key(65537, 1024)), "too weak"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a valid PEM private key"),
])
def test_bad_key_files_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SigningKey.from_pem(data)


def test_traditional_openssl_keys_load() -> None:
    k = ec.generate_private_key(ec.SECP384R1())
    pem = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
    assert SigningKey.from_pem(pem).description == "ECDSA secp384r1"


def test_fingerprint_is_sha256_of_the_spki(key: SigningKey) -> None:
    der = serialization.load_pem_public_key(key.public_pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_fingerprint(key.public_pem()) == "SHA256:" + hashlib.sha256(der).hexdigest()


def test_digest_length_must_fit_the_algorithm(key: SigningKey) -> None:
    with pytest.raises(InvalidInput, match=f"a {key.digest_algorithm} digest is (32|48) bytes, got 5"):
        key.sign_digest(b"short")

"""tlog.core.userkeys: signers' keys, their encodings and digest signatures the log accepts."""

from __future__ import annotations

import hashlib
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tlog.errors import InvalidInput
from tlog.core.entries.hashedrekord import parse_request, proposed_entry
from tlog.core.userkeys import USER_KEY_TYPES, SigningKey, is_encrypted, key_fingerprint

DIGEST = hashlib.sha256(b"artifact").digest()


@pytest.fixture(scope="module", params=USER_KEY_TYPES)
def key(request: pytest.FixtureRequest) -> SigningKey:
    return SigningKey.generate(request.param)


def test_digest_signatures_are_accepted_by_the_log(key: SigningKey) -> None:
    sig = key.sign_digest(DIGEST)
    entry = parse_request(proposed_entry("sha256", DIGEST, sig, key.public_pem()))
    assert entry.digest == DIGEST and entry.signature == sig


def test_encrypted_pkcs8_round_trips_and_wrong_passphrase_is_named(key: SigningKey) -> None:
    pem = key.to_pem(b"s3cret")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") and is_encrypted(pem)
    assert SigningKey.from_pem(pem, b"s3cret").public_pem() == key.public_pem()
    with pytest.raises(InvalidInput, match="^wrong passphrase"):
        SigningKey.from_pem(pem, b"wrong")
    with pytest.raises(InvalidInput, match="encrypted and no passphrase"):
        SigningKey.from_pem(pem, None)


def test_empty_passphrase_writes_plain_pkcs8(key: SigningKey) -> None:
    pem = key.to_pem(None)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----") and not is_encrypted(pem)
    # A passphrase offered for a plain key is simply not needed.
    assert SigningKey.from_pem(pem, b"unused").public_pem() == key.public_pem()


def test_openssl_reads_the_encrypted_key() -> None:
    key = SigningKey.generate("ecdsa-p256")
    r = subprocess.run(["openssl", "pkey", "-passin", "pass:s3cret", "-pubout"],
                       input=key.to_pem(b"s3cret"), capture_output=True, check=True)
    assert r.stdout == key.public_pem()


def _pem(k: object) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                           serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


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
    with pytest.raises(InvalidInput, match="32 bytes"):
        key.sign_digest(b"short")

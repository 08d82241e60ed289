"""The log key (tlog.core.keys): encodings, logID, and signatures checked with independent code."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tlog.core.keys import KEY_TYPES, LogKey, LogPublicKey
from tlog.errors import InvalidInput, VerificationError

# RFC 8410 §4: an Ed25519 SubjectPublicKeyInfo is this fixed prefix and the 32-byte key.
ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")


@pytest.fixture(params=KEY_TYPES)
def key(request: pytest.FixtureRequest) -> LogKey:
    return LogKey.generate(request.param)


def test_key_types_and_details() -> None:
    assert LogKey.generate("ed25519").public_key.key_details == "PKIX_ED25519"
    assert LogKey.generate("ecdsa-p256").public_key.key_details == "PKIX_ECDSA_P256_SHA_256"
    with pytest.raises(InvalidInput, match="unknown log key type"):
        LogKey.generate("rsa")  # type: ignore[arg-type]


def test_log_id_is_sha256_of_spki_der(key: LogKey) -> None:
    pub = key.public_key
    spki = serialization.load_pem_public_key(pub.pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert pub.spki_der() == spki
    assert pub.log_id() == hashlib.sha256(spki).digest()
    assert len(pub.log_id().hex()) == 64


def test_ed25519_spki_and_raw_key_follow_rfc_8410() -> None:
    seed = bytes(range(32))
    key = LogKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    raw = key.public_key.raw_ed25519()
    assert raw is not None and len(raw) == 32
    assert key.public_key.spki_der() == ED25519_SPKI_PREFIX + raw
    assert key.raw_ed25519_seed() == seed
    assert LogKey.generate("ecdsa-p256").public_key.raw_ed25519() is None
    assert LogKey.generate("ecdsa-p256").raw_ed25519_seed() is None


def test_public_key_round_trips_through_pem_and_der(key: LogKey) -> None:
    pub = key.public_key
    assert pub.pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert LogPublicKey.from_pem(pub.pem()) == pub
    assert LogPublicKey.from_der(pub.spki_der()) == pub
    assert LogPublicKey.from_der(pub.spki_der()).key_type == key.key_type
    assert LogPublicKey.from_der(LogKey.generate(key.key_type).public_key.spki_der()) != pub


def test_private_key_round_trips_through_pkcs8_pem(key: LogKey) -> None:
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    again = LogKey.from_pem(pem)
    assert again.key_type == key.key_type
    assert again.public_key == key.public_key


def test_signature_verifies_with_independent_cryptography_code(key: LogKey) -> None:
    data = b"checkpoint text\n"
    sig = key.sign(data)
    raw_pub = serialization.load_der_public_key(key.public_key.spki_der())
    if key.key_type == "ed25519":
        # Pure Ed25519 over the bytes themselves: 64 bytes.
        assert len(sig) == 64
        assert isinstance(raw_pub, ed25519.Ed25519PublicKey)
        raw_pub.verify(sig, data)
    else:
        # ASN.1 DER (r, s) over SHA-256(data).
        decode_dss_signature(sig)
        assert isinstance(raw_pub, ec.EllipticCurvePublicKey)
        raw_pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        with pytest.raises(InvalidSignature):
            raw_pub.verify(sig, data, ec.ECDSA(hashes.SHA384()))
    key.public_key.verify(sig, data)


def test_verify_rejects_tampering_and_other_keys(key: LogKey) -> None:
    data = b"payload"
    sig = key.sign(data)
    with pytest.raises(VerificationError):
        key.public_key.verify(sig, data + b"!")
    with pytest.raises(VerificationError):
        key.public_key.verify(sig[:-1] + bytes([sig[-1] ^ 1]), data)
    with pytest.raises(VerificationError):
        key.public_key.verify(b"", data)
    with pytest.raises(VerificationError):
        LogKey.generate(key.key_type).public_key.verify(sig, data)


def test_ed25519_key_verifies_only_ed25519_signatures() -> None:
    ed = LogKey.generate("ed25519")
    ecdsa = LogKey.generate("ecdsa-p256")
    with pytest.raises(VerificationError):
        ed.public_key.verify(ecdsa.sign(b"x"), b"x")
    with pytest.raises(VerificationError):
        ecdsa.public_key.verify(ed.sign(b"x"), b"x")


# The keys these tests make: our two kinds, and others a log key must not be.
_AnyPrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _spki(k: _AnyPrivateKey) -> bytes:
    return k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pkcs8(k: _AnyPrivateKey, enc: serialization.KeySerializationEncryption | None = None) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        enc or serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), id="secp256k1"),
        pytest.param(lambda: rsa.generate_private_key(65537, 2048), id="rsa"),
    ],
)
def test_unsupported_key_algorithms_are_rejected(make: Callable[[], _AnyPrivateKey]) -> None:
    k = make()
    with pytest.raises(InvalidInput, match="Ed25519 or ECDSA P-256"):
        LogPublicKey.from_der(_spki(k))
    pem = k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidInput, match="Ed25519 or ECDSA P-256"):
        LogPublicKey.from_pem(pem)
    with pytest.raises(InvalidInput, match="Ed25519 or ECDSA P-256"):
        LogKey.from_pem(_pkcs8(k))


def test_garbage_public_keys_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        LogPublicKey.from_der(b"\x30\x00")
    with pytest.raises(InvalidInput):
        LogPublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    good = LogKey.generate("ed25519").public_key.spki_der()
    with pytest.raises(InvalidInput):
        LogPublicKey.from_der(good + b"\x00")


def test_encrypted_private_key_is_rejected_with_a_clear_message() -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    pem = _pkcs8(k, serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(InvalidInput, match="encrypted"):
        LogKey.from_pem(pem)


def test_non_pkcs8_private_keys_are_rejected_with_a_conversion_hint() -> None:
    k = ec.generate_private_key(ec.SECP256R1())
    sec1 = k.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    with pytest.raises(InvalidInput, match="openssl pkcs8"):
        LogKey.from_pem(sec1)
    pub_pem = LogKey.generate("ed25519").public_key.pem()
    with pytest.raises(InvalidInput, match="PKCS#8"):
        LogKey.from_pem(pub_pem)
    with pytest.raises(InvalidInput):
        LogKey.from_pem(b"not a key")


def test_two_pem_blocks_are_rejected() -> None:
    a, b = LogKey.generate("ed25519").to_pem(), LogKey.generate("ed25519").to_pem()
    with pytest.raises(InvalidInput, match="exactly one"):
        LogKey.from_pem(a + b)


def test_corrupt_pkcs8_body_is_rejected() -> None:
    pem = LogKey.generate("ecdsa-p256").to_pem()
    lines = pem.split(b"\n")
    lines[1] = b"A" * len(lines[1])
    with pytest.raises(InvalidInput):
        LogKey.from_pem(b"\n".join(lines))

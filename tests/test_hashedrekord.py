"""Tests for tlog.core.entries.hashedrekord: admission of Rekor hashedrekord v0.0.1 entries (DESIGN §2).

Keys and certificates are generated here with `cryptography`; expected canonical bodies are
built independently with json.dumps(sort_keys=True), which equals RFC 8785 for these
ASCII-only, integer-free documents.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    utils,
    x25519,
)
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings, strategies as st

from tlog.core.entries.hashedrekord import (
    MAX_BODY_BYTES,
    HashedRekord,
    parse_body,
    parse_request,
    public_key_fingerprint_of_pem,
    verify_signature,
)
from tlog.errors import InvalidInput

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
ARTIFACT = b"the artifact the signer signed\n"


# --- keys, signatures and requests built independently of the module under test ---------


@functools.cache
def ec_key(curve_name: str) -> ec.EllipticCurvePrivateKey:
    curve = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1(),
             "secp256k1": ec.SECP256K1()}[curve_name]
    return ec.generate_private_key(curve)


@functools.cache
def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def digest_of(algorithm: str, data: bytes = ARTIFACT) -> bytes:
    return hashlib.new(algorithm, data).digest()


def sign_ecdsa(key: ec.EllipticCurvePrivateKey, algorithm: str, digest: bytes) -> bytes:
    return key.sign(digest, ec.ECDSA(utils.Prehashed(HASHES[algorithm]())))


def sign_pkcs1(key: rsa.RSAPrivateKey, algorithm: str, digest: bytes) -> bytes:
    return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(HASHES[algorithm]()))


def sign_pss(
    key: rsa.RSAPrivateKey, algorithm: str, digest: bytes, salt_length: int | None = None
) -> bytes:
    h = HASHES[algorithm]()
    salt = h.digest_size if salt_length is None else salt_length
    pss = padding.PSS(mgf=padding.MGF1(h), salt_length=salt)
    return key.sign(digest, pss, utils.Prehashed(h))


def spki_pem(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    pem: bytes = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


def spki_der(key: Any) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def self_signed(
    key: Any,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    public_key: Any = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tlog test signer")])
    now = datetime.datetime.now(datetime.UTC)
    hash_alg = None if isinstance(key, (ed25519.Ed25519PrivateKey,)) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key or key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=1))
        .not_valid_after(not_after or now + datetime.timedelta(minutes=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("signer@example.com")]), critical=False
        )
        .sign(key, hash_alg)
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request(algorithm: str, value: str, signature: str, key_content: str) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": value}},
            "signature": {"content": signature, "publicKey": {"content": key_content}},
        },
    }


def expected_body(algorithm: str, digest: bytes, signature: bytes, pem: bytes) -> bytes:
    return json.dumps(
        request(algorithm, digest.hex(), b64(signature), b64(pem)),
        sort_keys=True,
        separators=(",", ":"),
    ).encode("ascii")


@functools.cache
def p256_case() -> tuple[dict[str, Any], bytes]:
    """A valid P-256/sha256 request and its expected canonical body."""
    key = ec_key("P-256")
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    pem = spki_pem(key)
    return (
        request("sha256", digest.hex(), b64(signature), b64(pem)),
        expected_body("sha256", digest, signature, pem),
    )


@functools.cache
def p256_certificate() -> x509.Certificate:
    return self_signed(ec_key("P-256"))


def valid_request() -> dict[str, Any]:
    return copy.deepcopy(p256_case()[0])


def rejected(obj: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_request(obj)
    return info.value


def rewrap_pem(pem: bytes, width: int, newline: bytes = b"\n") -> bytes:
    lines = pem.strip().split(b"\n")
    body = b"".join(lines[1:-1])
    chunks = [body[i : i + width] for i in range(0, len(body), width)]
    return newline.join([lines[0], *chunks, lines[-1]])


# --- accepted submissions ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [
        ("P-256", "sha256"),
        ("P-384", "sha384"),
        ("P-521", "sha512"),
    ],
)
def test_ecdsa_submission_is_accepted_with_canonical_body(curve: str, algorithm: str) -> None:
    key = ec_key(curve)
    digest = digest_of(algorithm)
    signature = sign_ecdsa(key, algorithm, digest)
    pem = spki_pem(key)

    entry = parse_request(request(algorithm, digest.hex(), b64(signature), b64(pem)))

    assert entry == HashedRekord(algorithm, digest, signature, pem, is_certificate=False)
    assert entry.canonical_body() == expected_body(algorithm, digest, signature, pem)
    assert entry.artifact_key() == f"{algorithm}:{digest.hex()}"


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("scheme", ["pkcs1v15", "pss"])
def test_rsa_2048_pkcs1_and_pss_are_accepted(scheme: str, algorithm: str) -> None:
    key = rsa_key(2048)
    digest = digest_of(algorithm)
    sign = sign_pkcs1 if scheme == "pkcs1v15" else sign_pss
    signature = sign(key, algorithm, digest)
    pem = spki_pem(key)

    entry = parse_request(request(algorithm, digest.hex(), b64(signature), b64(pem)))

    assert entry.canonical_body() == expected_body(algorithm, digest, signature, pem)
    assert not entry.is_certificate


@pytest.mark.parametrize(
    ("curve", "algorithm", "required"),
    [("P-256", "sha512", "sha256"), ("P-256", "sha384", "sha256"), ("P-384", "sha256", "sha384"),
     ("P-384", "sha512", "sha384"), ("P-521", "sha256", "sha512")],
)
def test_ecdsa_over_another_digest_than_its_curves_is_refused(
    curve: str, algorithm: str, required: str
) -> None:
    # Sigstore's algorithm registry binds each curve to one digest (issue 11, item 6).
    key = ec_key(curve)
    digest = digest_of(algorithm)
    error = rejected(request(algorithm, digest.hex(), b64(sign_ecdsa(key, algorithm, digest)),
                             b64(spki_pem(key))))
    assert str(error).startswith(
        f"spec.data.hash.algorithm: a {curve} key signs {required} digests only, not {algorithm}")
    assert error.status == 400


def test_a_p256_signature_does_not_also_sign_every_longer_digest_with_its_prefix() -> None:
    # ECDSA cuts a digest to the curve's size: D‖X would verify for any X (issue 11, item 6).
    key = ec_key("P-256")
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    parse_request(request("sha256", digest.hex(), b64(signature), b64(spki_pem(key))))
    for tail in (b"\0" * 32, b"x" * 32):
        longer = request("sha512", (digest + tail).hex(), b64(signature), b64(spki_pem(key)))
        assert "signs sha256 digests only" in str(rejected(longer))
    # A record that slipped in before is refused when checked again (fsck, audit, verify).
    with pytest.raises(InvalidInput, match="signs sha256 digests only"):
        verify_signature(HashedRekord("sha512", digest + b"x" * 32, signature, spki_pem(key), False))


@pytest.mark.parametrize("salt", ["zero", "digest", "max"])
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_rsa_pss_with_any_valid_salt_length_is_accepted(algorithm: str, salt: str) -> None:
    # RFC 8017 §9.1 leaves the salt length to the signer: OpenSSL's default is the
    # longest, Go's the digest's, some HSMs 0 (issue 11, item 8).
    key = rsa_key(2048)
    h = HASHES[algorithm]()
    length = {"zero": 0, "digest": h.digest_size,
              "max": padding.calculate_max_pss_salt_length(key, h)}[salt]
    digest = digest_of(algorithm)
    signature = sign_pss(key, algorithm, digest, salt_length=length)
    entry = parse_request(request(algorithm, digest.hex(), b64(signature), b64(spki_pem(key))))
    assert entry.signature == signature
    verify_signature(entry)


def test_certificate_submission_stores_the_certificate_pem() -> None:
    key = ec_key("P-256")
    certificate = p256_certificate()
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)

    entry = parse_request(request("sha256", digest.hex(), b64(signature), b64(cert_pem)))

    assert entry.is_certificate
    assert entry.public_key_pem == cert_pem
    assert entry.canonical_body() == expected_body("sha256", digest, signature, cert_pem)


def test_rsa_certificate_submission_is_accepted() -> None:
    key = rsa_key(2048)
    cert_pem = self_signed(key).public_bytes(serialization.Encoding.PEM)
    digest = digest_of("sha384")
    signature = sign_pss(key, "sha384", digest)
    entry = parse_request(request("sha384", digest.hex(), b64(signature), b64(cert_pem)))
    assert entry.canonical_body() == expected_body("sha384", digest, signature, cert_pem)


def test_expired_certificate_is_accepted() -> None:
    # The log records; validity at integratedTime is the verifier's call (as in Rekor).
    key = ec_key("P-256")
    old = datetime.datetime(2001, 1, 1, tzinfo=datetime.UTC)
    certificate = self_signed(key, not_before=old, not_after=old + datetime.timedelta(days=1))
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    entry = parse_request(request("sha256", digest.hex(), b64(signature), b64(cert_pem)))
    assert entry.is_certificate


def test_unknown_fields_are_dropped_from_the_body() -> None:
    obj, body = p256_case()
    noisy = copy.deepcopy(obj)
    noisy["extra"] = {"anything": [1, 2, 3]}
    noisy["spec"]["extra"] = None
    noisy["spec"]["data"]["content"] = "aGVsbG8="
    noisy["spec"]["data"]["hash"]["extra"] = 1.5
    noisy["spec"]["signature"]["format"] = "x509"
    noisy["spec"]["signature"]["publicKey"]["url"] = "https://example.com/key.pem"
    assert parse_request(noisy).canonical_body() == body


# --- normalization: one signature, one body ---------------------------------------------


def test_upper_case_hex_is_lower_cased() -> None:
    obj, body = p256_case()
    shouting = copy.deepcopy(obj)
    shouting["spec"]["data"]["hash"]["value"] = obj["spec"]["data"]["hash"]["value"].upper()
    assert parse_request(shouting).canonical_body() == body


def test_compressed_ec_point_is_written_uncompressed() -> None:
    obj, body = p256_case()
    key = ec_key("P-256").public_key()
    der = spki_der(key)
    algorithm_identifier = der[2:23]  # SEQUENCE { ecPublicKey, prime256v1 }
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    bit_string = b"\x03" + bytes([len(point) + 1]) + b"\x00" + point
    inner = algorithm_identifier + bit_string
    compressed_der = b"\x30" + bytes([len(inner)]) + inner
    compressed_pem = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.encodebytes(compressed_der)
        + b"-----END PUBLIC KEY-----\n"
    )
    assert compressed_pem != spki_pem(key)
    squeezed = copy.deepcopy(obj)
    squeezed["spec"]["signature"]["publicKey"]["content"] = b64(compressed_pem)
    assert parse_request(squeezed).canonical_body() == body


def _insert_newlines(text: str, positions: list[int], newline: str) -> str:
    for position in sorted(positions, reverse=True):
        text = text[:position] + newline + text[position:]
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(min_value=1, max_value=120),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    padding_before=st.sampled_from([b"", b"\n", b"  \n\t", b"\r\n"]),
    padding_after=st.sampled_from([b"", b"\n", b"\n\n", b" \r\n"]),
    hex_case=st.lists(st.booleans(), min_size=64, max_size=64),
    signature_breaks=st.lists(st.integers(min_value=0, max_value=96), max_size=4),
    key_breaks=st.lists(st.integers(min_value=0, max_value=200), max_size=4),
    b64_newline=st.sampled_from(["\n", "\r\n"]),
    as_certificate=st.booleans(),
)
def test_equivalent_encodings_give_identical_bodies(
    width: int,
    newline: bytes,
    padding_before: bytes,
    padding_after: bytes,
    hex_case: list[bool],
    signature_breaks: list[int],
    key_breaks: list[int],
    b64_newline: str,
    as_certificate: bool,
) -> None:
    key = ec_key("P-256")
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    pem = p256_certificate().public_bytes(serialization.Encoding.PEM) if as_certificate \
        else spki_pem(key)
    reference = parse_request(request("sha256", digest.hex(), b64(signature), b64(pem)))
    assert reference.canonical_body() == expected_body("sha256", digest, signature, pem)

    value = "".join(c.upper() if up else c for c, up in zip(digest.hex(), hex_case, strict=True))
    variant_pem = padding_before + rewrap_pem(pem, width, newline) + padding_after
    sig_b64 = _insert_newlines(b64(signature), signature_breaks, b64_newline)
    key_b64 = _insert_newlines(b64(variant_pem), key_breaks, b64_newline)

    variant = parse_request(request("sha256", value, sig_b64, key_b64))

    assert variant.canonical_body() == reference.canonical_body()


def test_same_key_as_key_or_certificate_has_the_same_fingerprint() -> None:
    key = ec_key("P-256")
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    cert_pem = p256_certificate().public_bytes(serialization.Encoding.PEM)
    as_key = parse_request(request("sha256", digest.hex(), b64(signature), b64(spki_pem(key))))
    as_cert = parse_request(request("sha256", digest.hex(), b64(signature), b64(cert_pem)))

    assert as_key.canonical_body() != as_cert.canonical_body()
    expected = hashlib.sha256(spki_der(key)).digest()
    assert as_key.public_key_fingerprint() == expected
    assert as_cert.public_key_fingerprint() == expected


def test_fingerprint_of_user_pem_accepts_raw_pem_base64_and_certificates() -> None:
    key = ec_key("P-384")
    expected = hashlib.sha256(spki_der(key)).digest()
    pem = spki_pem(key)
    cert_pem = self_signed(key).public_bytes(serialization.Encoding.PEM)
    for given_pem in (pem, cert_pem, rewrap_pem(pem, 20, b"\r\n")):
        assert public_key_fingerprint_of_pem(given_pem) == expected
        assert public_key_fingerprint_of_pem(given_pem.decode()) == expected
        assert public_key_fingerprint_of_pem(b64(given_pem)) == expected
        assert public_key_fingerprint_of_pem(b64(given_pem).encode()) == expected
    other = hashlib.sha256(spki_der(ec_key("P-256"))).digest()
    assert public_key_fingerprint_of_pem(spki_pem(ec_key("P-256"))) == other != expected


def test_fingerprint_of_user_pem_rejects_junk_and_private_keys() -> None:
    private_pem = ec_key("P-256").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for junk in ("", "not a key", b"\xff\xfe", b64(b"hello"), private_pem, None, 12):
        with pytest.raises(InvalidInput):
            public_key_fingerprint_of_pem(junk)  # type: ignore[arg-type]


# --- refused submissions ----------------------------------------------------------------


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], object]:
    def mutate(obj: dict[str, Any]) -> object:
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return obj

    return mutate


def _delete(path: tuple[str, ...]) -> Callable[[dict[str, Any]], object]:
    def mutate(obj: dict[str, Any]) -> object:
        target = obj
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return obj

    return mutate


HASH = ("spec", "data", "hash")
SIG = ("spec", "signature")
KEY = ("spec", "signature", "publicKey")
PEM_KEY = spki_pem(ec_key("P-256")).decode()


def _key_pem(pem: str | bytes) -> Callable[[dict[str, Any]], object]:
    """Replace the public key content with base64 of `pem`."""
    return _set((*KEY, "content"), b64(pem if isinstance(pem, bytes) else pem.encode()))


def _relabel(old: str, new: str, *, end: bool = True) -> str:
    pem = PEM_KEY.replace(f"BEGIN {old}", f"BEGIN {new}")
    return pem.replace(f"END {old}", f"END {new}") if end else pem


def _pem_of(body: str, label: str = "PUBLIC KEY") -> str:
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: [o], "request: expected a JSON object, got array"),
        (lambda o: "hashedrekord", "request: expected a JSON object, got string"),
        (lambda o: None, "request: expected a JSON object, got null"),
        (lambda o: 42, "request: expected a JSON object, got number"),
        (_delete(("kind",)), "kind: required"),
        (_set(("kind",), None), "kind: expected a string, got null"),
        (_set(("kind",), "rekord"),
         'kind: "rekord" is not supported; supported kinds: "hashedrekord"'),
        (_set(("kind",), "HashedRekord"), "supported kinds"),
        (_delete(("apiVersion",)), "apiVersion: required"),
        (_set(("apiVersion",), "0.0.2"),
         'apiVersion: hashedrekord version "0.0.2" is not supported'),
        (_set(("apiVersion",), 1), "apiVersion: expected a string, got number"),
        (_delete(("spec",)), "spec: required"),
        (_set(("spec",), []), "spec: expected an object, got array"),
        (_set(("spec",), None), "spec: expected an object, got null"),
        (_delete(("spec", "data")), "spec.data: required"),
        (_set(("spec", "data"), "x"), "spec.data: expected an object, got string"),
        (_delete(HASH), "spec.data.hash: required"),
        (_set(HASH, [1]), "spec.data.hash: expected an object, got array"),
        (_delete((*HASH, "algorithm")), "spec.data.hash.algorithm: required"),
        (_set((*HASH, "algorithm"), 256),
         "spec.data.hash.algorithm: expected a string, got number"),
        (_set((*HASH, "algorithm"), "md5"), 'spec.data.hash.algorithm: "md5" is not supported'),
        (_set((*HASH, "algorithm"), "SHA256"), "(names are lower case)"),
        (_set((*HASH, "algorithm"), "sha384"),
         "spec.data.hash.value: expected 96 hex characters for sha384, got 64"),
        (_set((*HASH, "algorithm"), "sha512"),
         "spec.data.hash.value: expected 128 hex characters for sha512, got 64"),
        (_delete((*HASH, "value")), "spec.data.hash.value: required"),
        (_set((*HASH, "value"), True), "spec.data.hash.value: expected a string, got boolean"),
        (_set((*HASH, "value"), "a" * 63),
         "spec.data.hash.value: expected 64 hex characters for sha256, got 63"),
        (_set((*HASH, "value"), "a" * 65), "expected 64 hex characters for sha256, got 65"),
        (_set((*HASH, "value"), ""), "expected 64 hex characters for sha256, got 0"),
        (_set((*HASH, "value"), "g" * 64), "spec.data.hash.value: not hexadecimal"),
        (_set((*HASH, "value"), "\uff10" * 64), "spec.data.hash.value: not hexadecimal"),
        (_set((*HASH, "value"), " " + "a" * 63), "spec.data.hash.value: not hexadecimal"),
        (_delete(SIG), "spec.signature: required"),
        (_set(SIG, "MEUC"), "spec.signature: expected an object, got string"),
        (_delete((*SIG, "content")), "spec.signature.content: required"),
        (_set((*SIG, "content"), None), "spec.signature.content: expected a string, got null"),
        (_set((*SIG, "content"), ""), "spec.signature.content: must not be empty"),
        (_set((*SIG, "content"), "!!!!"), "spec.signature.content: not valid standard base64"),
        (_set((*SIG, "content"), "MEUCIQ"), "spec.signature.content: base64 without '=' padding"),
        (_set((*SIG, "content"), "ME-_IQ=="), "spec.signature.content: URL-safe base64"),
        (_set((*SIG, "content"), "MEU\u00e9"), "spec.signature.content: not base64"),
        (_set((*SIG, "content"), "ME UC"), "spec.signature.content: not valid standard base64"),
        (_set((*SIG, "content"), "QQ==QQ=="), "spec.signature.content: not valid standard base64"),
        (_set((*SIG, "content"), "QUJD"), "spec.signature.content: signature does not verify"),
        (_delete(KEY), "spec.signature.publicKey: required"),
        (_set(KEY, None), "spec.signature.publicKey: expected an object, got null"),
        (_delete((*KEY, "content")), "spec.signature.publicKey.content: required"),
        (_set((*KEY, "content"), ["x"]),
         "spec.signature.publicKey.content: expected a string, got array"),
        (_set((*KEY, "content"), "%%%%"),
         "spec.signature.publicKey.content: not valid standard base64"),
        (_set((*KEY, "content"), PEM_KEY), "expected base64 of the PEM, got the PEM itself"),
        (_key_pem("hello world"), "spec.signature.publicKey.content: not a PEM"),
        (_key_pem(_pem_of("!!!!")), "malformed PEM body"),
        (_key_pem(_pem_of("AAA")), "malformed PEM body"),
        (_key_pem(_pem_of(" ")), "empty PEM block"),
        (_key_pem(_pem_of("AAAA")), "not a valid SubjectPublicKeyInfo"),
        (_key_pem(_relabel("PUBLIC KEY", "CERTIFICATE")), "not a valid X.509 certificate"),
        (_key_pem(PEM_KEY + "garbage"), "unexpected data after the PEM block"),
        (_key_pem("garbage\n" + PEM_KEY), "not a PEM public key"),
        (_key_pem(PEM_KEY * 2), "more than one PEM block"),
        (_key_pem(_relabel("PUBLIC KEY", "RSA PUBLIC KEY")),
         "PKCS#1 'RSA PUBLIC KEY' PEM is not accepted"),
        (_key_pem(_relabel("PUBLIC KEY", "X509 CRL")), "unsupported PEM type 'X509 CRL'"),
        (_key_pem(_relabel("PUBLIC KEY", "CERTIFICATE", end=False)),
         "BEGIN and END labels differ"),
        (_key_pem(PEM_KEY.replace("KEY-----\n", "KEY-----\nProc-Type: 4,ENCRYPTED\n\n", 1)),
         "PEM headers are not accepted"),
    ],
)
def test_malformed_request_is_refused_with_a_message_naming_the_field(
    mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    error = rejected(mutate(valid_request()))
    assert message in str(error)
    assert error.status == 400


def test_certificate_chain_is_refused() -> None:
    root_key = ec_key("P-384")
    chain = p256_certificate().public_bytes(serialization.Encoding.PEM) + self_signed(
        root_key
    ).public_bytes(serialization.Encoding.PEM)
    error = rejected(_set((*KEY, "content"), b64(chain))(valid_request()))
    assert "not a chain" in str(error)


PRIVATE_KEYS = [
    (ec_key("P-256"), serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    (ec_key("P-256"), serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
    (rsa_key(2048), serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
    (ec_key("P-384"), serialization.PrivateFormat.PKCS8,
     serialization.BestAvailableEncryption(b"pw")),
    (ec_key("P-256"), serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()),
]


@pytest.mark.parametrize(("key", "fmt", "encryption"), PRIVATE_KEYS)
def test_private_key_is_refused_without_echoing_it(key: Any, fmt: Any, encryption: Any) -> None:
    private_pem = key.private_bytes(serialization.Encoding.PEM, fmt, encryption)
    for content in (private_pem, spki_pem(key) + private_pem):
        error = rejected(_set((*KEY, "content"), b64(content))(valid_request()))
        message = str(error)
        assert "private key" in message
        assert message.startswith("spec.signature.publicKey.content:")
        body_lines = [line for line in private_pem.split(b"\n")[1:-2] if len(line) >= 16]
        assert body_lines
        for line in body_lines:
            for start in range(0, len(line) - 12, 6):
                assert line[start : start + 12].decode() not in message


def _request_for_key(public_pem: bytes, signature: bytes = b"\x30\x00") -> dict[str, Any]:
    return request("sha256", digest_of("sha256").hex(), b64(signature), b64(public_pem))


def test_ed25519_key_is_refused_with_an_explanation() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    digest = digest_of("sha256")
    error = rejected(_request_for_key(spki_pem(key), key.sign(digest)))
    assert "Ed25519" in str(error)
    assert "digest" in str(error)
    assert "ECDSA or RSA" in str(error)


def test_ed25519_certificate_is_refused_with_an_explanation() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert_pem = self_signed(key).public_bytes(serialization.Encoding.PEM)
    assert "Ed25519" in str(rejected(_request_for_key(cert_pem)))


def test_ed448_key_is_refused() -> None:
    assert "Ed448" in str(rejected(_request_for_key(spki_pem(ed448.Ed448PrivateKey.generate()))))


def test_rsa_1024_is_refused_as_too_weak() -> None:
    key = rsa_key(1024)
    digest = digest_of("sha256")
    error = rejected(_request_for_key(spki_pem(key), sign_pkcs1(key, "sha256", digest)))
    assert "1024 bits is too weak" in str(error)
    assert "2048" in str(error)
    assert error.status == 400


def test_oversized_rsa_modulus_and_exponent_are_refused() -> None:
    # Public numbers need no primes: enough to exercise the size and exponent checks.
    # Sigstore's algorithm registry: RSA 2048 to 4096 bits, e = 65537 (issue 11, item 4).
    for bits in (4097, 8192):
        big = rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()
        error = rejected(_request_for_key(spki_pem(big)))
        assert f"RSA key of {bits} bits is larger than this log accepts: 2048 to 4096 bits" in str(error)
    for exponent, shown in ((3, "3"), (65539, "65539"), ((1 << 31) - 1, str((1 << 31) - 1)),
                            ((1 << 100) + 1, "of 101 bits")):
        odd = rsa.RSAPublicNumbers(exponent, (1 << 2047) | 1).public_key()
        error = rejected(_request_for_key(spki_pem(odd)))
        assert f"RSA public exponent {shown} is not accepted: only 65537" in str(error)
        assert error.status == 400


def test_secp256k1_is_refused_as_unsupported_curve() -> None:
    key = ec_key("secp256k1")
    digest = digest_of("sha256")
    error = rejected(_request_for_key(spki_pem(key), sign_ecdsa(key, "sha256", digest)))
    assert "unsupported elliptic curve secp256k1" in str(error)


def test_dsa_and_x25519_keys_are_refused() -> None:
    assert "DSA keys are not supported" in str(
        rejected(_request_for_key(spki_pem(dsa.generate_private_key(2048))))
    )
    assert "unsupported key type X25519" in str(
        rejected(_request_for_key(spki_pem(x25519.X25519PrivateKey.generate())))
    )


def test_signature_over_another_digest_is_refused() -> None:
    key = ec_key("P-256")
    signature = sign_ecdsa(key, "sha256", digest_of("sha256", b"another artifact"))
    obj = request("sha256", digest_of("sha256").hex(), b64(signature), b64(spki_pem(key)))
    error = rejected(obj)
    assert "spec.signature.content: signature does not verify" in str(error)
    assert error.status == 400


def test_signature_by_another_key_is_refused() -> None:
    digest = digest_of("sha256")
    signature = sign_ecdsa(ec_key("P-384"), "sha256", digest)
    assert "does not verify" in str(
        rejected(request("sha256", digest.hex(), b64(signature), b64(spki_pem(ec_key("P-256")))))
    )
    rsa_signature = sign_pkcs1(rsa_key(2048), "sha256", digest)
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "does not verify" in str(
        rejected(request("sha256", digest.hex(), b64(rsa_signature), b64(spki_pem(other_rsa))))
    )


def test_raw_r_s_ecdsa_signature_is_refused() -> None:
    # Rekor (and DESIGN §2) take ASN.1 DER ECDSA signatures only.
    key = ec_key("P-256")
    digest = digest_of("sha256")
    r, s = utils.decode_dss_signature(sign_ecdsa(key, "sha256", digest))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    error = rejected(request("sha256", digest.hex(), b64(raw), b64(spki_pem(key))))
    assert "does not verify" in str(error)


def test_oversized_entry_is_refused_with_413() -> None:
    obj = valid_request()
    obj["spec"]["signature"]["content"] = b64(b"\x00" * 50_000)
    error = rejected(obj)
    assert error.status == 413
    assert str(MAX_BODY_BYTES) in str(error)


# --- stored bodies ----------------------------------------------------------------------


def test_parse_body_round_trips_a_canonical_body() -> None:
    obj, body = p256_case()
    entry = parse_request(obj)
    assert parse_body(body) == entry
    cert_pem = p256_certificate().public_bytes(serialization.Encoding.PEM)
    cert_entry = parse_request(_set((*KEY, "content"), b64(cert_pem))(valid_request()))
    assert parse_body(cert_entry.canonical_body()) == cert_entry


def _compact(obj: Any) -> bytes:
    """What RFC 8785 gives for these documents (ASCII strings only, no numbers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _with(path: tuple[str, ...], change: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def mutate(obj: Any) -> Any:
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = change(target[path[-1]])
        return obj

    return mutate


def _rewrapped_key(content: str) -> str:
    return b64(rewrap_pem(base64.b64decode(content), 76))


NON_CANONICAL_BODIES: dict[str, Callable[[Any], bytes]] = {
    "pretty-printed": lambda o: json.dumps(o, sort_keys=True, indent=1).encode(),
    "spaces after separators": lambda o: json.dumps(o, sort_keys=True).encode(),
    "keys out of order": lambda o: json.dumps(
        {"spec": o["spec"], "kind": o["kind"], "apiVersion": o["apiVersion"]},
        separators=(",", ":"),
    ).encode(),
    "upper-case hex": lambda o: _compact(_with((*HASH, "value"), str.upper)(o)),
    "unknown field": lambda o: _compact(_set(("extra",), 1)(o)),
    "base64 with a newline": lambda o: _compact(_with((*SIG, "content"), lambda c: c + "\n")(o)),
    "PEM re-wrapped at 76": lambda o: _compact(_with((*KEY, "content"), _rewrapped_key)(o)),
    "trailing newline": lambda o: _compact(o) + b"\n",
    "duplicate key": lambda o: b'{"kind":"hashedrekord",' + _compact(o)[1:],
    "UTF-16": lambda o: json.dumps(o, sort_keys=True, separators=(",", ":")).encode("utf-16"),
}


@pytest.mark.parametrize("variant", NON_CANONICAL_BODIES.values(), ids=NON_CANONICAL_BODIES)
def test_parse_body_refuses_non_canonical_bytes(variant: Callable[[Any], bytes]) -> None:
    _, body = p256_case()
    assert _compact(json.loads(body)) == body  # the test's notion of canonical is right
    data = variant(json.loads(body))
    assert data != body
    with pytest.raises(InvalidInput):
        parse_body(data)


@pytest.mark.parametrize(
    "data", [b"", b"{", b"\xff\xfe\x00", b"[]", b"null", b"{}" * 40000, "text", None]
)
def test_parse_body_refuses_junk(data: Any) -> None:
    with pytest.raises(InvalidInput):
        parse_body(data)


def test_parse_body_does_not_check_the_signature_but_verify_signature_does() -> None:
    obj, _ = p256_case()
    entry = parse_request(obj)
    forged = dataclasses.replace(entry, digest=digest_of("sha256", b"something else"))
    assert parse_body(forged.canonical_body()) == forged
    verify_signature(entry)
    with pytest.raises(InvalidInput, match="does not verify"):
        verify_signature(forged)


def test_parse_body_refuses_a_key_the_log_cannot_hold() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    body = expected_body("sha256", digest_of("sha256"), b"sig", spki_pem(key))
    with pytest.raises(InvalidInput, match="Ed25519"):
        parse_body(body)


# --- no input raises anything but InvalidInput ------------------------------------------

FIELD_NAMES = ["apiVersion", "kind", "spec", "data", "hash", "algorithm", "value",
               "signature", "content", "publicKey", "format", "url"]
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["hashedrekord", "0.0.1", "sha256", "sha384", "sha512", "", "=", "AAAA"])
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), children, max_size=5),
    max_leaves=30,
)
PATHS = [(), ("spec",), ("spec", "data"), HASH, (*HASH, "algorithm"), (*HASH, "value"), SIG,
         (*SIG, "content"), KEY, (*KEY, "content"), ("kind",), ("apiVersion",)]


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_raises_only_invalid_input(value: object) -> None:
    try:
        parse_request(value)
    except InvalidInput as error:
        assert error.status in (400, 413)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), JSON_VALUES)
def test_any_json_value_at_any_field_raises_only_invalid_input(
    path: tuple[str, ...], value: object
) -> None:
    obj = value
    if path:
        obj = valid_request()
        _set(path, value)(obj)
    try:
        entry = parse_request(obj)
    except InvalidInput:
        return
    # Only a replacement that changed nothing the body holds can have been accepted.
    assert entry.canonical_body() == p256_case()[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_as_a_body_raise_only_invalid_input(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        parse_body(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200)
       | st.builds(lambda b: b"-----BEGIN PUBLIC KEY-----\n" + b + b"\n-----END PUBLIC KEY-----",
                   st.binary(max_size=100)))
def test_any_user_pem_raises_only_invalid_input(data: bytes | str) -> None:
    with contextlib.suppress(InvalidInput):
        public_key_fingerprint_of_pem(data)


@pytest.mark.parametrize(
    "change", [{"digest": b"\x00" * 31}, {"algorithm": "md5"}, {"algorithm": "sha384"}]
)
def test_verify_signature_refuses_a_hand_built_entry_whose_digest_does_not_fit(
    change: dict[str, Any],
) -> None:
    entry = dataclasses.replace(parse_request(valid_request()), **change)
    with pytest.raises(InvalidInput, match="digest does not fit"):
        verify_signature(entry)


def test_fingerprint_of_user_pem_works_for_keys_the_log_refuses() -> None:
    # A search for such a key is not an error: it just finds nothing.
    key = ed25519.Ed25519PrivateKey.generate()
    assert public_key_fingerprint_of_pem(spki_pem(key)) == hashlib.sha256(spki_der(key)).digest()


# --- interop: sigstore-python's own hashedrekord model ----------------------------------


def test_sigstore_python_request_is_accepted_and_its_body_check_passes() -> None:
    # sigstore-python submits `_hashedrekord_from_parts(...)` and, at verify time, compares
    # that model with the log's body parsed as `rekor_types.Hashedrekord` (verifier.py,
    # _validate_hashedrekord_v001_entry_body). Our normalized body must compare equal,
    # even when the submission wrapped the certificate PEM differently.
    import rekor_types
    from sigstore._internal.rekor import _hashedrekord_from_parts
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    key = ec_key("P-256")
    certificate = p256_certificate()
    digest = digest_of("sha256")
    signature = sign_ecdsa(key, "sha256", digest)
    model = _hashedrekord_from_parts(
        certificate, signature, Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    )
    submitted = model.model_dump(mode="json", by_alias=True)

    entry = parse_request(submitted)
    assert rekor_types.Hashedrekord.model_validate_json(entry.canonical_body()) == model

    rewrapped_pem = rewrap_pem(certificate.public_bytes(serialization.Encoding.PEM), 40)
    _key_pem(rewrapped_pem)(submitted)
    _with((*HASH, "value"), str.upper)(submitted)
    again = parse_request(submitted)
    assert rekor_types.Hashedrekord.model_validate_json(again.canonical_body()) == model


@given(algorithm=st.sampled_from(["sha256", "sha384", "sha512"]), digest=st.binary(min_size=32, max_size=64),
       signature=st.binary(min_size=1, max_size=600), pem=st.binary(min_size=1, max_size=3000),
       cert=st.booleans())
def test_canonical_body_is_exactly_rfc8785(algorithm: str, digest: bytes, signature: bytes,
                                           pem: bytes, cert: bool) -> None:
    import rfc8785
    entry = HashedRekord(algorithm, digest, signature, pem, cert)
    want = rfc8785.dumps({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
        "signature": {"content": base64.b64encode(signature).decode(),
                      "publicKey": {"content": base64.b64encode(pem).decode()}}}})
    assert entry.canonical_body() == want

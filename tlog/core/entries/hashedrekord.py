"""Admission of Rekor `hashedrekord` v0.0.1 entries: parse, normalize, verify, canonicalize.

Follows Rekor's `pkg/types/hashedrekord/v0.0.1` (entry.go and hashedrekord_v0_0_1_schema.json)
and DESIGN §2 "Canonical body": a submission is normalized, then serialized as RFC 8785 JSON,
so one signature always yields one body, and so one leaf (RFC 6962 §2.1).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    utils,
)
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from tlog.core.digests import DIGESTS
from tlog.errors import InvalidInput, PayloadTooLarge

KIND: Final = "hashedrekord"
API_VERSION: Final = "0.0.1"


# DESIGN §2 (tiles): entry bundles prefix each body with a big-endian uint16 length.
MAX_BODY_BYTES: Final = 65_535

# DESIGN §2: RSA of at least 2048 bits. The upper bound is ours, not Rekor's: an RSA
# verification costs O(bits²), and admission has a throughput target (DESIGN §5).
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 8192

# DESIGN §2: ECDSA on the NIST curves only (cryptography's names → the names people know).
_CURVES: Final[Mapping[str, str]] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}

_SUPPORTED_KEYS: Final = "ECDSA P-256, P-384, P-521 or RSA (2048 to 8192 bits)"

# JSON field paths, used to name the field in every error message.
_SPEC = "spec"
_DATA = "spec.data"
_HASH = "spec.data.hash"
_ALGORITHM = "spec.data.hash.algorithm"
_VALUE = "spec.data.hash.value"
_SIGNATURE = "spec.signature"
_SIGNATURE_CONTENT = "spec.signature.content"
_PUBLIC_KEY = "spec.signature.publicKey"
_PUBLIC_KEY_CONTENT = "spec.signature.publicKey.content"

_HEX = re.compile(r"[0-9a-fA-F]*")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# One PEM block (RFC 7468 §2). The label stops at '-' so that "-----BEGIN X-----" parses.
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([^\r\n-]{1,64})-----[ \t]*\r?\n(.*?)-----END ([^\r\n-]{1,64})-----",
    re.DOTALL,
)
_PEM_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_PLAIN_LABEL = re.compile(r"[A-Z0-9 ]{1,40}")
_PUBLIC_KEY_LABEL: Final = "PUBLIC KEY"
_CERTIFICATE_LABEL: Final = "CERTIFICATE"


_BODY_TEMPLATE = (
    b'{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"%s",'
    b'"value":"%s"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}'
)


@dataclass(frozen=True)
class HashedRekord:
    """A normalized hashedrekord v0.0.1 entry: what the log stores, as values.

    `public_key_pem` is already normalized (DESIGN §2): a SubjectPublicKeyInfo
    "PUBLIC KEY" PEM re-encoded from the parsed key, or the certificate's own DER
    re-wrapped as a "CERTIFICATE" PEM (64-character lines, LF).
    """

    algorithm: str
    digest: bytes
    signature: bytes
    public_key_pem: bytes
    is_certificate: bool

    def canonical_body(self) -> bytes:
        """The leaf: RFC 8785 JSON of the entry (DESIGN §2 "Canonical body").

        Same members, same order and same encodings as the body Rekor writes with Go's
        json.Marshal (its keys are already in RFC 8785 order), so a Rekor client reads it
        as a Rekor body. Rekor keeps the submitted hex case; we lower-case it.
        """
        # Memoized outside the fields (so equality and hashing ignore it): admission,
        # the sequencer and the index all ask for it, and rfc8785 is pure Python.
        cached: bytes | None = self.__dict__.get("_canonical_body")
        if cached is not None:
            return cached
        # Every member is a fixed name or a hex/base64 string, which RFC 8785 writes as is
        # (no escapes), in this member order (RFC 8785 §3.2.3 sorts by UTF-16 code unit).
        # Formatting directly is ~20× cheaper than rfc8785.dumps on the submission path;
        # tests pin the two byte-equal.
        body = _BODY_TEMPLATE % (
            self.algorithm.encode("ascii"),
            self.digest.hex().encode("ascii"),
            base64.b64encode(self.signature),
            base64.b64encode(self.public_key_pem),
        )
        self.__dict__["_canonical_body"] = body
        return body

    def artifact_key(self) -> str:
        """`<algorithm>:<lower hex>`, the search-index key Rekor uses for the artifact."""
        return f"{self.algorithm}:{self.digest.hex()}"

    def public_key_fingerprint(self) -> bytes:
        """SHA-256 of the DER SubjectPublicKeyInfo of the signing key (of a certificate's key).

        Keyed on the key, not the PEM bytes as Rekor's index is, so that searching with a
        key finds entries submitted with a certificate for that key, and the reverse.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            label, der = _parse_pem(self.public_key_pem, "publicKey")
            cached = _fingerprint(_load_public_key(label, der, "publicKey"))
            self.__dict__["_fingerprint"] = cached
        return cached


def parse_request(obj: object) -> HashedRekord:
    """Validate a parsed `POST /api/v1/log/entries` body (Rekor's ProposedEntry).

    Any JSON value may arrive; anything but a well-formed, verifying hashedrekord v0.0.1
    raises InvalidInput naming the field at fault. Unknown fields are dropped (DESIGN §2).
    """
    entry, key = _parse(obj)
    body_size = len(entry.canonical_body())
    if body_size > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"entry too large: its canonical body would be {body_size} bytes, "
            f"the log stores at most {MAX_BODY_BYTES}"
        )
    _check_supported(key, _PUBLIC_KEY_CONTENT)
    _verify(key, entry)
    return entry


def parse_body(body: bytes) -> HashedRekord:
    """Parse a canonical body read back from the log (audit, verification, tiles).

    Strict: the bytes must be exactly what `canonical_body()` writes for the entry they
    describe, else InvalidInput. The signature is not checked here; call verify_signature.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"body: expected bytes, got {type(body).__name__}")
    raw = bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"body: {len(raw)} bytes, more than a log entry can hold")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("body: not valid JSON") from None
    entry, key = _parse(obj)
    _check_supported(key, _PUBLIC_KEY_CONTENT)
    # Re-canonicalizing must give back the same bytes: that rules out unknown fields,
    # duplicate keys, whitespace, upper-case hex, unpadded base64, re-wrapped PEM...
    if entry.canonical_body() != raw:
        raise InvalidInput(
            "body: not in canonical form (RFC 8785 JSON of the normalized entry, DESIGN §2)"
        )
    return entry


def verify_signature(entry: HashedRekord) -> None:
    """Check the entry's signature over its digest; InvalidInput if it does not verify."""
    label, der = _parse_pem(entry.public_key_pem, _PUBLIC_KEY_CONTENT)
    key = _key_material(label, der)[0]
    _check_supported(key, _PUBLIC_KEY_CONTENT)
    digest = DIGESTS.get(entry.algorithm)
    if digest is None or digest.size != len(entry.digest):
        raise InvalidInput(f"{_ALGORITHM}: digest does not fit algorithm {entry.algorithm!r}")
    _verify(key, entry)


# A canonical body split around its four values: algorithm, hex digest, signature, key.
_BODY_PARTS: Final = _BODY_TEMPLATE.split(b"%s")


def indexed_values(body: bytes) -> tuple[str, bytes] | None:
    """What the search index keys a stored body by, read off its bytes: the artifact key
    (`<algorithm>:<hex>`, as `HashedRekord.artifact_key`) and the base64 of its public key
    PEM (for `stored_key_fingerprint`); None if the bytes are not laid out as
    `canonical_body` writes them.

    For confirming search-index candidates (8-byte keys collide). The log wrote the body
    itself, in canonical form (DESIGN §2), so its values sit between the template's fixed
    parts: a few byte searches, where `parse_body` decodes, parses and re-encodes the whole
    entry (2 ms with a 35 KB certificate, per candidate: issue 11, item 1). Nothing is
    verified: a search reports what the log holds.
    """
    head, *separators, tail = _BODY_PARTS
    if not (body.startswith(head) and body.endswith(tail)):
        return None
    values = []
    pos = len(head)
    for separator in separators:
        end = body.find(separator, pos)
        if end < 0:
            return None
        values.append(body[pos:end])
        pos = end + len(separator)
    algorithm, digest, _ = values  # (the signature is not indexed)
    key = body[pos:len(body) - len(tail)]
    return (algorithm + b":" + digest).decode("ascii", "replace"), key


def stored_key_fingerprint(key_content: bytes) -> bytes:
    """`public_key_fingerprint` of a stored body's key (`indexed_values`' second value).

    The log normalized that PEM when it admitted the entry (one "PUBLIC KEY" or
    "CERTIFICATE" block, `_pem`'s layout), so the DER is its base64 body and only the key
    is parsed: the PEM checks a user's input needs cost 30× more on a large certificate.
    Anything else takes the checked path of `public_key_fingerprint_of_pem`.
    """
    try:
        pem = binascii.a2b_base64(key_content)
        for label in (_PUBLIC_KEY_LABEL, _CERTIFICATE_LABEL):
            begin, end = b"-----BEGIN %s-----\n" % label.encode(), b"-----END %s-----\n" % label.encode()
            if pem.startswith(begin) and pem.endswith(end):
                der = binascii.a2b_base64(pem[len(begin):-len(end)])
                return _fingerprint(_load_public_key(label, der, _PUBLIC_KEY_CONTENT))
    except binascii.Error:
        raise InvalidInput(f"{_PUBLIC_KEY_CONTENT}: not base64") from None
    return public_key_fingerprint_of_pem(pem)


def public_key_fingerprint_of_pem(pem: bytes | str) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo in a user-supplied key or certificate.

    For `POST /api/v1/index/retrieve` `{publicKey: {format: "x509", content}}`. Rekor's
    openapi types `content` as base64 (`format: byte`) of the PEM; people also paste the
    PEM itself, so both are accepted. Any key type parses: a search for a key this log
    refuses simply finds nothing.
    """
    path = "publicKey.content"
    if isinstance(pem, str):
        try:
            data = pem.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{path}: not text a PEM or base64 can be made of") from None
    elif isinstance(pem, (bytes, bytearray, memoryview)):
        data = bytes(pem)
    else:
        raise InvalidInput(f"{path}: expected a string, got {_json_type(pem)}")
    if not data.strip(b" \t\r\n").startswith(b"-----BEGIN"):
        if not data.isascii():
            raise InvalidInput(f"{path}: neither a PEM block nor base64 of one")
        data = _decode_base64(data.decode("ascii"), path)
    label, der = _parse_pem(data, path)
    return _fingerprint(_load_public_key(label, der, path))


def proposed_entry(
    algorithm: str, digest: bytes, signature: bytes, public_key_pem: bytes
) -> dict[str, object]:
    """The `POST /api/v1/log/entries` body (Rekor's ProposedEntry) for a signature over
    a digest, made with the key in `public_key_pem` (a PEM public key or certificate).

    The inverse of parse_request: the log normalizes it into the canonical body. Nothing is
    checked here; call parse_request on the result to check it before sending.
    """
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature).decode("ascii"),
                "publicKey": {"content": base64.b64encode(public_key_pem).decode("ascii")},
            },
        },
    }


# --- parsing ----------------------------------------------------------------------------


def _parse(obj: object) -> tuple[HashedRekord, PublicKeyTypes]:
    """Shape and field checks shared by requests and stored bodies; no signature check."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"request: expected a JSON object, got {_json_type(obj)}")
    # Rekor dispatches on `kind` first (ProposedEntry's discriminator), then on apiVersion.
    kind = _string(obj, "kind", "kind")
    if kind != KIND:
        raise InvalidInput(
            f"kind: {_quote(kind)} is not supported; supported kinds: {json.dumps(KIND)}"
        )
    version = _string(obj, "apiVersion", "apiVersion")
    if version != API_VERSION:
        raise InvalidInput(
            f"apiVersion: hashedrekord version {_quote(version)} is not supported; "
            f"supported: {json.dumps(API_VERSION)}"
        )
    spec = _object(obj, "spec", _SPEC)

    hash_obj = _object(_object(spec, "data", _DATA), "hash", _HASH)
    algorithm = _string(hash_obj, "algorithm", _ALGORITHM)
    if algorithm not in DIGESTS:
        hint = " (names are lower case)" if algorithm.lower() in DIGESTS else ""
        raise InvalidInput(
            f"{_ALGORITHM}: {_quote(algorithm)} is not supported{hint}; "
            f"supported: {', '.join(DIGESTS)}"
        )
    value = _string(hash_obj, "value", _VALUE)
    want = DIGESTS[algorithm].hex_length
    # Rekor checks the length for the algorithm, then hex-decodes (Go's hex accepts
    # upper case, so do we; DESIGN §2 lower-cases it in the body).
    if len(value) != want:
        raise InvalidInput(
            f"{_VALUE}: expected {want} hex characters for {algorithm}, got {len(value)}"
        )
    if not value.isascii() or _HEX.fullmatch(value) is None:
        raise InvalidInput(f"{_VALUE}: not hexadecimal (expected 0-9, a-f)")
    digest = bytes.fromhex(value)

    signature_obj = _object(spec, "signature", _SIGNATURE)
    signature = _decode_base64(
        _string(signature_obj, "content", _SIGNATURE_CONTENT), _SIGNATURE_CONTENT
    )
    key_content = _string(
        _object(signature_obj, "publicKey", _PUBLIC_KEY), "content", _PUBLIC_KEY_CONTENT
    )
    if key_content.lstrip().startswith("-----BEGIN"):
        # Rekor's schema says `format: byte`: the PEM itself must be base64-encoded.
        raise InvalidInput(
            f"{_PUBLIC_KEY_CONTENT}: expected base64 of the PEM, got the PEM itself; "
            "base64-encode it"
        )
    pem_text = _decode_base64(key_content, _PUBLIC_KEY_CONTENT)
    label, der = _parse_pem(pem_text, _PUBLIC_KEY_CONTENT)
    key, pem, fingerprint = _key_material(label, der)
    entry = HashedRekord(
        algorithm=algorithm,
        digest=digest,
        signature=signature,
        public_key_pem=pem,
        is_certificate=label == _CERTIFICATE_LABEL,
    )
    entry.__dict__["_fingerprint"] = fingerprint
    return entry, key


@functools.lru_cache(maxsize=4096)
def _key_material(label: str, der: bytes) -> tuple[PublicKeyTypes, bytes, bytes]:
    """The parsed key, its normalized PEM and its fingerprint, for one DER encoding.

    Signers reuse their keys (a CI pipeline signs every release with one key): caching
    by the exact DER saves the parse and two re-encodings on each submission. Keys are
    immutable values and failures raise (lru_cache does not cache exceptions).
    """
    key = _load_public_key(label, der, _PUBLIC_KEY_CONTENT)
    if label == _CERTIFICATE_LABEL:
        # The certificate's own DER, re-wrapped: what Rekor's CanonicalValue() writes.
        pem = _pem(_CERTIFICATE_LABEL, der)
    else:
        # Re-encoded from the parsed key (Rekor's CanonicalValue() does the same with
        # Go's MarshalPKIXPublicKey). A compressed EC point, which Go refuses, is
        # accepted here and written uncompressed: the body Rekor would have written.
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return key, pem, _fingerprint(key)


def _object(parent: Mapping[str, object], key: str, path: str) -> Mapping[str, object]:
    if key not in parent:
        raise InvalidInput(f"{path}: required")
    value = parent[key]
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: expected an object, got {_json_type(value)}")
    return value


def _string(parent: Mapping[str, object], key: str, path: str) -> str:
    if key not in parent:
        raise InvalidInput(f"{path}: required")
    value = parent[key]
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: expected a string, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _quote(text: str) -> str:
    """A short, escaped echo of a client string: enough to recognize, never a dump."""
    shown = json.dumps(text[:40])
    return shown + "…" if len(text) > 40 else shown


def _decode_base64(text: str, path: str) -> bytes:
    """Standard, padded base64 (RFC 4648 §4) as Rekor decodes it: Go's
    base64.StdEncoding, which skips CR and LF but refuses URL-safe and unpadded input."""
    if text == "":
        raise InvalidInput(f"{path}: must not be empty")
    if not text.isascii():
        raise InvalidInput(f"{path}: not base64 (non-ASCII characters)")
    compact = text.replace("\r", "").replace("\n", "")
    if "-" in compact or "_" in compact:
        raise InvalidInput(
            f"{path}: URL-safe base64 is not accepted; use standard base64 (+ /)"
        )
    if _BASE64.fullmatch(compact) is None:
        raise InvalidInput(f"{path}: not valid standard base64")
    if len(compact) % 4:
        raise InvalidInput(f"{path}: base64 without '=' padding is not accepted; pad it")
    try:
        raw = base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise InvalidInput(f"{path}: not valid standard base64") from None
    if not raw:
        raise InvalidInput(f"{path}: must not be empty")
    return raw


def _parse_pem(data: bytes, path: str) -> tuple[str, bytes]:
    """Exactly one PEM block (RFC 7468), "PUBLIC KEY" or "CERTIFICATE": (label, DER)."""
    # Checked first and over everything, so that no later message depends on (or
    # quotes) private key material, whatever else surrounds it.
    if b"PRIVATE KEY" in data:
        raise InvalidInput(
            f"{path}: this is a private key; submit the public key or certificate only "
            "(the private key has left your machine: consider replacing it)"
        )
    # Rekor trims surrounding whitespace (bytes.TrimSpace) before pem.Decode.
    text = data.strip(b" \t\r\n")
    match = _PEM_BLOCK.match(text)
    if match is None:
        raise InvalidInput(
            f"{path}: not a PEM public key or certificate (expected one "
            "'-----BEGIN PUBLIC KEY-----' or '-----BEGIN CERTIFICATE-----' block)"
        )
    begin, body, end = match.groups()
    if begin != end:
        raise InvalidInput(f"{path}: PEM BEGIN and END labels differ")
    rest = text[match.end():]
    if rest:
        if b"-----BEGIN" in rest:
            # Rekor would take a chain and verify it; we record one signing key, and
            # judging a chain is the verifier's business (see _load_public_key).
            raise InvalidInput(
                f"{path}: more than one PEM block; submit one public key or the signing "
                "(leaf) certificate alone, not a chain"
            )
        raise InvalidInput(f"{path}: unexpected data after the PEM block")
    label = begin.decode("ascii", errors="replace")
    if label not in (_PUBLIC_KEY_LABEL, _CERTIFICATE_LABEL):
        if label == "RSA PUBLIC KEY":
            raise InvalidInput(
                f"{path}: PKCS#1 'RSA PUBLIC KEY' PEM is not accepted; convert it to a "
                "SubjectPublicKeyInfo 'PUBLIC KEY' PEM (openssl rsa -RSAPublicKey_in -pubout)"
            )
        shown = f" '{label}'" if _PLAIN_LABEL.fullmatch(label) else ""
        raise InvalidInput(
            f"{path}: unsupported PEM type{shown}; expected 'PUBLIC KEY' or 'CERTIFICATE'"
        )
    if b":" in body:
        # RFC 1421 headers (Proc-Type, DEK-Info) mean an encrypted or legacy block.
        raise InvalidInput(f"{path}: PEM headers are not accepted")
    encoded = _PEM_WHITESPACE.sub(b"", body)
    if not encoded:
        raise InvalidInput(f"{path}: empty PEM block")
    try:
        der = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidInput(f"{path}: malformed PEM body (not base64)") from None
    return label, der


def _pem(label: str, der: bytes) -> bytes:
    """RFC 7468 §2 PEM with 64-character lines, as Go's encoding/pem writes it."""
    encoded = base64.b64encode(der).decode("ascii")
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    text = f"-----BEGIN {label}-----\n" + "".join(f"{line}\n" for line in lines)
    return (text + f"-----END {label}-----\n").encode("ascii")


def _load_public_key(label: str, der: bytes, path: str) -> PublicKeyTypes:
    """The public key in a SubjectPublicKeyInfo or X.509 certificate DER, of any type."""
    if label == _CERTIFICATE_LABEL:
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError:
            raise InvalidInput(f"{path}: not a valid X.509 certificate") from None
        # Only the certificate's key is used: no chain, validity period or key usage
        # check. The log records what was submitted; judging identity (Fulcio roots,
        # validity at integratedTime) is the verifier's job. Rekor does the same for a
        # single certificate (x509.go Verify uses cert.PublicKey alone) and verifies a
        # chain at its NotBefore: "Expired certificates can be uploaded and should be
        # verifiable". So an expired certificate is accepted here.
        try:
            return certificate.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise InvalidInput(
                f"{path}: the certificate's public key is of an unsupported type; "
                f"supported: {_SUPPORTED_KEYS}"
            ) from None
    try:
        return serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(
            f"{path}: not a valid SubjectPublicKeyInfo public key of a supported type "
            f"({_SUPPORTED_KEYS})"
        ) from None


def _check_supported(key: PublicKeyTypes, path: str) -> None:
    """Refuse keys the log cannot check a digest signature with (DESIGN §2)."""
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        name = "Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448"
        # RFC 8032 §5.1.6: pure EdDSA hashes the message itself (with R and A), so a
        # signature over a digest cannot be checked from the digest alone. Rekor accepts
        # Ed25519ph (prehashed) here; cryptography, and so this log, does not offer it.
        raise InvalidInput(
            f"{path}: {name} signs the message itself, not a digest: a hashedrekord "
            "signature over a digest cannot be checked with it (Ed25519ph is not "
            f"supported either); sign with ECDSA or RSA. Supported: {_SUPPORTED_KEYS}"
        )
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise InvalidInput(
                f"{path}: unsupported elliptic curve {key.curve.name}; "
                f"supported curves: {', '.join(_CURVES.values())}"
            )
        return
    if isinstance(key, rsa.RSAPublicKey):
        bits = key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidInput(
                f"{path}: RSA key of {bits} bits is too weak; at least {MIN_RSA_BITS} required"
            )
        if bits > MAX_RSA_BITS:
            raise InvalidInput(
                f"{path}: RSA key of {bits} bits is larger than this log accepts "
                f"(at most {MAX_RSA_BITS})"
            )
        # Go's crypto/rsa (Rekor's verifier) refuses exponents above 2³¹-1; a huge
        # exponent would also make a cheap verification a full modular exponentiation.
        exponent = key.public_numbers().e
        if exponent < 3 or exponent % 2 == 0 or exponent >= 2**31:
            raise InvalidInput(f"{path}: unsupported RSA public exponent; use 65537")
        return
    if isinstance(key, dsa.DSAPublicKey):
        raise InvalidInput(f"{path}: DSA keys are not supported; supported: {_SUPPORTED_KEYS}")
    raise InvalidInput(
        f"{path}: unsupported key type {type(key).__name__.removesuffix('PublicKey')}; "
        f"supported: {_SUPPORTED_KEYS}"
    )


def _verify(key: PublicKeyTypes, entry: HashedRekord) -> None:
    """The signature over the digest, as a prehashed value (DESIGN §2)."""
    hash_algorithm = DIGESTS[entry.algorithm].algorithm()
    prehashed = utils.Prehashed(hash_algorithm)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            # ASN.1 DER (r, s). The hash need not match the curve: like Go's
            # ecdsa.VerifyASN1 (Rekor), the digest is truncated to the group order's
            # size (FIPS 186-4 §6.4), so P-256 over a sha512 digest is accepted.
            key.verify(entry.signature, entry.digest, ec.ECDSA(prehashed))
            return
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(entry.signature, entry.digest, padding.PKCS1v15(), prehashed)
                return
            except InvalidSignature:
                pass
            # Rekor v0.0.1 accepts only PKCS#1 v1.5; DESIGN §2 also takes PSS, with MGF1
            # over the digest's hash and a salt as long as the digest (RFC 8017 §9.1).
            pss = padding.PSS(
                mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size
            )
            key.verify(entry.signature, entry.digest, pss, prehashed)
            return
    except (InvalidSignature, ValueError):
        raise InvalidInput(
            f"{_SIGNATURE_CONTENT}: signature does not verify against the public key and "
            f"the {entry.algorithm} digest in {_VALUE}"
        ) from None
    # Not reached: _check_supported runs first and admits only the two families above.
    raise InvalidInput(
        f"{_PUBLIC_KEY_CONTENT}: unsupported key type; supported: {_SUPPORTED_KEYS}"
    )


def _fingerprint(key: PublicKeyTypes) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo, re-encoded from the parsed key."""
    try:
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(
            "publicKey: this key cannot be encoded as a SubjectPublicKeyInfo"
        ) from None
    return hashlib.sha256(spki).digest()

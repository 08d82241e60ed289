"""Admission of Rekor `hashedrekord` v0.0.1 entries: parse, normalize, verify, canonicalize.

Follows Rekor's `pkg/types/hashedrekord/v0.0.1` (entry.go and hashedrekord_v0_0_1_schema.json)
and DESIGN §2 "Canonical body": a submission is normalized, then serialized as RFC 8785 JSON,
so one signature always yields one body, and so one leaf (RFC 6962 §2.1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
from collections import OrderedDict
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
from tlog.core.merkle import leaf_hash
from tlog.errors import InvalidInput, PayloadTooLarge

KIND: Final = "hashedrekord"
API_VERSION: Final = "0.0.1"


# DESIGN §2 (tiles): entry bundles prefix each body with a big-endian uint16 length.
MAX_BODY_BYTES: Final = 65_535

# DESIGN §2: RSA of 2048 to 4096 bits with e = 65537, the RSA keys of Sigstore's algorithm
# registry (protobuf-specs PublicKeyDetails; sigstore-go signature/algorithm_registry.go).
# Rekor takes more, but a bad signature under RSA-8192 with a huge exponent cost 1.5 ms of
# event-loop time (issue 11, item 4): a verification costs O(bits²·log e).
MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 4096
RSA_EXPONENT: Final = 65537


@dataclass(frozen=True)
class _Curve:
    """An ECDSA curve the log accepts (DESIGN §2: the NIST curves only)."""

    name: str  # the name people know
    digest: str  # the one digest algorithm its signatures are over (see _check_digest)
    order: int  # n, the order of the base point (SEC 2 §2.4 / FIPS 186-4 D.1.2)


# By cryptography's curve names. The digest is Sigstore's algorithm registry's pairing
# (ECDSA_SHA2_256_NISTP256, ECDSA_SHA2_384_NISTP384, ECDSA_SHA2_512_NISTP521).
_CURVES: Final[Mapping[str, _Curve]] = {
    "secp256r1": _Curve("P-256", "sha256", int(
        "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)),
    "secp384r1": _Curve("P-384", "sha384", int(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
        "C7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973", 16)),
    "secp521r1": _Curve("P-521", "sha512", int(
        "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA"
        "51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409", 16)),
}

_SUPPORTED_KEYS: Final = (
    "ECDSA P-256 (over sha256), P-384 (sha384), P-521 (sha512), "
    "or RSA of 2048 to 4096 bits with exponent 65537"
)

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
    `check_request` then `Submission.verify`, in one step.
    """
    return check_request(obj).verify()


@dataclass(frozen=True)
class Submission:
    """A well-formed proposed entry under a key the log accepts, for a digest that key may
    sign (`check_request`); its signature is checked by `verify`. Two steps so that a
    server can check costly signatures off its event loop (`costly`)."""

    entry: HashedRekord
    material: _KeyMaterial

    @property
    def costly(self) -> bool:
        """Is the signature check slow enough to hand to a thread (issue 11, item 4)?

        Measured (cryptography 50, one core): P-256 0.11 ms; RSA-2048 0.02 ms and RSA-3072
        0.05 ms (a bad signature tries PKCS#1 v1.5 then PSS: 0.06 and 0.10 ms); P-384
        0.9 ms, P-521 0.75 ms, RSA-4096 0.08 ms (bad: 0.28 ms). The cheap ones cost what
        handing a job to a thread costs, so they stay inline.
        """
        key = self.material.key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key.curve.name != "secp256r1"
        return isinstance(key, rsa.RSAPublicKey) and key.key_size > 3072

    def verify(self) -> HashedRekord:
        """Check the signature (InvalidInput if it does not verify); the entry, admitted.
        Thread-safe: `costly` ones run on a server's verification threads."""
        _verify(self.material.key, self.entry)
        KEY_CACHE.put(self.material)  # only now: a key that signed nothing is not kept
        return self.entry

    def event_key(self) -> bytes | None:
        """The key that identifies this entry's signing event, where it is not the leaf
        hash: see `event_key_of_body`."""
        return _event_key(self.entry, self.material.key)


def check_request(obj: object) -> Submission:
    """Everything `parse_request` checks but the signature: shape and fields, the body's
    size, the key (`_check_supported`) and the digest algorithm it may sign
    (`_check_digest`). All of it is cheap next to a signature check."""
    entry, material = _parse(obj)
    body_size = len(entry.canonical_body())
    if body_size > MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"entry too large: its canonical body would be {body_size} bytes, "
            f"the log stores at most {MAX_BODY_BYTES}"
        )
    _check_supported(material.key, _PUBLIC_KEY_CONTENT)
    _check_digest(material.key, entry.algorithm)
    return Submission(entry, material)


def parse_body(body: bytes) -> HashedRekord:
    """Parse a canonical body read back from the log (audit, verification, tiles).

    Strict: the bytes must be exactly what `canonical_body()` writes for the entry they
    describe, else InvalidInput. The signature is not checked here; call verify_signature.
    """
    return _parse_body(body)[0]


def _parse_body(body: bytes) -> tuple[HashedRekord, _KeyMaterial]:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"body: expected bytes, got {type(body).__name__}")
    raw = bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"body: {len(raw)} bytes, more than a log entry can hold")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidInput("body: not valid JSON") from None
    entry, material = _parse(obj)
    _check_supported(material.key, _PUBLIC_KEY_CONTENT)
    # Re-canonicalizing must give back the same bytes: that rules out unknown fields,
    # duplicate keys, whitespace, upper-case hex, unpadded base64, re-wrapped PEM...
    if entry.canonical_body() != raw:
        raise InvalidInput(
            "body: not in canonical form (RFC 8785 JSON of the normalized entry, DESIGN §2)"
        )
    return entry, material


def verify_signature(entry: HashedRekord) -> None:
    """Check the entry's signature over its digest, by a key and for a digest algorithm
    the log accepts (as admission does); InvalidInput if it does not verify."""
    material = _key_material(*_parse_pem(entry.public_key_pem, _PUBLIC_KEY_CONTENT))
    _check_supported(material.key, _PUBLIC_KEY_CONTENT)
    digest = DIGESTS.get(entry.algorithm)
    if digest is None or digest.size != len(entry.digest):
        raise InvalidInput(f"{_ALGORITHM}: digest does not fit algorithm {entry.algorithm!r}")
    _check_digest(material.key, entry.algorithm)
    Submission(entry, material).verify()


def event_key_of_body(body: bytes) -> bytes:
    """The key of the signing event a stored body records (issue 11, item 7).

    ECDSA signatures are malleable: (r, s) and (r, n - s) both verify (SEC 1 §4.1.4; the
    reason Bitcoin's BIP-62 and libsecp256k1 require low s). Both are what signers produce
    — Go's crypto/ecdsa and OpenSSL emit either — so both are accepted and the canonical
    body keeps the submitted signature (the signer's bundle must match what is logged);
    but they are one signing event, so the log dedupes by this key: the RFC 6962 leaf hash
    of the body with s normalized to the low half (s ≤ n/2). For a low-s ECDSA or an RSA
    signature that is the body's own leaf hash (RSA: a third party cannot make a second
    valid signature). A body that does not parse has no twin: its leaf hash.
    """
    try:
        entry, material = _parse_body(body)
    except InvalidInput:
        return leaf_hash(body)
    return _event_key(entry, material.key) or leaf_hash(body)


def event_key(entry: HashedRekord) -> bytes | None:
    """`event_key_of_body` of a parsed entry, None where that is its own leaf hash."""
    return _event_key(entry, _key_material(*_parse_pem(entry.public_key_pem, _PUBLIC_KEY_CONTENT)).key)


def _event_key(entry: HashedRekord, key: PublicKeyTypes) -> bytes | None:
    """`event_key_of_body` for a parsed entry, None where it is the leaf hash: the cheap
    case (one DER decode) on the submission path; only a high-s signature costs a body."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        return None
    try:
        r, s = utils.decode_dss_signature(entry.signature)
    except ValueError:
        return None
    order = _CURVES[key.curve.name].order
    if s <= order // 2:
        return None
    low = HashedRekord(entry.algorithm, entry.digest, utils.encode_dss_signature(r, order - s),
                       entry.public_key_pem, entry.is_certificate)
    return leaf_hash(low.canonical_body())


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
    pem, block = _stored_block(key_content)
    if block is not None:
        return _fingerprint(_load_public_key(*block, _PUBLIC_KEY_CONTENT))
    return public_key_fingerprint_of_pem(pem)


def stored_certificate(key_content: bytes) -> bytes | None:
    """The DER of a stored body's certificate (`indexed_values`' second value), None for a
    public key or anything not laid out as the log normalized it: what a search by
    certificate identity confirms candidates with (tlog.core.entries.body_identities)."""
    try:
        block = _stored_block(key_content)[1]
    except InvalidInput:
        return None
    return block[1] if block is not None and block[0] == _CERTIFICATE_LABEL else None


def _stored_block(key_content: bytes) -> tuple[bytes, tuple[str, bytes] | None]:
    """The PEM of a stored key, and its (label, DER) if it is one normalized block."""
    try:
        pem = binascii.a2b_base64(key_content)
        for label in (_PUBLIC_KEY_LABEL, _CERTIFICATE_LABEL):
            begin, end = b"-----BEGIN %s-----\n" % label.encode(), b"-----END %s-----\n" % label.encode()
            if pem.startswith(begin) and pem.endswith(end):
                return pem, (label, binascii.a2b_base64(pem[len(begin):-len(end)]))
    except binascii.Error:
        raise InvalidInput(f"{_PUBLIC_KEY_CONTENT}: not base64") from None
    return pem, None


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


def _parse(obj: object) -> tuple[HashedRekord, _KeyMaterial]:
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
    material = _key_material(*_parse_pem(pem_text, _PUBLIC_KEY_CONTENT))
    entry = HashedRekord(
        algorithm=algorithm,
        digest=digest,
        signature=signature,
        public_key_pem=material.pem,
        is_certificate=material.label == _CERTIFICATE_LABEL,
    )
    entry.__dict__["_fingerprint"] = material.fingerprint
    return entry, material


@dataclass(frozen=True)
class _KeyMaterial:
    """A signing key parsed from one PEM block: the parsed key, its normalized PEM
    (DESIGN §2) and its fingerprint, for the block's exact DER."""

    label: str
    der: bytes
    key: PublicKeyTypes
    pem: bytes
    fingerprint: bytes

    @property
    def weight(self) -> int:
        """The bytes it holds, as the key cache counts them: the DER and the PEM (35 KB
        and 47 KB for a large certificate), and the parsed key with its bookkeeping."""
        return len(self.der) + len(self.pem) + _KEY_OVERHEAD


# What a cached key costs beyond its DER and PEM: the OpenSSL key object, the fingerprint,
# the cache's own entry. Measured as RSS per key: 2.4 KB for P-256, 1 KB for RSA-4096.
_KEY_OVERHEAD: Final = 2560


class KeyCache:
    """The parsed keys of signatures that verified, least recently used first out,
    bounded by the bytes they hold and by their number.

    Signers reuse their keys (a CI pipeline signs every release with one key): looking a
    key up by its exact DER saves the parse and two re-encodings on each submission. Only
    keys that have verified a signature get in (`Submission.verify`): a cache filled on
    parse kept whatever rejected requests carried — 4,200 requests with distinct 35 KB
    certificates and bad signatures, all 400, held 370 MB for good (issue 11, item 3).
    And it is bounded by bytes: a count alone lets large certificates weigh 40× more than
    keys. Thread-safe: keys verified on a server's verification threads come in there.
    """

    def __init__(self, max_bytes: int, max_entries: int) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, bytes], _KeyMaterial] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def weight(self) -> int:
        """The bytes the cached keys hold, by `_KeyMaterial.weight`."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, label: str, der: bytes) -> _KeyMaterial | None:
        with self._lock:
            found = self._entries.get((label, der))
            if found is not None:
                self._entries.move_to_end((label, der))
            return found

    def put(self, material: _KeyMaterial) -> None:
        weight = material.weight
        if weight > self.max_bytes:
            return
        slot = (material.label, material.der)
        with self._lock:
            if slot in self._entries:
                self._entries.move_to_end(slot)
                return
            self._entries[slot] = material
            self._bytes += weight
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                self._bytes -= self._entries.popitem(last=False)[1].weight

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# 16 MiB: room for 4,096 keys (11.6 MB of P-256 keys, overhead counted), or ~200 large
# (35 KB) certificates. Fulcio certificates are short-lived, one per signing event:
# caching them gains little anyway, and a big one cannot push out more than its weight.
KEY_CACHE: Final = KeyCache(max_bytes=16 << 20, max_entries=4096)


def load_key(pem: bytes, path: str, *, pure_eddsa: bool = False) -> _KeyMaterial:
    """One PEM public key or certificate (RFC 7468), parsed and checked to be of a type the
    log accepts (`_check_supported`, DESIGN §2): the one home of key checks for every entry
    kind. `pure_eddsa` also admits Ed25519, for kinds whose signatures are over the whole
    message (DSSE's PAE), where RFC 8032 pure EdDSA can be checked. InvalidInput naming
    `path`. Not cached until a signature verifies (`KEY_CACHE.put`)."""
    material = _key_material(*_parse_pem(pem, path), path=path)
    if not (pure_eddsa and isinstance(material.key, ed25519.Ed25519PublicKey)):
        _check_supported(material.key, path)
    return material


def _key_material(label: str, der: bytes, path: str = _PUBLIC_KEY_CONTENT) -> _KeyMaterial:
    """The key in one PEM block's DER: from `KEY_CACHE`, else parsed (and not cached:
    `Submission.verify` caches it once a signature verified with it)."""
    cached = KEY_CACHE.get(label, der)
    if cached is not None:
        return cached
    key = _load_public_key(label, der, path)
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
    return _KeyMaterial(label, der, key, pem, _fingerprint(key))


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
                f"supported curves: {', '.join(c.name for c in _CURVES.values())}"
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
                f"{path}: RSA key of {bits} bits is larger than this log accepts: "
                f"{MIN_RSA_BITS} to {MAX_RSA_BITS} bits, as in Sigstore's algorithm registry "
                "(a verification costs the square of the size)"
            )
        # The registry's RSA keys use 65537, as every key generator does by default. A
        # larger exponent makes each verification cost more (a 2³¹ one: 31 squarings
        # where 65537 takes 17), a smaller one is a known weakness (RFC 8017 §3.1 allows
        # both; Go's crypto/rsa, Rekor's verifier, refuses exponents ≥ 2³¹).
        exponent = key.public_numbers().e
        if exponent != RSA_EXPONENT:
            shown = exponent if exponent < 2**64 else f"of {exponent.bit_length()} bits"
            raise InvalidInput(
                f"{path}: RSA public exponent {shown} is not accepted: only {RSA_EXPONENT} "
                "(what key generators use by default; Sigstore's algorithm registry)"
            )
        return
    if isinstance(key, dsa.DSAPublicKey):
        raise InvalidInput(f"{path}: DSA keys are not supported; supported: {_SUPPORTED_KEYS}")
    raise InvalidInput(
        f"{path}: unsupported key type {type(key).__name__.removesuffix('PublicKey')}; "
        f"supported: {_SUPPORTED_KEYS}"
    )


class UnboundDigest(InvalidInput):
    """A signature by a key over a digest algorithm it does not sign with (`_check_digest`);
    `reason` says so without the request's field path, for a verifier to repeat."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{_ALGORITHM}: {reason}")
        self.reason = reason


def _check_digest(key: PublicKeyTypes, algorithm: str) -> None:
    """Refuse a digest algorithm the key does not sign with (issue 11, item 6).

    Sigstore's algorithm registry (protobuf-specs PublicKeyDetails, sigstore-go
    signature/algorithm_registry.go) binds each ECDSA curve to one hash: P-256 to SHA-256,
    P-384 to SHA-384, P-521 to SHA-512. Without it, ECDSA truncates a digest longer than
    the group order to the order's length (SEC 1 §4.1.4 step 5, FIPS 186-5 §6.4.2): one
    P-256 signature over a SHA-256 digest D also verifies as the sha512 "digest" D‖X for
    every X — 20,000 distinct entries "signed" by a victim's key from one real signature.
    Rekor does not bind them (Go's ecdsa.VerifyASN1 truncates); this log does. RSA binds
    the hash itself (PKCS#1 v1.5 signs its DigestInfo OID, PSS hashes the whole digest:
    RFC 8017 §9.1, §9.2), so RSA takes any of sha256, sha384 and sha512.
    """
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        curve = _CURVES[key.curve.name]
        if algorithm != curve.digest:
            raise UnboundDigest(
                f"a {curve.name} key signs {curve.digest} digests only, not {algorithm}: "
                "Sigstore's algorithm registry binds each ECDSA curve to one digest (ECDSA "
                "cuts a longer digest to the curve's size, so one signature would fit many "
                f"digests); hash the artifact with {curve.digest} and sign that"
            )


def digest_for_key(key: PublicKeyTypes) -> str:
    """The digest algorithm signatures by `key` are made over: its curve's for ECDSA
    (`_check_digest`), sha256 for RSA (which could take sha384 and sha512 too)."""
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name].digest
    return "sha256"


def digest_for_pem(pem: bytes) -> str:
    """`digest_for_key` of the key in a PEM public key or certificate."""
    return digest_for_key(_key_material(*_parse_pem(pem, "publicKey")).key)


def _verify(key: PublicKeyTypes, entry: HashedRekord) -> None:
    """The signature over the digest, as a prehashed value (DESIGN §2). The digest's
    algorithm is the key's (`_check_digest`, checked before)."""
    hash_algorithm = DIGESTS[entry.algorithm].algorithm()
    prehashed = utils.Prehashed(hash_algorithm)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            # ASN.1 DER (r, s), with s high or low: both are what signers produce
            # (`event_key_of_body` treats the two as one signing event).
            key.verify(entry.signature, entry.digest, ec.ECDSA(prehashed))
            return
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(entry.signature, entry.digest, padding.PKCS1v15(), prehashed)
                return
            except InvalidSignature:
                pass
            # Rekor v0.0.1 accepts only PKCS#1 v1.5; DESIGN §2 also takes PSS, with MGF1
            # over the digest's hash and a salt of any valid length: RFC 8017 §9.1 leaves
            # sLen to the signer, and EMSA-PSS-VERIFY can read it off the encoded message
            # (AUTO). Signers differ: OpenSSL's default is the longest that fits, Go's
            # rsa.SignPSS the digest's length, some HSMs 0 (issue 11, item 8).
            pss = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.AUTO)
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

"""Admission of Rekor `intoto` v0.0.2 entries: a DSSE envelope sent field by field, for
older clients (cosign `--rekor-entry-type intoto`).

Follows Rekor's `pkg/types/intoto/v0.0.2` (entry.go, intoto_v0_0_2_schema.json). Its byte
fields are `format: byte`, and hold text that is itself base64 — hence double base64:
`spec.content.envelope.payload` is base64 of the envelope's base64 payload text,
`signatures[].sig` base64 of the envelope's base64 signature text, `signatures[].publicKey`
base64 of a PEM key or certificate. `spec.content.hash` is the SHA-256 of the envelope's
JSON as the client holds it: the log cannot recompute it (the envelope is not sent whole)
and records it as given, lower-cased, as Rekor does. Every signature must verify over the
DSSE PAE with its own `publicKey` (tlog.core.entries.dsse: same keys and checks).

The canonical body is Rekor's Canonicalize() output as RFC 8785 JSON — the envelope's
payload type and signatures (`keyid` only where set, in the submitted order, each key
normalized as for hashedrekord, as rekor#1170 asks), the client's `hash`, and the payload's
SHA-256 as `payloadHash`; the payload itself is not stored. Search keys: the payload hash,
each signer's key and, for an in-toto Statement, every subject digest.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from tlog.core.dsse import MAX_SIGNATURES, Envelope, decode_base64
from tlog.core.entries import hashedrekord
from tlog.core.entries.dsse import (
    Verifiers,
    canonical_json,
    check_body_size,
    check_verifiers,
    spec_of,
    stored_signer,
    subject_keys,
    verify_stored,
)
from tlog.core.entries.stored import StoredBody, StoredSigner, attestation_event_key
from tlog.errors import InvalidInput

KIND: Final = "intoto"
API_VERSION: Final = "0.0.2"

_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")
_ENVELOPE = "spec.content.envelope"


@dataclass(frozen=True)
class IntotoEntry:
    """An admitted intoto v0.0.2 entry: what the log stores and indexes."""

    body: bytes
    payload_hash: bytes
    subjects: tuple[str, ...]
    fingerprints: tuple[bytes, ...]

    payload: bytes

    def canonical_body(self) -> bytes:
        return self.body

    def attestation(self) -> tuple[str, bytes]:
        """What the log keeps beside the entry: the payload, by its SHA-256 (`payloadHash`),
        as Rekor's attestation storage keeps it; with the body's signatures and payload type
        it gives back the envelope."""
        return self.payload_hash.hex(), self.payload

    def artifact_keys(self) -> tuple[str, ...]:
        """Payload hash and subject digests (Rekor's IndexKeys; not the client's hash)."""
        return (f"sha256:{self.payload_hash.hex()}", *self.subjects)

    def key_fingerprints(self) -> tuple[bytes, ...]:
        return self.fingerprints


@dataclass(frozen=True)
class IntotoSubmission:
    """A well-formed intoto proposal (`check_request`); `verify` checks its signatures."""

    verifiers: Verifiers
    keyids: tuple[str, ...]
    envelope_hash: str
    subjects: tuple[str, ...]

    @property
    def costly(self) -> bool:
        return self.verifiers.costly

    def verify(self) -> IntotoEntry:
        """Each signature with its own key (Rekor pairs them the same way), then the body."""
        env = self.verifiers.envelope
        signers = self.verifiers.pair()
        by_signature = {s.signature: s.material for s in signers}
        payload_hash = hashlib.sha256(env.payload).digest()
        for sig, material in zip(env.signatures, self.verifiers.materials, strict=True):
            if by_signature[sig] is not material and by_signature[sig].der != material.der:
                raise InvalidInput(f"{_ENVELOPE}.signatures: a signature verifies with another "
                                   "signature's publicKey, not its own")
        body = _body(env.payload_type, self.keyids,
                     [StoredSigner(s, m) for s, m in zip(env.signatures, self.verifiers.materials,
                                                         strict=True)],
                     self.envelope_hash, payload_hash)
        fingerprints = tuple(dict.fromkeys(m.fingerprint for m in self.verifiers.materials))
        return IntotoEntry(check_body_size(body), payload_hash, self.subjects, fingerprints,
                           env.payload)

    def event_key(self) -> bytes | None:
        """The signing event (tlog.core.entries.stored), as for dsse: an ECDSA twin is a 409."""
        env = self.verifiers.envelope
        return attestation_event_key(KIND, hashlib.sha256(env.payload).digest(),
                                     self.verifiers.materials, env.signatures)


def _body(payload_type: str, keyids: Sequence[str], signers: Sequence[StoredSigner],
          envelope_hash: str, payload_hash: bytes) -> bytes:
    """The canonical body (see the module doc), from admission and from `read_body`."""
    return canonical_json({
        "apiVersion": API_VERSION, "kind": KIND,
        "spec": {"content": {
            "envelope": {"payloadType": payload_type, "signatures": [
                {**({"keyid": keyid} if keyid else {}), "publicKey": _b64(s.material.pem),
                 "sig": _b64(_b64(s.signature).encode("ascii"))}
                for keyid, s in zip(keyids, signers, strict=True)]},
            "hash": {"algorithm": "sha256", "value": envelope_hash},
            "payloadHash": {"algorithm": "sha256", "value": payload_hash.hex()},
        }},
    })


def read_body(body: bytes) -> StoredBody:
    """A stored intoto body, parsed strictly (exactly what `_body` writes for its values,
    else InvalidInput). Its signatures verify only with the kept payload."""
    try:
        content = json.loads(body)["spec"]["content"]
        env = content["envelope"]
        payload_type = env["payloadType"]
        envelope_hash = content["hash"]["value"]
        payload_hash = bytes.fromhex(content["payloadHash"]["value"])
        keyids = [s.get("keyid", "") for s in env["signatures"]]
        # `sig` is base64 of the signature's base64 text: unwrap the outer layer (the
        # rebuilt body, compared below, rules out any non-canonical encoding).
        signers = tuple(
            stored_signer(hashedrekord._decode_base64(s["sig"], f"{where}.sig").decode("ascii"),
                          s["publicKey"], f"{where}.sig", f"{where}.publicKey")
            for i, s in enumerate(env["signatures"])
            for where in (f"{_ENVELOPE}.signatures[{i}]",))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise InvalidInput("body: not an intoto v0.0.2 body") from None
    if not isinstance(payload_type, str) or not isinstance(envelope_hash, str) or \
            _body(payload_type, keyids, signers, envelope_hash, payload_hash) != body:
        raise InvalidInput("body: not in canonical form (RFC 8785 JSON of the intoto entry, "
                           "keys normalized)")

    def check(kept: bytes | None) -> tuple[str, ...] | None:
        if kept is None:
            return None
        if hashlib.sha256(kept).digest() != payload_hash:
            raise InvalidInput("the kept payload does not hash to the body's payloadHash")
        envelope = Envelope(kept, payload_type, tuple(s.signature for s in signers))
        verify_stored(signers, envelope)
        return subject_keys(envelope, "kept payload")

    return StoredBody(
        KIND, API_VERSION, (f"sha256:{payload_hash.hex()}",), signers,
        (("payload type", payload_type), ("payload hash", f"sha256:{payload_hash.hex()}"),
         ("envelope hash", f"sha256:{envelope_hash} (as the client gave it)")),
        payload_hash.hex(), check,
        lambda: attestation_event_key(KIND, payload_hash, (s.material for s in signers),
                                      (s.signature for s in signers)))


def check_request(obj: object) -> IntotoSubmission:
    """A `POST /api/v1/log/entries` intoto v0.0.2 proposal, checked but for its signatures
    (`IntotoSubmission.verify`). InvalidInput naming the field at fault."""
    spec = spec_of(obj, KIND, API_VERSION)
    content = hashedrekord._object(spec, "content", "spec.content")
    hash_obj = hashedrekord._object(content, "hash", "spec.content.hash")
    if hashedrekord._string(hash_obj, "algorithm", "spec.content.hash.algorithm") != "sha256":
        raise InvalidInput("spec.content.hash.algorithm: must be \"sha256\"")
    envelope_hash = hashedrekord._string(hash_obj, "value", "spec.content.hash.value")
    if not _SHA256_HEX.fullmatch(envelope_hash):
        raise InvalidInput("spec.content.hash.value: expected 64 hex digits (the SHA-256 of "
                           "the envelope's JSON)")
    env = hashedrekord._object(content, "envelope", _ENVELOPE)
    payload_type = hashedrekord._string(env, "payloadType", f"{_ENVELOPE}.payloadType")
    if not payload_type:
        raise InvalidInput(f"{_ENVELOPE}.payloadType: must not be empty")
    payload = _double_base64(env, "payload", _ENVELOPE)
    signatures = env.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise InvalidInput(f"{_ENVELOPE}.signatures: required, a non-empty array")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInput(f"{_ENVELOPE}.signatures: at most {MAX_SIGNATURES} signatures, "
                           f"got {len(signatures)}")
    sigs, keyids, pems = [], [], []
    for i, s in enumerate(signatures):
        where = f"{_ENVELOPE}.signatures[{i}]"
        if not isinstance(s, dict):
            raise InvalidInput(f"{where}: expected an object")
        sigs.append(_double_base64(s, "sig", where))
        keyid = s.get("keyid") or ""
        if not isinstance(keyid, str):
            raise InvalidInput(f"{where}.keyid: expected a string")
        keyids.append(keyid)
        key_text = hashedrekord._string(s, "publicKey", f"{where}.publicKey")
        pems.append((hashedrekord._decode_base64(key_text, f"{where}.publicKey"),
                     f"{where}.publicKey"))
    envelope = Envelope(payload, payload_type, tuple(sigs), tuple(keyids))
    verifiers = check_verifiers(envelope, pems, _ENVELOPE)
    return IntotoSubmission(verifiers, tuple(keyids), envelope_hash.lower(),
                            subject_keys(envelope, _ENVELOPE))


def _double_base64(parent: Mapping[str, object], name: str, path: str) -> bytes:
    """A `format: byte` field holding base64 text: decoded twice, each layer standard,
    padded base64 (the inner one canonical, since the body records it as text)."""
    where = f"{path}.{name}"
    outer = hashedrekord._decode_base64(hashedrekord._string(parent, name, where), where)
    try:
        inner = outer.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: must be base64 of base64 text (Rekor's double "
                           "encoding); the inner layer is not text") from None
    return decode_base64(inner, f"{where} (inner base64)", canonical=True)


def proposed_entry(envelope: Envelope, envelope_json: bytes,
                   public_key_pems: tuple[bytes, ...]) -> dict[str, object]:
    """The intoto v0.0.2 proposal for an envelope (its JSON, for `hash`) and each
    signature's PEM key or certificate; the inverse of `check_request`."""
    keyids = envelope.keyids or ("",) * len(envelope.signatures)
    return {"apiVersion": API_VERSION, "kind": KIND, "spec": {"content": {
        "envelope": {
            "payload": _b64(_b64(envelope.payload).encode("ascii")),
            "payloadType": envelope.payload_type,
            "signatures": [
                {**({"keyid": k} if k else {}), "sig": _b64(_b64(s).encode("ascii")),
                 "publicKey": _b64(p)}
                for s, k, p in zip(envelope.signatures, keyids, public_key_pems, strict=True)],
        },
        "hash": {"algorithm": "sha256", "value": hashlib.sha256(envelope_json).hexdigest()},
    }}}


def indexed_values(body: bytes) -> tuple[tuple[str, ...], tuple[bytes, ...]] | None:
    """The artifact keys and base64 key PEMs a stored intoto body records (see
    `dsse.indexed_values`)."""
    try:
        content = json.loads(body)["spec"]["content"]
        artifacts = (f"sha256:{content['payloadHash']['value']}",)
        keys = tuple(s["publicKey"].encode("ascii") for s in content["envelope"]["signatures"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeEncodeError):
        return None
    return artifacts, keys


def attestation_key(body: bytes) -> str | None:
    """The hex `payloadHash` of a stored intoto body: the name of its kept payload."""
    values = indexed_values(body)
    return None if values is None else values[0][0].removeprefix("sha256:")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

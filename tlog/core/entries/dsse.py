"""Admission of Rekor `dsse` v0.0.1 entries: a DSSE envelope and the keys that signed it.

Follows Rekor's `pkg/types/dsse/v0.0.1` (entry.go, dsse_v0_0_1_schema.json). The request is
`{"apiVersion": "0.0.1", "kind": "dsse", "spec": {"proposedContent": {"envelope": "<the
envelope's JSON, as a string>", "verifiers": ["<base64 PEM key or certificate>", ...]}}}`.
Every signature of the envelope must verify over the DSSE PAE (tlog.core.dsse) with one of
the verifiers, and every verifier must verify one. The log records what Rekor records —
never the proposed content:

    {"apiVersion":"0.0.1","kind":"dsse","spec":{
      "envelopeHash":{"algorithm":"sha256","value":HEX(SHA-256(envelope text))},
      "payloadHash":{"algorithm":"sha256","value":HEX(SHA-256(payload))},
      "signatures":[{"signature":SIG, "verifier":BASE64(PEM)}, ...]}}   (sorted by SIG)

as RFC 8785 JSON, SIG the envelope's base64 signature text and PEM the verifier normalized
as for hashedrekord (DESIGN §2). Search keys (computed here, at admission, as Rekor's
IndexKeys): the payload and envelope hashes, each signer's key, and — for an in-toto
payload (in-toto Statement v1, or v0.1) — every subject's digest.

Keys are those of hashedrekord (`hashedrekord.load_key`), plus Ed25519: DSSE signs the
whole PAE, so RFC 8032 pure EdDSA can be checked. ECDSA is checked over the curve's digest
(Sigstore's algorithm registry: P-256 SHA-256, P-384 SHA-384, P-521 SHA-512) or over
SHA-256, the one Rekor's verifier uses for every key; RSA over SHA-256, PKCS#1 v1.5 or PSS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tlog.core.digests import DIGESTS
from tlog.core.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, parse_envelope_json
from tlog.core.entries import hashedrekord
from tlog.core.entries.stored import StoredBody, StoredSigner, attestation_event_key
from tlog.errors import InvalidInput, PayloadTooLarge

KIND: Final = "dsse"
API_VERSION: Final = "0.0.1"

_HASHES: Final[Mapping[str, type[hashes.HashAlgorithm]]] = {
    "secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512,
}
_HEX: Final = re.compile(r"[0-9a-f]+")


# One envelope signature and the verifier that checked it: what a stored body records.
Signer = StoredSigner


@dataclass(frozen=True)
class Verifiers:
    """A well-formed envelope and the keys proposed to verify it, checked to be of types
    the log accepts, signatures not yet checked: `pair` checks them. Two steps, as
    hashedrekord's Submission, so that a server can run costly checks off its event loop.
    Shared by the dsse and intoto kinds."""

    envelope: Envelope
    materials: tuple[hashedrekord._KeyMaterial, ...]
    paths: tuple[str, ...]  # each verifier's field, for error messages
    path: str  # the envelope's field

    @property
    def costly(self) -> bool:
        """As hashedrekord's: anything but P-256, Ed25519 and RSA up to 3072 bits, or more
        than two checks, is worth a verification thread (issue 11, item 4)."""
        if len(self.materials) * len(self.envelope.signatures) > 2:
            return True
        for m in self.materials:
            key = m.key
            if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name != "secp256r1":
                return True
            if isinstance(key, rsa.RSAPublicKey) and key.key_size > 3072:
                return True
        return False

    def pair(self) -> tuple[Signer, ...]:
        """Each signature with the verifier that verifies it over the PAE, as Rekor's
        verifyEnvelope pairs them: every signature needs one; here every verifier must
        verify one too (a verifier that signed nothing is a mistake worth a 400).
        InvalidInput otherwise. Thread-safe."""
        message = self.envelope.pae()
        used = [False] * len(self.materials)
        signers = []
        for i, sig in enumerate(self.envelope.signatures):
            for j, material in enumerate(self.materials):
                if verify_pae_signature(material, sig, message):
                    used[j] = True
                    signers.append(Signer(sig, material))
                    break
            else:
                raise InvalidInput(
                    f"{self.path}.signatures[{i}]: no verifier verifies this signature over "
                    "the envelope's DSSE PAE (DSSEv1 SP LEN(type) SP type SP LEN(body) SP body)")
        for j, was_used in enumerate(used):
            if not was_used:
                raise InvalidInput(f"{self.paths[j]}: this verifier verifies none of the "
                                   "envelope's signatures")
        for m in self.materials:
            hashedrekord.KEY_CACHE.put(m)
        return tuple(signers)


def verify_pae_signature(material: hashedrekord._KeyMaterial, signature: bytes,
                         message: bytes) -> bool:
    """Does `signature` verify over `message` (a PAE) with the key (see the module doc)?"""
    key = material.key
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            algorithms: list[type[hashes.HashAlgorithm]] = [_HASHES[key.curve.name], hashes.SHA256]
            for algorithm in dict.fromkeys(algorithms):
                try:
                    key.verify(signature, message, ec.ECDSA(algorithm()))
                    return True
                except InvalidSignature:
                    continue
            return False
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, message, pss, hashes.SHA256())
                return True
    except (InvalidSignature, ValueError):
        return False
    return False


def check_verifiers(envelope: Envelope, pems: Sequence[tuple[bytes, str]], path: str) -> Verifiers:
    """The proposed verifiers (PEM, its field's path), loaded and checked (`load_key`)."""
    if len(set(envelope.signatures)) != len(envelope.signatures):
        raise InvalidInput(f"{path}.signatures: the same signature appears twice")
    materials = tuple(hashedrekord.load_key(pem, where, pure_eddsa=True) for pem, where in pems)
    return Verifiers(envelope, materials, tuple(where for _, where in pems), path)


def subject_keys(envelope: Envelope, path: str) -> tuple[str, ...]:
    """`<algorithm>:<hex>` of every subject of an in-toto statement payload (in-toto
    Statement v1: `subject[].digest` maps algorithm names to hex), for the algorithms the
    log knows; () for another payload type. InvalidInput for an in-toto payload that is not
    a statement (Rekor's IndexKeys fails on it too)."""
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return ()
    where = f"{path}.payload"
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput(f"{where}: payloadType is {IN_TOTO_PAYLOAD_TYPE} but the payload "
                           "is not JSON (an in-toto Statement)") from None
    if not isinstance(statement, dict) or not isinstance(statement.get("_type"), str):
        raise InvalidInput(f"{where}: not an in-toto Statement (no _type)")
    subjects = statement.get("subject")
    if not isinstance(subjects, list):
        raise InvalidInput(f"{where}: the in-toto Statement has no subject array")
    keys: dict[str, None] = {}
    for i, s in enumerate(subjects):
        digests = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(digests, dict):
            raise InvalidInput(f"{where}: subject[{i}] has no digest object")
        for algorithm, value in digests.items():
            known = DIGESTS.get(algorithm)
            if (known is not None and isinstance(value, str) and len(value) == known.hex_length
                    and _HEX.fullmatch(value.lower())):
                keys[f"{algorithm}:{value.lower()}"] = None
    return tuple(keys)


@dataclass(frozen=True)
class DsseEntry:
    """An admitted dsse v0.0.1 entry: what the log stores and indexes."""

    body: bytes
    payload_hash: bytes
    envelope_hash: bytes
    subjects: tuple[str, ...]
    fingerprints: tuple[bytes, ...]
    envelope_text: bytes

    def canonical_body(self) -> bytes:
        return self.body

    def attestation(self) -> tuple[str, bytes]:
        """What the log keeps beside the entry, by its hash in the body: the envelope's
        exact text (its SHA-256 is `envelopeHash`), so that readers can check the
        signatures and subjects (Rekor keeps none for dsse)."""
        return self.envelope_hash.hex(), self.envelope_text

    def artifact_keys(self) -> tuple[str, ...]:
        """Payload hash, envelope hash, subject digests (Rekor's IndexKeys)."""
        return (f"sha256:{self.payload_hash.hex()}", f"sha256:{self.envelope_hash.hex()}",
                *self.subjects)

    def key_fingerprints(self) -> tuple[bytes, ...]:
        return self.fingerprints


@dataclass(frozen=True)
class DsseSubmission:
    """A well-formed dsse proposal (`check_request`); `verify` checks its signatures."""

    verifiers: Verifiers
    envelope_text: str
    subjects: tuple[str, ...]

    @property
    def costly(self) -> bool:
        return self.verifiers.costly

    def verify(self) -> DsseEntry:
        """Pair and check the signatures, then build the canonical body (413 if too large)."""
        signers = self.verifiers.pair()
        payload_hash = hashlib.sha256(self.verifiers.envelope.payload).digest()
        envelope_hash = hashlib.sha256(self.envelope_text.encode("utf-8")).digest()
        body = _body(payload_hash, envelope_hash, signers)
        fingerprints = tuple(dict.fromkeys(s.material.fingerprint for s in signers))
        return DsseEntry(check_body_size(body), payload_hash, envelope_hash, self.subjects,
                         fingerprints, self.envelope_text.encode("utf-8"))

    def event_key(self) -> bytes | None:
        """The signing event (tlog.core.entries.stored): an ECDSA twin of a signature, in
        whatever envelope text, is the same event and a 409."""
        env = self.verifiers.envelope
        return attestation_event_key(KIND, hashlib.sha256(env.payload).digest(),
                                     self.verifiers.materials, env.signatures)


def _body(payload_hash: bytes, envelope_hash: bytes, signers: Sequence[Signer]) -> bytes:
    """The canonical body (see the module doc), from admission and from `read_body`."""
    return canonical_json({
        "apiVersion": API_VERSION, "kind": KIND,
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": envelope_hash.hex()},
            "payloadHash": {"algorithm": "sha256", "value": payload_hash.hex()},
            "signatures": [
                {"signature": sig, "verifier": pem} for sig, pem in sorted(
                    (_b64(s.signature), _b64(s.material.pem)) for s in signers)],
        },
    })


def canonical_json(doc: dict[str, Any]) -> bytes:
    """RFC 8785 JSON (what Rekor writes after Go's json.Marshal)."""
    return rfc8785.dumps(doc)


def check_body_size(body: bytes) -> bytes:
    """413 for a canonical body larger than an entry bundle holds (DESIGN §2, tiles)."""
    if len(body) > hashedrekord.MAX_BODY_BYTES:
        raise PayloadTooLarge(
            f"entry too large: its canonical body would be {len(body)} bytes, the log stores "
            f"at most {hashedrekord.MAX_BODY_BYTES} (fewer signatures or smaller certificates)")
    return body


def check_request(obj: object) -> DsseSubmission:
    """A `POST /api/v1/log/entries` dsse v0.0.1 proposal, checked but for its signatures
    (`DsseSubmission.verify`). InvalidInput naming the field at fault."""
    spec = spec_of(obj, KIND, API_VERSION)
    proposed = hashedrekord._object(spec, "proposedContent", "spec.proposedContent")
    text = hashedrekord._string(proposed, "envelope", "spec.proposedContent.envelope")
    envelope = parse_envelope_json(text, "spec.proposedContent.envelope")
    verifiers = proposed.get("verifiers")
    path = "spec.proposedContent.verifiers"
    if not isinstance(verifiers, list) or not verifiers:
        raise InvalidInput(f"{path}: required, a non-empty array of base64 PEM keys or certificates")
    pems = []
    for i, v in enumerate(verifiers):
        where = f"{path}[{i}]"
        if not isinstance(v, str):
            raise InvalidInput(f"{where}: expected a string (base64 of a PEM key or certificate)")
        if v.lstrip().startswith("-----BEGIN"):
            raise InvalidInput(f"{where}: expected base64 of the PEM, got the PEM itself; "
                               "base64-encode it")
        pems.append((hashedrekord._decode_base64(v, where), where))
    verifiers_ = check_verifiers(envelope, pems, "spec.proposedContent.envelope")
    subjects = subject_keys(envelope, "spec.proposedContent.envelope")
    return DsseSubmission(verifiers_, text, subjects)


def proposed_entry(envelope_json: str, verifier_pems: Sequence[bytes]) -> dict[str, object]:
    """The dsse v0.0.1 proposal for an envelope (its exact JSON text) and its signers'
    PEM keys or certificates; the inverse of `check_request`."""
    return {"apiVersion": API_VERSION, "kind": KIND, "spec": {"proposedContent": {
        "envelope": envelope_json, "verifiers": [_b64(p) for p in verifier_pems]}}}


def indexed_values(body: bytes) -> tuple[tuple[str, ...], tuple[bytes, ...]] | None:
    """The artifact keys and base64 verifier PEMs a stored dsse body records, for
    confirming search candidates (`hashedrekord.indexed_values`' counterpart). Subject
    digests are not in the body (Rekor records only hashes), so they cannot be confirmed
    from it: tlog.core.entries.confirm trusts the index for them."""
    try:
        spec = json.loads(body)["spec"]
        artifacts = tuple(f"sha256:{spec[name]['value']}" for name in ("payloadHash", "envelopeHash"))
        keys = tuple(s["verifier"].encode("ascii") for s in spec["signatures"])
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeEncodeError):
        return None
    return artifacts, keys


def attestation_key(body: bytes) -> str | None:
    """The hex `envelopeHash` of a stored dsse body: the name of its kept envelope."""
    values = indexed_values(body)
    return None if values is None else values[0][1].removeprefix("sha256:")


def read_body(body: bytes) -> StoredBody:
    """A stored dsse body, parsed strictly: it must be exactly what admission writes for
    the values it holds (`_body`), else InvalidInput. Its signatures verify only with the
    kept envelope (`StoredBody.verify`): the body records the envelope's hash, not it."""
    try:
        spec = json.loads(body)["spec"]
        payload_hash = bytes.fromhex(spec["payloadHash"]["value"])
        envelope_hash = bytes.fromhex(spec["envelopeHash"]["value"])
        pairs = [(s["signature"], s["verifier"]) for s in spec["signatures"]]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise InvalidInput("body: not a dsse v0.0.1 body (payloadHash, envelopeHash, "
                           "signatures[].signature/verifier)") from None
    signers = tuple(stored_signer(sig, pem, f"spec.signatures[{i}].signature",
                                  f"spec.signatures[{i}].verifier")
                    for i, (sig, pem) in enumerate(pairs))
    if _body(payload_hash, envelope_hash, signers) != body:
        raise InvalidInput("body: not in canonical form (RFC 8785 JSON of the dsse entry, "
                           "signatures sorted, keys normalized)")

    def check(kept: bytes | None) -> tuple[str, ...] | None:
        if kept is None:
            return None
        if hashlib.sha256(kept).digest() != envelope_hash:
            raise InvalidInput("the kept envelope does not hash to the body's envelopeHash")
        env = parse_envelope_json(kept, "kept envelope")
        if hashlib.sha256(env.payload).digest() != payload_hash:
            raise InvalidInput("the kept envelope's payload does not hash to payloadHash")
        if sorted(env.signatures) != sorted(s.signature for s in signers):
            raise InvalidInput("the kept envelope's signatures are not the body's")
        verify_stored(signers, env)
        return subject_keys(env, "kept envelope")

    return StoredBody(
        KIND, API_VERSION,
        (f"sha256:{payload_hash.hex()}", f"sha256:{envelope_hash.hex()}"), signers,
        (("payload hash", f"sha256:{payload_hash.hex()}"),
         ("envelope hash", f"sha256:{envelope_hash.hex()}")),
        envelope_hash.hex(), check,
        lambda: attestation_event_key(KIND, payload_hash, (s.material for s in signers),
                                      (s.signature for s in signers)))


def stored_signer(signature: str, pem: str, sig_path: str, key_path: str) -> StoredSigner:
    """One recorded signature (base64) and its key (base64 of a normalized PEM)."""
    material = hashedrekord.load_key(hashedrekord._decode_base64(pem, key_path), key_path,
                                     pure_eddsa=True)
    return StoredSigner(hashedrekord._decode_base64(signature, sig_path), material)


def verify_stored(signers: Sequence[StoredSigner], envelope: Envelope) -> None:
    """Each recorded signature over the envelope's PAE with its recorded key."""
    message = envelope.pae()
    for i, s in enumerate(signers):
        if not verify_pae_signature(s.material, s.signature, message):
            raise InvalidInput(f"signature {i} does not verify over the envelope's DSSE PAE "
                               "with its recorded key")


def spec_of(obj: object, kind: str, version: str) -> Mapping[str, object]:
    if not isinstance(obj, dict):
        raise InvalidInput(f"request: expected a JSON object, got {hashedrekord._json_type(obj)}")
    if hashedrekord._string(obj, "kind", "kind") != kind:
        raise InvalidInput(f"kind: expected {kind!r}")
    got = hashedrekord._string(obj, "apiVersion", "apiVersion")
    if got != version:
        raise InvalidInput(f"apiVersion: {kind} version {hashedrekord._quote(got)} is not "
                           f"supported; supported: {json.dumps(version)}")
    return hashedrekord._object(obj, "spec", "spec")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

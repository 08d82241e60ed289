"""Sigstore bundles v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`), DESIGN §2.

A bundle carries everything a verifier needs offline: the message signature and digest,
and the log entry with its SET (`inclusionPromise`), inclusion proof and signed checkpoint.
The JSON is protobuf-specs' `dev.sigstore.bundle.v1.Bundle` in protobuf JSON form: camelCase
members, bytes as standard base64, 64-bit integers as decimal strings. A key-signed bundle
names the key only by a hint (`verificationMaterial.publicKey.hint`, here base64 of the
SHA-256 of the DER SubjectPublicKeyInfo, as cosign writes it); the verifier brings the key.

Pure: builds and parses values and bytes. Parsing is strict — a bundle is read whole or
refused with the field at fault named (InvalidInput); checking it is tlog.core.verify's job.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlog.core.digests import DIGESTS
from tlog.core.dsse import Envelope
from tlog.core.entries.hashedrekord import public_key_fingerprint_of_pem
from tlog.core.merkle import leaf_hash
from tlog.core.rekor import InclusionProof
from tlog.errors import InvalidInput

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
# protobuf-specs HashAlgorithm (sigstore_common.proto) of each digest algorithm: the
# signing key's (a P-384 key signs SHA-384 digests: hashedrekord.digest_for_key).
HASH_ALGORITHMS: Mapping[str, str] = {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}
_BY_HASH_ALGORITHM = {v: k for k, v in HASH_ALGORITHMS.items()}
_SHA256_SIZE = DIGESTS["sha256"].size  # the logID is a SHA-256

_U64 = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_U64 = (1 << 64) - 1


@dataclass(frozen=True)
class TlogEntry:
    """One transparency-log entry as a bundle holds it (protobuf `TransparencyLogEntry`)."""

    log_index: int
    log_id: bytes  # SHA-256 of the log key's DER SubjectPublicKeyInfo
    kind: str
    version: str
    integrated_time: int
    signed_entry_timestamp: bytes
    proof: InclusionProof
    body: bytes  # the canonical body: the Merkle leaf

    @property
    def uuid(self) -> str:
        """The entry UUID: hex of its RFC 6962 leaf hash (DESIGN §2)."""
        return leaf_hash(self.body).hex()


@dataclass(frozen=True)
class Bundle:
    """A key-signed message-signature bundle with one log entry."""

    digest: bytes  # of the signed message (the artifact or image payload), with `algorithm`
    signature: bytes
    key_hint: str
    entry: TlogEntry
    # DER of the signing certificate, for a signature made with one (`tlog sign
    # --certificate`): the bundle then names it (v0.3 `certificate`) instead of a key hint.
    certificate: bytes | None = None
    algorithm: str = "sha256"  # the digest's, a name of tlog.core.digests.DIGESTS


def key_hint(public_key_pem: bytes) -> str:
    """The bundle's `publicKey.hint`: base64 SHA-256 of the DER SubjectPublicKeyInfo."""
    return base64.b64encode(public_key_fingerprint_of_pem(public_key_pem)).decode("ascii")


# --- from the log's answer ------------------------------------------------------------------


def tlog_entry_from_rekor(log_entry: object) -> TlogEntry:
    """Read a Rekor v1 LogEntry response, `{uuid: {body, integratedTime, logID, logIndex,
    verification}}` (DESIGN §3), strictly; InvalidInput naming the field at fault.

    The UUID key must be the body's leaf hash, so the answer names the entry it carries.
    """
    if not isinstance(log_entry, dict) or len(log_entry) != 1:
        raise InvalidInput("log entry: expected an object with exactly one entry UUID")
    ((uuid, e),) = log_entry.items()
    e = _members(e, "log entry", ("body", "integratedTime", "logID", "logIndex",
                                  "verification"), ("attestation",))
    body = _b64(e["body"], "body")
    if not isinstance(uuid, str) or uuid.lower()[-64:] != leaf_hash(body).hex():
        raise InvalidInput("log entry: its UUID is not the leaf hash of its body")
    if not isinstance(e["logID"], str) or not _HEX64.fullmatch(e["logID"]):
        raise InvalidInput("logID: expected 64 lower-case hex digits")
    v = _members(e["verification"], "verification", ("signedEntryTimestamp", "inclusionProof"))
    p = _members(v["inclusionProof"], "verification.inclusionProof",
                 ("checkpoint", "hashes", "logIndex", "rootHash", "treeSize"))
    hashes = p["hashes"]
    if not isinstance(hashes, list):
        raise InvalidInput("inclusionProof.hashes: expected a list")
    kind, version = _kind_version(body)
    return TlogEntry(
        log_index=_int(e["logIndex"], "logIndex"),
        log_id=bytes.fromhex(e["logID"]),
        kind=kind,
        version=version,
        integrated_time=_int(e["integratedTime"], "integratedTime"),
        signed_entry_timestamp=_b64(v["signedEntryTimestamp"], "signedEntryTimestamp"),
        proof=InclusionProof(
            log_index=_int(p["logIndex"], "inclusionProof.logIndex"),
            tree_size=_int(p["treeSize"], "inclusionProof.treeSize"),
            root_hash=_hex32(p["rootHash"], "inclusionProof.rootHash"),
            hashes=tuple(_hex32(h, "inclusionProof.hashes[]") for h in hashes),
            checkpoint=_str(p["checkpoint"], "inclusionProof.checkpoint").encode("utf-8"),
        ),
        body=body,
    )


def bundle_from_log_entry(log_entry: object, digest: bytes, signature: bytes,
                          public_key_pem: bytes, algorithm: str = "sha256") -> Bundle:
    """The bundle for a signature the log answered with `log_entry` (Rekor v1 LogEntry).

    `public_key_pem` is what was logged: a public key, or a certificate, as Rekor's
    hashedrekord allows (`publicKey.content`, as cosign logs `--certificate`); a certificate
    goes into the bundle as its `verificationMaterial.certificate` (protobuf-specs
    `Bundle` v0.3: the leaf only, the chain comes from the verifier's trusted root).
    """
    certificate = None
    if public_key_pem.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
        try:
            cert = x509.load_pem_x509_certificate(public_key_pem)
        except ValueError:
            raise InvalidInput("certificate: not a PEM X.509 certificate") from None
        certificate = cert.public_bytes(serialization.Encoding.DER)
    return Bundle(digest=digest, signature=signature, key_hint=key_hint(public_key_pem),
                  entry=tlog_entry_from_rekor(log_entry), certificate=certificate,
                  algorithm=algorithm)


def _kind_version(body: bytes) -> tuple[str, str]:
    """`kind` and `apiVersion` of a body, for the bundle's `kindVersion`."""
    try:
        doc = json.loads(body)
        kind, version = doc["kind"], doc["apiVersion"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("body: not an entry with kind and apiVersion") from None
    if not isinstance(kind, str) or not isinstance(version, str):
        raise InvalidInput("body: kind and apiVersion must be strings")
    return kind, version


# --- to and from JSON ------------------------------------------------------------------------


def bundle_to_json(bundle: Bundle) -> dict[str, Any]:
    """The protobuf-JSON form of a bundle (DESIGN §2)."""
    e, p = bundle.entry, bundle.entry.proof
    return {
        "mediaType": MEDIA_TYPE,
        "verificationMaterial": {
            **({"certificate": {"rawBytes": _b64e(bundle.certificate)}} if bundle.certificate
               else {"publicKey": {"hint": bundle.key_hint}}),
            "tlogEntries": [{
                "logIndex": str(e.log_index),
                "logId": {"keyId": _b64e(e.log_id)},
                "kindVersion": {"kind": e.kind, "version": e.version},
                "integratedTime": str(e.integrated_time),
                "inclusionPromise": {"signedEntryTimestamp": _b64e(e.signed_entry_timestamp)},
                "inclusionProof": {
                    "logIndex": str(p.log_index),
                    "rootHash": _b64e(p.root_hash),
                    "treeSize": str(p.tree_size),
                    "hashes": [_b64e(h) for h in p.hashes],
                    "checkpoint": {"envelope": p.checkpoint.decode("utf-8")},
                },
                "canonicalizedBody": _b64e(e.body),
            }],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": HASH_ALGORITHMS[bundle.algorithm],
                              "digest": _b64e(bundle.digest)},
            "signature": _b64e(bundle.signature),
        },
    }


def encode_bundle(bundle: Bundle) -> bytes:
    """The bundle file's bytes: indented JSON and a final newline."""
    return (json.dumps(bundle_to_json(bundle), indent=2) + "\n").encode("utf-8")


def dsse_bundle_to_json(envelope: Envelope, public_key_pem: bytes, entry: TlogEntry) -> dict[str, Any]:
    """A key-signed v0.3 bundle for a DSSE envelope (`tlog attest`): the same verification
    material as `bundle_to_json` (key hint, the log entry with SET, proof and checkpoint),
    and protobuf-specs' `dsseEnvelope` (payload, payloadType, signatures) in place of
    `messageSignature`. Read back with tlog.core.sigstore_bundle."""
    doc = bundle_to_json(Bundle(digest=b"", signature=b"", key_hint=key_hint(public_key_pem),
                                entry=entry))
    del doc["messageSignature"]
    doc["dsseEnvelope"] = envelope.to_json()
    return doc


def parse_bundle(data: bytes) -> Bundle:
    """Parse a bundle file strictly: a v0.3 key-signed message-signature bundle with exactly
    one log entry, nothing unknown, every field well-formed; else InvalidInput."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput("bundle: not valid JSON") from None
    doc = _members(doc, "bundle", ("mediaType", "verificationMaterial", "messageSignature"))
    if doc["mediaType"] != MEDIA_TYPE:
        raise InvalidInput(f"mediaType: expected {MEDIA_TYPE}, got {_short(doc['mediaType'])}")
    vm = doc["verificationMaterial"]
    if isinstance(vm, dict) and ("certificate" in vm or "x509CertificateChain" in vm):
        raise InvalidInput("verificationMaterial: this bundle carries a certificate; tlog "
                           "verifies bundles signed with a key (publicKey)")
    vm = _members(vm, "verificationMaterial", ("publicKey", "tlogEntries"),
                  ("timestampVerificationData",))
    tsd = vm.get("timestampVerificationData")
    if tsd not in (None, {}, {"rfc3161Timestamps": []}):
        raise InvalidInput("verificationMaterial.timestampVerificationData: signed timestamps "
                           "are not supported; the log's SET is the time source")
    hint = _members(vm["publicKey"], "verificationMaterial.publicKey", ("hint",))["hint"]
    entries = vm["tlogEntries"]
    if not isinstance(entries, list) or len(entries) != 1:
        raise InvalidInput("verificationMaterial.tlogEntries: expected exactly one entry")
    ms = _members(doc["messageSignature"], "messageSignature", ("messageDigest", "signature"))
    md = _members(ms["messageDigest"], "messageSignature.messageDigest", ("algorithm", "digest"))
    algorithm = _BY_HASH_ALGORITHM.get(md["algorithm"]) if isinstance(md["algorithm"], str) else None
    if algorithm is None:
        raise InvalidInput(f"messageSignature.messageDigest.algorithm: expected one of "
                           f"{', '.join(HASH_ALGORITHMS.values())}, got {_short(md['algorithm'])}")
    digest = _b64(md["digest"], "messageSignature.messageDigest.digest")
    if len(digest) != DIGESTS[algorithm].size:
        raise InvalidInput(f"messageSignature.messageDigest.digest: a {md['algorithm']} digest is "
                           f"{DIGESTS[algorithm].size} bytes, got {len(digest)}")
    return Bundle(
        digest=digest,
        signature=_b64(ms["signature"], "messageSignature.signature"),
        key_hint=_str(hint, "verificationMaterial.publicKey.hint"),
        entry=_parse_tlog_entry(entries[0]),
        algorithm=algorithm,
    )


def _parse_tlog_entry(obj: object) -> TlogEntry:
    path = "tlogEntries[0]"
    e = _members(obj, path, ("logIndex", "logId", "kindVersion", "integratedTime",
                             "inclusionPromise", "inclusionProof", "canonicalizedBody"))
    log_id = _b64(_members(e["logId"], f"{path}.logId", ("keyId",))["keyId"], f"{path}.logId.keyId")
    if len(log_id) != _SHA256_SIZE:
        raise InvalidInput(f"{path}.logId.keyId: a logID is {_SHA256_SIZE} bytes (SHA-256 of the log key)")
    kv = _members(e["kindVersion"], f"{path}.kindVersion", ("kind", "version"))
    promise = _members(e["inclusionPromise"], f"{path}.inclusionPromise", ("signedEntryTimestamp",))
    pp = f"{path}.inclusionProof"
    p = _members(e["inclusionProof"], pp, ("logIndex", "rootHash", "treeSize", "hashes", "checkpoint"))
    if not isinstance(p["hashes"], list):
        raise InvalidInput(f"{pp}.hashes: expected a list")
    hashes = tuple(_b64(h, f"{pp}.hashes[]") for h in p["hashes"])
    envelope = _members(p["checkpoint"], f"{pp}.checkpoint", ("envelope",))["envelope"]
    return TlogEntry(
        log_index=_u64(e["logIndex"], f"{path}.logIndex"),
        log_id=log_id,
        kind=_str(kv["kind"], f"{path}.kindVersion.kind"),
        version=_str(kv["version"], f"{path}.kindVersion.version"),
        integrated_time=_u64(e["integratedTime"], f"{path}.integratedTime"),
        signed_entry_timestamp=_b64(promise["signedEntryTimestamp"],
                                    f"{path}.inclusionPromise.signedEntryTimestamp"),
        proof=InclusionProof(
            log_index=_u64(p["logIndex"], f"{pp}.logIndex"),
            tree_size=_u64(p["treeSize"], f"{pp}.treeSize"),
            root_hash=_b64(p["rootHash"], f"{pp}.rootHash"),
            hashes=hashes,
            checkpoint=_str(envelope, f"{pp}.checkpoint.envelope").encode("utf-8"),
        ),
        body=_b64(e["canonicalizedBody"], f"{path}.canonicalizedBody"),
    )


# --- field readers: each names the field it refuses -----------------------------------------


def _members(obj: object, path: str, required: tuple[str, ...],
             optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """An object with all `required` members, perhaps some `optional` ones, nothing else."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"{path}: expected an object")
    for name in required:
        if name not in obj:
            raise InvalidInput(f"{path}.{name}: required")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise InvalidInput(f"{path}: unknown member {_short(unknown[0])}")
    return obj


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: expected a string")
    return value


def _u64(value: object, path: str) -> int:
    """A protobuf-JSON 64-bit integer: a decimal string (DESIGN §2)."""
    if not isinstance(value, str) or not _U64.fullmatch(value) or int(value) > _MAX_U64:
        raise InvalidInput(f"{path}: expected a 64-bit unsigned integer as a decimal string")
    return int(value)


def _int(value: object, path: str) -> int:
    """A JSON integer of Rekor's API (not a string, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_U64:
        raise InvalidInput(f"{path}: expected a non-negative integer")
    return value


def _b64(value: object, path: str) -> bytes:
    """Standard, padded base64 (what protobuf JSON writes for bytes)."""
    text = _str(value, path)
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInput(f"{path}: not valid standard base64") from None


def _hex32(value: object, path: str) -> bytes:
    text = _str(value, path)
    if not _HEX64.fullmatch(text.lower()):
        raise InvalidInput(f"{path}: expected 64 hex digits")
    return bytes.fromhex(text)


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:60] + "…"

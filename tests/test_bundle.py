"""Sigstore bundle v0.3 (tlog.core.bundle): the DESIGN §2 shape, strict parsing, sigstore's models."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import TransparencyLogEntry, TrustedRoot
from sigstore_models.bundle.v1 import Bundle as SigstoreBundle
from sigstore_models.trustroot.v1 import TrustedRoot as SigstoreTrustedRoot

from tlog.core.bundle import (
    MEDIA_TYPE,
    Bundle,
    bundle_from_log_entry,
    bundle_to_json,
    encode_bundle,
    key_hint,
    parse_bundle,
    tlog_entry_from_rekor,
)
from tlog.core.entries.hashedrekord import parse_request, proposed_entry
from tlog.core.keys import KEY_TYPES, KeyType, LogKey
from tlog.core.merkle import leaf_hash
from tlog.core.trusted import TrustedLog
from tlog.core.trustroot import trusted_root
from tlog.core.userkeys import SigningKey
from tlog.errors import InvalidInput

from .test_sigstore_formats import INTEGRATED_TIME, ORIGIN, v1_log_entry

# --- a small log, in memory: five signed artifacts, as the server would log them -------------

SIGNER = SigningKey.generate("ecdsa-p256")
ARTIFACTS = [f"release {i}\n".encode() for i in range(5)]
LOG_KEYS = {t: LogKey.generate(t) for t in KEY_TYPES}


def signed(artifact: bytes, signer: SigningKey = SIGNER) -> tuple[bytes, bytes, bytes]:
    """(digest, signature, canonical body) of a signature over an artifact's SHA-256."""
    digest = hashlib.sha256(artifact).digest()
    sig = signer.sign_digest(digest)
    body = parse_request(proposed_entry("sha256", digest, sig, signer.public_pem())).canonical_body()
    return digest, sig, body


SIGNED = [signed(a) for a in ARTIFACTS]
BODIES = [body for _, _, body in SIGNED]


def trusted(key_type: KeyType = "ed25519") -> TrustedLog:
    return TrustedLog(f"https://{ORIGIN}", ORIGIN, LOG_KEYS[key_type].public_key)


def log_answer(index: int = 3, key_type: KeyType = "ed25519", **kw: Any) -> dict[str, Any]:
    """The server's `{uuid: LogEntry}` answer for artifact `index` in a tree of five."""
    return v1_log_entry(LOG_KEYS[key_type], BODIES, index, **kw)


def make_bundle(index: int = 3, key_type: KeyType = "ed25519") -> Bundle:
    digest, sig, _ = SIGNED[index]
    return bundle_from_log_entry(log_answer(index, key_type), digest, sig, SIGNER.public_pem())


# --- the shape --------------------------------------------------------------------------------


def test_bundle_json_has_the_design_shape() -> None:
    b = make_bundle(3)
    doc = bundle_to_json(b)
    assert doc["mediaType"] == MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert set(doc) == {"mediaType", "verificationMaterial", "messageSignature"}
    ms = doc["messageSignature"]
    assert ms["messageDigest"] == {"algorithm": "SHA2_256",
                                   "digest": base64.b64encode(SIGNED[3][0]).decode()}
    assert base64.b64decode(ms["signature"]) == SIGNED[3][1]
    vm = doc["verificationMaterial"]
    assert set(vm) == {"publicKey", "tlogEntries"}
    (e,) = vm["tlogEntries"]
    # 64-bit integers are strings; hashes and bodies are base64 (DESIGN §2).
    assert e["logIndex"] == "3" and e["integratedTime"] == str(INTEGRATED_TIME)
    assert e["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert base64.b64decode(e["logId"]["keyId"]) == LOG_KEYS["ed25519"].public_key.log_id()
    assert base64.b64decode(e["canonicalizedBody"]) == BODIES[3]
    p = e["inclusionProof"]
    assert p["logIndex"] == "3" and p["treeSize"] == "5"
    assert len(base64.b64decode(p["rootHash"])) == 32 and len(p["hashes"]) == 3
    assert p["checkpoint"]["envelope"].startswith(f"{ORIGIN}\n5\n")
    assert set(e["inclusionPromise"]) == {"signedEntryTimestamp"}


def test_key_hint_is_base64_sha256_of_the_spki() -> None:
    der = serialization.load_pem_public_key(SIGNER.public_pem()).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_hint(SIGNER.public_pem()) == base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert bundle_to_json(make_bundle())["verificationMaterial"]["publicKey"] == {
        "hint": key_hint(SIGNER.public_pem())}


@pytest.mark.parametrize("index", range(5))
def test_parse_bundle_round_trips(index: int) -> None:
    b = make_bundle(index)
    assert parse_bundle(encode_bundle(b)) == b
    assert b.entry.uuid == leaf_hash(BODIES[index]).hex() == next(iter(log_answer(index)))


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_sigstore_parses_our_bundle_and_verifies_its_entry(key_type: KeyType) -> None:
    raw = encode_bundle(make_bundle(2, key_type))
    inner = SigstoreBundle.from_json(raw)  # protobuf-specs model: strict about shapes
    root = TrustedRoot(SigstoreTrustedRoot.from_json(json.dumps(trusted_root([trusted(key_type)]))))
    TransparencyLogEntry(inner.verification_material.tlog_entries[0])._verify(
        root.rekor_keyring(KeyringPurpose.VERIFY))


# --- strict parsing ---------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _entry(d: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = d["verificationMaterial"]["tlogEntries"][0]
    return entry


MALFORMED: dict[str, tuple[Mutation, str]] = {
    "media type": (lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle+json;version=0.1"),
                   "mediaType"),
    "unknown member": (lambda d: d.update(extra=1), "unknown member"),
    "missing signature": (lambda d: d["messageSignature"].pop("signature"),
                          "messageSignature.signature: required"),
    "integer logIndex": (lambda d: _entry(d).update(logIndex=3), "tlogEntries[0].logIndex"),
    "leading zero": (lambda d: _entry(d).update(integratedTime="01"), "integratedTime"),
    "negative": (lambda d: _entry(d)["inclusionProof"].update(treeSize="-5"), "treeSize"),
    "too big": (lambda d: _entry(d).update(logIndex=str(1 << 64)), "logIndex"),
    "bad base64": (lambda d: d["messageSignature"].update(signature="not base64!"),
                   "messageSignature.signature: not valid standard base64"),
    "short digest": (lambda d: d["messageSignature"]["messageDigest"].update(digest="AAAA"),
                     "32 bytes"),
    "other digest": (lambda d: d["messageSignature"]["messageDigest"].update(algorithm="SHA3_256"),
                     "algorithm: expected one of SHA2_256, SHA2_384, SHA2_512, got \"SHA3_256\""),
    "digest of another size": (lambda d: d["messageSignature"]["messageDigest"].update(algorithm="SHA2_384"),
                               "a SHA2_384 digest is 48 bytes, got 32"),
    "two entries": (lambda d: d["verificationMaterial"]["tlogEntries"].append(_entry(d)),
                    "exactly one entry"),
    "no entries": (lambda d: d["verificationMaterial"].update(tlogEntries=[]), "exactly one entry"),
    "certificate": (lambda d: d["verificationMaterial"].update(certificate={"rawBytes": "AA=="}),
                    "carries a certificate"),
    "timestamps": (lambda d: d["verificationMaterial"].update(
        timestampVerificationData={"rfc3161Timestamps": [{"signedTimestamp": "AA=="}]}),
                   "timestamps are not supported"),
    "hashes not a list": (lambda d: _entry(d)["inclusionProof"].update(hashes="AA=="), "hashes"),
    "short logId": (lambda d: _entry(d)["logId"].update(keyId="AAAA"), "logId.keyId"),
    "no checkpoint": (lambda d: _entry(d)["inclusionProof"].pop("checkpoint"), "checkpoint: required"),
    "no promise": (lambda d: _entry(d).pop("inclusionPromise"), "inclusionPromise: required"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_parse_bundle_refuses_malformed_bundles(case: str) -> None:
    mutate, message = MALFORMED[case]
    doc = bundle_to_json(make_bundle())
    mutate(doc)
    with pytest.raises(InvalidInput, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_bundle(json.dumps(doc).encode())


def test_parse_bundle_refuses_non_json() -> None:
    with pytest.raises(InvalidInput, match="bundle: not valid JSON"):
        parse_bundle(b"\xff{")


def test_empty_timestamp_data_is_accepted() -> None:
    doc = bundle_to_json(make_bundle())
    doc["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": []}
    assert parse_bundle(json.dumps(doc).encode()) == make_bundle()


# --- reading the log's answer ------------------------------------------------------------------


def test_log_answer_whose_uuid_is_not_its_body_is_refused() -> None:
    answer = log_answer(1)
    (entry,) = answer.values()
    with pytest.raises(InvalidInput, match="UUID is not the leaf hash"):
        tlog_entry_from_rekor({leaf_hash(BODIES[0]).hex(): entry})


@pytest.mark.parametrize("field,value", [("logIndex", "1"), ("integratedTime", -1),
                                         ("logID", "AB" * 32), ("logIndex", True)])
def test_log_answer_fields_are_checked(field: str, value: object) -> None:
    answer = copy.deepcopy(log_answer(1))
    next(iter(answer.values()))[field] = value
    with pytest.raises(InvalidInput, match=field):
        tlog_entry_from_rekor(answer)


def test_log_answer_with_two_entries_is_refused() -> None:
    with pytest.raises(InvalidInput, match="exactly one entry UUID"):
        tlog_entry_from_rekor({**log_answer(1), **log_answer(2)})

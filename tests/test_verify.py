"""tlog.core.verify: each check passes for a good bundle and names itself when it fails."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from tlog.core.bundle import Bundle, bundle_to_json, parse_bundle
from tlog.core.checkpoint import Checkpoint, sign_checkpoint
from tlog.core.compact import root_from_leaf_hashes
from tlog.core.entries.hashedrekord import HashedRekord
from tlog.core.keys import KEY_TYPES, KeyType, LogKey
from tlog.core.merkle import consistency_ranges, leaf_hash
from tlog.core.trusted import TrustedLog
from tlog.core.userkeys import SigningKey
from tlog.core.verify import (
    CheckFailed,
    consistency_proof_hashes,
    log_for_entry,
    verify_bundle,
    verify_extends,
    verify_log_entry,
    verify_log_info,
)
from tlog.errors import TlogError

from .test_bundle import ARTIFACTS, BODIES, LOG_KEYS, SIGNED, SIGNER, log_answer, make_bundle, signed, trusted
from .test_sigstore_formats import ORIGIN

DIGEST = hashlib.sha256(ARTIFACTS[3]).digest()
PEM = SIGNER.public_pem()


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("index", range(5))
def test_good_bundle_verifies(key_type: KeyType, index: int) -> None:
    v = verify_bundle(make_bundle(index, key_type), hashlib.sha256(ARTIFACTS[index]).digest(), PEM,
                      trusted(key_type))
    assert v.entry.log_index == index and v.checkpoint.size == 5
    assert v.checkpoint.root_hash == root_from_leaf_hashes([leaf_hash(b) for b in BODIES])


# --- tampering with each part of the bundle ---------------------------------------------------


def _flip_b64(s: str) -> str:
    raw = bytearray(base64.b64decode(s))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _entry(d: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = d["verificationMaterial"]["tlogEntries"][0]
    return entry


def _set_index(d: dict[str, Any], i: str) -> None:
    _entry(d)["logIndex"] = i
    _entry(d)["inclusionProof"]["logIndex"] = i


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "proof hash": (lambda d: _entry(d)["inclusionProof"]["hashes"].__setitem__(
        0, _flip_b64(_entry(d)["inclusionProof"]["hashes"][0])), "inclusion proof"),
    "SET": (lambda d: _entry(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip_b64(_entry(d)["inclusionPromise"]["signedEntryTimestamp"])), "SET"),
    "checkpoint text": (lambda d: _entry(d)["inclusionProof"]["checkpoint"].update(
        envelope=_entry(d)["inclusionProof"]["checkpoint"]["envelope"].replace("\n5\n", "\n6\n", 1)),
                        "checkpoint"),
    "checkpoint signature": (lambda d: _entry(d)["inclusionProof"]["checkpoint"].update(
        envelope=_entry(d)["inclusionProof"]["checkpoint"]["envelope"][:-3] + "AA=\n"), "checkpoint"),
    "root hash": (lambda d: _entry(d)["inclusionProof"].update(
        rootHash=_flip_b64(_entry(d)["inclusionProof"]["rootHash"])), "checkpoint"),
    "tree size": (lambda d: _entry(d)["inclusionProof"].update(treeSize="4"), "checkpoint"),
    "body bytes": (lambda d: _entry(d).update(
        canonicalizedBody=_flip_b64(_entry(d)["canonicalizedBody"])), "body"),
    "body of another entry": (lambda d: _entry(d).update(
        canonicalizedBody=base64.b64encode(BODIES[1]).decode()), "body"),
    "signature": (lambda d: d["messageSignature"].update(
        signature=_flip_b64(d["messageSignature"]["signature"])), "signature"),
    "index": (lambda d: _set_index(d, "2"), "inclusion proof"),
    "entry index only": (lambda d: _entry(d).update(logIndex="4"), "inclusion proof"),
    "integratedTime": (lambda d: _entry(d).update(
        integratedTime=str(int(_entry(d)["integratedTime"]) + 1)), "SET"),
    "logId": (lambda d: _entry(d)["logId"].update(keyId=_flip_b64(_entry(d)["logId"]["keyId"])), "log"),
    "kindVersion": (lambda d: _entry(d)["kindVersion"].update(version="0.0.2"), "body"),
}


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("part", TAMPERS)
def test_tampered_bundle_fails_the_named_check(part: str, key_type: KeyType) -> None:
    mutate, check = TAMPERS[part]
    doc = copy.deepcopy(bundle_to_json(make_bundle(3, key_type)))
    mutate(doc)
    bundle = parse_bundle(json.dumps(doc).encode())
    with pytest.raises(CheckFailed) as e:
        verify_bundle(bundle, DIGEST, PEM, trusted(key_type))
    assert e.value.check == check, str(e.value)
    assert str(e.value).startswith(f"{check}: ")


def test_wrong_artifact_fails_the_artifact_check() -> None:
    with pytest.raises(CheckFailed, match=r"^image: the bundle signs sha256:") as e:
        verify_bundle(make_bundle(3), hashlib.sha256(b"other").digest(), PEM, trusted(),
                      subject="image")
    assert e.value.check == "image"


def test_a_p256_signature_over_a_longer_digest_fails_the_signature_check() -> None:
    # ECDSA cuts a digest to the curve's size: the P-256 signature over DIGEST also
    # "verifies" for sha512 DIGEST‖X. The verifier binds the digest to the key as the log
    # does (Sigstore's algorithm registry; issue 11, item 6).
    longer = DIGEST + b"X" * 32
    bundle = dataclasses.replace(make_bundle(3), algorithm="sha512", digest=longer)
    with pytest.raises(CheckFailed, match=r"^signature: a P-256 key signs sha256 digests only, "
                                          r"not sha512"):
        verify_bundle(bundle, longer, PEM, trusted())


def test_wrong_user_key_fails_the_signature_check() -> None:
    other = SigningKey.generate("ecdsa-p256").public_pem()
    with pytest.raises(CheckFailed, match=r"^signature: does not verify"):
        verify_bundle(make_bundle(3), DIGEST, other, trusted())


def _forged_body() -> bytes:
    """A valid signature by SIGNER, but the logged body names another key for it."""
    digest, sig, _ = SIGNED[3]
    other_pem = SigningKey.generate("ecdsa-p256").public_pem()
    return HashedRekord("sha256", digest, sig, other_pem, False).canonical_body()


@pytest.mark.parametrize("body,message", [
    (_forged_body, "the log entry was signed with another public key"),
    # ECDSA is randomized: a second signature over the same artifact is another entry.
    (lambda: signed(ARTIFACTS[3])[2], "the log entry records another signature"),
])
def test_body_that_does_not_record_this_signature_fails_the_body_check(
        body: Callable[[], bytes], message: str) -> None:
    b = make_bundle(3)
    b = Bundle(b.digest, b.signature, b.key_hint, type(b.entry)(**{**b.entry.__dict__, "body": body()}))
    with pytest.raises(CheckFailed, match=f"^body: {message}"):
        verify_bundle(b, DIGEST, PEM, trusted())


def test_another_log_key_fails_the_log_check() -> None:
    other = TrustedLog(f"https://{ORIGIN}", ORIGIN, LogKey.generate("ed25519").public_key)
    with pytest.raises(CheckFailed, match=r"^log: the entry is from log"):
        verify_bundle(make_bundle(3), DIGEST, PEM, other)


def test_another_log_name_fails_the_checkpoint_check() -> None:
    renamed = TrustedLog("https://elsewhere.example", "elsewhere.example",
                         LOG_KEYS["ed25519"].public_key)
    with pytest.raises(CheckFailed, match=r"^checkpoint: .*expected 'elsewhere\.example'"):
        verify_bundle(make_bundle(3), DIGEST, PEM, renamed)


def test_malformed_public_key_is_bad_input_not_a_failed_check() -> None:
    with pytest.raises(TlogError, match=r"^public key: ") as e:
        verify_bundle(make_bundle(3), DIGEST, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                      trusted())
    assert not isinstance(e.value, CheckFailed)


# --- the log's answers: entries, tree heads ------------------------------------------------------


def test_log_entry_answer_verifies_and_a_tampered_one_does_not() -> None:
    assert verify_log_entry(log_answer(4), trusted()).entry.log_index == 4
    bad = copy.deepcopy(log_answer(4))
    next(iter(bad.values()))["integratedTime"] += 1
    with pytest.raises(CheckFailed, match=r"^SET: "):
        verify_log_entry(bad, trusted())
    with pytest.raises(CheckFailed, match=r"^entry: "):
        verify_log_entry({"x": {}}, trusted())


def _log_info(size: int, key_type: KeyType = "ed25519") -> dict[str, Any]:
    root = root_from_leaf_hashes([leaf_hash(b) for b in BODIES[:size]])
    note = sign_checkpoint(Checkpoint(ORIGIN, size, root), LOG_KEYS[key_type]).decode()
    return {"rootHash": root.hex(), "treeSize": size, "signedTreeHead": note, "treeID": "1"}


def test_log_info_must_match_its_signed_checkpoint() -> None:
    assert verify_log_info(_log_info(3), trusted()).size == 3
    with pytest.raises(CheckFailed, match=r"^checkpoint: the log's treeSize and rootHash"):
        verify_log_info({**_log_info(3), "treeSize": 4}, trusted())
    with pytest.raises(CheckFailed, match=r"^consistency: does not verify"):
        verify_log_info(_log_info(3, "ecdsa-p256"), trusted(), check="consistency")
    with pytest.raises(CheckFailed, match="no signed checkpoint"):
        verify_log_info([], trusted())


# --- consistency (online verification) -----------------------------------------------------------


def _consistency(size1: int, size2: int) -> list[bytes]:
    leaves = [leaf_hash(b) for b in BODIES]
    return [root_from_leaf_hashes(leaves[a:b]) for a, b in consistency_ranges(size1, size2)]


def _cp(size: int) -> Checkpoint:
    return Checkpoint(ORIGIN, size, root_from_leaf_hashes([leaf_hash(b) for b in BODIES[:size]]))


@pytest.mark.parametrize("old,new", [(1, 5), (3, 5), (4, 5), (5, 5), (2, 3)])
def test_consistent_growth_verifies(old: int, new: int) -> None:
    proof = _consistency(old, new) if old != new else []
    verify_extends(_cp(old), _cp(new), proof)


def test_inconsistent_or_shrunk_tree_fails_the_consistency_check() -> None:
    proof = _consistency(3, 5)
    proof[0] = bytes(32)
    with pytest.raises(CheckFailed, match=r"^consistency: from tree size 3 to 5"):
        verify_extends(_cp(3), _cp(5), proof)
    forked = Checkpoint(ORIGIN, 5, bytes(32))
    with pytest.raises(CheckFailed, match=r"^consistency: "):
        verify_extends(_cp(3), forked, _consistency(3, 5))
    with pytest.raises(CheckFailed, match="smaller than the bundle's"):
        verify_extends(_cp(5), _cp(3), [])


def test_consistency_answer_is_parsed_strictly() -> None:
    assert consistency_proof_hashes({"rootHash": "00", "hashes": ["ab" * 32]}) == [b"\xab" * 32]
    bad: object
    for bad in ({"hashes": "ab"}, {"hashes": ["zz"]}, {"hashes": [1]}, [], None):
        with pytest.raises(CheckFailed, match=r"^consistency: "):
            consistency_proof_hashes(bad)


# --- which pinned log -----------------------------------------------------------------------------


def test_log_for_entry_picks_the_pinned_log_by_log_id_or_url() -> None:
    a, b = trusted("ed25519"), TrustedLog("https://b.example", "b.example", LOG_KEYS["ecdsa-p256"].public_key)
    assert log_for_entry([a, b], LOG_KEYS["ecdsa-p256"].public_key.log_id(), None) == b
    assert log_for_entry([a, b], LOG_KEYS["ecdsa-p256"].public_key.log_id(), "https://log.example.com/") == a
    with pytest.raises(CheckFailed, match=r"^log: .*not pinned"):
        log_for_entry([a], bytes(32), None)
    with pytest.raises(TlogError, match="no log is pinned"):
        log_for_entry([], bytes(32), None)
    with pytest.raises(TlogError, match="is not pinned"):
        log_for_entry([a], bytes(32), "https://c.example")

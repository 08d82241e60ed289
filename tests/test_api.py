"""The Rekor v1 API end to end: a real log on a real SQLite file, over loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

import pytest

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.merkle import verify_consistency

from .support import ApiClient, OpenLog, Signer, check_log_entry

ENTRIES = "/api/v1/log/entries"


async def _submit(client: ApiClient, proposed: dict[str, Any]) -> tuple[int, Any, Any]:
    r = await client.post(ENTRIES, json=proposed)
    return r.status, await r.json(), r.headers


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
async def test_submission_returns_201_with_verifiable_entry(open_log: OpenLog, signer: Signer,
                                                            key_type: str) -> None:
    lg, client = await open_log(key_type=key_type)
    status, body, headers = await _submit(client, signer.proposed(b"hello"))
    assert status == 201
    uuid, e = check_log_entry(body, lg.public_key)
    assert headers["Location"] == f"{ENTRIES}/{uuid}"
    assert headers["ETag"] == uuid
    assert e["logIndex"] == 0 and e["logID"] == lg.log_id_hex
    assert e["verification"]["inclusionProof"]["treeSize"] == 1


async def test_duplicate_submission_returns_409_with_location(open_log: OpenLog, signer: Signer) -> None:
    lg, client = await open_log()
    proposed = signer.proposed(b"same artifact")
    status, body, _ = await _submit(client, proposed)
    uuid = next(iter(body))
    status, err, headers = await _submit(client, proposed)
    assert status == 409 and err["code"] == 409
    assert headers["Location"] == f"{ENTRIES}/{uuid}"
    assert lg.head.state.size == 1


async def test_duplicates_in_one_batch_get_one_201_and_409s(open_log: OpenLog, signer: Signer) -> None:
    lg, client = await open_log(batch_ms=50)
    proposed = signer.proposed(b"raced")
    results = await asyncio.gather(*[_submit(client, proposed) for _ in range(5)])
    statuses = sorted(s for s, _, _ in results)
    assert statuses == [201, 409, 409, 409, 409]
    created = next(b for s, b, _ in results if s == 201)
    uuid = next(iter(created))
    assert all(h["Location"].endswith(uuid) for s, _, h in results if s == 409)
    assert lg.head.state.size == 1


async def test_concurrent_submissions_share_batches_and_all_verify(open_log: OpenLog) -> None:
    lg, client = await open_log(batch_ms=20, batch_size=16)
    signers = [Signer() for _ in range(4)]
    results = await asyncio.gather(*[_submit(client, signers[i % 4].proposed()) for i in range(40)])
    assert all(s == 201 for s, _, _ in results)
    indexes = sorted(next(iter(b.values()))["logIndex"] for _, b, _ in results)
    assert indexes == list(range(40))
    assert lg.sequencer.batches < 40  # group commit happened
    for _, b, _ in results:
        check_log_entry(b, lg.public_key)


async def test_get_entry_by_index_uuid_and_retrieve(open_log: OpenLog, signer: Signer) -> None:
    lg, client = await open_log()
    uuids = []
    for i in range(3):
        _, body, _ = await _submit(client, signer.proposed(f"a{i}".encode()))
        uuids.append(next(iter(body)))
    r = await client.get(ENTRIES, params={"logIndex": "1"})
    assert r.status == 200
    got = await r.json()
    assert next(iter(got)) == uuids[1]
    _, e = check_log_entry(got, lg.public_key)
    assert e["verification"]["inclusionProof"]["treeSize"] == 3  # a fresh proof
    r = await client.get(f"{ENTRIES}/{uuids[2]}")
    assert next(iter(await r.json())) == uuids[2]
    # Sharded Rekor's 80-hex form: tree ID + UUID.
    r = await client.get(f"{ENTRIES}/{'0' * 16}{uuids[0]}")
    assert r.status == 200 and next(iter(await r.json())) == uuids[0]
    r = await client.post(f"{ENTRIES}/retrieve", json={"entryUUIDs": [uuids[0]], "logIndexes": [2]})
    got = await r.json()
    assert [next(iter(x)) for x in got] == [uuids[0], uuids[2]]
    for x in got:
        check_log_entry(x, lg.public_key)


def _uuid(entry: dict[str, Any]) -> str:
    """The UUID of a LogEntry answer: its only key."""
    return next(iter(entry))


async def test_search_index_by_hash_and_public_key(open_log: OpenLog) -> None:
    _, client = await open_log()
    alice, bob = Signer(), Signer()
    _, a1, _ = await _submit(client, alice.proposed(b"artifact-1"))
    _, b1, _ = await _submit(client, bob.proposed(b"artifact-1"))
    _, a2, _ = await _submit(client, alice.proposed(b"artifact-2"))
    digest = hashlib.sha256(b"artifact-1").hexdigest()
    r = await client.post("/api/v1/index/retrieve", json={"hash": f"sha256:{digest}"})
    assert sorted(await r.json()) == sorted([_uuid(a1), _uuid(b1)])
    r = await client.post("/api/v1/index/retrieve", json={"hash": digest.upper()})
    assert sorted(await r.json()) == sorted([_uuid(a1), _uuid(b1)])
    key = {"format": "x509", "content": base64.b64encode(alice.pem).decode()}
    r = await client.post("/api/v1/index/retrieve", json={"publicKey": key})
    assert sorted(await r.json()) == sorted([_uuid(a1), _uuid(a2)])
    r = await client.post("/api/v1/index/retrieve",
                          json={"publicKey": key, "hash": f"sha256:{digest}", "operator": "and"})
    assert await r.json() == [_uuid(a1)]
    r = await client.post("/api/v1/index/retrieve", json={"hash": "sha256:" + "0" * 64})
    assert await r.json() == []


async def test_log_info_and_consistency_proofs_between_all_sizes(open_log: OpenLog, signer: Signer) -> None:
    lg, client = await open_log(batch_ms=0)
    heads = {}
    for _ in range(20):
        _, body, _ = await _submit(client, signer.proposed())
        p = next(iter(body.values()))["verification"]["inclusionProof"]
        heads[p["treeSize"]] = bytes.fromhex(p["rootHash"])
    r = await client.get("/api/v1/log")
    info = await r.json()
    assert info["treeSize"] == 20 and bytes.fromhex(info["rootHash"]) == heads[20]
    cp = verify_checkpoint(info["signedTreeHead"].encode(), lg.public_key)
    assert cp.size == 20 and cp.origin == lg.origin
    for first in range(1, 21):
        for last in range(first, 21):
            r = await client.get("/api/v1/log/proof", params={"firstSize": first, "lastSize": last})
            assert r.status == 200
            proof = await r.json()
            assert bytes.fromhex(proof["rootHash"]) == heads[last]
            verify_consistency(first, last, [bytes.fromhex(h) for h in proof["hashes"]],
                               heads[first], heads[last])


async def test_public_key_is_pem_of_log_key(open_log: OpenLog) -> None:
    lg, client = await open_log()
    r = await client.get("/api/v1/log/publicKey")
    assert r.status == 200 and await r.read() == lg.public_key.pem()
    r = await client.get("/healthz")
    assert r.status == 200


@pytest.mark.parametrize("path,params,status", [
    (ENTRIES, {"logIndex": "5"}, 404),
    (ENTRIES, {"logIndex": "-1"}, 400),
    (ENTRIES, {"logIndex": "abc"}, 400),
    (ENTRIES, {}, 400),
    (f"{ENTRIES}/nothex", {}, 400),
    (f"{ENTRIES}/{'ab' * 32}", {}, 404),
    ("/api/v1/log/proof", {"firstSize": "1", "lastSize": "9"}, 400),
    ("/api/v1/log/proof", {"firstSize": "2", "lastSize": "1"}, 400),
    ("/api/v1/log/proof", {"firstSize": "0", "lastSize": "1"}, 400),
    ("/api/v1/log/proof", {"firstSize": "1"}, 400),
    ("/api/v1/nope", {}, 404),
])
async def test_bad_reads_get_4xx_json(open_log: OpenLog, signer: Signer, path: str, params: dict[str, str],
                                     status: int) -> None:
    _, client = await open_log()
    await _submit(client, signer.proposed())
    r = await client.get(path, params=params)
    assert r.status == status
    err = await r.json()
    assert err["code"] == status and isinstance(err["message"], str) and err["message"]


async def test_every_proof_up_to_300_entries_verifies_with_ours_and_pymerkle(open_log: OpenLog) -> None:
    """One entry per batch, so every response proves inclusion at a new tree size."""
    from pymerkle import InclusionProof, InmemoryTree, verify_inclusion as pm_verify_inclusion
    from pymerkle.core import _inclusion_path_layout

    from tlog.core.merkle import leaf_hash, verify_inclusion
    from tlog.errors import VerificationError

    lg, client = await open_log(batch_ms=0)
    signer = Signer()
    reference = InmemoryTree()
    roots: dict[int, bytes] = {}
    for n in range(1, 301):
        status, body, _ = await _submit(client, signer.proposed())
        assert status == 201
        _, e = check_log_entry(body, lg.public_key)
        leaf_body = base64.b64decode(e["body"])
        reference.append_entry(leaf_body)
        p = e["verification"]["inclusionProof"]
        root, hashes = bytes.fromhex(p["rootHash"]), [bytes.fromhex(h) for h in p["hashes"]]
        assert p["treeSize"] == n and root == reference.get_root(n)
        roots[n] = root
        rule, _ = _inclusion_path_layout(n, n)
        pm_verify_inclusion(leaf_hash(leaf_body), root,
                            InclusionProof("sha256", True, n, n, rule, [leaf_hash(leaf_body), *hashes]))
        if hashes:
            bad = [bytes([hashes[0][0] ^ 0x80]) + hashes[0][1:], *hashes[1:]]
            with pytest.raises(VerificationError):
                verify_inclusion(n - 1, n, leaf_hash(leaf_body), bad, root)
    for first in range(1, 301, 13):
        for last in range(first, 301, 17):
            r = await client.get("/api/v1/log/proof", params={"firstSize": first, "lastSize": last})
            proof = await r.json()
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
            verify_consistency(first, last, hashes, roots[first], roots[last])
            if hashes:
                with pytest.raises(VerificationError):
                    verify_consistency(first, last, hashes[::-1] if len(hashes) > 1 else [bytes(32)],
                                       roots[first], roots[last])

"""The signing guard: the log key never signs a head inconsistent with the last one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.compact import root_from_leaf_hashes
from tlog.core.keys import LogKey
from tlog.core.merkle import consistency_ranges, leaf_hash
from tlog.server.guard import CheckpointGuard, ForkRefused

from .support import OpenLog, Signer


def _proof(leaves: list[bytes], m: int, n: int) -> list[bytes]:
    return [root_from_leaf_hashes(leaves[s:e]) for s, e in consistency_ranges(m, n)]


def test_guard_signs_consistent_heads_and_refuses_forks() -> None:
    key = LogKey.generate("ed25519")
    a = [leaf_hash(bytes([i])) for i in range(20)]
    b = a[:5] + [leaf_hash(b"fork")] + a[6:]  # a different history from index 5 on
    guard = CheckpointGuard(key, "example.org", 0, root_from_leaf_hashes([]))
    note = guard.sign(7, root_from_leaf_hashes(a[:7]), [])
    assert verify_checkpoint(note, key.public_key).size == 7
    guard.sign(12, root_from_leaf_hashes(a[:12]), _proof(a, 7, 12))
    with pytest.raises(ForkRefused, match="not consistent"):
        guard.sign(15, root_from_leaf_hashes(b[:15]), _proof(b, 12, 15))
    with pytest.raises(ForkRefused, match="not consistent"):
        guard.sign(15, root_from_leaf_hashes(b[:15]), _proof(a, 12, 15))  # honest proof, forked root
    with pytest.raises(ForkRefused, match="already signed size 12"):
        guard.sign(11, root_from_leaf_hashes(a[:11]), [])
    with pytest.raises(ForkRefused, match="second root"):
        guard.sign(12, root_from_leaf_hashes(b[:12]), [])
    guard.sign(12, root_from_leaf_hashes(a[:12]), [])  # re-signing the same head is fine
    guard.sign(20, root_from_leaf_hashes(a), _proof(a, 12, 20))


async def test_log_refuses_to_sign_after_its_tree_is_corrupted_in_memory(tmp_path: Path,
                                                                         open_log: OpenLog) -> None:
    data = tmp_path / "guarded"
    lg, client = await open_log(data_dir=data, batch_ms=0)
    signer = Signer()
    for _ in range(5):
        assert (await client.post("/api/v1/log/entries", json=signer.proposed())).status == 201
    size, root = lg.head.state.size, lg.head.root
    # Corrupt the live tree's node over leaves 0–3: the next head would rewrite history.
    lg.head.state.tail[2][0] = bytes(32)
    r = await client.post("/api/v1/log/entries", json=signer.proposed())
    assert r.status == 503 and "writes are stopped" in (await r.json())["message"]
    r = await client.post("/api/v1/log/entries", json=signer.proposed())
    assert r.status == 503
    assert (lg.head.state.size, lg.head.root) == (size, root)
    # Reads still work, and nothing was stored: a restart recovers the signed history.
    assert (await client.get("/api/v1/log/entries", params={"logIndex": "4"})).status == 200
    await lg.close()
    lg2, client2 = await open_log(data_dir=data, batch_ms=0)
    assert (lg2.head.state.size, lg2.head.root) == (size, root)
    assert (await client2.post("/api/v1/log/entries", json=signer.proposed())).status == 201

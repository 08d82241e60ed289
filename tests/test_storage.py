"""Storage: append-only history enforced by the schema, recovery without rehashing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tlog.core.merkle import leaf_hash
from tlog.server.storage.sqlite import NewEntry, Storage, StorageError, StoredCheckpoint
from tlog.server.tree import TreeState


async def _filled(path: Path, n: int) -> tuple[Storage, TreeState]:
    st = await Storage.open(path)
    state = TreeState.empty()
    for start in range(0, n, 100):
        bodies = [f"body-{i}".encode() for i in range(start, min(n, start + 100))]
        leaves = [leaf_hash(b) for b in bodies]
        new, writes = state.extended(leaves)
        entries = [NewEntry(state.size + i, b, h, (i,)) for i, (b, h) in enumerate(zip(bodies, leaves))]
        await st.append_batch(entries, 1700000000, writes,
                              StoredCheckpoint(new.size, new.root(), b"note", 1700000000))
        state = new
    return st, state


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET body = x'00' WHERE idx = 0",
    "DELETE FROM entries WHERE idx = 5",
    "UPDATE tiles SET hashes = x'00'",
    "DELETE FROM tiles",
    "DELETE FROM checkpoints",
    "UPDATE checkpoints SET root = x'00'",
    "DELETE FROM leaf_index",
    "DELETE FROM search_index",
    "UPDATE meta SET value = 'x'",
])
async def test_history_cannot_be_rewritten(tmp_path: Path, statement: str) -> None:
    st, _ = await _filled(tmp_path / "log.db", 300)
    await st.init_meta({"log_id": "ab"})
    await st.close()
    con = sqlite3.connect(tmp_path / "log.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute(statement)
    con.close()


async def test_recover_rebuilds_tree_from_tiles(tmp_path: Path) -> None:
    st, state = await _filled(tmp_path / "log.db", 1000)
    await st.close()
    st = await Storage.open(tmp_path / "log.db")
    rec = await st.recover()
    assert rec.size == 1000 and len(rec.level8) == 3 and len(rec.tail_leaves) == 1000 - 768
    assert TreeState.restore(rec.size, rec.level8, rec.tail_leaves).root() == state.root()
    found = await st.find_leaves([leaf_hash(b"body-7"), leaf_hash(b"nope")])
    assert found == {leaf_hash(b"body-7"): 7}
    await st.close()


async def test_failed_batch_leaves_nothing_half_written(tmp_path: Path) -> None:
    st, state = await _filled(tmp_path / "log.db", 10)
    new, writes = state.extended([leaf_hash(b"x"), leaf_hash(b"y")])
    # Index 5 already exists: the whole batch must roll back, entries and tiles alike.
    entries = [NewEntry(10, b"x", leaf_hash(b"x"), ()), NewEntry(5, b"y", leaf_hash(b"y"), ())]
    with pytest.raises(StorageError):
        await st.append_batch(entries, 1, writes, StoredCheckpoint(12, new.root(), b"n", 1))
    new.truncate_to(state)
    rec = await st.recover()
    assert rec.size == 10 and rec.checkpoint is not None and rec.checkpoint.size == 10
    assert len(rec.tail_leaves) == 10
    await st.close()

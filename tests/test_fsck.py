"""`tlog fsck`: a clean data directory passes; each way of corrupting a copy of one is found
and reported at the place it was made, and nowhere else."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tlog.core.checkpoint import Checkpoint, sign_checkpoint
from tlog.core.entries.hashedrekord import event_key_of_body, parse_request
from tlog.core.keys import LogKey
from tlog.core.merkle import leaf_hash
from tlog.core.tilestate import EXPANSION_LEVELS, expand_tile
from tlog.server.fsck import FsckReport, check_data_dir
from tlog.server.storage.base import key_prefix

from .cli_support import tlog
from .support import OpenLog, Signer, submit_entries

SIZE = 300  # a full level-0 tile, a partial one, and a level-1 tile


@pytest.fixture(scope="module")
def pristine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pristine") / "data"


@pytest.fixture
async def pristine(open_log: OpenLog, pristine_dir: Path) -> Path:
    """A real log: SIZE signed entries submitted over HTTP in waves, written in batches
    of up to 16 (so a few dozen checkpoints); built once per module, then closed."""
    built = pristine_dir / "built"
    if not built.exists():
        lg, client = await open_log(data_dir=pristine_dir, batch_size=16, batch_ms=1)
        signer = Signer()
        await submit_entries(client, signer, SIZE)
        await lg.close()
        built.touch()
    return pristine_dir


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the pristine data directory, to corrupt."""
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    (copy / "built").unlink()
    return copy


def corrupt(data: Path, statement: str, params: tuple[object, ...] = ()) -> None:
    """Run one statement on the copy's database, past its append-only triggers."""
    conn = sqlite3.connect(data / "log.db", isolation_level=None)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(statement, params)
    finally:
        conn.close()


def query(data: Path, statement: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(data / "log.db")
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def places(report: FsckReport) -> set[tuple[str, str]]:
    return {(f.kind, f.where) for f in report.faults}


def detail(report: FsckReport, kind: str, where: str) -> str:
    (fault,) = report.at(kind, where)
    return fault.detail


def checkpoint_sizes(data: Path) -> list[int]:
    return [s for (s,) in query(data, "SELECT size FROM checkpoints ORDER BY size")]


def mid_checkpoint(data: Path) -> tuple[int, int, int]:
    """A checkpointed size in the middle, with the ones before and after it."""
    sizes = checkpoint_sizes(data)
    k = len(sizes) // 2
    return sizes[k - 1], sizes[k], sizes[k + 1]


# -- a clean log ---------------------------------------------------------------------------

async def test_clean_copy_passes_with_every_check_run(data: Path) -> None:
    seen: list[tuple[int, int]] = []
    rep = check_data_dir(data, progress=lambda done, total: seen.append((done, total)))
    assert rep.ok, rep.faults
    assert (rep.tree_size, rep.entries_checked, rep.complete) == (SIZE, SIZE, True)
    assert rep.checkpoints_checked == len(checkpoint_sizes(data)) > 10
    assert rep.tiles_checked == 3  # tiles 0/0, 0/1 (partial) and 1/0 (partial)
    (latest,) = query(data, "SELECT root FROM checkpoints WHERE size = ?", (SIZE,))
    assert rep.root == latest[0]
    assert seen[-1] == (SIZE, SIZE)
    # Nothing was written: no WAL or shared-memory file appeared next to the database.
    assert sorted(os.listdir(data)) == ["LOCK", "log.db", "log.key"]  # LOCK: copied with the rest


async def test_cli_clean_exits_0_and_json_is_the_report(data: Path) -> None:
    result = tlog("fsck", data)
    assert result.exit_code == 0, result.output
    assert "result: OK" in result.stdout and f"tree size {SIZE}" in result.stdout
    result = tlog("fsck", "--json", "--no-signatures", data)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["faultCount"] == 0 and doc["treeSize"] == SIZE
    assert doc["signaturesChecked"] is False and result.stderr == ""


async def test_a_running_log_is_checked_at_one_consistent_snapshot(open_log: OpenLog, tmp_path: Path) -> None:
    """Read-only, in one read transaction: while batches are being committed, every check
    sees a whole batch or none of it, so each one passes."""
    _, client = await open_log(data_dir=tmp_path / "live", batch_size=4, batch_ms=1)
    signer = Signer()
    reports = []
    for _ in range(6):  # each check runs while a wave of 8 submissions is being written
        wave = asyncio.gather(*[
            client.post("/api/v1/log/entries", json=signer.proposed()) for _ in range(8)])
        reports.append(await asyncio.to_thread(check_data_dir, tmp_path / "live"))
        assert {r.status for r in await wave} == {201}
    reports.append(check_data_dir(tmp_path / "live"))
    assert all(r.ok for r in reports), [r.faults for r in reports if not r.ok]
    assert reports[-1].tree_size == 48 and reports[-1].entries_checked == 48


# -- entries ----------------------------------------------------------------------------------

async def test_altered_body_byte_is_reported_at_its_entry_only(data: Path) -> None:
    ((body,),) = query(data, "SELECT body FROM entries WHERE idx = 7")
    at = body.index(b'"value":"') + len(b'"value":"')
    altered = body[:at] + (b"0" if body[at:at + 1] != b"0" else b"1") + body[at + 1:]
    corrupt(data, "UPDATE entries SET body = ? WHERE idx = 7", (altered,))
    rep = check_data_dir(data)
    assert places(rep) == {("signature", "entry 7"), ("body", "entry 7")}
    assert "signature" in detail(rep, "signature", "entry 7")
    assert f"its leaf hash is {leaf_hash(altered).hex()}" in detail(rep, "body", "entry 7")
    assert f"hold {leaf_hash(body).hex()}" in detail(rep, "body", "entry 7")
    # Without signature checks the leaf hash alone still gives it away.
    assert places(check_data_dir(data, signatures=False)) == {("body", "entry 7")}


async def test_non_canonical_body_is_reported(data: Path) -> None:
    ((body,),) = query(data, "SELECT body FROM entries WHERE idx = 260")
    corrupt(data, "UPDATE entries SET body = ? WHERE idx = 260", (body.replace(b":", b": ", 1),))
    rep = check_data_dir(data)
    assert ("body", "entry 260") in places(rep)
    assert any("not in canonical form" in f.detail for f in rep.at("body", "entry 260"))


async def test_deleted_entry_is_a_gap_and_nothing_else(data: Path) -> None:
    corrupt(data, "DELETE FROM entries WHERE idx IN (100, 101, 102)")
    rep = check_data_dir(data)
    assert places(rep) == {("entries", "entries 100..102")}
    assert "missing" in detail(rep, "entries", "entries 100..102")


async def test_entry_beyond_the_latest_checkpoint_is_reported(data: Path) -> None:
    body = parse_request(Signer().proposed()).canonical_body()
    corrupt(data, "INSERT INTO entries (idx, integrated_time, body) VALUES (?, 0, ?)", (SIZE, body))
    rep = check_data_dir(data)
    assert places(rep) == {("entries", f"entry {SIZE}")}
    assert f"beyond the latest checkpoint (tree size {SIZE})" in detail(rep, "entries", f"entry {SIZE}")


# -- tiles ------------------------------------------------------------------------------------

def _flip_tile_hash(data: Path, level: int, index: int, position: int) -> tuple[bytes, bytes]:
    """Change the stored hash at one tile position; return (old, new)."""
    for start, hashes in query(data, "SELECT start, hashes FROM tiles WHERE level = ? AND idx = ?",
                               (level, index)):
        k = position - start
        if 0 <= k < len(hashes) // 32:
            old = hashes[32 * k:32 * k + 32]
            new = bytes([old[0] ^ 1]) + old[1:]
            corrupt(data, "UPDATE tiles SET hashes = ? WHERE level = ? AND idx = ? AND start = ?",
                    (hashes[:32 * k] + new + hashes[32 * k + 32:], level, index, start))
            return old, new
    raise AssertionError("no such tile position")


@pytest.mark.parametrize("level,index,position", [(0, 0, 10), (0, 1, 43), (1, 0, 0)])
async def test_altered_tile_hash_is_reported_at_that_position_only(
        data: Path, level: int, index: int, position: int) -> None:
    old, new = _flip_tile_hash(data, level, index, position)
    rep = check_data_dir(data)
    where = f"tile {level}/{index} position {position}"
    assert places(rep) == {("tile", where)}
    assert f"holds {new.hex()}" in detail(rep, "tile", where)
    assert old.hex() in detail(rep, "tile", where)


async def test_missing_tile_chunk_is_reported_as_the_positions_it_held(data: Path) -> None:
    chunks = query(data, "SELECT start, length(hashes) / 32 FROM tiles WHERE level = 0 AND idx = 0 "
                         "ORDER BY start")
    start, count = chunks[len(chunks) // 2]
    corrupt(data, "DELETE FROM tiles WHERE level = 0 AND idx = 0 AND start = ?", (start,))
    rep = check_data_dir(data)
    assert places(rep) == {("tile", "tile 0/0")}
    span = f"position {start}" if count == 1 else f"positions {start}..{start + count - 1}"
    assert detail(rep, "tile", "tile 0/0") == f"{span} missing: no chunk holds them"


async def test_tile_hashes_beyond_the_tree_are_reported(data: Path) -> None:
    corrupt(data, "INSERT INTO tiles (level, idx, start, hashes) VALUES (0, 1, 44, ?)", (b"\1" * 64,))
    corrupt(data, "INSERT INTO tiles (level, idx, start, hashes) VALUES (0, 5, 0, ?)", (b"\2" * 32,))
    rep = check_data_dir(data)
    assert places(rep) == {("tile", "tile 0/1"), ("tile", "tile 0/5")}
    assert "positions 44..45" in detail(rep, "tile", "tile 0/1")
    assert "outside the tree" in detail(rep, "tile", "tile 0/5")


# The full tile's expansion (schema 5): the server serves tile 0/0 and its proofs' nodes
# from this row, so it must be the tile's, byte for byte.

@pytest.mark.parametrize("level,node", [(0, 10), (3, 5), (7, 1)])
async def test_altered_tile_nodes_row_is_reported_at_its_tile_only(data: Path, level: int, node: int) -> None:
    ((nodes,),) = query(data, "SELECT nodes FROM tile_nodes WHERE idx = 0")
    leaves = b"".join(leaf_hash(b) for (b,) in query(data, "SELECT body FROM entries WHERE idx < 256 "
                                                           "ORDER BY idx"))
    assert nodes == expand_tile(leaves)
    at = EXPANSION_LEVELS[level] + 32 * node + 17
    corrupt(data, "UPDATE tile_nodes SET nodes = ? WHERE idx = 0",
            (nodes[:at] + bytes([nodes[at] ^ 1]) + nodes[at + 1:],))
    rep = check_data_dir(data)
    assert places(rep) == {("tile_nodes", "tile 0/0")}
    said = detail(rep, "tile_nodes", "tile 0/0")
    assert said.startswith(f"row does not match its tile's hashes: 1 of its 510 hashes differ, "
                           f"the first at level {level} node {node}: it holds ")
    assert said.endswith(f"the tile's leaves give {nodes[at - 17:at + 15].hex()}")


async def test_missing_or_extra_tile_nodes_rows_are_reported(data: Path) -> None:
    ((nodes,),) = query(data, "SELECT nodes FROM tile_nodes WHERE idx = 0")
    corrupt(data, "DELETE FROM tile_nodes WHERE idx = 0")
    corrupt(data, "INSERT INTO tile_nodes (idx, nodes) VALUES (1, ?)", (nodes,))  # partial
    corrupt(data, "INSERT INTO tile_nodes (idx, nodes) VALUES (5, ?)", (nodes,))  # beyond
    rep = check_data_dir(data)
    assert places(rep) == {("tile_nodes", "tile 0/0"), ("tile_nodes", "tile 0/1"),
                           ("tile_nodes", "tile 0/5")}
    assert detail(rep, "tile_nodes", "tile 0/0") == "missing: no row holds the expansion of this full tile"
    for t in (1, 5):
        assert detail(rep, "tile_nodes", f"tile 0/{t}") == (
            f"a row, but the tile is not full at tree size {SIZE}: only a full tile's expansion is stored")
    corrupt(data, "INSERT INTO tile_nodes (idx, nodes) VALUES (0, ?)", (nodes[:-32],))
    rep = check_data_dir(data)
    assert "malformed: 16288 bytes, not the 16320 bytes" in detail(rep, "tile_nodes", "tile 0/0")


# -- checkpoints ----------------------------------------------------------------------------

async def test_forged_checkpoint_signature_is_reported(data: Path) -> None:
    _, size, _ = mid_checkpoint(data)
    ((note,),) = query(data, "SELECT note FROM checkpoints WHERE size = ?", (size,))
    text, sigs = note.split(b"\n\n")
    name, sig = sigs.rsplit(b" ", 1)
    forged = text + b"\n\n" + name + b" " + (b"A" if sig[10:11] != b"A" else b"B").join(
        [sig[:10], sig[11:]])
    corrupt(data, "UPDATE checkpoints SET note = ? WHERE size = ?", (forged, size))
    rep = check_data_dir(data)
    assert places(rep) == {("checkpoint", f"checkpoint {size}")}
    assert "does not verify" in detail(rep, "checkpoint", f"checkpoint {size}")


async def test_checkpoint_root_column_not_the_signed_root_is_reported(data: Path) -> None:
    _, size, _ = mid_checkpoint(data)
    corrupt(data, "UPDATE checkpoints SET root = ? WHERE size = ?", (b"\0" * 32, size))
    rep = check_data_dir(data)
    assert places(rep) == {("checkpoint", f"checkpoint {size}")}
    assert f"the root column holds {'00' * 32}" in detail(rep, "checkpoint", f"checkpoint {size}")


async def test_validly_signed_checkpoint_of_another_tree_is_inconsistent(data: Path) -> None:
    """A fork: the log key signed a root at one size that the entries do not give. It is
    wrong, and cannot be consistent with the checkpoint before it."""
    before, size, after = mid_checkpoint(data)
    key = LogKey.from_pem((data / "log.key").read_bytes())
    ((origin,),) = query(data, "SELECT value FROM meta WHERE key = 'origin'")
    fork = bytes(32)
    note = sign_checkpoint(Checkpoint(origin, size, fork), key)
    corrupt(data, "UPDATE checkpoints SET root = ?, note = ? WHERE size = ?", (fork, note, size))
    rep = check_data_dir(data)
    assert places(rep) == {("checkpoint", f"checkpoint {size}"),
                           ("consistency", f"checkpoints {before} and {size}")}
    assert f"the signed checkpoint says {fork.hex()}" in detail(rep, "checkpoint", f"checkpoint {size}")
    assert "cannot both be right" in detail(rep, "consistency", f"checkpoints {before} and {size}")
    assert after > size  # the next checkpoint is not blamed: it matches the entries


async def test_changed_log_name_is_one_fault_for_the_run_of_checkpoints(data: Path) -> None:
    corrupt(data, "UPDATE meta SET value = 'other.example' WHERE key = 'origin'")
    rep = check_data_dir(data)
    assert places(rep) == {("checkpoint", f"checkpoints 0..{SIZE}")}
    assert detail(rep, "checkpoint", f"checkpoints 0..{SIZE}") == (
        f"signed for log '127.0.0.1:3000' ({len(checkpoint_sizes(data))} checkpoints), "
        "but the database's origin (meta origin) is 'other.example'")


# -- indexes --------------------------------------------------------------------------------

def _entries_with_index_rows(data: Path, rows: int) -> list[int]:
    """Entries with `rows` leaf-index rows: 1, or 2 for a high-s ECDSA signature (its
    event key's row too; about half of them, signatures being random)."""
    return [i for (i,) in query(data, "SELECT idx FROM leaf_index GROUP BY idx HAVING COUNT(*) = ? "
                                      "ORDER BY idx", (rows,))]


async def test_missing_and_wrong_leaf_index_rows_are_reported(data: Path) -> None:
    index = _entries_with_index_rows(data, 1)[0]
    corrupt(data, "DELETE FROM leaf_index WHERE idx = ?", (index,))
    corrupt(data, "INSERT INTO leaf_index (prefix, idx) VALUES (12345, 200)")
    ((body,),) = query(data, "SELECT body FROM entries WHERE idx = ?", (index,))
    rep = check_data_dir(data)
    assert places(rep) == {("leaf_index", f"entry {index}"), ("leaf_index", "entry 200")}
    prefix = (key_prefix(leaf_hash(body)) & (2**64 - 1)).to_bytes(8, "big").hex()
    assert detail(rep, "leaf_index", f"entry {index}") == f"no row (expected prefix {prefix})"
    assert f"row with prefix {(12345).to_bytes(8, 'big').hex()}" in detail(rep, "leaf_index", "entry 200")


async def test_a_missing_event_key_row_is_reported(data: Path) -> None:
    # A high-s ECDSA entry has a second row, its signing-event key's: without it, the same
    # signature with the low s would be logged again (issue 11, item 7).
    index = _entries_with_index_rows(data, 2)[0]
    ((body,),) = query(data, "SELECT body FROM entries WHERE idx = ?", (index,))
    event = key_prefix(event_key_of_body(body))
    assert event != key_prefix(leaf_hash(body))
    corrupt(data, "DELETE FROM leaf_index WHERE idx = ? AND prefix = ?", (index, event))
    rep = check_data_dir(data)
    assert places(rep) == {("leaf_index", f"entry {index}")}
    prefix = (event & (2**64 - 1)).to_bytes(8, "big").hex()
    assert detail(rep, "leaf_index", f"entry {index}") == f"no row with event-key prefix {prefix}"


async def test_missing_search_index_row_is_reported(data: Path) -> None:
    ((key,),) = query(data, "SELECT key FROM search_index WHERE idx = 150 ORDER BY key LIMIT 1")
    corrupt(data, "DELETE FROM search_index WHERE idx = 150 AND key = ?", (key,))
    corrupt(data, "INSERT INTO search_index (key, idx) VALUES (7, ?)", (SIZE + 2,))
    rep = check_data_dir(data)
    assert places(rep) == {("search_index", "entry 150"), ("search_index", f"entry {SIZE + 2}")}
    assert detail(rep, "search_index", "entry 150").startswith("no row for ")
    assert "beyond the tree" in detail(rep, "search_index", f"entry {SIZE + 2}")


# -- key and database -------------------------------------------------------------------------

async def test_wrong_key_file_is_a_log_id_mismatch(data: Path) -> None:
    right = LogKey.from_pem((data / "log.key").read_bytes()).public_key
    (data / "log.key").write_bytes(LogKey.generate("ed25519").to_pem())
    rep = check_data_dir(data)
    assert places(rep) == {("key", "log.key")}
    assert f"the database's (meta log_id) is {right.log_id().hex()}" in detail(rep, "key", "log.key")
    assert not rep.checkpoint_signatures_checked
    # With the log's public key given, the checkpoints are checked and all verify.
    (data / "log.pub").write_bytes(right.pem())
    rep = check_data_dir(data, log_key=right)
    assert places(rep) == {("key", "log.key")} and rep.checkpoint_signatures_checked
    assert "not the given log key" in detail(rep, "key", "log.key")
    result = tlog("fsck", "--log-key", data / "log.pub", data)
    assert result.exit_code == 1 and "[key] log.key:" in result.stdout


async def test_without_a_key_file_the_log_key_is_needed(data: Path) -> None:
    pub = LogKey.from_pem((data / "log.key").read_bytes()).public_key
    (data / "log.key").unlink()
    result = tlog("fsck", data)
    assert result.exit_code == 2 and "--log-key" in result.stderr
    (data.parent / "log.pub").write_bytes(pub.pem())
    result = tlog("fsck", "--log-key", data.parent / "log.pub", data)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_damaged_database_file_is_a_fault_not_a_crash(
        data: Path, damage: str) -> None:
    db = data / "log.db"
    raw = db.read_bytes()
    db.write_bytes(os.urandom(len(raw)) if damage == "garbage" else raw[:len(raw) // 2])
    rep = check_data_dir(data)
    assert not rep.ok and rep.counts.get("database", 0) >= 1, rep.faults
    result = tlog("fsck", data)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "[database] log.db:" in result.stdout and "result: FAILED" in result.stdout


@pytest.mark.parametrize("setup", [shutil.rmtree, lambda d: (d / "log.db").unlink()])
async def test_cli_cannot_check_exits_2(data: Path, setup: Callable[[Path], object]) -> None:
    setup(data)
    result = tlog("fsck", data)
    assert result.exit_code == 2 and result.stderr.startswith("tlog: error: "), result.output


async def test_cli_log_key_that_is_not_a_public_key_exits_2(data: Path) -> None:
    result = tlog("fsck", "--log-key", data / "log.key", data)  # the private key file
    assert result.exit_code == 2 and "not a valid PEM public key" in result.stderr, result.output

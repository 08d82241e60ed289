"""`tlog fsck --database`: the checks of tests/test_fsck.py on a log kept in a real
PostgreSQL (tests/pg_support.py). A clean log passes; a row changed past the append-only
triggers is reported at its place, and a history table without its triggers is a fault."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import asyncpg
import pytest

from tlog.core.keys import LogKey
from tlog.core.merkle import leaf_hash
from tlog.server import fsck_postgres
from tlog.server.fsck import FsckReport, check_database

from . import pg_support
from .cli_support import tlog
from .support import OpenLog, Signer, submit_entries

SIZE = 300  # a full level-0 tile, a partial one, and a level-1 tile
URL = "https://log.example.org"
_copies = itertools.count()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Filled once per module by `pristine`: the pristine database's DSN and the key."""
    return {"dir": tmp_path_factory.mktemp("pgfsck")}


@pytest.fixture
async def pristine(open_log: OpenLog, built: dict[str, object]) -> tuple[str, Path]:
    """A real log on PostgreSQL: SIZE signed entries submitted over HTTP in waves, written
    by the cluster sequencer in batches of up to 16; built once, then closed."""
    if "dsn" not in built:
        root = built["dir"]
        assert isinstance(root, Path)
        (root / "secret").mkdir(mode=0o700)
        new, key = pg_support.fresh_database(), root / "secret" / "log.key"
        lg, client = await open_log(data_dir=root / "data", database=new, key_file=key,
                                    public_url=URL, batch_size=16)
        signer = Signer()
        await submit_entries(client, signer, SIZE)
        await lg.close()
        built.update(dsn=new, key=key)
    dsn, key_file = built["dsn"], built["key"]
    assert isinstance(dsn, str) and isinstance(key_file, Path)
    return dsn, key_file


@pytest.fixture
async def copy(pristine: tuple[str, Path]) -> tuple[str, Path]:
    """A copy of the pristine database (CREATE DATABASE … TEMPLATE), to corrupt."""
    dsn, key = pristine
    name = f"fsck_copy{next(_copies)}"
    conn = await asyncpg.connect(pg_support.server().dsn())
    try:
        for attempt in range(100):  # the closed log's backends may take a moment to exit
            try:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{dsn.rsplit("/", 1)[1]}"')
                break
            except asyncpg.ObjectInUseError:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return pg_support.server().dsn(name), key


async def corrupt(dsn: str, table: str, statement: str, *args: object) -> None:
    """Run one statement on `table` past its append-only triggers (disabled for it, in its
    transaction, then enabled again: only the row is wrong afterwards)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await conn.execute(statement, *args)
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def fetchval(dsn: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def places(report: FsckReport) -> set[tuple[str, str]]:
    return {(f.kind, f.where) for f in report.faults}


async def test_a_clean_log_passes_read_in_small_chunks(copy: tuple[str, Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dsn, key = copy
    monkeypatch.setattr(fsck_postgres, "CHUNK", 7)  # every cursor is fetched many times
    seen: list[tuple[int, int]] = []
    rep = await asyncio.to_thread(check_database, dsn, key_file=key,
                                  progress=lambda done, total: seen.append((done, total)))
    assert rep.ok, rep.faults
    assert (rep.tree_size, rep.entries_checked, rep.tiles_checked) == (SIZE, SIZE, 3)
    assert rep.checkpoints_checked == await fetchval(dsn, "SELECT count(*) FROM checkpoints")
    assert rep.checkpoints_checked > 10
    assert rep.root == await fetchval(dsn, "SELECT root FROM checkpoints WHERE size = $1", SIZE)
    assert seen[-1] == (SIZE, SIZE) and rep.notes == []
    result = await asyncio.to_thread(tlog, "fsck", "--database", dsn, "--key", key)
    assert result.exit_code == 0 and "result: OK" in result.stdout, result.output


async def test_an_altered_body_is_reported_at_its_entry_only(copy: tuple[str, Path]) -> None:
    dsn, key = copy
    body = await fetchval(dsn, "SELECT body FROM entries WHERE idx = 7")
    assert isinstance(body, bytes)
    at = body.index(b'"value":"') + len(b'"value":"')
    altered = body[:at] + (b"0" if body[at:at + 1] != b"0" else b"1") + body[at + 1:]
    await corrupt(dsn, "entries", "UPDATE entries SET body = $1 WHERE idx = 7", altered)
    rep = await asyncio.to_thread(check_database, dsn, key_file=key)
    assert places(rep) == {("signature", "entry 7"), ("body", "entry 7")}
    (fault,) = rep.at("body", "entry 7")
    assert f"its leaf hash is {leaf_hash(altered).hex()}" in fault.detail
    result = await asyncio.to_thread(tlog, "fsck", "--database", dsn, "--key", key)
    assert result.exit_code == 1 and "[body] entry 7:" in result.stdout, result.output


async def test_altered_tile_and_missing_index_rows_are_reported_at_their_places(
        copy: tuple[str, Path]) -> None:
    dsn, key = copy
    start = await fetchval(dsn, "SELECT start FROM tiles WHERE level = 1 AND idx = 0 ORDER BY start LIMIT 1")
    hashes = await fetchval(dsn, "SELECT hashes FROM tiles WHERE level = 1 AND idx = 0 AND start = $1", start)
    assert start == 0 and isinstance(hashes, bytes)
    await corrupt(dsn, "tiles", "UPDATE tiles SET hashes = $1 WHERE level = 1 AND idx = 0 AND start = 0",
                  bytes([hashes[0] ^ 1]) + hashes[1:])
    await corrupt(dsn, "search_index", "DELETE FROM search_index WHERE idx = 150")
    await corrupt(dsn, "leaf_index", "INSERT INTO leaf_index (prefix, idx) VALUES (12345, 200)")
    rep = await asyncio.to_thread(check_database, dsn, key_file=key, signatures=False)
    assert places(rep) == {("tile", "tile 1/0 position 0"), ("search_index", "entry 150"),
                           ("leaf_index", "entry 200")}


async def test_a_history_table_without_its_triggers_is_a_fault(copy: tuple[str, Path]) -> None:
    dsn, key = copy
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TRIGGER entries_append_only ON entries")
        await conn.execute("ALTER TABLE checkpoints DISABLE TRIGGER checkpoints_no_truncate")
    finally:
        await conn.close()
    rep = await asyncio.to_thread(check_database, dsn, key_file=key, signatures=False)
    where = rep.faults[0].where
    assert places(rep) == {("database", where)} and "@" in where and rep.counts["database"] == 2
    details = sorted(f.detail for f in rep.faults)
    assert details == ["trigger checkpoints_no_truncate is disabled: checkpoints is no longer append-only",
                       "trigger entries_append_only is missing: entries is no longer append-only"]


async def test_a_changed_tile_nodes_row_and_its_dropped_trigger_are_faults(copy: tuple[str, Path]) -> None:
    """The full tile's expansion (version 5), from which the frontends serve it and its
    proofs: one byte changed is a fault at its tile, and so is its table's trigger gone."""
    dsn, key = copy
    nodes = await fetchval(dsn, "SELECT nodes FROM tile_nodes WHERE idx = 0")
    assert isinstance(nodes, bytes)
    await corrupt(dsn, "tile_nodes", "UPDATE tile_nodes SET nodes = $1 WHERE idx = 0",
                  nodes[:100] + bytes([nodes[100] ^ 1]) + nodes[101:])
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TRIGGER tile_nodes_no_truncate ON tile_nodes")
    finally:
        await conn.close()
    rep = await asyncio.to_thread(check_database, dsn, key_file=key, signatures=False)
    assert {(f.kind, f.detail.split(":")[0]) for f in rep.faults} == {
        ("tile_nodes", "row does not match its tile's hashes"),
        ("database", "trigger tile_nodes_no_truncate is missing")}
    (changed,) = rep.at("tile_nodes", "tile 0/0")
    assert "the first at level 0 node 3:" in changed.detail


async def test_a_missing_tile_nodes_row_is_a_fault(copy: tuple[str, Path]) -> None:
    dsn, key = copy
    await corrupt(dsn, "tile_nodes", "DELETE FROM tile_nodes WHERE idx = 0")
    rep = await asyncio.to_thread(check_database, dsn, key_file=key, signatures=False)
    assert [(f.kind, f.where, f.detail) for f in rep.faults] == [
        ("tile_nodes", "tile 0/0", "missing: no row holds the expansion of this full tile")]


async def test_cli_without_a_key_or_a_log_cannot_check(copy: tuple[str, Path], tmp_path: Path) -> None:
    dsn, key = copy
    result = await asyncio.to_thread(tlog, "fsck", "--database", dsn)
    assert result.exit_code == 2 and "--key FILE" in result.stderr, result.output
    pub = tmp_path / "log.pub"
    pub.write_bytes(LogKey.from_pem(key.read_bytes()).public_key.pem())
    result = await asyncio.to_thread(tlog, "fsck", "--database", dsn, "--log-key", pub)
    assert result.exit_code == 0, result.output
    empty = pg_support.fresh_database()
    result = await asyncio.to_thread(tlog, "fsck", "--database", empty, "--log-key", pub)
    assert result.exit_code == 2 and "holds no tlog log" in result.stderr, result.output

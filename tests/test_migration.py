"""Schema migrations of the SQLite driver (tlog.server.storage.migrations): a database of
schema version 1 — written before the leaf index held the signing-event keys of high-s
ECDSA entries (issue 11, item 7) — passes fsck with a note, is left alone by read-only
opens, is migrated by the first writable one (after which the twin of an old high-s entry
is a duplicate), and a migration that fails or is killed half-way leaves a database that
opens and finishes it next time. One of version 4 — before the full tiles' expansions were
stored (issue 16) — serves proofs read-only by expanding its tiles, and is expanded by the
migration."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core import rekor
from tlog.core.entries import event_key_of_body
from tlog.core.entries.hashedrekord import parse_request, proposed_entry
from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_WIDTH
from tlog.core.tilestate import TreeState, expand_tile
from tlog.errors import StartupError
from tlog.server.fsck import check_data_dir
from tlog.server.layout import DB_FILE
from tlog.server.migrate import migrate_sqlite_to_postgres
from tlog.server.storage import sqlite as sqlite_driver
from tlog.server.storage.base import StorageError, key_prefix
from tlog.server.storage.migrations import EVENT_KEYS, TILE_NODES
from tlog.server.storage.postgres import PostgresStorage
from tlog.server.storage.sqlite import MIGRATION_CHUNK, SCHEMA_VERSION, SqliteStorage, schema_version

from .cli_support import tlog
from .pg_support import fresh_database
from .storage_contract import append
from .support import OpenLog, Signer, check_log_entry, submit_entries

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = "/api/v1/log/entries"
# The group order of P-256 (SEC 2 §2.4.2), written here independently of the code under test.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
# What fsck says a database of an older schema lacks until `tlog serve` migrates it: each
# version's clause (2, 3 and 5; version 4's table holds nothing an old log lacks).
EVENT_KEYS_UNSTORED = "the signing-event keys of its older entries are not all in the leaf index"
IDENTITIES_UNSTORED = "the certificate identities of its older entries are not all in the search index"
EXPANSIONS_UNSTORED = "the expansions of its full tiles are not stored (proofs rehash them)"


def note(version: int, *unstored: str) -> str:
    return (f"schema {version}: run `tlog serve` once to migrate it to schema {SCHEMA_VERSION} "
            f"(until then {'; '.join(unstored)}, and are not checked)")


NOTE = note(1, EVENT_KEYS_UNSTORED, IDENTITIES_UNSTORED, EXPANSIONS_UNSTORED)


def signed(signer: Signer, *, high: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A proposal whose signature has a high (or low) s, and its twin: the same signature
    with the other s."""
    digest = hashlib.sha256(os.urandom(16)).digest()
    r, s = utils.decode_dss_signature(
        signer.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    if (s > P256_ORDER // 2) != high:
        s = P256_ORDER - s
    one, two = (utils.encode_dss_signature(r, x) for x in (s, P256_ORDER - s))
    return (proposed_entry("sha256", digest, one, signer.pem),
            proposed_entry("sha256", digest, two, signer.pem))


def sql(data: Path, *statements: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    """Run statements on the data directory's database; the rows of the last."""
    conn = sqlite3.connect(data / DB_FILE, isolation_level=None)
    try:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            rows = conn.execute(statement, params).fetchall()
        return rows
    finally:
        conn.close()


def event_rows(data: Path) -> set[tuple[int, int]]:
    """The (prefix, index) event-key rows the leaf index should hold, by the bodies."""
    rows = set()
    for idx, body in sql(data, "SELECT idx, body FROM entries"):
        key = event_key_of_body(body)
        if key != leaf_hash(body):
            rows.add((key_prefix(key), idx))
    return rows


def stored(data: Path) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """What a migration writes: the meta and leaf-index rows."""
    return (set(sql(data, "SELECT key, value FROM meta")),
            set(sql(data, "SELECT prefix, idx FROM leaf_index")))


def to_schema(data: Path, version: int, keep: tuple[int, ...] = ()) -> None:
    """Make the database what `version` wrote: before version 2 no event-key rows (but
    for the entries in `keep`: code that stored event keys before the version said so),
    before 5 no `tile_nodes` table; schema `version`, no migration recorded. The
    append-only triggers are dropped to do it; the next open of the driver creates them
    again."""
    conn = sqlite3.connect(data / DB_FILE, isolation_level=None)
    try:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f"DROP TRIGGER {name}")
        if version < EVENT_KEYS:
            conn.executemany("DELETE FROM leaf_index WHERE prefix = ? AND idx = ?",
                             [row for row in event_rows(data) if row[1] not in keep])
        if version < TILE_NODES:
            conn.execute("DROP TABLE tile_nodes")
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(version),))
        conn.execute("DELETE FROM meta WHERE key LIKE 'schema_migrated_to_%'")
    finally:
        conn.close()


@dataclass
class OldLog:
    data: Path
    twin: dict[str, Any]  # the low-s twin of an old high-s entry that has no event-key row
    location: str  # that entry's Location


@pytest.fixture
async def old_log(open_log: OpenLog, tmp_path: Path) -> OldLog:
    """A log of schema version 1, with high-s entries: one whose event-key row was never
    written, one whose row was (stored by the code of the window between the two), and
    entries with a low s."""
    data = tmp_path / "data"
    lg, client = await open_log(data_dir=data)
    signer = Signer()
    locations = []
    twins = []
    for high in (True, True, False, False, True):
        one, two = signed(signer, high=high)
        r = await client.post(ENTRIES, json=one)
        assert r.status == 201
        locations.append(r.headers["Location"])
        twins.append(two)
    await lg.close()
    rows = event_rows(data)
    assert {idx for _, idx in rows} == {0, 1, 4} and rows <= stored(data)[1]
    to_schema(data, 1, keep=(1,))
    assert rows & stored(data)[1] == {row for row in rows if row[1] == 1}
    return OldLog(data, twins[0], locations[0])


# -- before the migration ----------------------------------------------------------------------

async def test_fsck_of_a_schema_1_log_notes_the_migration_and_finds_no_fault(old_log: OldLog) -> None:
    before = stored(old_log.data)
    rep = check_data_dir(old_log.data)
    assert rep.ok, rep.faults
    assert rep.notes == [NOTE] and rep.to_json()["notes"] == [NOTE]
    result = tlog("fsck", old_log.data)
    assert result.exit_code == 0, result.output
    assert f"note: {NOTE}" in result.stdout and "result: OK" in result.stdout
    assert stored(old_log.data) == before
    # Still a check: a leaf hash's row missing is a fault at any version.
    assert len(sql(old_log.data, "SELECT prefix FROM leaf_index WHERE idx = 2")) == 1  # a low s
    sql(old_log.data, "DELETE FROM leaf_index WHERE idx = 2")
    assert {(f.kind, f.where) for f in check_data_dir(old_log.data).faults} == {("leaf_index", "entry 2")}


async def test_read_only_opens_write_nothing(open_log: OpenLog, old_log: OldLog) -> None:
    before = stored(old_log.data)
    st = await SqliteStorage.open_in(old_log.data, read_only=True)
    assert schema_version(await st.get_meta()) == 1
    await st.close()
    lg, client = await open_log(data_dir=old_log.data, read_only=True)
    r = await client.get(old_log.location)
    assert r.status == 200
    await lg.close()
    assert stored(old_log.data) == before


# -- the migration -----------------------------------------------------------------------------

async def test_serving_migrates_and_the_twin_of_an_old_high_s_entry_is_a_duplicate(
        open_log: OpenLog, old_log: OldLog) -> None:
    lg, client = await open_log(data_dir=old_log.data)
    meta = await lg.storage.get_meta()
    assert meta["schema"] == "1" and "schema_migrated_to_2" in meta
    assert schema_version(meta) == SCHEMA_VERSION
    r = await client.post(ENTRIES, json=old_log.twin)
    assert (r.status, r.headers.get("Location")) == (409, old_log.location)
    uuid = old_log.location.rsplit("/", 1)[-1]
    assert old_log.location == rekor.entry_path(uuid)
    assert f"UUID {uuid} at index 0" in (await r.json())["message"]
    assert lg.head.state.size == 5
    await lg.close()
    assert event_rows(old_log.data) <= stored(old_log.data)[1]
    rep = check_data_dir(old_log.data)
    assert rep.ok and rep.notes == [], (rep.faults, rep.notes)
    # Migrated once: the next open finds the current version and adds nothing.
    after = stored(old_log.data)
    st = await SqliteStorage.open_in(old_log.data)
    await st.close()
    assert stored(old_log.data) == after


async def test_the_backfill_reads_every_chunk(tmp_path: Path) -> None:
    """More entries than one chunk of the migration, of every kind of signature."""
    data = tmp_path / "data"
    st = await SqliteStorage.open_in(data)
    await st.init_meta({"log_id": "ab", "origin": "example.org/log"})
    signer = Signer()
    bodies = [parse_request(signed(signer, high=i % 3 == 0)[0]).canonical_body()
              for i in range(2 * MIGRATION_CHUNK + 10)]
    await append(st, TreeState.empty(), bodies,
                 events=lambda i: None if i % 3 else event_key_of_body(bodies[i]))
    await st.close()
    expected = event_rows(data)
    assert len(expected) == (2 * MIGRATION_CHUNK + 10 + 2) // 3
    to_schema(data, 1)
    assert not expected & stored(data)[1]
    st = await SqliteStorage.open_in(data)
    assert schema_version(await st.get_meta()) == SCHEMA_VERSION
    await st.close()
    assert expected <= stored(data)[1]


async def test_a_failed_migration_changes_nothing_and_the_next_open_completes(old_log: OldLog) -> None:
    before = stored(old_log.data)
    sql(old_log.data, "CREATE TRIGGER fail BEFORE INSERT ON meta WHEN NEW.key = 'schema_migrated_to_2' "
                      "BEGIN SELECT RAISE(ABORT, 'the disk is full'); END")
    with pytest.raises(StorageError, match="the disk is full"):
        await SqliteStorage.open_in(old_log.data)
    assert stored(old_log.data) == before  # the rows backfilled before it were rolled back
    sql(old_log.data, "DROP TRIGGER fail")
    st = await SqliteStorage.open_in(old_log.data)
    assert schema_version(await st.get_meta()) == SCHEMA_VERSION
    await st.close()
    assert event_rows(old_log.data) <= stored(old_log.data)[1]
    assert check_data_dir(old_log.data).ok


async def test_a_migration_killed_half_way_is_finished_by_the_next_open(old_log: OldLog) -> None:
    """SIGKILL while the migration's transaction is open (its rows written, a slow
    statement in the way of its commit): the database opens and migrates next time."""
    data = old_log.data
    before = stored(data)
    sql(data, "CREATE TABLE slow (x INTEGER)",
        "INSERT INTO slow WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
        "WHERE x < 2000) SELECT x FROM n",
        "CREATE TRIGGER stall BEFORE INSERT ON meta WHEN NEW.key = 'schema_migrated_to_2' "
        "BEGIN SELECT count(*) FROM slow a, slow b, slow c; END")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import asyncio, sys; from pathlib import Path; "
         "from tlog.server.storage.sqlite import SqliteStorage; "
         "asyncio.run(SqliteStorage.open_in(Path(sys.argv[1])))", str(data)], cwd=ROOT)
    try:
        probe = sqlite3.connect(data / DB_FILE, isolation_level=None, timeout=0)
        deadline = time.monotonic() + 60
        locked_since = None
        # Until the write lock has been held for half a second: only the migration's
        # transaction (its backfill takes milliseconds, then the stall) holds it that long.
        while locked_since is None or time.monotonic() - locked_since < 0.5:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                locked_since = None
            except sqlite3.OperationalError:
                locked_since = locked_since or time.monotonic()
            time.sleep(0.01)
        probe.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert stored(data) == before
    sql(data, "DROP TRIGGER stall", "DROP TABLE slow")
    st = await SqliteStorage.open_in(data)
    assert schema_version(await st.get_meta()) == SCHEMA_VERSION
    await st.close()
    assert event_rows(data) <= stored(data)[1]
    assert check_data_dir(data).ok


# -- version 5: the full tiles' expansions ----------------------------------------------------------

TILED = 3 * TILE_WIDTH + 44  # three full level-0 tiles and a partial one


def tile_nodes(data: Path) -> dict[int, bytes]:
    return dict(sql(data, "SELECT idx, nodes FROM tile_nodes"))


def expansions(data: Path) -> dict[int, bytes]:
    """What `tile_nodes` must hold, by the entries: each full tile's expansion."""
    leaves = b"".join(leaf_hash(b) for (b,) in sql(data, "SELECT body FROM entries ORDER BY idx"))
    step = TILE_WIDTH * HASH_SIZE
    return {t: expand_tile(leaves[t * step:(t + 1) * step]) for t in range(len(leaves) // step)}


async def test_a_schema_4_log_serves_proofs_read_only_and_its_tiles_are_expanded_by_the_migration(
        open_log: OpenLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    lg, client = await open_log(data_dir=data)
    await submit_entries(client, Signer(), TILED, per_batch=TILED // 4)
    pub = lg.public_key
    await lg.close()
    assert set(tile_nodes(data)) == {0, 1, 2}
    to_schema(data, 4)
    rep = check_data_dir(data)
    assert rep.ok and rep.notes == [note(4, EXPANSIONS_UNSTORED)], (rep.faults, rep.notes)

    # Read-only, nothing is created: each full tile is read from `tiles` and expanded.
    lg, client = await open_log(data_dir=data, read_only=True)
    for index in (0, 255, 256, 600, 767, TILED - 1):
        r = await client.get(f"/api/v1/log/entries?logIndex={index}")
        assert r.status == 200
        _, entry = check_log_entry(await r.json(), pub)  # RFC 9162 inclusion, tlog.core.merkle
        assert entry["verification"]["inclusionProof"]["treeSize"] == TILED
    r = await client.get("/tile/0/001")
    assert r.status == 200 and await r.read() == expansions(data)[1][:TILE_WIDTH * HASH_SIZE]
    await lg.close()
    assert sql(data, "SELECT name FROM sqlite_master WHERE name = 'tile_nodes'") == []

    # The writable open expands every full tile, MIGRATION_CHUNK tiles at a time.
    monkeypatch.setattr(sqlite_driver, "MIGRATION_CHUNK", 2)
    st = await SqliteStorage.open_in(data)
    assert schema_version(await st.get_meta()) == SCHEMA_VERSION
    await st.close()
    assert tile_nodes(data) == expansions(data) and set(tile_nodes(data)) == {0, 1, 2}
    rep = check_data_dir(data)
    assert rep.ok and rep.notes == [], (rep.faults, rep.notes)
    lg, client = await open_log(data_dir=data)
    r = await client.get("/api/v1/log/entries?logIndex=300")
    check_log_entry(await r.json(), pub)
    await lg.close()

    # fsck finds a backfill that stopped short, as one run of missing rows.
    sql(data, "DROP TRIGGER tile_nodes_no_delete", "DELETE FROM tile_nodes WHERE idx < 2")
    assert {(f.kind, f.where, f.detail) for f in check_data_dir(data).faults} == {
        ("tile_nodes", "tiles 0/0..0/1", "missing: no row holds the expansion of these full tiles")}


async def test_a_migration_refuses_a_full_tile_that_is_not_stored(open_log: OpenLog, tmp_path: Path) -> None:
    """The expansions are computed from the stored tiles: one missing is corruption, left
    to fsck, and the database stays at its version."""
    data = tmp_path / "data"
    lg, client = await open_log(data_dir=data)
    await submit_entries(client, Signer(), TILE_WIDTH + 4, per_batch=(TILE_WIDTH + 4) // 4)
    await lg.close()
    to_schema(data, 4)
    # The tile's last chunk gone (its leaves stop short of 256), then the whole tile.
    sql(data, "DELETE FROM tiles WHERE level = 0 AND idx = 0 AND start = "
              "(SELECT MAX(start) FROM tiles WHERE level = 0 AND idx = 0)")
    with pytest.raises(StorageError, match=r"tile 0/0 holds 19[0-9] of its 256 hashes, but the "
                                           r"tree is past it: run `tlog fsck`"):
        await SqliteStorage.open_in(data)
    assert schema_version(dict(sql(data, "SELECT key, value FROM meta"))) == 4
    # (Each open restores the append-only triggers to_schema dropped.)
    sql(data, "DROP TRIGGER tiles_no_delete", "DELETE FROM tiles WHERE level = 0 AND idx = 0")
    with pytest.raises(StorageError, match="tile 0/0 holds 0 of its 256 hashes"):
        await SqliteStorage.open_in(data)
    assert schema_version(dict(sql(data, "SELECT key, value FROM meta"))) == 4


# -- versions ------------------------------------------------------------------------------------

async def test_a_newer_schema_is_refused_and_fsck_reports_it(old_log: OldLog) -> None:
    await (await SqliteStorage.open_in(old_log.data)).close()  # at the current version
    newer = SCHEMA_VERSION + 1
    sql(old_log.data, f"INSERT INTO meta (key, value) VALUES ('schema_migrated_to_{newer}', '0')")
    for read_only in (False, True):
        with pytest.raises(StorageError, match=f"schema version {newer}, newer than this tlog knows"):
            await SqliteStorage.open_in(old_log.data, read_only=read_only)
    rep = check_data_dir(old_log.data)
    assert [(f.kind, f.where, f.detail) for f in rep.faults] == [
        ("meta", "schema", f"version {newer} is newer than this tlog knows ({SCHEMA_VERSION}): "
                           "check it with a newer tlog")]


def test_the_schema_version_is_the_creation_one_raised_by_each_migration() -> None:
    assert schema_version({}) is None
    assert schema_version({"schema": "1", "origin": "o"}) == 1
    assert schema_version({"schema": "1", "schema_migrated_to_2": "1700000000"}) == 2
    with pytest.raises(StorageError, match="unknown schema version"):
        schema_version({"schema": "one"})
    with pytest.raises(StorageError, match="unknown schema version"):
        schema_version({"schema": "1", "schema_migrated_to_x": "0"})


async def test_copying_into_postgresql_waits_for_the_migration(old_log: OldLog) -> None:
    """`tlog migrate` copies index rows as they are: from schema 1 the copy would lack the
    event keys, so it is refused until the source is migrated."""
    dsn = fresh_database()
    with pytest.raises(StartupError, match="schema version 1: run `tlog serve` on it once"):
        await migrate_sqlite_to_postgres(old_log.data, dsn)
    await (await SqliteStorage.open_in(old_log.data)).close()
    assert (await migrate_sqlite_to_postgres(old_log.data, dsn)).entries == 5
    dst = await PostgresStorage.open(dsn)
    try:
        assert not any(k.startswith("schema_migrated_to_") for k in await dst.get_meta())
        # The old high-s entry's event-key row came along: the leaf hash of its low-s twin.
        twin = leaf_hash(parse_request(old_log.twin).canonical_body())
        assert await dst.find_leaves([twin], key_of=event_key_of_body) == {twin: 0}
    finally:
        await dst.close()

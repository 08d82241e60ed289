"""The SQLite driver of the log's `Storage` (tlog.server.storage.base): DATA_DIR/log.db,
in aiosqlite; WAL with synchronous=FULL, so a commit is fsync'd.

One writer connection (the sequencer's) and `READERS` (3) reader connections for HTTP reads,
used in turn: in WAL mode readers see the last committed batch and never block the writer.
History is append-only and the schema enforces it: triggers abort any UPDATE or DELETE.

Tables:
- `entries`: canonical bodies by log index, with their integratedTime.
- `tiles`: C2SP tlog-tiles hashes, stored as contiguous chunks appended per batch, so a
  partial tile is never rewritten and a tile read is one range scan, not one row per leaf.
- `checkpoints`: every signed checkpoint, by tree size.
- `leaf_index`, `search_index`: 8-byte hash prefixes → index (8-byte keys keep the index
  near 20 bytes an entry; callers confirm candidates against the full body). The leaf
  index has a second row for an entry with a signing-event key (`NewEntry.event_key`).
- `attestations`: the kept DSSE envelopes and payloads by their hex SHA-256 (from schema
  version 4: created by that migration, or with a new database), append-only as well.
- `tile_nodes`: the expansion of each full level-0 tile (`TileWrite.expansion`: its nodes
  at levels 0–7, 16,320 bytes) by tile index (from schema version 5), append-only: an
  inclusion proof reads one row and hashes nothing, and a full tile is its first 8 KiB.
- `meta`: the log's identity (logID, origin) and schema version, written once; a migration
  appends a `schema_migrated_to_N` row (`schema_version`).

Schema versions are tlog.server.storage.migrations'; a writable open migrates an older
database (`_migrate`), a read-only one leaves it as it is.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

import aiosqlite

from tlog.core.merkle import leaf_hash
from tlog.core.tiles import TILE_HEIGHT
from tlog.core.tilestate import TileWrite
from tlog.files import fsync_dir
from tlog.server.layout import DB_FILE
from tlog.server.storage.base import (
    NewEntry,
    NoStorage,
    RecoveredTree,
    StorageError,
    StoredCheckpoint,
    confirm_leaves,
    expansions_of,
    join_chunks,
    key_prefix,
    recover_tree,
)
from tlog.server.storage.migrations import (
    ATTESTATIONS,
    CURRENT,
    EVENT_KEYS,
    IDENTITY_KEYS,
    TILE_NODES,
    event_key_rows,
    identity_key_rows,
)

SCHEMA_VERSION = CURRENT
MIGRATED_TO = "schema_migrated_to_"  # + N: the meta row a migration to version N appends
# Entries read at a time by a migration (bodies up to MAX_BODY_BYTES), or level-0 tiles
# (2 MiB of leaves read, 4 MiB of expansions written).
MIGRATION_CHUNK = 256
READERS = 3  # reader connections (threads)
# How long a point read on the event loop waits for a lock (SQLITE_BUSY: in WAL mode only
# while another connection recovers the WAL index) before it fails: the loop is blocked
# meanwhile, so not the 5 s default.
POINT_READ_TIMEOUT = 0.5

log = logging.getLogger("tlog.storage")

# (int, bytes) rows as this driver's queries select them: aiosqlite types every row as
# sqlite3.Row, but with no row_factory set they are plain tuples.
_Rows = Iterable[tuple[int, bytes]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    integrated_time INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx, start)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leaf_index (
    prefix INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (prefix, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS search_index (
    key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)
) WITHOUT ROWID;
"""

# One tile's chunks, in order (`join_chunks` checks they are contiguous).
_TILE_CHUNKS = "SELECT start, hashes FROM tiles WHERE level = ? AND idx = ? ORDER BY start"

_APPEND_ONLY = ("meta", "entries", "tiles", "checkpoints", "leaf_index", "search_index")


def _append_only_triggers(tables: Iterable[str] = _APPEND_ONLY) -> str:
    out = []
    for table in tables:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'tlog history is append-only: {op} on {table}'); END;")
    return "\n".join(out)


# Version 4's table, with its triggers: not in _SCHEMA, which every open runs, so that a
# read-only open of an older database creates nothing. INSERT OR IGNORE stores an
# attestation once (it fires no UPDATE or DELETE trigger).
_ATTESTATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS attestations (name TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;
""" + _append_only_triggers(("attestations",))


# Version 5's table, created the same way (a read-only open of an older database reads the
# level-0 tiles instead: `read_expanded_tiles` finds no rows).
_TILE_NODES_SCHEMA = """
CREATE TABLE IF NOT EXISTS tile_nodes (idx INTEGER PRIMARY KEY, nodes BLOB NOT NULL);
""" + _append_only_triggers(("tile_nodes",))


async def _expand_stored_tiles(w: aiosqlite.Connection) -> int:
    """Version 5: create `tile_nodes` and store the expansion of every full level-0 tile
    of the checkpointed tree, MIGRATION_CHUNK tiles at a time (INSERT OR IGNORE: a step
    run again after a crash finds some already there). Returns the tiles expanded."""
    for statement in filter(str.strip, _TILE_NODES_SCHEMA.split(";\n")):
        await w.execute(statement)
    ((size,),) = await w.execute_fetchall("SELECT COALESCE(MAX(size), 0) FROM checkpoints")
    full = int(size) >> TILE_HEIGHT
    for first in range(0, full, MIGRATION_CHUNK):
        last = min(first + MIGRATION_CHUNK, full)
        rows = await w.execute_fetchall(
            "SELECT idx, start, hashes FROM tiles WHERE level = 0 AND idx >= ? AND idx < ? "
            "ORDER BY idx, start", (first, last))
        await w.executemany("INSERT OR IGNORE INTO tile_nodes (idx, nodes) VALUES (?, ?)",
                            expansions_of(cast("Iterable[tuple[int, int, bytes]]", rows), first, last))
    return full


async def _create_attestations(w: aiosqlite.Connection) -> int:
    """Version 4: the attestations table (its rows are written from then on; older ones
    stay files in DATA_DIR/attestations/, read as a fallback)."""
    for statement in filter(str.strip, _ATTESTATIONS_SCHEMA.split(";\n")):
        await w.execute(statement)
    return 0


def schema_version(meta: Mapping[str, str]) -> int | None:
    """The schema version a database's meta rows record: the `schema` row written when it
    was created, raised by each `schema_migrated_to_N` row a migration appended (meta is
    append-only: a migration adds a row, it never rewrites `schema`). None for a database
    with no log in it yet; `StorageError` for a version that is not a number."""
    if "schema" not in meta:
        return None
    found = [meta["schema"], *(k[len(MIGRATED_TO):] for k in meta if k.startswith(MIGRATED_TO))]
    if not all(v.isascii() and v.isdigit() for v in found):
        raise StorageError(f"unknown schema version in meta: {', '.join(map(repr, found))}")
    return max(map(int, found))


async def _backfill(w: aiosqlite.Connection, derive: Callable[[_Rows], list[tuple[int, int]]],
                    insert: str) -> int:
    """A migration's rows, derived from the stored entries (tlog.server.storage.migrations)
    MIGRATION_CHUNK entries at a time, and inserted with `insert`, an INSERT OR IGNORE: a
    step run again after a crash, or over entries written by code that stored the rows
    before it recorded the version, finds some already there. Returns the rows derived."""
    found = 0
    after = -1
    while rows := list(await w.execute_fetchall(
            "SELECT idx, body FROM entries WHERE idx > ? ORDER BY idx LIMIT ?", (after, MIGRATION_CHUNK))):
        keys = derive(cast(_Rows, rows))
        await w.executemany(insert, keys)
        found += len(keys)
        after = rows[-1][0]
    return found


# Version N → the step that brings a database at version N - 1 to it: 2, the event-key rows
# of the high-s entries; 3, the certificate identities' search rows; 4, the attestations
# table; 5, the full tiles' expansions.
_MIGRATIONS: dict[int, Callable[[aiosqlite.Connection], Awaitable[int]]] = {
    ATTESTATIONS: _create_attestations,
    EVENT_KEYS: lambda w: _backfill(
        w, event_key_rows, "INSERT OR IGNORE INTO leaf_index (prefix, idx) VALUES (?, ?)"),
    IDENTITY_KEYS: lambda w: _backfill(
        w, identity_key_rows, "INSERT OR IGNORE INTO search_index (key, idx) VALUES (?, ?)"),
    TILE_NODES: _expand_stored_tiles,
}


async def _migrate(w: aiosqlite.Connection, path: Path, *, read_only: bool) -> None:
    """Bring an older database to SCHEMA_VERSION, one step at a time, each step in one
    transaction with the meta row recording it: a crash (or an error) mid-step leaves the
    version before it, and the next writable open runs the step again. Read-only, write
    nothing: the log serves what is stored (only dedupe needs the new rows). A newer
    version is refused either way: what it stores is unknown to this code."""
    version = schema_version(dict(cast("Iterable[tuple[str, str]]",
                                       await w.execute_fetchall("SELECT key, value FROM meta"))))
    if version is None:  # a new database, at SCHEMA_VERSION once init_meta records it
        if not read_only:
            await w.executescript(_ATTESTATIONS_SCHEMA + _TILE_NODES_SCHEMA)
        return
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise StorageError(f"{path.name} has schema version {version}, newer than this tlog "
                           f"knows ({SCHEMA_VERSION}): upgrade tlog")
    if read_only:
        log.info("%s has schema version %d; open it writable (`tlog serve`) once to migrate "
                    "it to version %d", path, version, SCHEMA_VERSION)
        return
    for target in range(version + 1, SCHEMA_VERSION + 1):
        t0 = time.monotonic()
        await w.execute("BEGIN IMMEDIATE")
        try:
            found = await _MIGRATIONS[target](w)
            await w.execute("INSERT INTO meta (key, value) VALUES (?, ?)",
                            (f"{MIGRATED_TO}{target}", str(int(time.time()))))
            await w.execute("COMMIT")
        except BaseException:
            await w.execute("ROLLBACK")
            raise
        log.info("migrated %s to schema version %d in %.1f s (%d rows derived)",
                 path, target, time.monotonic() - t0, found)


class SqliteStorage:
    """The log's database, a `Storage`. `open` creates it on first use."""

    def __init__(self, path: Path, writer: aiosqlite.Connection,
                 readers: list[aiosqlite.Connection], points: sqlite3.Connection) -> None:
        self.path = path
        self._w = writer
        # Several reader connections, each with its own thread, for reads that may take a
        # while (scans: search, entry bundles): one would serialize every concurrent read
        # (sqlite3 releases the GIL while it works).
        self._readers = readers
        self._next = itertools.cycle(readers)
        # Point reads by primary key (an entry, a tile, a leaf) — a few pages, most of them
        # cached — run on the event loop on a plain sqlite3 connection: measured 7–15 µs of
        # CPU each, against 50–70 µs through an aiosqlite thread (the queue, the future,
        # the loop's wake-up and the GIL hand-offs cost more than the read; issue 16).
        self._points = points

    def _point(self, sql: str, params: Sequence[object], *,
               newer_table: bool = False) -> list[tuple[object, ...]]:
        """A point read's rows. `newer_table`: the table came with a later schema version,
        so an older database opened read-only has none of it (no such table: no rows; a
        writable open migrates)."""
        try:
            rows: list[tuple[object, ...]] = self._points.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            if newer_table and isinstance(e, sqlite3.OperationalError) and "no such table" in str(e):
                return []
            raise StorageError(f"cannot read the database: {e}") from e
        return rows

    @property
    def _r(self) -> aiosqlite.Connection:
        return next(self._next)

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> SqliteStorage:
        """Open (or create) the database, migrating an older one (`_migrate`); `read_only`
        creates and migrates nothing (`NoStorage` if the file is missing) and refuses every
        write, even by mistake."""
        if read_only and not path.is_file():
            raise NoStorage(f"it needs {path.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        opened: list[aiosqlite.Connection] = []
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            opened.append(writer)
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            await writer.executescript(_SCHEMA + _append_only_triggers())
            if read_only:
                await writer.execute("PRAGMA query_only=ON")
            await _migrate(writer, path, read_only=read_only)
            for _ in range(READERS):
                reader = await aiosqlite.connect(path, isolation_level=None)
                opened.append(reader)
                await reader.execute("PRAGMA query_only=ON")
            points = sqlite3.connect(path, isolation_level=None, timeout=POINT_READ_TIMEOUT,
                                     check_same_thread=False)
            points.execute("PRAGMA query_only=ON")
        except BaseException as e:
            for conn in opened:  # a failed open leaves no thread behind
                await conn.close()
            if isinstance(e, sqlite3.Error):
                raise StorageError(f"cannot open database {path}: {e}") from e
            raise
        return cls(path, writer, opened[1:], points)

    @classmethod
    async def open_in(cls, data_dir: Path, *, read_only: bool = False) -> SqliteStorage:
        """The `StorageFactory` of this driver: DATA_DIR/log.db."""
        return await cls.open(data_dir / DB_FILE, read_only=read_only)

    async def close(self) -> None:
        self._points.close()
        for reader in self._readers:
            await reader.close()
        await self._w.close()

    # -- identity -------------------------------------------------------------------------
    async def get_meta(self) -> dict[str, str]:
        rows = await self._w.execute_fetchall("SELECT key, value FROM meta")
        return dict(cast("Iterable[tuple[str, str]]", rows))

    async def init_meta(self, values: Mapping[str, str]) -> None:
        """Record the log's identity once, when the log is created."""
        await self._write([("INSERT INTO meta (key, value) VALUES (?, ?)",
                            [("schema", str(SCHEMA_VERSION)), *values.items()])])
        fsync_dir(self.path.parent)

    async def _write(self, statements: Sequence[tuple[str, Sequence[Sequence[object]]]]) -> None:
        """Run each statement over its rows in one transaction: all or nothing."""
        w = self._w
        try:
            await w.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in statements:
                    await w.executemany(sql, rows)
                await w.execute("COMMIT")
            except BaseException:
                await w.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(f"cannot write to the database: {e}") from e

    # -- recovery ---------------------------------------------------------------------------
    async def recover(self) -> RecoveredTree:
        ((stored,),) = await self._w.execute_fetchall("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
        return await recover_tree(await self.latest_checkpoint(), stored,
                                  lambda level, index: self._read_tile(self._w, level, index))

    # -- the append path ----------------------------------------------------------------
    async def append_batch(self, entries: Sequence[NewEntry], integrated_time: int,
                           tile_writes: Sequence[TileWrite], checkpoint: StoredCheckpoint) -> None:
        """Store a batch, its tiles and its checkpoint in one transaction; return only once
        the commit is durable (WAL + synchronous=FULL: fsync before COMMIT returns)."""
        await self._write([
            ("INSERT INTO entries (idx, integrated_time, body) VALUES (?, ?, ?)",
             [(e.index, integrated_time, e.body) for e in entries]),
            ("INSERT INTO leaf_index (prefix, idx) VALUES (?, ?)",
             [(key_prefix(h), e.index) for e in entries
              for h in (e.leaf_hash, e.event_key) if h is not None]),
            ("INSERT OR IGNORE INTO search_index (key, idx) VALUES (?, ?)",
             [(k, e.index) for e in entries for k in e.search_keys]),
            ("INSERT INTO tiles (level, idx, start, hashes) VALUES (?, ?, ?, ?)",
             [(t.level, t.index, t.start, t.hashes) for t in tile_writes]),
            ("INSERT INTO tile_nodes (idx, nodes) VALUES (?, ?)",
             [(t.index, t.expansion) for t in tile_writes if t.expansion]),
            ("INSERT INTO checkpoints (size, root, note, created) VALUES (?, ?, ?, ?)",
             [(checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created)]),
        ])

    async def put_attestation(self, name: str, data: bytes) -> None:
        """Keep it once (INSERT OR IGNORE), durable when the commit returns."""
        await self._write([("INSERT OR IGNORE INTO attestations (name, data) VALUES (?, ?)",
                            [(name, data)])])

    async def get_attestation(self, name: str) -> bytes | None:
        rows = self._point("SELECT data FROM attestations WHERE name = ?", (name,), newer_table=True)
        return bytes(cast(bytes, rows[0][0])) if rows else None

    async def ping(self) -> None:
        try:
            await self._r.execute_fetchall("SELECT 1 FROM checkpoints LIMIT 1")
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e

    # -- reads ----------------------------------------------------------------------------
    async def find_leaves(self, keys: Sequence[bytes], *, writer: bool = False,
                          key_of: Callable[[bytes], bytes] = leaf_hash) -> dict[bytes, int]:
        """Indexes of the entries the leaf index holds under one of `keys` (a leaf hash
        or an event key), confirmed with `key_of`."""
        if not keys:
            return {}
        wanted = list({key_prefix(k) for k in keys})
        marks = ",".join("?" * len(wanted))
        sql = (f"SELECT DISTINCT l.idx, e.body FROM leaf_index l JOIN entries e ON e.idx = l.idx "
               f"WHERE l.prefix IN ({marks})")
        rows = await self._w.execute_fetchall(sql, wanted) if writer else self._point(sql, wanted)
        return confirm_leaves(cast(_Rows, rows), keys, key_of)

    async def read_entries(self, indexes: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """index → (integratedTime, body) for the indexes that exist."""
        if not indexes:
            return {}
        marks = ",".join("?" * len(indexes))
        rows = cast("list[tuple[int, int, bytes]]", self._point(
            f"SELECT idx, integrated_time, body FROM entries WHERE idx IN ({marks})", list(indexes)))
        return {i: (t, b) for i, t, b in rows}

    async def read_entry_range(self, start: int, end: int) -> list[bytes]:
        rows = await self._r.execute_fetchall(
            "SELECT body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [b for (b,) in rows]

    async def entry_range_size(self, start: int, end: int) -> int:
        # length() of a BLOB comes from the record header: no overflow page is read.
        rows = await self._r.execute_fetchall(
            "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM entries WHERE idx >= ? AND idx < ?",
            (start, end))
        return int(next(iter(rows))[0])

    async def search(self, keys: Sequence[int], *, before: int, limit: int,
                     every: bool = False) -> list[int]:
        """One page of candidates, newest first, each step a range scan of the (key, idx)
        primary key that stops at `limit` rows: the union as the top of each key's own top
        `limit`; the intersection as a join on a scan of the first key (give the rarer one
        first). No `IN (?, …)` over candidates: a key with more entries than SQLite has
        variables is one more page, not an error."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        if every:
            joins = "".join(f" JOIN search_index s{n} ON s{n}.key = ? AND s{n}.idx = s0.idx"
                            for n in range(1, len(wanted)))
            sql = (f"SELECT s0.idx FROM search_index s0{joins} WHERE s0.key = ? AND s0.idx < ? "
                   f"ORDER BY s0.idx DESC LIMIT ?")
            params = [*wanted[1:], wanted[0], before, limit]
        else:
            per_key = ("SELECT idx FROM (SELECT idx FROM search_index WHERE key = ? AND idx < ? "
                       "ORDER BY idx DESC LIMIT ?)")
            sql = " UNION ".join([per_key] * len(wanted)) + " ORDER BY idx DESC LIMIT ?"
            params = [*(p for k in wanted for p in (k, before, limit)), limit]
        rows = await self._r.execute_fetchall(sql, params)
        return [i for (i,) in rows]

    async def _read_tile(self, conn: aiosqlite.Connection, level: int, index: int) -> bytes:
        rows = await conn.execute_fetchall(_TILE_CHUNKS, (level, index))
        return join_chunks(cast(_Rows, rows), f"{level}/{index}")

    async def read_tile(self, level: int, index: int) -> bytes:
        """All stored hashes of a tile (a full tile is 256 × 32 bytes)."""
        rows = self._point(_TILE_CHUNKS, (level, index))
        return join_chunks(cast(_Rows, rows), f"{level}/{index}")

    async def read_leaf_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """Several level-0 tiles in one query: the fetch step of a proof."""
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._point(f"SELECT idx, start, hashes FROM tiles WHERE level = 0 AND idx IN ({marks}) "
                           f"ORDER BY idx, start", wanted)
        by_tile: dict[int, list[tuple[int, bytes]]] = {}
        for idx, start, hashes in cast("list[tuple[int, int, bytes]]", rows):
            by_tile.setdefault(idx, []).append((start, hashes))
        return {t: join_chunks(chunks, f"0/{t}") for t, chunks in by_tile.items()}

    async def read_expanded_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The stored expansions of full level-0 tiles, in one query (an indexed read of
        one row each): the fetch step of a proof at any size."""
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._point(f"SELECT idx, nodes FROM tile_nodes WHERE idx IN ({marks})", wanted,
                           newer_table=True)
        return dict(cast("list[tuple[int, bytes]]", rows))

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = list(await self._w.execute_fetchall(
            "SELECT size, root, note, created FROM checkpoints ORDER BY size DESC LIMIT 1"))
        return StoredCheckpoint(*rows[0]) if rows else None

    async def checkpoints_before(self, size: int, limit: int) -> list[StoredCheckpoint]:
        rows = await self._r.execute_fetchall(
            "SELECT size, root, note, created FROM checkpoints WHERE size < ? ORDER BY size DESC LIMIT ?",
            (size, limit))
        return [StoredCheckpoint(*row) for row in rows]


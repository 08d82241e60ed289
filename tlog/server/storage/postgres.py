"""The PostgreSQL driver of the log's `Storage` (tlog.server.storage.base), on asyncpg:
`tlog serve --database postgresql://USER@HOST:PORT/DB` (issue 15).

The same tables as the SQLite driver (entries, tiles, checkpoints, leaf_index, search_index,
meta), in BIGINT and BYTEA, and the same rule: history is append-only, enforced by the
database itself (a trigger raises on every UPDATE, DELETE or TRUNCATE of them), so no bug
and no hand-typed statement of a frontend can rewrite it. Commits are durable:
`synchronous_commit` stays `on` (PostgreSQL's default; set per connection so a server-wide
`off` cannot weaken it).

Two tables are not history, and change: `pending` (admitted entries on their way to the
leader, issue 15 item 3: the frontends' queue, durable, so an acknowledged submission is
never lost) with `pending_done` (each one's outcome), and `leader` (who sequences now, for
/readyz). tlog.server.cluster uses them.

The kept attestations (`attestations`: DSSE envelopes and payloads by their hex SHA-256,
tlog.server.attestations) are history too, from version 4: every frontend reads what any
frontend admitted. So are `tile_nodes` (the expansion of each full level-0 tile, from version
5: a proof reads one row and hashes nothing, tlog.server.storage.migrations).

The schema is tlog's own: `MIGRATIONS` are applied in order, each recorded in
`schema_version`, under a transaction-level advisory lock so frontends starting together
migrate once. One connection writes (`_w`, serialised by a lock: asyncpg runs one query at
a time per connection) — the leader's, which also holds its advisory lock, so a leader whose
connection dies stops writing at once; a small pool serves reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tlog.core.merkle import leaf_hash
from tlog.core.tiles import TILE_HEIGHT
from tlog.core.tilestate import TileWrite
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
from tlog.server.storage.migrations import identity_key_rows

READERS = 4  # pooled reader connections
# Advisory-lock keys (one 64-bit space per database): the migration lock and the
# sequencing lock (tlog.server.cluster) — arbitrary constants, "tlog" in ASCII + a number.
MIGRATE_LOCK = 0x746C6F67_00000001
SEQUENCER_LOCK = 0x746C6F67_00000002

HISTORY = ("meta", "entries", "tiles", "checkpoints", "leaf_index", "search_index")
ATTESTATIONS = 4  # the version that adds the `attestations` table, append-only as HISTORY's

# A migration: DDL, or a step that derives rows from what is stored (a backfill).
Migration: TypeAlias = "str | Callable[[asyncpg.Connection], Awaitable[None]]"
MIGRATION_CHUNK = 256  # entries (bodies up to MAX_BODY_BYTES) or level-0 tiles a backfill reads at a time


async def _backfill_identity_keys(conn: asyncpg.Connection) -> None:
    """Version 3: the certificate identities' search rows of the entries stored before
    (tlog.server.storage.migrations.identity_key_rows), MIGRATION_CHUNK entries at a time;
    ON CONFLICT DO NOTHING, as SQLite's INSERT OR IGNORE."""
    after = -1
    while rows := await conn.fetch("SELECT idx, body FROM entries WHERE idx > $1 ORDER BY idx "
                                   "LIMIT $2", after, MIGRATION_CHUNK):
        keys = identity_key_rows((r["idx"], bytes(r["body"])) for r in rows)
        await conn.execute("INSERT INTO search_index (key, idx) SELECT * FROM unnest($1::bigint[], "
                           "$2::bigint[]) ON CONFLICT DO NOTHING",
                           [k for k, _ in keys], [i for _, i in keys])
        after = rows[-1]["idx"]


def _append_only(table: str) -> str:
    return (f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION tlog_append_only();\n"
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION tlog_append_only();\n")


async def _expand_stored_tiles(conn: asyncpg.Connection) -> None:
    """Version 5: the `tile_nodes` table (SQLite's version 5, tlog.server.storage.migrations)
    and the expansion of every full level-0 tile of the checkpointed tree, MIGRATION_CHUNK
    tiles at a time."""
    await conn.execute("CREATE TABLE tile_nodes (idx BIGINT PRIMARY KEY, nodes BYTEA NOT NULL);\n"
                       + _append_only("tile_nodes"))
    full = int(await conn.fetchval("SELECT COALESCE(MAX(size), 0) FROM checkpoints")) >> TILE_HEIGHT
    for first in range(0, full, MIGRATION_CHUNK):
        last = min(first + MIGRATION_CHUNK, full)
        rows = await conn.fetch("SELECT idx, start, hashes FROM tiles WHERE level = 0 AND idx >= $1 "
                                "AND idx < $2 ORDER BY idx, start", first, last)
        expanded = expansions_of(((r["idx"], r["start"], r["hashes"]) for r in rows), first, last)
        await conn.execute("INSERT INTO tile_nodes (idx, nodes) SELECT * FROM unnest($1::bigint[], "
                           "$2::bytea[])", [t for t, _ in expanded], [n for _, n in expanded])


# Each migration runs once, in order, in one transaction; its number is its position + 1.
# (This driver's versions are its own; its first already stored every signing-event key.)
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE entries (idx BIGINT PRIMARY KEY, integrated_time BIGINT NOT NULL, body BYTEA NOT NULL);
    CREATE TABLE tiles (level INT NOT NULL, idx BIGINT NOT NULL, start INT NOT NULL,
                        hashes BYTEA NOT NULL, PRIMARY KEY (level, idx, start));
    CREATE TABLE checkpoints (size BIGINT PRIMARY KEY, root BYTEA NOT NULL, note BYTEA NOT NULL,
                              created BIGINT NOT NULL);
    CREATE TABLE leaf_index (prefix BIGINT NOT NULL, idx BIGINT NOT NULL, PRIMARY KEY (prefix, idx));
    CREATE TABLE search_index (key BIGINT NOT NULL, idx BIGINT NOT NULL, PRIMARY KEY (key, idx));
    CREATE FUNCTION tlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'tlog history is append-only: % on %', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'integrity_constraint_violation';
    END $$;
    """ + "".join(_append_only(t) for t in HISTORY),
    """
    CREATE TABLE pending (id BIGSERIAL PRIMARY KEY, body BYTEA NOT NULL, leaf_hash BYTEA NOT NULL,
                          event_key BYTEA, search_keys BIGINT[] NOT NULL,
                          queued BIGINT NOT NULL);
    CREATE TABLE pending_done (id BIGINT PRIMARY KEY, idx BIGINT NOT NULL, duplicate BOOLEAN NOT NULL,
                               done BIGINT NOT NULL);
    CREATE TABLE leader (one INT PRIMARY KEY CHECK (one = 1), name TEXT NOT NULL, since BIGINT NOT NULL);
    """,
    _backfill_identity_keys,
    """
    CREATE TABLE attestations (name TEXT PRIMARY KEY, data BYTEA NOT NULL);
    """ + _append_only("attestations"),
    _expand_stored_tiles,
)
IDENTITY_KEYS = 3  # the first version whose search index holds every certificate identity

# Run inside append_batch's transaction, on its connection (tlog.server.cluster: the
# outcomes of the pending rows the batch integrates, committed with it or not at all).
BatchHook = Callable[[asyncpg.Connection, Sequence[NewEntry]], Awaitable[None]]


# A connection of its own or one lent by the pool: the queries are the same.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


def _error(what: str, e: BaseException) -> StorageError:
    return StorageError(f"{what}: {e}")


async def connect(dsn: str, *, read_only: bool = False) -> asyncpg.Connection:
    """One connection with tlog's session settings: durable commits, and with `read_only`
    every transaction read-only (the database refuses writes, whatever the code does)."""
    settings = {"synchronous_commit": "on", "application_name": "tlog"}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    try:
        conn: asyncpg.Connection = await asyncpg.connect(dsn, server_settings=settings, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as e:
        raise _error(f"cannot connect to the database {redact(dsn)}", e) from e
    return conn


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    head, at, tail = dsn.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return dsn
    scheme, _, user = head.partition("//")
    return f"{scheme}//{user.split(':', 1)[0]}:***@{tail}"


async def schema_version(conn: asyncpg.Connection) -> int:
    """The last migration applied; 0 for a database tlog has not touched."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(conn: asyncpg.Connection) -> int:
    """Create or upgrade tlog's schema; returns the version. Idempotent and safe to run
    from several frontends at once (they queue on MIGRATE_LOCK)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                           "(version INT PRIMARY KEY, applied TIMESTAMPTZ NOT NULL DEFAULT now())")
        have = await schema_version(conn)
        if have > len(MIGRATIONS):
            raise StorageError(f"the database's schema is version {have}, newer than this tlog "
                               f"knows ({len(MIGRATIONS)}): upgrade tlog")
        for version in range(have + 1, len(MIGRATIONS) + 1):
            step = MIGRATIONS[version - 1]
            await (conn.execute(step) if isinstance(step, str) else step(conn))
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)
    return len(MIGRATIONS)


class PostgresDriver:
    """The `StorageFactory` of a PostgreSQL database (`--database DSN`): the data directory
    it is given holds nothing of the log's (the key lives where `--key` says)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __call__(self, data_dir: Path, *, read_only: bool = False) -> PostgresStorage:
        return await PostgresStorage.open(self.dsn, read_only=read_only)


class PostgresStorage:
    """The log's PostgreSQL database, a `Storage`. `open` creates or migrates its schema."""

    def __init__(self, dsn: str, writer: asyncpg.Connection, pool: asyncpg.Pool,
                 read_only: bool) -> None:
        self.dsn = dsn
        self.read_only = read_only
        self._w = writer
        self._wlock = asyncio.Lock()
        self._pool = pool
        self.batch_hook: BatchHook | None = None

    @classmethod
    async def open(cls, dsn: str, *, read_only: bool = False) -> PostgresStorage:
        """Connect, and create or migrate the schema; `read_only` creates nothing (`NoStorage`
        where tlog's schema is missing) and every connection refuses writes."""
        writer = await connect(dsn, read_only=read_only)
        try:
            try:
                if read_only:
                    if await schema_version(writer) < len(MIGRATIONS):
                        raise NoStorage("the database holds no log (or an older schema: start "
                                        "`tlog serve --database` once to migrate it)")
                else:
                    await migrate(writer)
                pool = await asyncpg.create_pool(
                    dsn, min_size=1, max_size=READERS, timeout=10,
                    server_settings={"application_name": "tlog",
                                     "default_transaction_read_only": "on"})
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise _error("cannot open the database", e) from e
        except BaseException:
            await writer.close()
            raise
        return cls(dsn, writer, pool, read_only)

    async def close(self) -> None:
        await self._pool.close()
        await self._w.close()

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[asyncpg.Connection]:
        """The writer connection, one user at a time; PostgreSQL errors as StorageError."""
        async with self._wlock:
            try:
                yield self._w
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                raise _error("cannot write to the database", e) from e

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[Conn]:
        """A pooled read-only connection; PostgreSQL errors as StorageError."""
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            raise _error("cannot read the database", e) from e

    # -- identity -------------------------------------------------------------------------
    async def get_meta(self) -> dict[str, str]:
        async with self.reader() as r:
            return {k: v for k, v in await r.fetch("SELECT key, value FROM meta")}  # noqa: C416 (Records)

    async def init_meta(self, values: Mapping[str, str]) -> None:
        """Record the identity once: refused where any is stored (frontends starting on a
        new database together: the first one names the log, the others read its name)."""
        async with self.writer() as w, w.transaction():
            await w.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")
            if await w.fetchval("SELECT count(*) FROM meta"):
                raise StorageError("the log's identity is already recorded")
            await w.executemany("INSERT INTO meta (key, value) VALUES ($1, $2)", list(values.items()))

    # -- the append path ----------------------------------------------------------------
    async def append_batch(self, entries: Sequence[NewEntry], integrated_time: int,
                           tile_writes: Sequence[TileWrite], checkpoint: StoredCheckpoint) -> None:
        """Store a batch, its index rows, tiles and checkpoint (and what `batch_hook` adds)
        in one transaction, durable once COMMIT returns (synchronous_commit=on). Rows go in
        as arrays unnested by the server: one round trip a table, whatever the batch size."""
        async with self.writer() as w, w.transaction():
            await w.execute(
                "INSERT INTO entries (idx, integrated_time, body) "
                "SELECT i, $2, b FROM unnest($1::bigint[], $3::bytea[]) AS u(i, b)",
                [e.index for e in entries], integrated_time, [e.body for e in entries])
            leaves = [(key_prefix(h), e.index) for e in entries
                      for h in (e.leaf_hash, e.event_key) if h is not None]
            await w.execute("INSERT INTO leaf_index (prefix, idx) SELECT * FROM unnest($1::bigint[], "
                            "$2::bigint[])", [p for p, _ in leaves], [i for _, i in leaves])
            found = [(k, e.index) for e in entries for k in e.search_keys]
            await w.execute("INSERT INTO search_index (key, idx) SELECT * FROM unnest($1::bigint[], "
                            "$2::bigint[]) ON CONFLICT DO NOTHING",
                            [k for k, _ in found], [i for _, i in found])
            await w.execute(
                "INSERT INTO tiles (level, idx, start, hashes) SELECT * FROM unnest($1::int[], "
                "$2::bigint[], $3::int[], $4::bytea[])", [t.level for t in tile_writes],
                [t.index for t in tile_writes], [t.start for t in tile_writes],
                [t.hashes for t in tile_writes])
            expanded = [t for t in tile_writes if t.expansion]
            if expanded:
                await w.execute("INSERT INTO tile_nodes (idx, nodes) SELECT * FROM unnest($1::bigint[], "
                                "$2::bytea[])", [t.index for t in expanded], [t.expansion for t in expanded])
            await w.execute("INSERT INTO checkpoints (size, root, note, created) VALUES ($1, $2, $3, $4)",
                            checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created)
            if self.batch_hook is not None:
                await self.batch_hook(w, entries)

    async def put_attestation(self, name: str, data: bytes) -> None:
        """Keep it once (ON CONFLICT DO NOTHING fires no UPDATE trigger), durable when the
        statement's implicit transaction commits (synchronous_commit=on)."""
        async with self.writer() as w:
            await w.execute("INSERT INTO attestations (name, data) VALUES ($1, $2) "
                            "ON CONFLICT DO NOTHING", name, data)

    async def get_attestation(self, name: str) -> bytes | None:
        async with self.reader() as r:
            data = await r.fetchval("SELECT data FROM attestations WHERE name = $1", name)
        return None if data is None else bytes(data)

    async def recover(self) -> RecoveredTree:
        """The tree at the latest checkpoint, read in one snapshot (REPEATABLE READ): other
        frontends' leader may be appending meanwhile."""
        async with self.writer() as w, w.transaction(isolation="repeatable_read", readonly=True):
            stored = await w.fetchval("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
            row = await w.fetchrow("SELECT size, root, note, created FROM checkpoints "
                                   "ORDER BY size DESC LIMIT 1")
            return await recover_tree(None if row is None else StoredCheckpoint(*row), stored,
                                      lambda level, index: self._read_tile(w, level, index))

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        async with self.reader() as r:
            row = await r.fetchrow("SELECT size, root, note, created FROM checkpoints "
                                   "ORDER BY size DESC LIMIT 1")
        return None if row is None else StoredCheckpoint(*row)

    async def checkpoints_before(self, size: int, limit: int) -> list[StoredCheckpoint]:
        async with self.reader() as r:
            rows = await r.fetch("SELECT size, root, note, created FROM checkpoints WHERE size < $1 "
                                 "ORDER BY size DESC LIMIT $2", size, limit)
        return [StoredCheckpoint(*row) for row in rows]

    async def ping(self) -> None:
        async with self.reader() as r:
            await r.fetchval("SELECT 1")

    # -- reads ----------------------------------------------------------------------------
    async def find_leaves(self, keys: Sequence[bytes], *, writer: bool = False,
                          key_of: Callable[[bytes], bytes] = leaf_hash) -> dict[bytes, int]:
        """Indexes of the entries the leaf index holds under one of `keys`, confirmed with
        `key_of`. Every connection sees every commit, so `writer` changes nothing here."""
        if not keys:
            return {}
        async with self.reader() as r:
            rows = await r.fetch(
                "SELECT DISTINCT l.idx, e.body FROM leaf_index l JOIN entries e ON e.idx = l.idx "
                "WHERE l.prefix = ANY($1::bigint[])", list({key_prefix(k) for k in keys}))
        return confirm_leaves(((i, b) for i, b in rows), keys, key_of)

    async def read_entries(self, indexes: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        if not indexes:
            return {}
        async with self.reader() as r:
            rows = await r.fetch("SELECT idx, integrated_time, body FROM entries "
                                 "WHERE idx = ANY($1::bigint[])", list(indexes))
        return {i: (t, b) for i, t, b in rows}

    async def read_entry_range(self, start: int, end: int) -> list[bytes]:
        async with self.reader() as r:
            rows = await r.fetch("SELECT body FROM entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                                 start, end)
        return [b for (b,) in rows]

    async def entry_range_size(self, start: int, end: int) -> int:
        async with self.reader() as r:
            total = await r.fetchval("SELECT COALESCE(SUM(octet_length(body)), 0) FROM entries "
                                     "WHERE idx >= $1 AND idx < $2", start, end)
        return int(total)

    async def search(self, keys: Sequence[int], *, before: int, limit: int,
                     every: bool = False) -> list[int]:
        """One page of candidates, newest first: the union as the top of each key's own top
        `limit` (each a backward range scan of the primary key), the intersection as a
        scan of the first key joined to the others."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return []
        if every:
            sql = ("SELECT s0.idx FROM search_index s0 WHERE s0.key = $1 AND s0.idx < $3 AND "
                   "(SELECT count(*) FROM search_index s WHERE s.idx = s0.idx AND "
                   "s.key = ANY($2::bigint[])) = cardinality($2::bigint[]) ORDER BY s0.idx DESC LIMIT $4")
            args: list[Any] = [wanted[0], wanted[1:], before, limit]
        else:
            sql = ("SELECT DISTINCT t.idx FROM unnest($1::bigint[]) AS k(key), LATERAL "
                   "(SELECT idx FROM search_index s WHERE s.key = k.key AND s.idx < $2 "
                   "ORDER BY s.idx DESC LIMIT $3) t ORDER BY t.idx DESC LIMIT $3")
            args = [wanted, before, limit]
        async with self.reader() as r:
            rows = await r.fetch(sql, *args)
        return [i for (i,) in rows]

    @staticmethod
    async def _read_tile(conn: Conn, level: int, index: int) -> bytes:
        rows = await conn.fetch("SELECT start, hashes FROM tiles WHERE level = $1 AND idx = $2 "
                                "ORDER BY start", level, index)
        return join_chunks(((s, h) for s, h in rows), f"{level}/{index}")

    async def read_tile(self, level: int, index: int) -> bytes:
        async with self.reader() as r:
            return await self._read_tile(r, level, index)

    async def read_expanded_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        async with self.reader() as r:
            rows = await r.fetch("SELECT idx, nodes FROM tile_nodes WHERE idx = ANY($1::bigint[])", wanted)
        return {idx: bytes(nodes) for idx, nodes in rows}

    async def read_leaf_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        async with self.reader() as r:
            rows = await r.fetch("SELECT idx, start, hashes FROM tiles WHERE level = 0 AND "
                                 "idx = ANY($1::bigint[]) ORDER BY idx, start", wanted)
        by_tile: dict[int, list[tuple[int, bytes]]] = {}
        for idx, start, hashes in rows:
            by_tile.setdefault(idx, []).append((start, hashes))
        return {t: join_chunks(chunks, f"0/{t}") for t, chunks in by_tile.items()}

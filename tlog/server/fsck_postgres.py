"""What `tlog fsck --database postgresql://…` reads: a log's PostgreSQL database as an
`FsckSource` (tlog.server.fsck), so the one set of checks runs on either driver's rows.

fsck is synchronous and streams; asyncpg is asynchronous. The source runs an event loop of
its own on a thread and hands fsck plain iterators, each a server-side cursor fetched
CHUNK rows at a time: every cursor lives in one REPEATABLE READ, read-only transaction
(one snapshot, even while a leader appends), and fsck reads them side by side, one fetch at
a time, so memory stays bounded as on SQLite. The connection refuses writes
(`default_transaction_read_only`), whatever the code does.

PostgreSQL has no `PRAGMA integrity_check` to run; what fsck asks of the engine instead is
that it still enforces the log's one rule: every history table keeps its append-only
triggers (tlog.server.storage.postgres.MIGRATIONS), enabled.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import asyncpg

from tlog.server.fsck import FsckError
from tlog.server.storage.base import StorageError
from tlog.server.storage.migrations import TILE_NODES
from tlog.server.storage.postgres import (
    ATTESTATIONS,
    HISTORY,
    IDENTITY_KEYS,
    MIGRATIONS,
    connect,
    redact,
    schema_version,
)

T = TypeVar("T")

CHUNK = 1000  # rows a cursor fetches at a time


class PostgresSource:
    """One read-only connection to the log's database, and the loop that drives it."""

    errors: tuple[type[Exception], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError,
                                           OSError, StorageError)
    current_schema = len(MIGRATIONS)
    # Every schema of this driver stores the signing-event keys' leaf-index rows.
    event_keys_from = 1
    identity_keys_from = IDENTITY_KEYS
    tile_nodes_from = TILE_NODES  # this driver's version 5 too (tlog.server.storage.migrations)

    def __init__(self, dsn: str) -> None:
        """Connect (FsckError if the database cannot be reached or holds no log)."""
        self.name = redact(dsn)
        self._version = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tlog-fsck-postgres",
                                        daemon=True)
        self._thread.start()
        self._conn: asyncpg.Connection | None = None
        try:
            self._conn = self._run(connect(dsn, read_only=True))
            if self._run(schema_version(self._conn)) == 0:
                raise FsckError(f"the database {self.name} holds no tlog log")
        except StorageError as e:
            self.close()
            raise FsckError(str(e)) from e
        except BaseException:
            self.close()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def conn(self) -> asyncpg.Connection:
        assert self._conn is not None
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._run(self._conn.close())
            self._conn = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # -- FsckSource -------------------------------------------------------------------------
    def snapshot(self) -> None:
        async def begin() -> int:
            await self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return await schema_version(self.conn)

        self._version = self._run(begin())

    def integrity(self) -> Iterator[str]:
        """The append-only triggers each history table must have, missing or disabled."""
        rows = self._fetch("SELECT c.relname, t.tgname, t.tgenabled <> 'D' FROM pg_trigger t "
                           "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal")
        enabled = {(table, name): on for table, name, on in rows}
        for table in (*HISTORY, *(("attestations",) if self._version >= ATTESTATIONS else ()),
                      *(("tile_nodes",) if self._version >= TILE_NODES else ())):
            for trigger in (f"{table}_append_only", f"{table}_no_truncate"):
                if (table, trigger) not in enabled:
                    yield f"trigger {trigger} is missing: {table} is no longer append-only"
                elif not enabled[(table, trigger)]:
                    yield f"trigger {trigger} is disabled: {table} is no longer append-only"

    def meta(self) -> dict[Any, Any]:
        return dict(self._fetch("SELECT key, value FROM meta"))

    def schema_version(self, meta: dict[Any, Any]) -> int | None:
        return self._version  # in its own table, not in meta

    def latest_size(self) -> int | None:
        ((size,),) = self._fetch("SELECT MAX(size) FROM checkpoints")
        return None if size is None else int(size)

    def entries(self) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT idx, body FROM entries ORDER BY idx")

    def tiles(self, level: int) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT idx, start, hashes FROM tiles WHERE level = $1 ORDER BY idx, start",
                            level)

    def tiles_outside(self, levels: int) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT DISTINCT level, idx FROM tiles WHERE level < 0 OR level >= $1 "
                            "ORDER BY level, idx", levels)

    def checkpoints(self) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT size, root, note FROM checkpoints ORDER BY size")

    def leaf_rows(self) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT idx, prefix FROM leaf_index ORDER BY idx, prefix")

    def search_rows(self) -> Iterator[tuple[Any, ...]]:
        return self._stream("SELECT idx, key FROM search_index ORDER BY idx, key")

    def attestation(self, name: str) -> bytes | None:
        if self._version < ATTESTATIONS:
            return None
        rows = self._fetch("SELECT data FROM attestations WHERE name = $1", name)
        return bytes(rows[0][0]) if rows else None

    def tile_nodes(self) -> Iterator[tuple[Any, ...]]:
        if self._version < TILE_NODES:
            return iter(())
        return self._stream("SELECT idx, nodes FROM tile_nodes ORDER BY idx")

    # -- reading ----------------------------------------------------------------------------
    def _fetch(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        async def fetch() -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await self.conn.fetch(sql, *args)]

        return self._run(fetch())

    def _stream(self, sql: str, *args: object) -> Iterator[tuple[Any, ...]]:
        """The rows of `sql` through a server-side cursor, CHUNK at a time."""
        async def open_cursor() -> Any:
            return await self.conn.cursor(sql, *args)

        async def fetch(cursor: Any) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in await cursor.fetch(CHUNK)]

        cursor = self._run(open_cursor())
        while True:
            rows = self._run(fetch(cursor))
            yield from rows
            if len(rows) < CHUNK:
                return

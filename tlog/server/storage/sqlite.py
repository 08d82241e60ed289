"""SQLite storage for the log (aiosqlite; WAL with synchronous=FULL, so a commit is fsync'd).

One writer connection (the sequencer's) and one reader connection (HTTP reads): in WAL mode
readers see the last committed batch and never block the writer. History is append-only and
the schema enforces it: triggers abort any UPDATE or DELETE.

Tables:
- `entries`: canonical bodies by log index, with their integratedTime.
- `tiles`: C2SP tlog-tiles hashes, stored as contiguous chunks appended per batch, so a
  partial tile is never rewritten and a tile read is one range scan, not one row per leaf.
- `checkpoints`: every signed checkpoint, by tree size.
- `leaf_index`, `search_index`: 8-byte hash prefixes → index (8-byte keys keep the index
  near 20 bytes an entry; callers confirm candidates against the full body).
- `meta`: the log's identity (logID, origin) and schema version, written once.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from tlog.errors import TlogError
from tlog.files import fsync_dir
from tlog.core.tiles import split_hashes
from tlog.server.tree import TILE_WIDTH, TileWrite

SCHEMA_VERSION = "1"
READERS = 3  # reader connections (threads)

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

_APPEND_ONLY = ("meta", "entries", "tiles", "checkpoints", "leaf_index", "search_index")


def _append_only_triggers() -> str:
    out = []
    for table in _APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(
                f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'tlog history is append-only: {op} on {table}'); END;")
    return "\n".join(out)


class StorageError(TlogError):
    """The database could not be read or written (disk full, read-only, corrupt)."""


def key_prefix(data: bytes) -> int:
    """An 8-byte hash prefix as a signed SQLite integer key."""
    return int.from_bytes(data[:8], "big", signed=True)


def search_key(kind: str, value: bytes) -> int:
    """The search-index key for an artifact digest (kind "a") or key fingerprint ("k")."""
    return key_prefix(hashlib.sha256(kind.encode() + b":" + value).digest())


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: bytes
    created: int


@dataclass(frozen=True)
class NewEntry:
    """One entry of a batch, ready to store."""

    index: int
    body: bytes
    leaf_hash: bytes
    search_keys: tuple[int, ...]


@dataclass(frozen=True)
class RecoveredTree:
    """What start-up needs to rebuild the in-memory tree without rehashing every leaf."""

    size: int
    level8: list[bytes]
    tail_leaves: list[bytes]
    checkpoint: StoredCheckpoint | None


def _join_chunks(rows: Iterable[tuple[int, bytes]], where: str) -> bytes:
    """Concatenate a tile's chunks, checking they are contiguous (a gap is corruption)."""
    out = bytearray()
    for start, hashes in rows:
        if start * 32 != len(out):
            raise StorageError(f"tile {where} is corrupt: chunk at {start} after {len(out) // 32} hashes")
        out += hashes
    return bytes(out)


class Storage:
    """The log's database. `open` creates it on first use."""

    def __init__(self, path: Path, writer: aiosqlite.Connection,
                 readers: list[aiosqlite.Connection]) -> None:
        self.path = path
        self._w = writer
        # Several reader connections, each with its own thread: one would serialize every
        # concurrent read (sqlite3 releases the GIL while it works).
        self._readers = readers
        self._next = itertools.cycle(readers)

    @property
    def _r(self) -> aiosqlite.Connection:
        return next(self._next)

    @classmethod
    async def open(cls, path: Path, *, read_only: bool = False) -> Storage:
        """Open (or create) the database; `read_only` refuses every write, even by mistake."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await aiosqlite.connect(path, isolation_level=None)
            await writer.execute("PRAGMA journal_mode=WAL")
            await writer.execute("PRAGMA synchronous=FULL")
            await writer.executescript(_SCHEMA + _append_only_triggers())
            if read_only:
                await writer.execute("PRAGMA query_only=ON")
            readers = []
            for _ in range(READERS):
                reader = await aiosqlite.connect(path, isolation_level=None)
                await reader.execute("PRAGMA query_only=ON")
                readers.append(reader)
        except sqlite3.Error as e:
            raise StorageError(f"cannot open database {path}: {e}") from e
        return cls(path, writer, readers)

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
        await self._w.close()

    # -- identity -------------------------------------------------------------------------
    async def get_meta(self) -> dict[str, str]:
        return {k: v for k, v in await self._w.execute_fetchall("SELECT key, value FROM meta")}

    async def init_meta(self, values: dict[str, str]) -> None:
        """Record the log's identity once, when the log is created."""
        await self._w.execute("BEGIN IMMEDIATE")
        try:
            await self._w.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                      [("schema", SCHEMA_VERSION), *values.items()])
            await self._w.execute("COMMIT")
        except BaseException:
            await self._w.execute("ROLLBACK")
            raise
        fsync_dir(self.path.parent)

    # -- recovery ---------------------------------------------------------------------------
    async def recover(self) -> RecoveredTree:
        cp = await self.latest_checkpoint()
        size = cp.size if cp else 0
        ((stored,),) = await self._w.execute_fetchall("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries")
        if stored != size:
            raise StorageError(
                f"database holds {stored} entries but its latest checkpoint is at size {size}")
        level8: list[bytes] = []
        for t in range((size // TILE_WIDTH + TILE_WIDTH - 1) // TILE_WIDTH):
            level8 += split_hashes(await self._read_tile(self._w, 1, t))
        del level8[size // TILE_WIDTH:]
        tail: list[bytes] = []
        if size % TILE_WIDTH:
            tail = split_hashes(await self._read_tile(self._w, 0, size // TILE_WIDTH))
            del tail[size % TILE_WIDTH:]
        return RecoveredTree(size, level8, tail, cp)

    # -- the append path ----------------------------------------------------------------
    async def append_batch(self, entries: Sequence[NewEntry], integrated_time: int,
                           tile_writes: Sequence[TileWrite], checkpoint: StoredCheckpoint) -> None:
        """Store a batch, its tiles and its checkpoint in one transaction; return only once
        the commit is durable (WAL + synchronous=FULL: fsync before COMMIT returns)."""
        w = self._w
        try:
            await w.execute("BEGIN IMMEDIATE")
            try:
                await w.executemany(
                    "INSERT INTO entries (idx, integrated_time, body) VALUES (?, ?, ?)",
                    [(e.index, integrated_time, e.body) for e in entries])
                await w.executemany(
                    "INSERT INTO leaf_index (prefix, idx) VALUES (?, ?)",
                    [(key_prefix(e.leaf_hash), e.index) for e in entries])
                await w.executemany(
                    "INSERT OR IGNORE INTO search_index (key, idx) VALUES (?, ?)",
                    [(k, e.index) for e in entries for k in e.search_keys])
                await w.executemany(
                    "INSERT INTO tiles (level, idx, start, hashes) VALUES (?, ?, ?, ?)",
                    [(t.level, t.index, t.start, t.hashes) for t in tile_writes])
                await w.execute(
                    "INSERT INTO checkpoints (size, root, note, created) VALUES (?, ?, ?, ?)",
                    (checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.created))
                await w.execute("COMMIT")
            except BaseException:
                await w.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StorageError(f"cannot write to the database: {e}") from e

    async def append_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        """Store a checkpoint on its own (the first one, of the empty tree)."""
        await self.append_batch([], checkpoint.created, [], checkpoint)

    async def ping(self) -> None:
        try:
            await self._r.execute_fetchall("SELECT 1 FROM checkpoints LIMIT 1")
        except sqlite3.Error as e:
            raise StorageError(str(e)) from e

    # -- reads ----------------------------------------------------------------------------
    async def find_leaves(self, leaf_hashes: Sequence[bytes], *, writer: bool = False) -> dict[bytes, int]:
        """Indexes of the entries whose leaf hash is one of `leaf_hashes`."""
        if not leaf_hashes:
            return {}
        conn = self._w if writer else self._r
        wanted = {key_prefix(h): h for h in leaf_hashes}
        marks = ",".join("?" * len(wanted))
        rows = await conn.execute_fetchall(
            f"SELECT l.idx, e.body FROM leaf_index l JOIN entries e ON e.idx = l.idx "
            f"WHERE l.prefix IN ({marks})", list(wanted))
        found: dict[bytes, int] = {}
        want = set(leaf_hashes)
        for idx, body in rows:
            h = hashlib.sha256(b"\x00" + body).digest()
            if h in want:
                found[h] = idx
        return found

    async def read_entries(self, indexes: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """index → (integratedTime, body) for the indexes that exist."""
        if not indexes:
            return {}
        marks = ",".join("?" * len(indexes))
        rows = await self._r.execute_fetchall(
            f"SELECT idx, integrated_time, body FROM entries WHERE idx IN ({marks})", list(indexes))
        return {i: (t, b) for i, t, b in rows}

    async def read_entry_range(self, start: int, end: int) -> list[bytes]:
        rows = await self._r.execute_fetchall(
            "SELECT body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end))
        return [b for (b,) in rows]

    async def search(self, keys: Sequence[int]) -> list[int]:
        """Candidate indexes for search keys (callers confirm against the bodies)."""
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = await self._r.execute_fetchall(
            f"SELECT DISTINCT idx FROM search_index WHERE key IN ({marks}) ORDER BY idx", list(keys))
        return [i for (i,) in rows]

    async def _read_tile(self, conn: aiosqlite.Connection, level: int, index: int) -> bytes:
        rows = await conn.execute_fetchall(
            "SELECT start, hashes FROM tiles WHERE level = ? AND idx = ? ORDER BY start", (level, index))
        return _join_chunks(rows, f"{level}/{index}")

    async def read_tile(self, level: int, index: int) -> bytes:
        """All stored hashes of a tile (a full tile is 256 × 32 bytes)."""
        return await self._read_tile(self._r, level, index)

    async def read_leaf_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """Several level-0 tiles in one query: the fetch step of a proof."""
        wanted = sorted(set(indexes))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = await self._r.execute_fetchall(
            f"SELECT idx, start, hashes FROM tiles WHERE level = 0 AND idx IN ({marks}) "
            f"ORDER BY idx, start", wanted)
        by_tile: dict[int, list[tuple[int, bytes]]] = {}
        for idx, start, hashes in rows:
            by_tile.setdefault(idx, []).append((start, hashes))
        return {t: _join_chunks(chunks, f"0/{t}") for t, chunks in by_tile.items()}

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        rows = await self._w.execute_fetchall(
            "SELECT size, root, note, created FROM checkpoints ORDER BY size DESC LIMIT 1")
        return StoredCheckpoint(*rows[0]) if rows else None


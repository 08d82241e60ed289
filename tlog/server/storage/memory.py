"""The in-memory driver of the log's `Storage` (tlog.server.storage.base), for fast tests.

It keeps what the SQLite driver keeps, with the same rules, so a whole `Log` behaves the
same on either: history is append-only (an index, tile chunk, checkpoint size or meta key
stored twice is a `StorageError`, and nothing offers update or delete), a batch is stored
all or nothing, the leaf and search indexes hold 8-byte prefixes confirmed against the
bodies, tile chunks are checked for contiguity on read, and a read-only handle refuses
every write. Durability is the process's lifetime: a `MemoryDriver` plays the database
file, so closing a handle and opening a new one from the same driver recovers the log.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tlog.core.merkle import leaf_hash
from tlog.core.tilestate import TileWrite
from tlog.server.storage.base import (
    NewEntry,
    NoStorage,
    RecoveredTree,
    StorageError,
    StoredCheckpoint,
    confirm_leaves,
    join_chunks,
    key_prefix,
    recover_tree,
)

SCHEMA = "memory"  # the meta "schema" row, which init_meta writes as SQLite's does


@dataclass
class _Tables:
    """One log's stored data: what SQLite's tables hold, keyed the same way."""

    meta: dict[str, str] = field(default_factory=dict)
    entries: dict[int, tuple[int, bytes]] = field(default_factory=dict)  # idx → (time, body)
    tiles: dict[tuple[int, int], dict[int, bytes]] = field(default_factory=dict)  # → start → hashes
    checkpoints: dict[int, StoredCheckpoint] = field(default_factory=dict)
    leaf_index: dict[int, set[int]] = field(default_factory=dict)  # prefix → indexes
    search_index: dict[int, set[int]] = field(default_factory=dict)  # key → indexes
    attestations: dict[str, bytes] = field(default_factory=dict)  # hex SHA-256 → bytes
    tile_nodes: dict[int, bytes] = field(default_factory=dict)  # tile index → expansion


class MemoryStorage:
    """A handle on one `MemoryDriver`'s tables, a `Storage`."""

    def __init__(self, tables: _Tables, *, read_only: bool = False) -> None:
        self._t = tables
        self.read_only = read_only
        self._closed = False

    def _tables(self, *, write: bool = False) -> _Tables:
        """The tables, unless this handle is closed, or read-only and asked to write."""
        if self._closed:
            raise StorageError("the storage is closed")
        if write and self.read_only:
            raise StorageError("cannot write to the database: it is open read-only")
        return self._t

    async def close(self) -> None:
        self._closed = True

    # -- identity ---------------------------------------------------------------------------
    async def get_meta(self) -> dict[str, str]:
        return dict(self._tables().meta)

    async def init_meta(self, values: Mapping[str, str]) -> None:
        meta = self._tables(write=True).meta
        if meta or "schema" in values:  # SQLite: the primary key refuses a second schema row
            raise StorageError("cannot write to the database: the log's identity is already recorded")
        meta.update({"schema": SCHEMA, **values})

    # -- the append path --------------------------------------------------------------------
    async def append_batch(self, entries: Sequence[NewEntry], integrated_time: int,
                           tile_writes: Sequence[TileWrite], checkpoint: StoredCheckpoint) -> None:
        """Check the whole batch against what is stored (and itself), then apply it: no
        await in between, so readers see all of it or none of it."""
        t = self._tables(write=True)
        indexes = [e.index for e in entries]
        if len(set(indexes)) != len(indexes) or any(i in t.entries for i in indexes):
            raise StorageError("cannot write to the database: an entry index is already stored")
        chunks = [(w.level, w.index, w.start) for w in tile_writes]
        if len(set(chunks)) != len(chunks) or any(s in t.tiles.get((lv, i), ()) for lv, i, s in chunks):
            raise StorageError("cannot write to the database: a tile chunk is already stored")
        expanded = [w.index for w in tile_writes if w.expansion]
        if len(set(expanded)) != len(expanded) or any(i in t.tile_nodes for i in expanded):
            raise StorageError("cannot write to the database: a tile expansion is already stored")
        if checkpoint.size in t.checkpoints:
            raise StorageError(f"cannot write to the database: a checkpoint at size {checkpoint.size} "
                               f"is already stored")
        for e in entries:
            t.entries[e.index] = (integrated_time, e.body)
            t.leaf_index.setdefault(key_prefix(e.leaf_hash), set()).add(e.index)
            if e.event_key is not None:
                t.leaf_index.setdefault(key_prefix(e.event_key), set()).add(e.index)
            for k in e.search_keys:
                t.search_index.setdefault(k, set()).add(e.index)
        for w in tile_writes:
            t.tiles.setdefault((w.level, w.index), {})[w.start] = w.hashes
            if w.expansion:
                t.tile_nodes[w.index] = w.expansion
        t.checkpoints[checkpoint.size] = checkpoint

    async def put_attestation(self, name: str, data: bytes) -> None:
        self._tables(write=True).attestations.setdefault(name, bytes(data))

    async def get_attestation(self, name: str) -> bytes | None:
        return self._tables().attestations.get(name)

    async def recover(self) -> RecoveredTree:
        entries = self._tables().entries
        return await recover_tree(await self.latest_checkpoint(), max(entries, default=-1) + 1,
                                  self.read_tile)

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        checkpoints = self._tables().checkpoints
        return checkpoints[max(checkpoints)] if checkpoints else None

    async def checkpoints_before(self, size: int, limit: int) -> list[StoredCheckpoint]:
        checkpoints = self._tables().checkpoints
        return [checkpoints[s] for s in heapq.nlargest(limit, (s for s in checkpoints if s < size))]

    async def ping(self) -> None:
        self._tables()

    # -- reads ------------------------------------------------------------------------------
    async def read_entries(self, indexes: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        entries = self._tables().entries
        return {i: entries[i] for i in indexes if i in entries}

    async def read_entry_range(self, start: int, end: int) -> list[bytes]:
        entries = self._tables().entries
        span = range(max(start, 0), end)
        if len(span) > len(entries):  # a range wider than the log: walk the log instead
            return [entries[i][1] for i in sorted(entries) if start <= i < end]
        return [entries[i][1] for i in span if i in entries]

    async def entry_range_size(self, start: int, end: int) -> int:
        return sum(len(body) for body in await self.read_entry_range(start, end))

    def _tile(self, level: int, index: int) -> bytes:
        chunks = self._tables().tiles.get((level, index), {})
        return join_chunks(sorted(chunks.items()), f"{level}/{index}")

    async def read_tile(self, level: int, index: int) -> bytes:
        return self._tile(level, index)

    async def read_leaf_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        tiles = self._tables().tiles
        return {t: self._tile(0, t) for t in set(indexes) if (0, t) in tiles}

    async def read_expanded_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        nodes = self._tables().tile_nodes
        return {t: nodes[t] for t in set(indexes) if t in nodes}

    async def find_leaves(self, keys: Sequence[bytes], *, writer: bool = False,
                          key_of: Callable[[bytes], bytes] = leaf_hash) -> dict[bytes, int]:
        t = self._tables()
        candidates = {i for k in keys for i in t.leaf_index.get(key_prefix(k), ())}
        return confirm_leaves(((i, t.entries[i][1]) for i in candidates), keys, key_of)

    async def search(self, keys: Sequence[int], *, before: int, limit: int,
                     every: bool = False) -> list[int]:
        index = self._tables().search_index
        sets = [index.get(k, set()) for k in set(keys)]
        hits = (set.intersection if every else set.union)(*sets) if sets else set()
        return heapq.nlargest(limit, (i for i in hits if i < before))


class MemoryDriver:
    """The `StorageFactory` of in-memory logs: one log's tables, kept across handles the
    way a database file is kept across opens (the data directory is not used)."""

    def __init__(self) -> None:
        self._tables: _Tables | None = None

    async def __call__(self, data_dir: Path, *, read_only: bool = False) -> MemoryStorage:
        if self._tables is None:
            if read_only:
                raise NoStorage("it needs a log in memory")
            self._tables = _Tables()
        return MemoryStorage(self._tables, read_only=read_only)

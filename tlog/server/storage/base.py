"""The one storage interface of the log, and what every driver shares.

The log service (tlog.server.log), the sequencer and the bulk filler talk to a `Storage`;
a driver (SQLite in tlog.server.storage.sqlite, memory in tlog.server.storage.memory, a
server database later) implements it, and tests/storage_contract.py holds every driver to
the same behaviour. The shape follows tessera's `Driver` + `LogReader` (append a sequenced
batch; read the checkpoint, tiles and entries back) and Go sumdb's `tlog.TileReader` /
`HashReader` (read several tiles in one call: the fetch step of plan → fetch → compute).

What a driver stores, and must keep append-only (nothing is ever updated or deleted):
- entries: canonical bodies by log index, with their integratedTime;
- tiles: C2SP tlog-tiles hashes, appended per batch as contiguous chunks (`TileWrite`),
  and the expansion of each full level-0 tile as it completes (`TileWrite.expansion`);
- checkpoints: every signed checkpoint, by tree size;
- the leaf index and the search index: 8-byte prefixes (`key_prefix`, `search_key`) → index.
  The leaf index holds each entry's leaf hash and, where it differs, its signing-event key
  (`NewEntry.event_key`). Keys this short may collide, so lookups are confirmed against the
  stored bodies;
- meta: the log's identity (logID, origin), written once;
- attestations: the DSSE envelopes (dsse) and payloads (intoto) kept beside attestation
  entries, whose bodies record only their hashes (tlog.server.attestations), by the hex
  SHA-256 of their bytes: content-addressed, so storing one twice stores nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_WIDTH, split_hashes
from tlog.core.tilestate import TileWrite, expand_tile
from tlog.errors import StorageError as StorageError  # defined with every error; drivers raise it


class NoStorage(StorageError):
    """Opened read-only, the data directory holds no log storage (and none was created)."""


def key_prefix(data: bytes) -> int:
    """An 8-byte hash prefix as a signed 64-bit integer key (SQLite's INTEGER range)."""
    return int.from_bytes(data[:8], "big", signed=True)


def search_key(kind: str, value: bytes) -> int:
    """The search-index key for an artifact digest (kind "a"), a key fingerprint ("k") or a
    certificate identity ("i": tlog.core.identity.searchable_identities, from schema 3)."""
    return key_prefix(hashlib.sha256(kind.encode() + b":" + value).digest())


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint (C2SP tlog-checkpoint note) as stored, with its Unix time."""

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
    # The key of the signing event the entry records, where it is not its leaf hash (an
    # ECDSA signature with a high s: tlog.core.entries.hashedrekord.event_key_of_body). The
    # leaf index holds it beside the leaf hash, so that the sequencer finds the entry when
    # the same signature comes back with the other s (issue 11, item 7).
    event_key: bytes | None = None


@dataclass(frozen=True)
class RecoveredTree:
    """What start-up needs to rebuild the in-memory tree without rehashing every leaf."""

    size: int
    level8: list[bytes]
    tail_leaves: list[bytes]
    checkpoint: StoredCheckpoint | None


def join_chunks(chunks: Iterable[tuple[int, bytes]], where: str) -> bytes:
    """Concatenate a tile's (start, hashes) chunks in start order, checking they are
    contiguous: tiles only grow (C2SP tlog-tiles), so a gap or an overlap is corruption."""
    out = bytearray()
    for start, hashes in chunks:
        if start * HASH_SIZE != len(out):
            raise StorageError(
                f"tile {where} is corrupt: chunk at {start} after {len(out) // HASH_SIZE} hashes")
        out += hashes
    return bytes(out)


def expansions_of(rows: Iterable[tuple[int, int, bytes]], first: int, last: int) -> list[tuple[int, bytes]]:
    """(tile index, expansion) of the full level-0 tiles first ≤ t < last from their
    stored (idx, start, hashes) chunks, in order: the migration that stores the expansions
    of tiles stored before (schema version 5). A tile missing, or not full, is corruption
    the migration cannot mend: a `StorageError` that points at fsck."""
    by_tile: dict[int, list[tuple[int, bytes]]] = {}
    for idx, start, hashes in rows:
        by_tile.setdefault(idx, []).append((start, bytes(hashes)))
    out = []
    for t in range(first, last):
        leaves = join_chunks(by_tile.get(t, ()), f"0/{t}")
        if len(leaves) != TILE_WIDTH * HASH_SIZE:
            raise StorageError(f"tile 0/{t} holds {len(leaves) // HASH_SIZE} of its {TILE_WIDTH} "
                               f"hashes, but the tree is past it: run `tlog fsck`")
        out.append((t, expand_tile(leaves)))
    return out


def confirm_leaves(candidates: Iterable[tuple[int, bytes]], keys: Iterable[bytes],
                   key_of: Callable[[bytes], bytes] = leaf_hash) -> dict[bytes, int]:
    """key → index for the (index, body) candidates of a leaf-index lookup whose
    `key_of(body)` — the RFC 6962 §2.1 leaf hash unless told — really is one of `keys`
    (8-byte prefixes collide). Candidates are taken in index order, `key_of` is called
    in that order, and the first (oldest) entry of a key is the one returned."""
    want = set(keys)
    found: dict[bytes, int] = {}
    for index, body in sorted(candidates):
        key = key_of(body)
        if key in want and key not in found:
            found[key] = index
    return found


async def recover_tree(checkpoint: StoredCheckpoint | None, stored_entries: int,
                       read_tile: Callable[[int, int], Awaitable[bytes]]) -> RecoveredTree:
    """The tree at the latest checkpoint from its stored tiles: the level-8 hashes (tile
    level 1) and the tail's leaf hashes, n/256 + 256 hashes read, none recomputed. Entries
    past the checkpoint (or missing before it) mean a batch was stored half: refused."""
    size = checkpoint.size if checkpoint else 0
    if stored_entries != size:
        raise StorageError(
            f"database holds {stored_entries} entries but its latest checkpoint is at size {size}")
    level8: list[bytes] = []
    for t in range((size // TILE_WIDTH + TILE_WIDTH - 1) // TILE_WIDTH):
        level8 += split_hashes(await read_tile(1, t))
    del level8[size // TILE_WIDTH:]
    tail: list[bytes] = []
    if size % TILE_WIDTH:
        tail += split_hashes(await read_tile(0, size // TILE_WIDTH))
        del tail[size % TILE_WIDTH:]
    return RecoveredTree(size, level8, tail, checkpoint)


class Storage(Protocol):
    """A log's storage driver. Every write is atomic and durable before it returns, and a
    write, an open or a ping that fails raises `StorageError` (the sequencer answers 503 and
    /readyz reports it). Open one with a `StorageFactory`."""

    async def close(self) -> None:
        """Release the storage; the handle is not used again."""
        ...

    # -- identity ---------------------------------------------------------------------------
    async def get_meta(self) -> dict[str, str]:
        """The log's identity as `init_meta` stored it (a driver may add keys of its own,
        such as its schema version); empty for a new log."""
        ...

    async def init_meta(self, values: Mapping[str, str]) -> None:
        """Record the log's identity, once: a key already stored is a `StorageError`."""
        ...

    # -- the append path --------------------------------------------------------------------
    async def append_batch(self, entries: Sequence[NewEntry], integrated_time: int,
                           tile_writes: Sequence[TileWrite], checkpoint: StoredCheckpoint) -> None:
        """Store a sequenced batch — entries, their index rows (leaf index: the leaf hash's
        prefix, and the event key's where there is one; search index: `search_keys`), tile
        chunks and the expansions of the tiles it completed, the signed checkpoint — all or
        nothing, and return once it is durable
        (DESIGN §4). An index,
        tile chunk or checkpoint size already stored is a `StorageError` (append-only)."""
        ...

    async def put_attestation(self, name: str, data: bytes) -> None:
        """Keep an attestation's bytes under `name`, the hex SHA-256 of `data` (the caller
        checks it), and return once it is durable: called before its entry is sequenced, so
        an acknowledged entry's attestation survives as its entry does. Idempotent: a
        `name` already kept is left as it is (content-addressed: the same bytes)."""
        ...

    async def get_attestation(self, name: str) -> bytes | None:
        """The bytes kept under `name`, or None if none are."""
        ...

    async def recover(self) -> RecoveredTree:
        """The tree state at the latest checkpoint (see `recover_tree`)."""
        ...

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the largest tree size, or None before the first."""
        ...

    async def checkpoints_before(self, size: int, limit: int) -> list[StoredCheckpoint]:
        """The stored checkpoints of tree sizes below `size`, largest first, at most `limit`."""
        ...

    async def ping(self) -> None:
        """Raise `StorageError` if the storage does not answer (the /readyz check)."""
        ...

    # -- reads ------------------------------------------------------------------------------
    async def read_entries(self, indexes: Sequence[int]) -> dict[int, tuple[int, bytes]]:
        """index → (integratedTime, body) for the indexes that exist."""
        ...

    async def read_entry_range(self, start: int, end: int) -> list[bytes]:
        """The bodies stored at indexes start ≤ i < end, in index order (an entry bundle)."""
        ...

    async def entry_range_size(self, start: int, end: int) -> int:
        """The total length of the bodies at start ≤ i < end, without reading them: what an
        entry bundle will cost in memory before it is built (tlog.server.bundles)."""
        ...

    async def read_tile(self, level: int, index: int) -> bytes:
        """All stored hashes of a tile (a full tile is 256 × 32 bytes); b"" if none."""
        ...

    async def read_leaf_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """Several level-0 tiles in one call (sumdb's `ReadTiles`): the fetch step of a
        proof. Tiles with no hashes stored are left out."""
        ...

    async def read_expanded_tiles(self, indexes: Iterable[int]) -> dict[int, bytes]:
        """The stored expansions (`TileWrite.expansion`) of several full level-0 tiles in
        one call: what a proof reads at any tree size instead of rehashing a tile. Tiles
        with none stored (partial ones; full ones of an older database opened read-only)
        are left out: the caller reads their leaves with `read_leaf_tiles`."""
        ...

    async def find_leaves(self, keys: Sequence[bytes], *, writer: bool = False,
                          key_of: Callable[[bytes], bytes] = leaf_hash) -> dict[bytes, int]:
        """Indexes of the entries the leaf index holds under one of `keys` — a leaf hash,
        or a `NewEntry.event_key` — confirmed against the bodies with `confirm_leaves`:
        `key_of(body)` must be the key (the leaf hash by default: a lookup by UUID). The
        sequencer's dedupe passes its signing-event key and `writer`, for the writer's
        view."""
        ...

    async def search(self, keys: Sequence[int], *, before: int, limit: int,
                     every: bool = False) -> list[int]:
        """Candidate indexes for search keys: distinct, below `before`, newest first, at
        most `limit` — the entries under any of `keys`, or with `every` under all of them.
        Callers confirm them against the bodies (8-byte keys collide) and page on with
        `before` = the last index returned; one call never reads more than one page, however
        many entries share a key (issue 11, item 1)."""
        ...


class StorageFactory(Protocol):
    """Opens the storage of the log whose data directory is `data_dir` (`Log.open`'s one
    tie to a driver). With `read_only`, it creates nothing, raises `NoStorage` where there
    is no storage yet, and the storage it returns refuses every write."""

    async def __call__(self, data_dir: Path, *, read_only: bool = False) -> Storage:
        ...

"""The log's Merkle tree over tiles: pymerkle as the engine, tile storage as its memory.

DESIGN §4: pymerkle's stock trees recompute subtree hashes from the leaves. Here every
perfect-subtree hash is a lookup instead: nodes at level ≥ 8 (one per 256 leaves and above,
n/128 × 32 bytes in all) live in memory; nodes below level 8 come from one level-0 tile
(C2SP tlog-tiles, height 8) — the last, partial one is kept in memory, older ones are read
from storage. A `TreeState` is an immutable snapshot at one size; `TileTree` is the pymerkle
`BaseMerkleTree` that answers roots and proofs for a snapshot given the tiles it needs.

Proofs follow the plan/fetch/compute split (Go's sumdb/tlog): `tiles_for_*` lists the
level-0 tiles a proof needs, the caller reads them in one batch, `TileTree` folds them.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pymerkle import BaseMerkleTree

from tlog.core.compact import CompactRange
from tlog.core.merkle import (
    HASH_SIZE,
    Range,
    consistency_ranges,
    inclusion_ranges,
    node_hash,
    perfect_subtrees,
)
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH


class MissingTile(LookupError):
    """A proof needed a level-0 tile the caller did not fetch (a bug in the plan)."""


@dataclass(frozen=True)
class TileWrite:
    """New hashes for one tile: `hashes` go at positions start, start+1, … of the tile at
    (tile level, tile index). Tiles only ever grow, so storage only ever appends."""

    level: int
    index: int
    start: int
    hashes: bytes


class TreeState:
    """The hashes of the tree at `size` leaves that proofs need without a storage read.

    `upper[k]` holds every complete node at Merkle level 8 + k. The lists are shared
    between successive snapshots and only ever appended to, so an older snapshot simply
    ignores what lies past its own size. `tail[l]` holds the complete level-l nodes
    (l < 8) of the last, partial level-0 tile, and `compact` the right edge of the tree
    (tlog.core.compact, [0, size)); each snapshot has its own copies of those.
    """

    __slots__ = ("size", "upper", "tail", "compact")

    def __init__(self, upper: list[list[bytes]], tail: list[list[bytes]], compact: CompactRange) -> None:
        self.size = compact.end
        self.upper = upper
        self.tail = tail
        self.compact = compact

    @classmethod
    def empty(cls) -> TreeState:
        return cls([], [[] for _ in range(TILE_HEIGHT)], CompactRange())

    @classmethod
    def restore(cls, size: int, level8: Sequence[bytes], tail_leaves: Sequence[bytes]) -> TreeState:
        """Rebuild a snapshot from stored tiles: the level-8 hashes (tile level 1) and the
        leaf hashes of the last partial level-0 tile — n/256 hash operations, not n."""
        full, rest = divmod(size, TILE_WIDTH)
        if len(level8) != full or len(tail_leaves) != rest:
            raise ValueError(
                f"stored tiles do not match tree size {size}: {len(level8)} level-8 hashes "
                f"and {len(tail_leaves)} tail leaves")
        upper: list[list[bytes]] = []
        level = list(level8)
        while level:
            upper.append(level)
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        base = full * TILE_WIDTH
        compact = CompactRange(0, base, [upper[lv - TILE_HEIGHT][ix] for lv, ix in perfect_subtrees(0, base)])
        state = cls(upper, [[] for _ in range(TILE_HEIGHT)], compact)
        return state.extended(tail_leaves)[0] if tail_leaves else state

    def detached(self) -> TreeState:
        """A copy that shares no list with this snapshot: `extended` appends to the upper
        lists it shares with its successors, so a caller that grows one snapshot two ways
        (fsck trying both sides of a fork) grows a detached copy."""
        return TreeState([list(u) for u in self.upper], [list(t) for t in self.tail], self.compact.copy())

    def node(self, level: int, index: int) -> bytes | None:
        """The hash of a complete node held in memory, or None if it lives in an older
        level-0 tile that must be read from storage."""
        if level >= TILE_HEIGHT:
            return self.upper[level - TILE_HEIGHT][index]
        tail_tile = self.size >> TILE_HEIGHT
        if (index << level) >> TILE_HEIGHT != tail_tile:
            return None
        return self.tail[level][index - (tail_tile << (TILE_HEIGHT - level))]

    def root(self) -> bytes:
        """MTH(D[size]) (RFC 9162 §2.1.1), folded from the snapshot's compact range."""
        return self.compact.root()

    def extended(self, leaves: Iterable[bytes]) -> tuple[TreeState, list[TileWrite]]:
        """A new snapshot with `leaves` (leaf hashes) appended, and the tile hashes to store.

        The compact range does the RFC 9162 fold; each node it completes is kept here (tail
        or upper) and, at levels 0, 8, 16, … — the contents of tiles (C2SP tlog-tiles) —
        added to the tile writes. Appends to the shared upper lists: if the batch is then
        not made durable, call `truncate_to(self)` on the result to drop what it added.
        """
        upper = self.upper
        tail = [list(lv) for lv in self.tail]
        compact = self.compact.copy()
        writes: dict[tuple[int, int], tuple[int, bytearray]] = {}

        def keep(level: int, index: int, h: bytes) -> None:
            if level < TILE_HEIGHT:
                tail[level].append(h)
            else:
                if len(upper) <= level - TILE_HEIGHT:
                    upper.append([])
                upper[level - TILE_HEIGHT].append(h)
                if level == TILE_HEIGHT:  # the level-0 tile is complete: the next one starts
                    for lv in tail:
                        lv.clear()
            if level % TILE_HEIGHT == 0:
                key = (level // TILE_HEIGHT, index >> TILE_HEIGHT)
                write = writes.get(key)
                if write is None:
                    write = writes[key] = (index & (TILE_WIDTH - 1), bytearray())
                write[1].extend(h)

        compact.extend(leaves, keep)
        tile_writes = [TileWrite(lv, ix, start, bytes(buf))
                       for (lv, ix), (start, buf) in writes.items()]
        return TreeState(upper, tail, compact), tile_writes

    def truncate_to(self, older: TreeState) -> None:
        """Undo `extended` on the shared upper lists (the batch was not stored)."""
        for k, lst in enumerate(self.upper):
            del lst[older.size >> (TILE_HEIGHT + k):]
        while self.upper and not self.upper[-1]:
            self.upper.pop()


def _tiles_for_ranges(state: TreeState, ranges: Iterable[Range]) -> set[int]:
    tiles: set[int] = set()
    for start, end in ranges:
        for level, index in perfect_subtrees(start, end):
            if level < TILE_HEIGHT and state.node(level, index) is None:
                tiles.add((index << level) >> TILE_HEIGHT)
    return tiles


def tiles_for_inclusion(state: TreeState, index: int, size: int) -> set[int]:
    """Plan: the level-0 tiles an inclusion proof of leaf `index` at `size` must read."""
    if size == state.size:
        # Against the snapshot's own size, every node off the leaf's own tile is at level
        # ≥ 8 or in the tail: at most that one tile is read.
        return set() if state.node(0, index) is not None else {index >> TILE_HEIGHT}
    return _tiles_for_ranges(state, inclusion_ranges(index, size))


def tiles_for_consistency(state: TreeState, size1: int, size2: int) -> set[int]:
    """Plan: the level-0 tiles a consistency proof from size1 to size2 must read.
    O(log n) ranges, each needing at most its one boundary tile."""
    ranges = consistency_ranges(size1, size2)
    return _tiles_for_ranges(state, ranges) | _tiles_for_ranges(state, [(0, size1)])


class ExpandedTile:
    """Every node of one full level-0 tile, levels 0–7, computed once (255 hashes).

    Full tiles never change, so their expansion can be cached for as long as memory allows:
    a proof then costs lookups only.
    """

    __slots__ = ("levels",)

    def __init__(self, leaves: bytes) -> None:
        if len(leaves) != TILE_WIDTH * HASH_SIZE:
            raise ValueError("only a full tile can be expanded")
        levels = [leaves]
        cur = leaves
        sha256 = hashlib.sha256
        pair = 2 * HASH_SIZE
        for _ in range(1, TILE_HEIGHT):
            # node_hash(left, right) = SHA-256(0x01 || left || right), and siblings lie side by
            # side: one 64-byte slice per node (this runs on every tile-cache miss).
            cur = b"".join([sha256(b"\x01" + cur[i:i + pair]).digest() for i in range(0, len(cur), pair)])
            levels.append(cur)
        self.levels = levels

    def node(self, level: int, offset: int) -> bytes:
        """The node at `level`, `offset` nodes from the tile's left edge."""
        return self.levels[level][offset * HASH_SIZE:(offset + 1) * HASH_SIZE]


class TileCache:
    """An LRU of expanded full tiles (about 16 KiB each)."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._tiles: OrderedDict[int, ExpandedTile] = OrderedDict()

    def get(self, index: int) -> ExpandedTile | None:
        tile = self._tiles.get(index)
        if tile is not None:
            self._tiles.move_to_end(index)
        return tile

    def put(self, index: int, leaves: bytes | ExpandedTile) -> ExpandedTile | bytes:
        """Keep a full tile (expanded here if it is not yet); a partial one is returned as
        is, uncached."""
        if isinstance(leaves, bytes) and len(leaves) != TILE_WIDTH * HASH_SIZE:
            return leaves
        tile = self._tiles.get(index) or (
            leaves if isinstance(leaves, ExpandedTile) else ExpandedTile(leaves))
        self._tiles[index] = tile
        self._tiles.move_to_end(index)
        while len(self._tiles) > self.capacity:
            self._tiles.popitem(last=False)
        return tile


class TileTree(BaseMerkleTree):
    """pymerkle's BaseMerkleTree over a `TreeState` snapshot plus fetched level-0 tiles.

    pymerkle drives root and proof computation (`_get_root` over the binary decomposition
    of a range); we supply `_get_subroot` so each perfect subtree is a lookup, and leaves
    come from tiles. Read-only: the sequencer appends through `TreeState.extended`.
    """

    def __init__(self, state: TreeState,
                 tiles: Mapping[int, bytes | ExpandedTile] | None = None,
                 memo: dict[Range, bytes] | None = None) -> None:
        super().__init__("sha256")
        self.state = state
        self.tiles = tiles or {}
        # Roots of non-perfect ranges (the right edge of the tree) are the same for every
        # proof against this snapshot: a shared memo computes each once.
        self.memo = memo if memo is not None else {}

    # -- pymerkle storage interface ---------------------------------------------------
    def _encode_entry(self, data: bytes) -> bytes:
        return data

    def _store_leaf(self, data: bytes, digest: bytes) -> int:
        raise TypeError("TileTree is a read-only view; append with TreeState.extended")

    def _get_size(self) -> int:
        return self.state.size

    def _get_leaf(self, index: int) -> bytes:
        return self._get_subroot(index - 1, 1)

    def _get_leaves(self, offset: int, width: int) -> list[bytes]:
        tile = offset >> TILE_HEIGHT
        data = self.tiles.get(tile)
        if data is None:
            raise MissingTile(tile)
        if isinstance(data, ExpandedTile):
            data = data.levels[0]
        pos = (offset & (TILE_WIDTH - 1)) * HASH_SIZE
        if pos + width * HASH_SIZE > len(data):
            raise MissingTile(tile)
        return [data[pos + i * HASH_SIZE: pos + (i + 1) * HASH_SIZE] for i in range(width)]

    def _get_subroot(self, offset: int, width: int) -> bytes:
        level = width.bit_length() - 1
        found = self.state.node(level, offset >> level)
        if found is not None:
            return found
        tile = self.tiles.get(offset >> TILE_HEIGHT)
        if isinstance(tile, ExpandedTile):
            return tile.node(level, (offset & (TILE_WIDTH - 1)) >> level)
        # Below level 8 in a partial older tile: fold its leaves (pymerkle's own loop).
        return self._get_subroot_uncached(offset, width)

    # -- RFC 9162 proofs ------------------------------------------------------------------
    def hashes(self, ranges: Iterable[Range]) -> list[bytes]:
        """The roots of proof ranges: perfect ones are one lookup, others memoized."""
        out = []
        for start, end in ranges:
            width = end - start
            if width & (width - 1) == 0:
                out.append(self._get_subroot(start, width))
                continue
            h = self.memo.get((start, end))
            if h is None:
                h = self.memo[(start, end)] = self._get_root(start, end)
            out.append(h)
        return out

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(index, D[size]), leaf to root."""
        return self.hashes(inclusion_ranges(index, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """RFC 9162 §2.1.4.1 PROOF(size1, D[size2])."""
        return [self._get_root(s, e) for s, e in consistency_ranges(size1, size2)]

    def root_at(self, size: int) -> bytes:
        return self._get_root(0, size)

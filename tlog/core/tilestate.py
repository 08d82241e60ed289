"""The tree's state over C2SP tiles, without a tree engine: pure, shared by the log and its auditors.

A `TreeState` is an immutable snapshot at one size holding the hashes proofs need without a
storage read (nodes at Merkle level ≥ 8, the partial tail tile, the right edge); `extended`
appends leaves and says which tile hashes that adds (`TileWrite`), which is exactly what the
log stores and what an auditor rebuilding the tree from tiles must find served. The
`tiles_for_*` functions are the plan step of plan → fetch → compute (Go's sumdb/tlog): the
level-0 tiles a proof must read. DESIGN §4.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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

# The bytes of a full level-0 tile's stored expansion (`TileWrite.expansion`): its nodes at
# levels 0 … TILE_HEIGHT-1, 2·TILE_WIDTH - 2 hashes.
EXPANSION_SIZE = (2 * TILE_WIDTH - 2) * HASH_SIZE


@dataclass(frozen=True)
class TileWrite:
    """New hashes for one tile: `hashes` go at positions start, start+1, … of the tile at
    (tile level, tile index). Tiles only ever grow, so storage only ever appends."""

    level: int
    index: int
    start: int
    hashes: bytes
    # On the write that completes a level-0 tile: the tile's nodes at levels 0–7, level by
    # level from the leaves up (256 + 128 + … + 2 = 510 hashes, `EXPANSION_SIZE` bytes).
    # C2SP tiles carry only level 0, but an inclusion proof needs the nodes above it;
    # storage keeps them (issue 16), so a proof reads one row instead of rehashing 255
    # nodes, and the full tile itself is their first TILE_WIDTH hashes.
    expansion: bytes = b""


def expand_tile(leaves: bytes) -> bytes:
    """The expansion (`TileWrite.expansion`) of a full level-0 tile from its leaf hashes:
    RFC 6962 §2.1 node hashes, level by level. What `extended` stores as a tile completes,
    and what a check or a migration recomputes from the C2SP tile."""
    if len(leaves) != TILE_WIDTH * HASH_SIZE:
        raise ValueError("only a full tile can be expanded")
    out = [leaves]
    cur = leaves
    sha256 = hashlib.sha256
    pair = 2 * HASH_SIZE
    for _ in range(1, TILE_HEIGHT):
        # node_hash(left, right) = SHA-256(0x01 || left || right), and siblings lie side by
        # side: one 64-byte slice per node.
        cur = b"".join([sha256(b"\x01" + cur[i:i + pair]).digest() for i in range(0, len(cur), pair)])
        out.append(cur)
    return b"".join(out)


# Where each level of an expansion starts, in bytes: level l holds TILE_WIDTH >> l hashes.
EXPANSION_LEVELS = tuple(sum(TILE_WIDTH >> k for k in range(level)) * HASH_SIZE
                         for level in range(TILE_HEIGHT))


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
        expansions: dict[int, bytes] = {}

        def keep(level: int, index: int, h: bytes) -> None:
            if level < TILE_HEIGHT:
                tail[level].append(h)
            else:
                if len(upper) <= level - TILE_HEIGHT:
                    upper.append([])
                upper[level - TILE_HEIGHT].append(h)
                if level == TILE_HEIGHT:  # the level-0 tile is complete: the next one starts
                    if len(tail[0]) == TILE_WIDTH:
                        expansions[index] = b"".join(b"".join(lv) for lv in tail)
                    for lv in tail:
                        lv.clear()
            if level % TILE_HEIGHT == 0:
                key = (level // TILE_HEIGHT, index >> TILE_HEIGHT)
                write = writes.get(key)
                if write is None:
                    write = writes[key] = (index & (TILE_WIDTH - 1), bytearray())
                write[1].extend(h)

        compact.extend(leaves, keep)
        tile_writes = [TileWrite(lv, ix, start, bytes(buf), expansions.get(ix, b"") if lv == 0 else b"")
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

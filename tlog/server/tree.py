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

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from pymerkle import BaseMerkleTree

from tlog.core.merkle import (
    HASH_SIZE,
    Range,
    consistency_ranges,
    inclusion_ranges,
)
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH
from tlog.core.tilestate import EXPANSION_LEVELS, EXPANSION_SIZE, TreeState, expand_tile


class MissingTile(LookupError):
    """A proof needed a level-0 tile the caller did not fetch (a bug in the plan)."""


class ExpandedTile:
    """Every node of one full level-0 tile, levels 0–7 (510 hashes): its stored expansion
    (`TileWrite.expansion`), or computed once from the leaves of a tile stored before
    expansions were (`expand_tile`).

    Full tiles never change, so their expansion can be cached for as long as memory allows:
    a proof then costs lookups only.
    """

    __slots__ = ("nodes",)

    def __init__(self, nodes: bytes) -> None:
        if len(nodes) != EXPANSION_SIZE:
            raise ValueError(f"a tile expansion is {EXPANSION_SIZE} bytes, not {len(nodes)}")
        self.nodes = nodes

    @classmethod
    def of_leaves(cls, leaves: bytes) -> ExpandedTile:
        return cls(expand_tile(leaves))

    @property
    def leaves(self) -> bytes:
        return self.nodes[:TILE_WIDTH * HASH_SIZE]

    def node(self, level: int, offset: int) -> bytes:
        """The node at `level`, `offset` nodes from the tile's left edge."""
        at = EXPANSION_LEVELS[level] + offset * HASH_SIZE
        return self.nodes[at:at + HASH_SIZE]


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
            leaves if isinstance(leaves, ExpandedTile) else ExpandedTile.of_leaves(leaves))
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
            data = data.leaves
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

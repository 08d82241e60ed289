"""The tile-backed tree: snapshots, restore, and proofs from tiles + memory."""

from __future__ import annotations

import random

import pytest
from pymerkle import (
    InclusionProof,
    verify_consistency as pm_verify_consistency,
    verify_inclusion as pm_verify_inclusion,
)
from pymerkle.core import _inclusion_path_layout

from tlog.core.compact import root_from_leaf_hashes
from tlog.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH
from tlog.core.tilestate import (
    EXPANSION_LEVELS,
    EXPANSION_SIZE,
    TreeState,
    expand_tile,
    tiles_for_consistency,
    tiles_for_inclusion,
)
from tlog.server.tree import MissingTile, TileTree


def _leaves(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [leaf_hash(rng.randbytes(8)) for _ in range(n)]


def _build(leaves: list[bytes], batch: int) -> tuple[TreeState, dict[tuple[int, int], bytearray]]:
    """Append in batches, collecting tile writes the way storage would append them."""
    state = TreeState.empty()
    tiles: dict[tuple[int, int], bytearray] = {}
    for i in range(0, len(leaves), batch):
        state, writes = state.extended(leaves[i:i + batch])
        for w in writes:
            buf = tiles.setdefault((w.level, w.index), bytearray())
            assert len(buf) == w.start * 32, "tile writes must be contiguous appends"
            buf.extend(w.hashes)
    return state, tiles


@pytest.mark.parametrize("n,batch", [(1, 1), (255, 7), (256, 256), (257, 3), (600, 64), (70000, 1000)])
def test_root_and_tiles_match_reference(n: int, batch: int) -> None:
    leaves = _leaves(n)
    state, tiles = _build(leaves, batch)
    assert state.size == n
    assert state.root() == root_from_leaf_hashes(leaves)
    level0 = b"".join(tiles[(0, t)] for t in range((n + 255) // 256))
    assert level0 == b"".join(leaves)
    # Tile level 1 holds the level-8 nodes: the roots of each full 256-leaf group.
    level1 = b"".join(bytes(tiles.get((1, t), b"")) for t in range(n // TILE_WIDTH // TILE_WIDTH + 1))
    for g in range(n // TILE_WIDTH):
        assert level1[32 * g:32 * g + 32] == root_from_leaf_hashes(leaves[256 * g:256 * g + 256])


def test_restore_from_tiles_equals_built_state() -> None:
    leaves = _leaves(1000)
    state, tiles = _build(leaves, 37)
    level1 = bytes(tiles[(1, 0)])
    level8 = [level1[i:i + 32] for i in range(0, len(level1), 32)]
    restored = TreeState.restore(1000, level8, leaves[768:])
    assert restored.root() == state.root()
    more = _leaves(300, seed=2)
    assert restored.extended(more)[0].root() == state.extended(more)[0].root()
    with pytest.raises(ValueError):
        TreeState.restore(1001, level8, leaves[768:])


def _fetch(tiles: dict[tuple[int, int], bytearray], want: set[int]) -> dict[int, bytes]:
    return {t: bytes(tiles[(0, t)]) for t in want}


def test_proofs_from_tiles_for_every_size_up_to_300_verify_with_ours_and_pymerkle() -> None:
    leaves = _leaves(300)
    state, tiles = _build(leaves, 5)
    for n in range(1, 301):
        root = root_from_leaf_hashes(leaves[:n])
        for m in range(n):
            tree = TileTree(state, _fetch(tiles, tiles_for_inclusion(state, m, n)))
            proof = tree.inclusion_proof(m, n)
            verify_inclusion(m, n, leaves[m], proof, root)
            rule, _ = _inclusion_path_layout(m + 1, n)
            pm = InclusionProof("sha256", True, n, m + 1, rule, [leaves[m], *proof])
            pm_verify_inclusion(leaves[m], root, pm)
        for m in range(1, n + 1, 7):
            tree = TileTree(state, _fetch(tiles, tiles_for_consistency(state, m, n)))
            old = tree.root_at(m)
            assert old == root_from_leaf_hashes(leaves[:m])
            verify_consistency(m, n, tree.consistency_proof(m, n), old, root)
            # pymerkle's own (differently shaped) consistency proof, from the same engine.
            pm_verify_consistency(old, root, tree.prove_consistency(m, n))


def test_plan_names_every_tile_a_proof_reads() -> None:
    leaves = _leaves(1000)
    state, _ = _build(leaves, 100)
    with pytest.raises(MissingTile):
        TileTree(state, {}).inclusion_proof(3, 1000)
    assert tiles_for_inclusion(state, 3, 1000) == {0}
    # The current tail tile is in memory: no read needed.
    assert tiles_for_inclusion(state, 990, 1000) == set()
    assert tiles_for_consistency(state, 300, 1000) == {1}


def test_failed_batch_is_undone_on_shared_upper_levels() -> None:
    leaves = _leaves(700)
    state, _ = _build(leaves[:500], 50)
    grown, _ = state.extended(leaves[500:])
    grown.truncate_to(state)
    again, _ = state.extended(leaves[500:])
    assert again.root() == root_from_leaf_hashes(leaves)
    assert state.root() == root_from_leaf_hashes(leaves[:500])


def test_expanded_tiles_give_the_same_proofs_and_cache_is_bounded() -> None:
    from tlog.server.tree import ExpandedTile, TileCache

    leaves = _leaves(1100)
    state, tiles = _build(leaves, 64)
    cache = TileCache(capacity=2)
    for m in range(0, 1100, 13):
        want = tiles_for_inclusion(state, m, 1100) | tiles_for_consistency(state, max(1, m), 1100)
        raw = TileTree(state, _fetch(tiles, want))
        expanded = TileTree(state, {t: cache.put(t, bytes(tiles[(0, t)])) for t in want})
        assert all(isinstance(x, ExpandedTile) for x in expanded.tiles.values())
        assert expanded.inclusion_proof(m, 1100) == raw.inclusion_proof(m, 1100)
        assert expanded.consistency_proof(max(1, m), 1100) == raw.consistency_proof(max(1, m), 1100)
    assert len(cache._tiles) == 2
    # A partial tile is handed back as raw bytes and not cached.
    assert cache.put(4, bytes(tiles[(0, 4)])) == bytes(tiles[(0, 4)])


def test_expand_tile_holds_every_node_of_the_tile_level_by_level() -> None:
    """A tile's expansion, against the reference fold: level l, offset k is the root of the
    leaves [k·2^l, (k+1)·2^l) of the tile (RFC 9162 §2.1.1), for levels 0–7."""
    leaves = _leaves(TILE_WIDTH)
    nodes = expand_tile(b"".join(leaves))
    assert len(nodes) == EXPANSION_SIZE == (2 * TILE_WIDTH - 2) * 32
    for level in range(TILE_HEIGHT):
        for k in range(TILE_WIDTH >> level):
            at = EXPANSION_LEVELS[level] + 32 * k
            assert nodes[at:at + 32] == root_from_leaf_hashes(leaves[k << level:(k + 1) << level])
    with pytest.raises(ValueError, match="only a full tile"):
        expand_tile(b"".join(leaves[:-1]))


@pytest.mark.parametrize("batches", [
    [1] * 300,  # one leaf at a time: tile 0 completes on the 256th
    [255, 1, 256, 257, 1000, 3],  # exactly at a boundary, one past it, several tiles at once
    [256 * 5 + 7],  # five tiles in one batch
    [1000, 1, 255, 512],
])
def test_extended_expands_each_tile_once_in_the_batch_that_completes_it(batches: list[int]) -> None:
    leaves = _leaves(sum(batches))
    state = TreeState.empty()
    for batch in batches:
        old = state.size
        state, writes = state.extended(leaves[old:old + batch])
        expanded = {w.index: w.expansion for w in writes if w.expansion}
        assert len(expanded) == len([w for w in writes if w.expansion])  # one write per tile
        assert all(w.level == 0 for w in writes if w.expansion)
        completed = range(old // TILE_WIDTH, state.size // TILE_WIDTH)
        assert sorted(expanded) == list(completed)
        for t in completed:
            assert expanded[t] == expand_tile(b"".join(leaves[t * TILE_WIDTH:(t + 1) * TILE_WIDTH]))


def test_a_restored_tree_expands_the_tile_it_completes() -> None:
    """What the log's sequencer extends after a restart: `TreeState.restore` from tiles."""
    leaves = _leaves(1100)
    _, tiles = _build(leaves[:1000], 100)
    level1 = bytes(tiles[(1, 0)])
    restored = TreeState.restore(1000, [level1[i:i + 32] for i in range(0, len(level1), 32)],
                                 leaves[768:1000])
    _, writes = restored.extended(leaves[1000:])
    assert [(w.index, w.expansion) for w in writes if w.expansion] == [
        (3, expand_tile(b"".join(leaves[768:1024])))]

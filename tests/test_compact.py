"""Compact ranges (tlog.core.compact) against RFC 9162's recursive MTH, computed here from
its definition: every hash they hold or visit is the root of the leaves it covers."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest

from tlog.core.compact import CompactRange, root_from_leaf_hashes
from tlog.core.merkle import EMPTY_ROOT, leaf_hash, perfect_subtrees


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, as written: split at the largest power of two below n."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


LEAVES = [leaf_hash(b"%d" % i) for i in range(300)]


def node(level: int, index: int) -> bytes:
    return mth(LEAVES[index << level:(index + 1) << level])


@pytest.mark.parametrize("begin", [0, 1, 3, 8, 13, 64])
def test_appends_hold_the_perfect_subtrees_of_the_range(begin: int) -> None:
    cr = CompactRange(begin, begin)
    for end in range(begin, begin + 80):
        assert cr.nodes() == perfect_subtrees(begin, end)
        assert cr.hashes == [node(lv, ix) for lv, ix in cr.nodes()]
        cr.append(LEAVES[end])
    assert cr.end == begin + 80


def test_root_is_mth_and_only_ranges_from_zero_have_one() -> None:
    for n in (0, 1, 2, 3, 7, 8, 9, 255, 256, 257, 300):
        assert CompactRange.of(LEAVES[:n]).root() == mth(LEAVES[:n]) == root_from_leaf_hashes(LEAVES[:n])
    assert CompactRange().root() == EMPTY_ROOT
    with pytest.raises(ValueError, match="no tree root"):
        CompactRange.of(LEAVES[5:9], begin=5).root()


def test_visitor_sees_every_completed_node_once_with_its_hash() -> None:
    seen: dict[tuple[int, int], bytes] = {}

    def visit(level: int, index: int, h: bytes) -> None:
        assert (level, index) not in seen
        seen[(level, index)] = h

    cr = CompactRange()
    cr.extend(LEAVES[:100], visit)
    cr.append(LEAVES[100], visit)
    n = 101
    expected = {(lv, ix) for lv in range(n.bit_length()) for ix in range(n >> lv)}
    assert set(seen) == expected
    assert all(h == node(lv, ix) for (lv, ix), h in seen.items())


def test_extend_and_append_agree() -> None:
    one, many = CompactRange(7, 7), CompactRange(7, 7)
    for h in LEAVES[7:200]:
        one.append(h)
    many.extend(LEAVES[7:200])
    assert one == many and one.copy() == one and one.copy().hashes is not one.hashes


def test_merging_adjacent_ranges_is_the_range_of_both() -> None:
    rng = random.Random(7)
    for _ in range(300):
        begin, mid, end = sorted(rng.randrange(0, 260) for _ in range(3))
        left = CompactRange.of(LEAVES[begin:mid], begin)
        new: list[tuple[int, int]] = []

        def visit(level: int, index: int, h: bytes, new: list[tuple[int, int]] = new) -> None:
            new.append((level, index))

        left.merge(CompactRange.of(LEAVES[mid:end], mid), visit)
        assert left == CompactRange.of(LEAVES[begin:end], begin)
        # Only nodes that span the cut are new; each is a merged one, above the leaves.
        assert all(lv > 0 and (ix << lv) < mid < ((ix + 1) << lv) for lv, ix in new)
    with pytest.raises(ValueError, match="cannot merge"):
        CompactRange.of(LEAVES[:3]).merge(CompactRange.of(LEAVES[4:6], 4))


@pytest.mark.parametrize("begin,end,hashes", [
    (0, 3, [b"\0" * 32]),  # [0, 3) is two subtrees
    (0, 4, [b"\0" * 31]),  # not a hash
    (5, 4, []),  # not a range
    (-1, 0, []),
])
def test_malformed_ranges_are_refused(begin: int, end: int, hashes: list[bytes]) -> None:
    with pytest.raises(ValueError):
        CompactRange(begin, end, hashes)


def test_core_and_the_monitor_load_no_server_dependency() -> None:
    """tlog.core is pure and tile constants live in tlog.core.tiles: a client, a monitor or an
    auditor's tile reader never imports the server's tree engine (pymerkle) or its database."""
    code = ("import importlib, pkgutil, sys, tlog.core\n"
            "for m in pkgutil.walk_packages(tlog.core.__path__, 'tlog.core.'):\n"
            "    importlib.import_module(m.name)\n"
            "import tlog.client.http, tlog.audit.monitor, tlog.audit.tilesync\n"
            "print(sorted(m for m in ('pymerkle', 'aiosqlite', 'tlog.server') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr

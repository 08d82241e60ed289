"""Compact ranges: leaves [begin, end) of a Merkle tree held as the roots of the maximal perfect
subtrees that cover them, left to right (transparency-dev/merkle's `compact.Range`; see its
docs/compact_ranges.md).

RFC 9162 §2.1.1 splits MTH at the largest power of two, so the root of [0, n) is the fold,
right to left, of the perfect subtrees of [0, n): one per set bit of n. Appending a leaf merges
it with the trailing subtrees it completes; each node completed on the way can be handed to a
visitor. That one fold serves the whole project: the log stores its tiles from the visitor
(tlog.server.tree), monitors keep [0, size) between runs and fold in what they download
(tlog.audit.monitor), auditors and fsck recompute roots from leaves. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from tlog.core.merkle import EMPTY_ROOT, HASH_SIZE, node_hash, perfect_subtrees

# Told of each node as it becomes known: (Merkle level, index at that level, hash).
Visitor = Callable[[int, int, bytes], None]


class CompactRange:
    """The roots of the perfect subtrees covering [begin, end), left to right.

    `hashes[i]` is the node `perfect_subtrees(begin, end)[i]`; a range of [0, n) holds one
    hash per set bit of n, largest subtree first.
    """

    __slots__ = ("begin", "end", "hashes")

    def __init__(self, begin: int = 0, end: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.begin = begin
        self.end = end
        self.hashes = list(hashes)
        if not 0 <= begin <= end:
            raise ValueError(f"[{begin}, {end}) is not a range of leaves")
        want = len(perfect_subtrees(begin, end))
        if len(self.hashes) != want or any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError(f"a compact range of [{begin}, {end}) is {want} hashes of {HASH_SIZE} "
                             f"bytes, not {len(self.hashes)}")

    @classmethod
    def of(cls, leaves: Iterable[bytes], begin: int = 0) -> CompactRange:
        """The compact range of `leaves` (leaf hashes) placed at [begin, begin + len)."""
        cr = cls(begin, begin)
        cr.extend(leaves)
        return cr

    def copy(self) -> CompactRange:
        """An independent copy (the hashes list is not shared), without re-checking."""
        cr = CompactRange.__new__(CompactRange)
        cr.begin, cr.end, cr.hashes = self.begin, self.end, list(self.hashes)
        return cr

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self.begin, self.end, self.hashes) == (other.begin, other.end, other.hashes)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange({self.begin}, {self.end}, <{len(self.hashes)} hashes>)"

    def nodes(self) -> list[tuple[int, int]]:
        """(level, index) of each hash, as in `perfect_subtrees`."""
        return perfect_subtrees(self.begin, self.end)

    def append(self, leaf: bytes, visit: Visitor | None = None) -> None:
        """Add the leaf hash at position `end`; `visit` sees the leaf, then each node it
        completes, bottom-up."""
        if visit is not None:
            visit(0, self.end, leaf)
        self._push(0, leaf, visit)

    def extend(self, leaves: Iterable[bytes], visit: Visitor | None = None) -> None:
        """`append` each leaf hash in turn.

        `_push` unrolled for leaves, with node_hash inlined: the log's sequencer runs this for
        every entry (tlog.server.tree), and a call per node would cost it ~10%.
        """
        hashes, begin, end = self.hashes, self.begin, self.end
        pop, push, sha256 = hashes.pop, hashes.append, hashlib.sha256
        for h in leaves:
            if visit is not None:
                visit(0, end, h)
            index, level = end, 0
            end += 1
            while index & 1 and (index - 1) << level >= begin:
                h = sha256(b"\x01" + pop() + h).digest()  # node_hash(left, h), RFC 6962 §2.1
                index >>= 1
                level += 1
                if visit is not None:
                    visit(level, index, h)
            push(h)
        self.end = end

    def merge(self, other: CompactRange, visit: Visitor | None = None) -> None:
        """Extend this range [begin, mid) by the adjacent [mid, end) of `other`: its subtrees
        are pushed left to right, so each one merges with what it completes here; `visit`
        sees the new nodes only (transparency-dev's AppendRange)."""
        if other.begin != self.end:
            raise ValueError(f"cannot merge [{other.begin}, {other.end}) onto [{self.begin}, {self.end})")
        for (level, _), h in zip(other.nodes(), other.hashes, strict=True):
            self._push(level, h, visit)

    def _push(self, level: int, h: bytes, visit: Visitor | None) -> None:
        """Add the perfect subtree at (level, end >> level), whose hash is `h`: while it is a
        right child whose left sibling lies in the range (the trailing hash), the two merge."""
        hashes = self.hashes
        index = self.end >> level
        self.end += 1 << level
        while index & 1 and (index - 1) << level >= self.begin:
            h = node_hash(hashes.pop(), h)
            index >>= 1
            level += 1
            if visit is not None:
                visit(level, index, h)
        hashes.append(h)

    def root(self) -> bytes:
        """MTH(D[0:end]) (RFC 9162 §2.1.1): defined for a range that starts at leaf 0."""
        if self.begin != 0:
            raise ValueError(f"a range from leaf {self.begin} has no tree root; only [0, n) has")
        hashes = self.hashes
        if not hashes:
            return EMPTY_ROOT
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = node_hash(h, acc)
        return acc


def root_from_leaf_hashes(leaves: Iterable[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (RFC 9162 §2.1.1): the reference computation for
    tests, audits and fsck."""
    return CompactRange.of(leaves).root()

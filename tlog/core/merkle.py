"""RFC 6962 / RFC 9162 Merkle tree hashing, proof layouts and proof verification.

Pure functions over bytes. Proof *generation* is split the Go sumdb/tlog way: the functions
here say which subtree ranges a proof needs (plan); `tlog.server.tree` looks their hashes up in
tile storage (fetch) and folds them with pymerkle (compute). Verification is independent
of any tree engine, so a client can check what a server sends with this module alone.
Roots of runs of leaves (and the tree's own root) are folded by tlog.core.compact.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from hmac import compare_digest

from tlog.errors import VerificationError

HASH_SIZE = 32  # bytes in every tree hash (SHA-256, RFC 6962 §2.1); tiles hold them side by side
# RFC 9162 §2.1.1: MTH({}) = SHA-256() — the empty string, no prefix.
EMPTY_ROOT = hashlib.sha256(b"").digest()

Range = tuple[int, int]  # [start, end) of leaf positions, counting from zero


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data) — RFC 6962 §2.1, the hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) — RFC 6962 §2.1, an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(width: int) -> int:
    """The largest power of two strictly less than `width` (RFC 9162 §2.1.1's k)."""
    return 1 << ((width - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """Subtree ranges whose roots form the inclusion proof of leaf `index` in a tree of
    `size` leaves, ordered leaf to root (RFC 9162 §2.1.3.1, PATH(m, D[n]))."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[Range]:
    """Subtree ranges whose roots form the consistency proof from `size1` to `size2`,
    in proof order (RFC 9162 §2.1.4.1, PROOF(m, D[n]) = SUBPROOF(m, D[n], true))."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[Range] = []
    start, m, n, complete = 0, size1, size2, True
    # SUBPROOF recursion unrolled: the right-hand siblings are collected on the way down
    # and come after the leftmost node, so they are reversed at the end.
    while m != n:
        k = _split(n)
        if m <= k:
            ranges.append((start + k, start + n))
            n = k
        else:
            ranges.append((start, start + k))
            start, m, n, complete = start + k, m - k, n - k, False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}: the old root is not known here.
        ranges.append((start, start + n))
    ranges.reverse()
    return ranges


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Decompose [start, end) into maximal perfect subtrees, left to right, as
    (level, index) pairs: the node at `level` covering leaves [index << level, ...)."""
    nodes: list[tuple[int, int]] = []
    while start < end:
        level = (end - start).bit_length() - 1
        # A perfect subtree must also be aligned on its own width.
        while start & ((1 << level) - 1):
            level -= 1
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _check_hashes(proof: Sequence[object], what: str) -> None:
    """Proofs come from the network: check what the types only promise."""
    for h in proof:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise VerificationError(f"{what}: every proof hash must be {HASH_SIZE} bytes")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes,
                              proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2), or VerificationError
    when the proof cannot be one for (index, size)."""
    if not 0 <= index < size:
        raise VerificationError(f"inclusion proof: index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise VerificationError("inclusion proof: leaf hash must be 32 bytes")
    _check_hashes(proof, "inclusion proof")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof: longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof: shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes],
                     root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise VerificationError unless `proof` shows `leaf` at `index`."""
    if not compare_digest(root_from_inclusion_proof(index, size, leaf, proof), root):
        raise VerificationError("inclusion proof: computed root does not match the tree's root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes,
                       root2: bytes) -> None:
    """RFC 9162 §2.1.4.2: raise VerificationError unless the tree of `size2` leaves with
    `root2` extends the tree of `size1` leaves with `root1`."""
    if not 0 <= size1 <= size2:
        raise VerificationError(f"consistency proof: size {size1} is larger than size {size2}")
    _check_hashes(proof, "consistency proof")
    if size1 == size2:
        if proof:
            raise VerificationError("consistency proof: must be empty for equal sizes")
        if not compare_digest(root1, root2):
            raise VerificationError("consistency proof: equal sizes but different roots")
        if size1 == 0 and not compare_digest(root1, EMPTY_ROOT):
            raise VerificationError("consistency proof: the empty tree's root is SHA-256(\"\")")
        return
    if size1 == 0:
        # Every tree extends the empty tree, but RFC 9162 defines no proof from size 0:
        # an auditor holding size 0 holds nothing to check against.
        raise VerificationError("consistency proof: there is no proof from an empty tree")
    if not proof:
        raise VerificationError("consistency proof: empty proof for different sizes")
    if len(root1) != HASH_SIZE or len(root2) != HASH_SIZE:
        raise VerificationError("consistency proof: roots must be 32 bytes")
    path = list(proof)
    # Step 2: if size1 is an exact power of two, the old root is the proof's first node.
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 4: right-shift while LSB(fn) is set
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof: longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof: shorter than needed")
    if not compare_digest(fr, root1):
        raise VerificationError("consistency proof: does not lead to the old root")
    if not compare_digest(sr, root2):
        raise VerificationError("consistency proof: does not lead to the new root")

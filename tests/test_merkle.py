"""RFC 6962/9162 proofs: every transparency-dev vector, and proofs we generate."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest
from pymerkle import InmemoryTree

from tlog.core.compact import root_from_leaf_hashes
from tlog.core.merkle import (
    EMPTY_ROOT,
    consistency_ranges,
    inclusion_ranges,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from tlog.errors import VerificationError

# The transparency-dev/merkle vectors, vendored (see tests/data/merkle/README.md for provenance).
VECTORS = Path(__file__).resolve().parent / "data" / "merkle"
LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f")]


def _b64(s: str) -> bytes:
    return base64.b64decode(s) if s else b""


def _vectors(kind: str) -> list[Path]:
    return sorted((VECTORS / kind).rglob("*.json"))


def test_vectors_present() -> None:
    assert len(_vectors("inclusion")) > 50 and len(_vectors("consistency")) > 50


@pytest.mark.parametrize("path", _vectors("inclusion"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(h) for h in v["proof"] or []]
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))
    else:
        verify_inclusion(v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), proof, _b64(v["root"]))


@pytest.mark.parametrize("path", _vectors("consistency"), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    proof = [_b64(h) for h in v["proof"] or []]
    args = (v["size1"], v["size2"], proof, _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_reference_root_of_the_eight_vector_leaves() -> None:
    root = root_from_leaf_hashes([leaf_hash(x) for x in LEAVES])
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    assert root_from_leaf_hashes([]) == EMPTY_ROOT


def test_ranges_match_rfc_recursion() -> None:
    """Our unrolled PATH/SUBPROOF layouts equal a literal transcription of RFC 9162 §2.1.3.1
    and §2.1.4.1 for every size up to 70."""
    def k_of(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def path(m: int, lo: int, hi: int) -> list[tuple[int, int]]:
        n = hi - lo
        if n == 1:
            return []
        k = k_of(n)
        if m < k:
            return path(m, lo, lo + k) + [(lo + k, hi)]
        return path(m - k, lo + k, hi) + [(lo, lo + k)]

    def subproof(m: int, lo: int, hi: int, b: bool) -> list[tuple[int, int]]:
        n = hi - lo
        if m == n:
            return [] if b else [(lo, hi)]
        k = k_of(n)
        if m <= k:
            return subproof(m, lo, lo + k, b) + [(lo + k, hi)]
        return subproof(m - k, lo + k, hi, False) + [(lo, lo + k)]

    for n in range(1, 71):
        for m in range(n):
            assert inclusion_ranges(m, n) == path(m, 0, n)
        for m in range(1, n + 1):
            assert consistency_ranges(m, n) == subproof(m, 0, n, True)


def _range_root(leaves: list[bytes], r: tuple[int, int]) -> bytes:
    return root_from_leaf_hashes(leaves[r[0]:r[1]])


def test_generated_proofs_verify_and_agree_with_pymerkle() -> None:
    rng = random.Random(6962)
    data = [rng.randbytes(rng.randint(0, 40)) for _ in range(130)]
    leaves = [leaf_hash(d) for d in data]
    ref = InmemoryTree()
    for d in data:
        ref.append_entry(d)
    for n in range(1, len(leaves) + 1):
        root = root_from_leaf_hashes(leaves[:n])
        assert root == ref.get_root(n)
        for m in range(n):
            proof = [_range_root(leaves, r) for r in inclusion_ranges(m, n)]
            verify_inclusion(m, n, leaves[m], proof, root)
        for m in range(1, n + 1):
            proof = [_range_root(leaves, r) for r in consistency_ranges(m, n)]
            verify_consistency(m, n, proof, root_from_leaf_hashes(leaves[:m]), root)


def test_tampered_proofs_fail() -> None:
    leaves = [leaf_hash(bytes([i])) for i in range(21)]
    root = root_from_leaf_hashes(leaves)
    proof = [_range_root(leaves, r) for r in inclusion_ranges(5, 21)]
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(VerificationError):
            verify_inclusion(5, 21, leaves[5], bad, root)
    with pytest.raises(VerificationError):
        verify_inclusion(5, 21, leaves[5], proof[:-1], root)
    with pytest.raises(VerificationError):
        verify_inclusion(6, 21, leaves[5], proof, root)
    cproof = [_range_root(leaves, r) for r in consistency_ranges(7, 21)]
    old = root_from_leaf_hashes(leaves[:7])
    for i in range(len(cproof)):
        bad = list(cproof)
        bad[i] = bytes(32)
        with pytest.raises(VerificationError):
            verify_consistency(7, 21, bad, old, root)
    with pytest.raises(VerificationError):
        verify_consistency(7, 21, cproof + [bytes(32)], old, root)
    with pytest.raises(VerificationError):
        verify_consistency(8, 21, cproof, old, root)

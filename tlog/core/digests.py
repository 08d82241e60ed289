"""The artifact digest algorithms an entry may name: one table for admission, the search
API and the OpenAPI document.

Rekor's hashedrekord v0.0.1 schema (hashedrekord_v0_0_1_schema.json, `data.hash.algorithm`)
enumerates sha256, sha384 and sha512, lower-case names only, with the digest as hex; Rekor's
SearchIndex `hash` is "<algorithm>:<hex>", and without the prefix the hex length picks the
algorithm. Everything else (the API's checks, the OpenAPI patterns, signature verification)
derives from `DIGESTS`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives import hashes

if TYPE_CHECKING:
    from _hashlib import HASH


@dataclass(frozen=True)
class Digest:
    """One digest algorithm: its schema name, its size and its implementations."""

    name: str  # as Rekor's schema spells it, also hashlib's name
    size: int  # bytes
    algorithm: type[hashes.HashAlgorithm]  # for verifying a signature over a prehashed digest

    @property
    def hex_length(self) -> int:
        return 2 * self.size

    @property
    def hex_pattern(self) -> str:
        """A regular expression (unanchored) for the digest as hex, either case: Rekor
        hex-decodes with Go's encoding/hex, which takes both."""
        return f"[0-9a-fA-F]{{{self.hex_length}}}"

    def new(self) -> HASH:
        """A hashlib object, to digest an artifact in pieces."""
        return hashlib.new(self.name)


DIGESTS: Final[Mapping[str, Digest]] = {
    d.name: d for d in (
        Digest("sha256", 32, hashes.SHA256),
        Digest("sha384", 48, hashes.SHA384),
        Digest("sha512", 64, hashes.SHA512),
    )
}

_BY_HEX_LENGTH: Final[Mapping[int, Digest]] = {d.hex_length: d for d in DIGESTS.values()}


def by_hex_length(length: int) -> Digest | None:
    """The algorithm whose hex digest has `length` digits (the lengths all differ), or None:
    what a search `hash` without an "<algorithm>:" prefix means."""
    return _BY_HEX_LENGTH.get(length)

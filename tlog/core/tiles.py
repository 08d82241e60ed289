"""C2SP tlog-tiles: tile paths and entry bundles (https://c2sp.org/tlog-tiles).

A tile at level L holds up to 256 hashes of Merkle level 8·L; tile N covers nodes
[256·N, 256·N + 256). A partial tile of width W holds the first W. Paths split N into
3-digit groups, all but the last prefixed with "x": 1234067 → x001/x234/067.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tlog.core.merkle import HASH_SIZE
from tlog.errors import InvalidInput, NotFound

TILE_HEIGHT = 8  # C2SP tlog-tiles: a tile spans 8 levels of the Merkle tree ...
TILE_WIDTH = 1 << TILE_HEIGHT  # ... so a full tile holds 256 hashes (or entries)
MAX_LEVEL = 63 // TILE_HEIGHT + 1
_MAX_PATH = 128  # "entries/" + 7 groups of "x999/" covers every 64-bit index, with room
_GROUP = re.compile(r"x\d{3}")
_LAST = re.compile(r"\d{3}")


@dataclass(frozen=True)
class TileRef:
    """A tile address: level (or "entries" for entry bundles), index, width (256 = full)."""

    level: int | None  # None: the entry bundle tile
    index: int
    width: int = TILE_WIDTH

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    def path(self) -> str:
        lvl = "entries" if self.level is None else str(self.level)
        tail = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{lvl}/{encode_index(self.index)}{tail}"


def encode_index(n: int) -> str:
    """N as "x001/x234/067" (tlog-tiles "Tile index encoding")."""
    if n < 0:
        raise ValueError("tile index must be non-negative")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def parse_tile_path(path: str) -> TileRef:
    """Parse "<L>/<N>[.p/<W>]" or "entries/<N>[.p/<W>]" (what follows "tile/")."""
    bad = NotFound(f"not a tile path: tile/{path[:200]}")
    # Tile paths are short and ASCII (str.isdigit() and \\d also take "²" and "٣", and
    # int() refuses more than 4,300 digits): anything else is not a tile.
    if len(path) > _MAX_PATH or not path.isascii():
        raise bad
    parts = path.split("/")
    if len(parts) < 2:
        raise bad
    level_s, rest = parts[0], parts[1:]
    if level_s == "entries":
        level: int | None = None
    elif level_s.isdigit() and (level_s == "0" or not level_s.startswith("0")) and int(level_s) <= MAX_LEVEL:
        level = int(level_s)
    else:
        raise bad
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not (w.isdigit() and not w.startswith("0") and 1 <= int(w) < TILE_WIDTH):
            raise bad
        width = int(w)
        rest = rest[:-2] + [rest[-2][:-2]]
    if not rest or not all(_GROUP.fullmatch(g) for g in rest[:-1]) or not _LAST.fullmatch(rest[-1]):
        raise bad
    index = 0
    for g in rest:
        index = index * 1000 + int(g.lstrip("x"))
    # The encoding is unique: no leading all-zero groups ("x000/001" is not 1).
    if encode_index(index) != "/".join(rest):
        raise bad
    return TileRef(level, index, width)


def tile_width_at(level: int, index: int, tree_size: int) -> int:
    """How many hashes tile (level, index) holds at `tree_size` (0 if none yet)."""
    nodes = tree_size >> (TILE_HEIGHT * level)
    return max(0, min(TILE_WIDTH, nodes - index * TILE_WIDTH))


def encode_entry_bundle(bodies: Iterable[bytes]) -> bytes:
    """Entry bundle: each entry as a big-endian uint16 length and its bytes. Joined once,
    so the bundle costs one copy of the bodies (a full one of large entries is 16 MiB)."""
    parts: list[bytes] = []
    for b in bodies:
        if len(b) > 0xFFFF:
            raise ValueError(f"entry of {len(b)} bytes does not fit a tile entry bundle")
        parts += (len(b).to_bytes(2, "big"), b)
    return b"".join(parts)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise InvalidInput("entry bundle is truncated inside a length prefix")
        n = int.from_bytes(data[pos:pos + 2], "big")
        if pos + 2 + n > len(data):
            raise InvalidInput("entry bundle is truncated inside an entry")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def split_hashes(data: bytes) -> Sequence[bytes]:
    """A hash tile's bytes as its hashes (tlog-tiles: hashes side by side, nothing else)."""
    if len(data) % HASH_SIZE:
        raise InvalidInput(f"a hash tile's length must be a multiple of {HASH_SIZE}")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]

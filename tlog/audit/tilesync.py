"""What a monitor (tlog.audit.monitor) and an auditor (tlog.audit.rebuild) share: reading a
log's tiles and entry bundles over HTTP with their shapes checked, and keeping a JSON state
file between runs.

Tiles follow C2SP tlog-tiles: a partial tile may be gone once the full one exists, and its
prefix is the same, so a reader falls back to the full tile. A state file is replaced whole
(temp file, fsync, rename, fsync the directory: tlog.files) under a lock, so a crash or an
overlapping run never leaves half a state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import json
import os
import re
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from contextlib import aclosing, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tlog.client.http import LogClient
from tlog.core.merkle import HASH_SIZE
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH, TileRef, decode_entry_bundle, split_hashes, tile_width_at
from tlog.core.trusted import TrustedLog
from tlog.errors import InvalidInput, TlogError, VerificationError
from tlog.files import write_atomically

DEFAULT_CONCURRENCY = 8  # tile requests in flight at once

Progress = Callable[[int, int], None]  # (done, total)
Bundle = tuple[int, list[bytes]]  # (log index of the first entry, entry bodies)

K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")


# -- reading tiles -----------------------------------------------------------------------------

async def _tile(client: LogClient, ref: TileRef) -> bytes:
    data = await client.tile(ref)
    if data is None and ref.is_partial:
        # tlog-tiles: a partial tile may be gone once the full one exists; its prefix is the same.
        data = await client.tile(TileRef(ref.level, ref.index))
    if data is None:
        raise TlogError(f"the log does not serve {ref.path()}")
    return data


async def read_hash_tile(client: LogClient, level: int, index: int, size: int) -> list[bytes]:
    """The hashes of tile (level, index) as of tree `size`: VerificationError if malformed."""
    width = tile_width_at(level, index, size)
    data = await _tile(client, TileRef(level, index, width))
    if len(data) < width * HASH_SIZE or len(data) % HASH_SIZE:
        raise VerificationError(f"tile {TileRef(level, index, width).path()} holds "
                                f"{len(data)} bytes, not {width} hashes")
    return list(split_hashes(data[:width * HASH_SIZE]))


async def read_entry_bundle(client: LogClient, index: int, size: int) -> list[bytes]:
    """The bodies of entry bundle `index` as of tree `size`: VerificationError if malformed."""
    width = tile_width_at(0, index, size)
    ref = TileRef(None, index, width)
    try:
        bodies = decode_entry_bundle(await _tile(client, ref))
    except InvalidInput as e:
        raise VerificationError(f"{ref.path()}: {e}") from e
    if len(bodies) < width or (len(bodies) > width and not ref.is_partial) or len(bodies) > TILE_WIDTH:
        raise VerificationError(f"{ref.path()} holds {len(bodies)} entries, not {width}")
    return bodies[:width]


async def ordered_prefetch(keys: Iterable[K], fetch: Callable[[K], Awaitable[V]],
                           concurrency: int = DEFAULT_CONCURRENCY) -> AsyncGenerator[V, None]:
    """fetch(k) for each key, up to `concurrency` at once, yielded in key order.
    Use with contextlib.aclosing so that an early exit cancels what is in flight."""
    it = iter(keys)
    pending: deque[asyncio.Future[V]] = deque()

    def fill() -> None:
        for k in it:
            pending.append(asyncio.ensure_future(fetch(k)))
            if len(pending) >= concurrency:
                return

    try:
        fill()
        while pending:
            value = await pending.popleft()
            fill()
            yield value
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def tiles_between(start: int, end: int) -> range:
    """Indexes of the level-0 tiles (and entry bundles) holding leaves [start, end)."""
    return range(start >> TILE_HEIGHT, (end + TILE_WIDTH - 1) >> TILE_HEIGHT)


async def read_entries(client: LogClient, start: int, end: int, size: int,
                       concurrency: int = DEFAULT_CONCURRENCY) -> AsyncGenerator[Bundle, None]:
    """Entries [start, end) of the tree at `size`, a bundle at a time: (first index, bodies)."""

    async def fetch(t: int) -> Bundle:
        bodies = await read_entry_bundle(client, t, size)
        lo = max(start, t * TILE_WIDTH)
        return lo, bodies[lo - t * TILE_WIDTH: min(end, (t + 1) * TILE_WIDTH) - t * TILE_WIDTH]

    async with aclosing(ordered_prefetch(tiles_between(start, end), fetch, concurrency)) as bundles:
        async for item in bundles:
            yield item


# -- state files -------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(s: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(s).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError(f"{what} is not base64") from None


def default_state_path(kind: str, origin: str) -> Path:
    """`$XDG_STATE_HOME/tlog/<kind>-<origin>.json` (~/.local/state by default)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tlog" / f"{kind}-{re.sub(r'[^A-Za-z0-9._-]', '_', origin)}.json"


class JsonState(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def read_state(path: Path, parse: Callable[[dict[str, Any]], S]) -> S | None:
    """The state in a JSON state file, parsed; None if there is none yet."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return parse(doc)
    except (ValueError, KeyError, TypeError) as e:
        raise TlogError(f"state file {path} is malformed ({e}); fix or remove it") from e


def write_state(path: Path, state: JsonState) -> None:
    write_atomically(path, (json.dumps(state.to_json(), indent=2) + "\n").encode("utf-8"))


@contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold `<state>.lock` so that two runs (an overlapping cron job) never share a state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TlogError(f"another run is using {path}; try again when it has finished") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_state_identity(saved_origin: str, saved_log_id: str, log: TrustedLog, path: str) -> None:
    if saved_origin != log.name or saved_log_id != log.log_id_hex:
        raise TlogError(f"{path} belongs to log {saved_origin} (logID {saved_log_id[:16]}…), not "
                        f"{log.name} (logID {log.log_id_hex[:16]}…); use another --state")

"""Monitoring a log (DESIGN §1): keep the last verified checkpoint, check that each newer one
extends it, read the new entries from entry tiles, report those of watched keys/artifacts.

One round (`check_log`): fetch `/checkpoint`; verify it with the pinned log key (and, if
asked, K witness cosignatures, tlog.core.cosignature); check the RFC 9162 §2.1.4 consistency proof
from the saved checkpoint; download the new entry bundles (C2SP tlog-tiles) and fold their
leaf hashes into the saved compact range — the perfect-subtree roots of [0, size) — whose
root must come out as the checkpoint's, so every entry reported is one the log committed
to. Anything that contradicts the saved state raises ForkAlert, and the state must then not
be saved: the saved checkpoint and the offending one are the evidence.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import json
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from hmac import compare_digest
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tlog.core.checkpoint import Checkpoint, verify_checkpoint
from tlog.client.http import LogAPIError, LogClient
from tlog.core.cosignature import CosignatureVerifier, cosigned_by
from tlog.errors import InvalidInput, TlogError, VerificationError
from tlog.files import write_atomically
from tlog.core.entries.hashedrekord import parse_body, public_key_fingerprint_of_pem
from tlog.core.merkle import HASH_SIZE, fold_subtrees, leaf_hash, node_hash, verify_consistency
from tlog.core.note import parse_note
from tlog.core.tiles import TileRef, decode_entry_bundle, split_hashes, tile_width_at
from tlog.server.tree import TILE_HEIGHT, TILE_WIDTH
from tlog.core.trusted import TrustedLog

STATE_VERSION = 1
DEFAULT_CONCURRENCY = 8

Event = dict[str, Any]
Emit = Callable[[Event], None]
Progress = Callable[[int, int], None]  # (done, total)

K = TypeVar("K")
V = TypeVar("V")
S = TypeVar("S")


class ForkAlert(TlogError):
    """The log contradicted the saved checkpoint: a fork, a rewrite, or a forged head."""

    def __init__(self, event: Event) -> None:
        super().__init__(f"FORK ALERT for {event['origin']}: {event['detail']}")
        self.event = event


class WitnessQuorumError(TlogError):
    """The checkpoint lacks the required number of valid witness cosignatures."""


# -- compact ranges ----------------------------------------------------------------------------

def extend_compact_range(size: int, nodes: Sequence[bytes],
                         leaves: Iterable[bytes]) -> tuple[int, list[bytes]]:
    """Append leaf hashes to the compact range [0, size): the roots of its perfect subtrees,
    left to right (one per set bit of size). Each leaf merges with the trailing subtrees
    of equal height — RFC 9162 §2.1.1's MTH, built incrementally; fold_subtrees gives the root."""
    out = list(nodes)
    for h in leaves:
        n, acc = size, h
        while n & 1:
            acc = node_hash(out.pop(), acc)
            n >>= 1
        out.append(acc)
        size += 1
    return size, out


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
                           concurrency: int = DEFAULT_CONCURRENCY) -> AsyncIterator[V]:
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
                       concurrency: int = DEFAULT_CONCURRENCY) -> AsyncIterator[tuple[int, list[bytes]]]:
    """Entries [start, end) of the tree at `size`, a bundle at a time: (first index, bodies)."""

    async def fetch(t: int) -> tuple[int, list[bytes]]:
        bodies = await read_entry_bundle(client, t, size)
        lo = max(start, t * TILE_WIDTH)
        return lo, bodies[lo - t * TILE_WIDTH: min(end, (t + 1) * TILE_WIDTH) - t * TILE_WIDTH]

    async with aclosing(ordered_prefetch(tiles_between(start, end), fetch, concurrency)) as bundles:
        async for item in bundles:
            yield item


# -- what to watch -----------------------------------------------------------------------------

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Watchlist:
    """Signing keys (by SHA-256 of their SPKI) and artifact digests to report entries for."""

    keys: Mapping[bytes, str] = field(default_factory=dict)  # fingerprint → label (file name)
    sha256: frozenset[str] = frozenset()

    @classmethod
    def build(cls, keys: Sequence[tuple[str, bytes]] = (), sha256: Sequence[str] = ()) -> Watchlist:
        """From (label, PEM public key or certificate) pairs and hex SHA-256 digests."""
        fingerprints = {}
        for label, pem in keys:
            try:
                fingerprints[public_key_fingerprint_of_pem(pem)] = label
            except InvalidInput as e:
                raise InvalidInput(f"watched key {label}: {e}") from e
        for d in sha256:
            if not _SHA256_HEX.fullmatch(d):
                raise InvalidInput(f"--watch-sha256 {d!r} is not 64 hex digits")
        return cls(fingerprints, frozenset(d.lower() for d in sha256))

    def __bool__(self) -> bool:
        return bool(self.keys or self.sha256)

    def matches(self, origin: str, first_index: int, bodies: Sequence[bytes]) -> list[Event]:
        if not self:
            return []
        events = []
        for i, body in enumerate(bodies):
            try:
                entry = parse_body(body)
            except InvalidInput:
                continue  # not a hashedrekord: nothing a key or digest could match
            why = []
            fingerprint = entry.public_key_fingerprint()
            if fingerprint in self.keys:
                why.append("key")
            if entry.algorithm == "sha256" and entry.digest.hex() in self.sha256:
                why.append("sha256")
            if why:
                events.append({"event": "match", "origin": origin, "index": first_index + i,
                               "uuid": leaf_hash(body).hex(), "matched": why,
                               "artifact": entry.artifact_key(),
                               "publicKeySha256": fingerprint.hex(),
                               **({"watchedKey": self.keys[fingerprint]} if "key" in why else {})})
        return events


@dataclass(frozen=True)
class MonitorOptions:
    watch: Watchlist = Watchlist()
    witnesses: tuple[CosignatureVerifier, ...] = ()
    min_witnesses: int = 0
    concurrency: int = DEFAULT_CONCURRENCY

    def __post_init__(self) -> None:
        if not 0 <= self.min_witnesses <= len(self.witnesses):
            raise InvalidInput(f"--min-witnesses {self.min_witnesses} needs at least that many "
                               f"--witness keys (got {len(self.witnesses)})")


# -- state -------------------------------------------------------------------------------------

def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(s: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(s).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError(f"{what} is not base64") from None


@dataclass(frozen=True)
class MonitorState:
    """The last checkpoint a monitor verified, with the compact range of its tree."""

    origin: str
    log_id: str  # hex
    size: int
    root: bytes
    compact: tuple[bytes, ...]
    checkpoint: bytes  # the signed note, kept as evidence should the log later contradict it

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "origin": self.origin, "logID": self.log_id,
                "treeSize": self.size, "rootHash": b64(self.root),
                "compactRange": [b64(h) for h in self.compact],
                "checkpoint": self.checkpoint.decode("utf-8"),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MonitorState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown state version {doc.get('version')!r}")
        size = doc["treeSize"]
        if not isinstance(size, int) or size < 0:
            raise ValueError("treeSize must be a non-negative integer")
        compact = tuple(unb64(h, "compactRange") for h in doc["compactRange"])
        root = unb64(doc["rootHash"], "rootHash")
        # The compact range holds one root per set bit of the size, and folds to the root.
        if len(compact) != bin(size).count("1") or fold_subtrees(compact) != root:
            raise ValueError("compactRange does not match treeSize and rootHash")
        return cls(str(doc["origin"]), str(doc["logID"]), size, root, compact,
                   str(doc["checkpoint"]).encode("utf-8"))


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


def load_state(path: Path) -> MonitorState | None:
    return read_state(path, MonitorState.from_json)


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


# -- one round ---------------------------------------------------------------------------------

def _head(size: int, root: bytes, note: bytes | None) -> dict[str, Any]:
    return {"size": size, "rootHash": b64(root),
            **({"checkpoint": note.decode("utf-8", "replace")} if note is not None else {})}


def _fork(log: TrustedLog, state: MonitorState | None, kind: str, detail: str, note: bytes,
          cp: Checkpoint | None) -> ForkAlert:
    event: Event = {"event": "fork", "origin": log.name, "log": log.url, "kind": kind, "detail": detail}
    if state is not None:
        event["saved"] = _head(state.size, state.root, state.checkpoint)
    event["seen"] = (_head(cp.size, cp.root_hash, note) if cp is not None
                     else {"checkpoint": note.decode("utf-8", "replace")})
    return ForkAlert(event)


def check_witnesses(note: bytes, options: MonitorOptions) -> list[str]:
    """Names of the configured witnesses that cosigned; WitnessQuorumError below the minimum."""
    if not options.witnesses:
        return []
    try:
        valid = cosigned_by(parse_note(note), options.witnesses)
    except (VerificationError, InvalidInput) as e:
        raise WitnessQuorumError(f"checkpoint cosignatures do not verify: {e}") from e
    if len(valid) < options.min_witnesses:
        raise WitnessQuorumError(
            f"checkpoint has {len(valid)} valid cosignature(s) from the given witnesses, "
            f"{options.min_witnesses} required")
    return [w.name for w in valid]


async def _check_consistency(client: LogClient, log: TrustedLog, state: MonitorState,
                             note: bytes, cp: Checkpoint) -> None:
    answer = await client.consistency(state.size, cp.size)
    try:
        proof = [bytes.fromhex(h) for h in answer["hashes"]]
    except (KeyError, TypeError, ValueError) as e:
        raise LogAPIError(200, f"malformed consistency proof from the log: {e}") from e
    try:
        verify_consistency(state.size, cp.size, proof, state.root, cp.root_hash)
    except VerificationError as e:
        raise _fork(log, state, "inconsistent", f"the checkpoint at size {cp.size} is not an "
                    f"extension of the saved one at size {state.size}: {e}", note, cp) from e


async def check_log(client: LogClient, log: TrustedLog, state: MonitorState | None,
                    options: MonitorOptions, emit: Emit,
                    progress: Progress | None = None) -> MonitorState:
    """One monitoring round against `log`; returns the state to save.

    Raises ForkAlert (do not save), WitnessQuorumError, or TlogError for operational
    failures (network, log errors). Events: "checkpoint" once verified, then "match" for
    each new entry of a watched key or artifact.
    """
    if state is not None:
        check_state_identity(state.origin, state.log_id, log, "the state file")
    note = await client.checkpoint()
    try:
        cp = verify_checkpoint(note, log.public_key, log.name)
    except VerificationError as e:
        raise _fork(log, state, "bad_signature", str(e), note, None) from e
    witnessed = check_witnesses(note, options)

    old_size = state.size if state is not None else 0
    if state is not None:
        if cp.size < state.size:
            raise _fork(log, state, "shrank", f"the tree shrank from {state.size} to {cp.size}",
                        note, cp)
        if cp.size == state.size and not compare_digest(cp.root_hash, state.root):
            raise _fork(log, state, "root_mismatch",
                        f"two different root hashes for tree size {cp.size}", note, cp)
        if 0 < state.size < cp.size:
            await _check_consistency(client, log, state, note, cp)

    size, nodes = old_size, list(state.compact) if state is not None else []
    matches: list[Event] = []
    try:
        async with aclosing(read_entries(client, old_size, cp.size, cp.size,
                                         options.concurrency)) as bundles:
            async for first, bodies in bundles:
                await asyncio.sleep(0)  # let cancellation (Ctrl-C) in between bundles
                size, nodes = extend_compact_range(size, nodes, (leaf_hash(b) for b in bodies))
                matches += options.watch.matches(log.name, first, bodies)
                if progress is not None:
                    progress(size - old_size, cp.size - old_size)
    except VerificationError as e:
        raise _fork(log, state, "bad_entries", f"entry bundles are malformed: {e}", note, cp) from e
    if not compare_digest(fold_subtrees(nodes), cp.root_hash):
        raise _fork(log, state, "bad_entries", f"entries {old_size}..{cp.size} served in the entry "
                    "bundles do not hash to the checkpoint's root", note, cp)

    emit({"event": "checkpoint", "origin": log.name, "log": log.url, "size": cp.size,
          "rootHash": b64(cp.root_hash), "previousSize": state.size if state else None,
          "newEntries": cp.size - old_size, "witnesses": witnessed})
    for m in matches:
        emit(m)
    return MonitorState(log.name, log.log_id_hex, cp.size, cp.root_hash, tuple(nodes), note)


async def monitor_round(log: TrustedLog, state_path: Path, options: MonitorOptions, emit: Emit,
                        progress: Progress | None = None, *, timeout: float = 60.0) -> MonitorState:
    """Load the state, run one round, save the new state (not on ForkAlert or any error)."""
    with state_lock(state_path):
        state = load_state(state_path)
        async with LogClient(log.url, timeout=timeout) as client:
            new = await check_log(client, log, state, options, emit, progress)
            write_state(state_path, new)
        return new

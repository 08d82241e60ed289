"""Auditing a log from its tiles (C2SP tlog-tiles): rebuild the tree from the entries, check
every tile the log serves, every entry's signature, and the signed checkpoint's root.

For each level-0 tile, in order: download the entry bundle and the hash tile, hash each
body (RFC 6962 leaf hash), verify each hashedrekord signature, append the leaves to a
tlog.core.tilestate.TreeState — which says exactly which hashes every tile, at every level, must hold —
and compare those with the tiles served. At the end the rebuilt root must equal the
checkpoint's. Progress is saved at tile boundaries, as (size, root there): a later run
rebuilds that snapshot from the level-1 tiles, checks it reproduces the saved root, and
carries on, so an audit can be interrupted and resumed, and re-run as the log grows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from hmac import compare_digest
from pathlib import Path
from typing import Any

from tlog.audit.tilesync import (
    DEFAULT_CONCURRENCY,
    Progress,
    b64,
    check_state_identity,
    ordered_prefetch,
    read_entry_bundle,
    read_hash_tile,
    read_state,
    state_lock,
    tiles_between,
    unb64,
    write_state,
)
from tlog.client.http import LogClient
from tlog.core.checkpoint import Checkpoint, verify_checkpoint
from tlog.core.entries import read_body
from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH
from tlog.core.tilestate import TileWrite, TreeState
from tlog.core.trusted import TrustedLog
from tlog.errors import InvalidInput, VerificationError

STATE_VERSION = 1
MAX_LISTED_FAILURES = 1000
SAVE_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class AuditFailure:
    """One thing wrong: its kind (body, signature, tile, root, fork, checkpoint), where, what."""

    kind: str
    detail: str
    index: int | None = None  # log index of the entry, where there is one

    def __str__(self) -> str:
        where = f"entry {self.index}: " if self.index is not None else ""
        return f"[{self.kind}] {where}{self.detail}"


@dataclass
class AuditState:
    """What a resumed audit starts from, and what earlier runs found."""

    origin: str
    log_id: str
    position: int = 0  # a tile boundary up to which the tree was rebuilt (resume point)
    position_root: bytes = b""
    audited_size: int = 0  # the last checkpoint whose root the audit reproduced
    audited_root: bytes = b""
    audited_checkpoint: bytes = b""
    failures: list[AuditFailure] = field(default_factory=list)
    failure_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "origin": self.origin, "logID": self.log_id,
                "position": self.position, "positionRoot": b64(self.position_root),
                "auditedSize": self.audited_size, "auditedRoot": b64(self.audited_root),
                "auditedCheckpoint": self.audited_checkpoint.decode("utf-8"),
                "failureCount": self.failure_count,
                "failures": [asdict(f) for f in self.failures],
                "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditState:
        if doc.get("version") != STATE_VERSION:
            raise ValueError(f"unknown audit state version {doc.get('version')!r}")
        position, audited = doc["position"], doc["auditedSize"]
        if not (isinstance(position, int) and position >= 0 and position % TILE_WIDTH == 0):
            raise ValueError("position must be a non-negative multiple of 256")
        if not (isinstance(audited, int) and audited >= 0):
            raise ValueError("auditedSize must be a non-negative integer")
        return cls(str(doc["origin"]), str(doc["logID"]), position,
                   unb64(doc["positionRoot"], "positionRoot"), audited,
                   unb64(doc["auditedRoot"], "auditedRoot"),
                   str(doc["auditedCheckpoint"]).encode("utf-8"),
                   [AuditFailure(str(f["kind"]), str(f["detail"]), f.get("index"))
                    for f in doc["failures"]], int(doc["failureCount"]))


def load_audit_state(path: Path) -> AuditState | None:
    return read_state(path, AuditState.from_json)


@dataclass
class AuditReport:
    origin: str
    log_url: str
    size: int
    root: bytes
    root_matches: bool
    resumed_from: int  # leaves already audited by earlier runs
    entries_checked: int  # by this run
    tiles_checked: int  # hash tiles and entry bundles compared by this run
    failures: list[AuditFailure]  # earlier runs' and this run's
    failure_count: int
    # False when the run stopped before it could rebuild the root (a fork, a checkpoint or a
    # tile it could not use): `root_matches` then says nothing about the root, and a report
    # must not claim the root differs when the history does.
    root_compared: bool = True
    # dsse/intoto entries whose signatures a body alone cannot check: it holds the hash of
    # the envelope or payload they sign, which tiles do not carry (`tlog fsck` checks them).
    signatures_unchecked: int = 0

    @property
    def ok(self) -> bool:
        return self.root_matches and self.failure_count == 0

    def to_json(self) -> dict[str, Any]:
        return {"event": "audit", "origin": self.origin, "log": self.log_url, "ok": self.ok,
                "treeSize": self.size, "rootHash": b64(self.root),
                "rootMatches": self.root_matches, "rootCompared": self.root_compared,
                "resumedFrom": self.resumed_from,
                "entriesChecked": self.entries_checked, "tilesChecked": self.tiles_checked,
                "signaturesUnchecked": self.signatures_unchecked,
                "failureCount": self.failure_count,
                "failures": [asdict(f) for f in self.failures]}


class _Audit:
    """One run: the rebuilt tree, the upper tiles being compared, and what went wrong."""

    def __init__(self, client: LogClient, state: AuditState, cp: Checkpoint) -> None:
        self.client = client
        self.state = state
        self.cp = cp
        self.tree = TreeState.empty()
        self.upper: dict[int, tuple[int, list[bytes]]] = {}  # tile level → (index, hashes)
        self.tiles_checked = 0
        self.entries_checked = 0
        self.signatures_unchecked = 0

    def fail(self, kind: str, detail: str, index: int | None = None) -> None:
        failure = AuditFailure(kind, detail, index)
        if failure in self.state.failures:
            return  # found again: a resumed run re-reads the last partial tile
        self.state.failure_count += 1
        if len(self.state.failures) < MAX_LISTED_FAILURES:
            self.state.failures.append(failure)

    async def append(self, leaves: list[bytes], level0: list[bytes]) -> bool:
        """Grow the rebuilt tree, compare every tile hash it implies; False on a fork."""
        audited = self.state.audited_size
        size = self.tree.size
        # Split at the previously audited size: the rebuilt tree must pass through its root.
        cut = audited - size if size < audited < size + len(leaves) else len(leaves)
        for part in (leaves[:cut], leaves[cut:]):
            if not part:
                continue
            self.tree, writes = self.tree.extended(part)
            for w in writes:
                await self.compare(w, level0)
            if self.tree.size == audited and not compare_digest(self.tree.root(), self.state.audited_root):
                self.fail("fork", f"the entries no longer give the root audited before at size "
                          f"{audited}: the log's history changed")
                return False
        return True

    async def restore(self, position: int, root: bytes) -> bool:
        """Rebuild the tree at `position` (a tile boundary) from the level-1 tiles, which
        must reproduce the root an earlier run saved there."""
        if position == 0:
            return True
        level8: list[bytes] = []
        try:
            for j in tiles_between(0, position // TILE_WIDTH):
                level8 += await read_hash_tile(self.client, 1, j, self.cp.size)
        except VerificationError as e:
            self.fail("tile", str(e))
            return False
        self.tree = TreeState.restore(position, level8[:position // TILE_WIDTH], [])
        if not compare_digest(self.tree.root(), root):
            self.fail("fork", f"the level-1 tiles no longer give the root an earlier audit "
                      f"computed at size {position}: the log's history changed")
            return False
        return True

    async def upper_tile(self, level: int, index: int) -> list[bytes] | None:
        cached = self.upper.get(level)
        if cached is None or cached[0] != index:
            try:
                hashes = await read_hash_tile(self.client, level, index, self.cp.size)
            except VerificationError as e:
                self.fail("tile", str(e))
                hashes = []
            cached = self.upper[level] = (index, hashes)
            self.tiles_checked += 1
        return cached[1] or None

    async def compare(self, write: TileWrite, level0: list[bytes]) -> None:
        """The hashes the rebuilt tree puts in a tile must be the ones the log serves."""
        served = level0 if write.level == 0 else await self.upper_tile(write.level, write.index)
        if served is None:
            return  # unreadable: already a failure
        for k in range(len(write.hashes) // HASH_SIZE):
            pos = write.start + k
            if served[pos] != write.hashes[HASH_SIZE * k:HASH_SIZE * (k + 1)]:
                leaves = 1 << (TILE_HEIGHT * write.level)
                first = (write.index * TILE_WIDTH + pos) * leaves
                self.fail("tile", f"tile/{write.level} index {write.index} position {pos} "
                          f"(leaves {first}..{first + leaves - 1}) does not match the entries",
                          first if write.level == 0 else None)

    def check_entries(self, first: int, bodies: list[bytes]) -> None:
        for i, body in enumerate(bodies):
            index = first + i
            try:  # any kind the log accepts (tlog.core.entries)
                entry = read_body(body)
            except InvalidInput as e:
                self.fail("body", f"uuid {leaf_hash(body).hex()}: {e}", index)
                continue
            try:
                if entry.verify(None) is None:
                    self.signatures_unchecked += 1
            except InvalidInput as e:
                self.fail("signature", f"uuid {leaf_hash(body).hex()}: {e}", index)
        self.entries_checked += len(bodies)


async def audit_log(client: LogClient, log: TrustedLog, state: AuditState | None,
                    progress: Progress | None = None,
                    save: Callable[[AuditState], None] | None = None,
                    concurrency: int = DEFAULT_CONCURRENCY) -> tuple[AuditReport, AuditState | None]:
    """Audit `log` up to its current checkpoint, resuming from `state` if given.

    Returns the report and the state to keep — None when the log's history contradicts
    what earlier runs saw or the root does not match: saving then would hide it. `save`
    is called with intermediate states every few seconds (resumable progress).
    """
    if state is not None:
        check_state_identity(state.origin, state.log_id, log, "the audit state file")
    else:
        state = AuditState(log.name, log.log_id_hex)
    note = await client.checkpoint()
    try:
        cp = verify_checkpoint(note, log.public_key, log.name)
    except VerificationError as e:
        failure = AuditFailure("checkpoint", f"{e} (with the pinned key {log.log_id_hex})")
        return AuditReport(log.name, log.url, 0, b"", False, state.position, 0, 0,
                           [*state.failures, failure], state.failure_count + 1, False), None
    run = _Audit(client, state, cp)
    start = state.position

    def report(root_matches: bool, compared: bool = True) -> tuple[AuditReport, AuditState | None]:
        rep = AuditReport(log.name, log.url, cp.size, cp.root_hash, root_matches, start,
                          run.entries_checked, run.tiles_checked, list(state.failures),
                          state.failure_count, compared, run.signatures_unchecked)
        return rep, (state if root_matches else None)

    if cp.size < max(state.audited_size, start) or (
            cp.size == state.audited_size and not compare_digest(cp.root_hash, state.audited_root)):
        run.fail("fork", f"the log's checkpoint (size {cp.size}) contradicts what was audited "
                 f"before (size {max(state.audited_size, start)})")
        return report(False, compared=False)
    if not await run.restore(start, state.position_root):
        return report(False, compared=False)

    async def fetch(t: int) -> tuple[int, list[bytes], list[bytes] | None]:
        try:
            return t, await read_entry_bundle(client, t, cp.size), await read_hash_tile(client, 0, t, cp.size)
        except VerificationError as e:
            run.fail("tile", str(e), t * TILE_WIDTH)
            return t, [], None

    last_save = time.monotonic()
    try:
        async with aclosing(ordered_prefetch(tiles_between(start, cp.size), fetch,
                                             concurrency)) as tiles:
            async for t, bodies, level0 in tiles:
                if level0 is None:
                    return report(False, compared=False)
                await asyncio.sleep(0)  # a tile is CPU work: let signals and cancellation in
                run.tiles_checked += 2
                run.check_entries(t * TILE_WIDTH, bodies)
                if not await run.append([leaf_hash(b) for b in bodies], level0):
                    return report(False, compared=False)
                if progress is not None:
                    progress(run.tree.size - start, cp.size - start)
                if run.tree.size % TILE_WIDTH == 0:
                    state.position, state.position_root = run.tree.size, run.tree.root()
                    if save is not None and time.monotonic() - last_save > SAVE_EVERY_SECONDS:
                        save(state)
                        last_save = time.monotonic()
    except asyncio.CancelledError:
        if save is not None:  # interrupted: keep the progress made (a tile boundary)
            save(state)
        raise

    root = run.tree.root()
    if not compare_digest(root, cp.root_hash):
        run.fail("root", f"the entries give root {root.hex()}, the checkpoint says {cp.root_hash.hex()}")
        return report(False)
    state.audited_size, state.audited_root, state.audited_checkpoint = cp.size, cp.root_hash, note
    return report(True)


async def audit_round(log: TrustedLog, state_path: Path, progress: Progress | None = None, *,
                      timeout: float = 60.0) -> AuditReport:
    """Load the audit state, audit, save what the run established."""
    with state_lock(state_path):
        state = load_audit_state(state_path)
        async with LogClient(log.url, timeout=timeout) as client:
            rep, new = await audit_log(client, log, state, progress,
                                       save=lambda s: write_state(state_path, s))
            if new is not None:
                write_state(state_path, new)
        return rep

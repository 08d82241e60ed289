"""Monitoring a log (DESIGN §1): keep the last verified checkpoint, check that each newer one
extends it, read the new entries from entry tiles, report those of watched keys/artifacts.

One round (`check_log`): fetch `/checkpoint`; verify it with the pinned log key (and, if
asked, K witness cosignatures, tlog.core.cosignature); check the RFC 9162 §2.1.4 consistency proof
from the saved checkpoint; download the new entry bundles (C2SP tlog-tiles) and fold their
leaf hashes into the saved compact range (tlog.core.compact: the perfect-subtree roots of
[0, size)), whose root must come out as the checkpoint's, so every entry reported is one the
log committed to. Anything that contradicts the saved state raises ForkAlert, and the state
must then not be saved: the saved checkpoint and the offending one are the evidence. Tile
reading and the state file are shared with the auditor (tlog.audit.tilesync).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from hmac import compare_digest
from pathlib import Path
from typing import Any

from tlog.audit.tilesync import (
    DEFAULT_CONCURRENCY,
    Progress,
    b64,
    check_state_identity,
    read_entries,
    read_state,
    state_lock,
    unb64,
    write_state,
)
from tlog.client.http import LogAPIError, LogClient
from tlog.core.checkpoint import Checkpoint, verify_checkpoint
from tlog.core.compact import CompactRange
from tlog.core.cosignature import CosignatureVerifier, cosigned_by
from tlog.core.entries import read_body
from tlog.core.entries.hashedrekord import public_key_fingerprint_of_pem
from tlog.core.merkle import leaf_hash, verify_consistency
from tlog.core.note import parse_note
from tlog.core.trusted import TrustedLog
from tlog.errors import ForkError, InvalidInput, TlogError, VerificationError

STATE_VERSION = 1

Event = dict[str, Any]
Emit = Callable[[Event], None]


class ForkAlert(ForkError):
    """The log contradicted the saved checkpoint: a fork, a rewrite, or a forged head."""

    hint = ("the saved and the seen checkpoints (in the alert) are the log's signed evidence: keep "
            "them and the state file, and report them to the log's operator. Do not remove the "
            "state file to make the alert go away: the next run would trust whatever it sees")

    def __init__(self, event: Event) -> None:
        super().__init__(f"FORK ALERT for {event['origin']}: {event['detail']}")
        self.event = event


class WitnessQuorumError(TlogError):
    """The checkpoint lacks the required number of valid witness cosignatures."""


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
            # Any kind (tlog.core.entries): a hashedrekord's artifact digest; a dsse or
            # intoto entry's payload and envelope hashes (not its in-toto subjects, which
            # only the kept envelope holds: `tlog search --sha256` finds those); its signers.
            try:
                entry = read_body(body)
            except InvalidInput:
                continue  # no kind the log knows: nothing a key or digest could match
            why = []
            watched = [s.fingerprint for s in entry.signers if s.fingerprint in self.keys]
            if watched:
                why.append("key")
            artifacts = [a for a in entry.artifact_keys
                         if a.startswith("sha256:") and a[7:] in self.sha256]
            if artifacts:
                why.append("sha256")
            if why:
                fingerprint = (watched or [entry.signers[0].fingerprint])[0]
                events.append({"event": "match", "origin": origin, "index": first_index + i,
                               "uuid": leaf_hash(body).hex(), "matched": why,
                               "entryKind": entry.kind,
                               "artifact": (artifacts or list(entry.artifact_keys))[0],
                               "publicKeySha256": fingerprint.hex(),
                               **({"watchedKey": self.keys[fingerprint]} if watched else {})})
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
        # The compact range of [0, size) holds one root per set bit of the size, and folds
        # to the tree's root.
        if CompactRange(0, size, compact).root() != root:
            raise ValueError("compactRange does not match rootHash")
        return cls(str(doc["origin"]), str(doc["logID"]), size, root, compact,
                   str(doc["checkpoint"]).encode("utf-8"))


def load_state(path: Path) -> MonitorState | None:
    return read_state(path, MonitorState.from_json)


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
    event["advice"] = ForkAlert.hint
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

    tree = CompactRange(0, old_size, state.compact if state is not None else ())
    matches: list[Event] = []
    try:
        async with aclosing(read_entries(client, old_size, cp.size, cp.size,
                                         options.concurrency)) as bundles:
            async for first, bodies in bundles:
                await asyncio.sleep(0)  # let cancellation (Ctrl-C) in between bundles
                tree.extend(leaf_hash(b) for b in bodies)
                matches += options.watch.matches(log.name, first, bodies)
                if progress is not None:
                    progress(tree.end - old_size, cp.size - old_size)
    except VerificationError as e:
        raise _fork(log, state, "bad_entries", f"entry bundles are malformed: {e}", note, cp) from e
    if not compare_digest(tree.root(), cp.root_hash):
        raise _fork(log, state, "bad_entries", f"entries {old_size}..{cp.size} served in the entry "
                    "bundles do not hash to the checkpoint's root", note, cp)

    emit({"event": "checkpoint", "origin": log.name, "log": log.url, "size": cp.size,
          "rootHash": b64(cp.root_hash), "previousSize": state.size if state else None,
          "newEntries": cp.size - old_size, "witnesses": witnessed})
    for m in matches:
        emit(m)
    return MonitorState(log.name, log.log_id_hex, cp.size, cp.root_hash, tuple(tree.hashes), note)


async def monitor_round(log: TrustedLog, state_path: Path, options: MonitorOptions, emit: Emit,
                        progress: Progress | None = None, *, timeout: float = 60.0) -> MonitorState:
    """Load the state, run one round, save the new state (not on ForkAlert or any error)."""
    with state_lock(state_path):
        state = load_state(state_path)
        async with LogClient(log.url, timeout=timeout) as client:
            new = await check_log(client, log, state, options, emit, progress)
            write_state(state_path, new)
        return new

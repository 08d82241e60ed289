"""A witness: cosigns a log's checkpoints only if each extends the last one it cosigned
(C2SP tlog-witness `add-checkpoint`, https://c2sp.org/tlog-witness; cosignatures per
tlog.core.cosignature).

`parse_add_checkpoint` reads a request body strictly; `Witness.add_checkpoint` answers it
with exactly the statuses the spec names. The check against the stored state and the
cosignature are one step (`_cosign_if_consistent`) that runs inside the store's
compare-and-swap, so nothing is ever signed that was not checked against the state being
replaced, and nothing is answered before the new state is durable. The store and the HTTP
shell live in tlog.witness.server.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from hmac import compare_digest
from typing import Protocol

from tlog.core.checkpoint import Checkpoint
from tlog.core.cosignature import CosignatureSigner
from tlog.core.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from tlog.core.note import Note, Verifier, format_note, parse_note, verify_note
from tlog.errors import InvalidInput, PayloadTooLarge, TlogError, VerificationError

log = logging.getLogger("tlog.witness")

# tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
MAX_PROOF_LINES = 63
# Go's witness reads at most 16 KiB; a checkpoint with many (post-quantum) signatures can be
# larger, so allow 64 KiB — still a small fixed cost per request.
MAX_REQUEST_BYTES = 64 * 1024
MAX_TREE_SIZE = (1 << 64) - 1

SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(rb"old (0|[1-9][0-9]{0,19})\n")


@dataclass(frozen=True)
class AddCheckpointRequest:
    """`old <size>`, the consistency proof from that size, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: bytes


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse an add-checkpoint body, strictly; InvalidInput (400) if anything is off.

    tlog-witness: an `old <size>` line (ASCII decimal, no leading zeros), zero to 63 lines of
    one base64 hash each, an empty line, then the checkpoint. Every line ends in a newline.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_REQUEST_BYTES} bytes")
    m = _OLD_LINE.match(body)
    if not m:
        raise InvalidInput("the body must start with `old <size>\\n` (decimal, no leading zeros)")
    old_size = int(m.group(1))
    if old_size > MAX_TREE_SIZE:
        raise InvalidInput("old size is out of uint64 range")
    pos = m.end()
    proof: list[bytes] = []
    while True:
        end = body.find(b"\n", pos)
        if end < 0:
            raise InvalidInput("no empty line between the consistency proof and the checkpoint")
        line = body[pos:end]
        pos = end + 1
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise InvalidInput(f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"proof line {len(proof) + 1} is not base64") from None
        if len(h) != HASH_SIZE or base64.b64encode(h) != line:
            raise InvalidInput(f"proof line {len(proof) + 1} is not the base64 of a 32-byte hash")
        proof.append(h)
    checkpoint = body[pos:]
    if not checkpoint:
        raise InvalidInput("the request carries no checkpoint")
    return AddCheckpointRequest(old_size, tuple(proof), checkpoint)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """The request body a log sends (inverse of parse_add_checkpoint)."""
    lines = [b"old %d\n" % old_size] + [base64.b64encode(h) + b"\n" for h in proof]
    return b"".join(lines) + b"\n" + checkpoint


@dataclass(frozen=True)
class Witnessed:
    """What the witness remembers for one log: the latest checkpoint it cosigned."""

    size: int
    root: bytes
    checkpoint: bytes  # the note with only the log's verified signatures, kept as evidence


@dataclass(frozen=True)
class Answer:
    """An add-checkpoint response: status, body, content type, and a reason for the logs."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"
    reason: str = ""

    @classmethod
    def refuse(cls, status: int, reason: str) -> Answer:
        return cls(status, (reason + "\n").encode(), reason=reason)


@dataclass(frozen=True)
class Decision:
    """The outcome of one compare-and-swap step: a refusal, or a new state and its cosignature."""

    answer: Answer
    new_state: Witnessed | None = None  # set iff the checkpoint was cosigned
    # Set iff the log signed a different root at the size the witness cosigned: a proven
    # fork (see `proven_fork`); the note, with only the log's verified signatures.
    evidence: Fork | None = None

    @property
    def accepted(self) -> bool:
        return self.new_state is not None


@dataclass(frozen=True)
class Fork:
    """Proof that a log forked: it signed `checkpoint`, of `size` and `root`, where the
    witness had cosigned another root at that size."""

    size: int
    root: bytes
    checkpoint: bytes


def proven_fork(cp: Checkpoint, prev: Witnessed | None) -> bool:
    """Pure: does the log-signed `cp` contradict the cosigned `prev` by itself?

    Only a different root at the very size cosigned does: the two signed checkpoints are the
    whole proof. A failed consistency proof (422) is not one — anyone can send a log's honest
    checkpoint with a bad proof — so it is refused and forgotten: storing every refusal let
    cheap requests fill the witness's disk.
    """
    return prev is not None and cp.size == prev.size and not compare_digest(cp.root_hash, prev.root)


class WitnessStore(Protocol):
    """Per-origin latest cosigned checkpoint, updated by compare-and-swap.

    `update` reads the state for `origin`, calls `step` with it, and, if the decision
    carries a new state, makes it durable before returning — all atomically with respect
    to every other update of that origin (tlog-witness: check and persist as one step).
    """

    async def update(self, origin: str, step: Callable[[Witnessed | None], Decision]) -> Decision: ...


def refusal(req: AddCheckpointRequest, cp: Checkpoint, prev: Witnessed | None) -> Answer | None:
    """Pure: why `cp` must not be cosigned on top of `prev` (an Answer), or None if it may.

    The checks and statuses of tlog-witness "add-checkpoint", in its order.
    """
    prev_size = prev.size if prev is not None else 0
    if req.old_size > cp.size:
        return Answer.refuse(400, f"old size {req.old_size} is larger than the checkpoint size {cp.size}")
    if cp.size == 0 and not compare_digest(cp.root_hash, EMPTY_ROOT):
        return Answer.refuse(422, "a checkpoint of size 0 must have the empty tree's root")
    if req.old_size != prev_size:
        # The client's view is stale (or it is probing): tell it the size we hold.
        return Answer(409, b"%d\n" % prev_size, SIZE_CONTENT_TYPE,
                      f"old size {req.old_size} is not the latest cosigned size {prev_size}")
    if prev is not None and cp.size == prev.size and not compare_digest(cp.root_hash, prev.root):
        return Answer.refuse(409, f"size {cp.size} was cosigned with a different root hash")
    if prev_size == 0:
        # Nothing to be consistent with (trust on first use); the proof MUST be empty.
        if req.proof:
            return Answer.refuse(422, "the consistency proof must be empty when the old size is 0")
        return None
    try:
        verify_consistency(prev.size, cp.size, req.proof, prev.root, cp.root_hash)  # type: ignore[union-attr]
    except VerificationError as e:
        return Answer.refuse(422, f"{e} (from size {prev_size} to {cp.size})")
    return None


class Witness:
    """Answers add-checkpoint requests for a fixed set of logs, with one witness key."""

    def __init__(self, signer: CosignatureSigner, logs: Mapping[str, Sequence[Verifier]],
                 store: WitnessStore) -> None:
        self._signer = signer
        self._logs = {origin: tuple(vs) for origin, vs in logs.items()}
        self._store = store

    @property
    def name(self) -> str:
        return self._signer.name

    @property
    def origins(self) -> tuple[str, ...]:
        return tuple(self._logs)

    async def add_checkpoint(self, body: bytes) -> Answer:
        try:
            req = parse_add_checkpoint(body)
            note = parse_note(req.checkpoint)
            cp = Checkpoint.parse(note.text.encode("utf-8"))
        except InvalidInput as e:
            return Answer.refuse(e.status, f"malformed request: {e}")
        verifiers = self._logs.get(cp.origin)
        if verifiers is None:
            return Answer.refuse(404, f"unknown log origin {cp.origin!r}")
        try:
            # Lines from unknown keys are ignored; a known key's line must verify. What is
            # kept is the note with only the verified lines: a client cannot make it larger.
            verified = verify_note(note, verifiers)
        except TlogError as e:
            return Answer.refuse(403, f"checkpoint signature: {e}")

        decision = await self._store.update(
            cp.origin, lambda prev: self._cosign_if_consistent(req, verified, cp, prev))
        a = decision.answer
        if decision.accepted:
            log.info("cosigned %s at size %d", cp.origin, cp.size)
        else:
            log.warning("refused %s at size %d: %d %s", cp.origin, cp.size, a.status, a.reason)
        return a

    def _cosign_if_consistent(self, req: AddCheckpointRequest, note: Note, cp: Checkpoint,
                              prev: Witnessed | None) -> Decision:
        """The only place a cosignature is made: after the check against `prev`, the state
        the store is about to replace. The store persists the new state before the answer
        leaves this process. `note` carries only the log's verified signatures."""
        refused = refusal(req, cp, prev)
        if refused is not None:
            # A proven fork is worth keeping (tlog-witness: the witness MAY log it); any
            # other refusal proves nothing against the log and is not stored.
            fork = Fork(cp.size, cp.root_hash, format_note(note)) if proven_fork(cp, prev) else None
            return Decision(refused, evidence=fork)
        line = self._signer.cosign(note.text.encode("utf-8")).line().encode("utf-8")
        return Decision(Answer(200, line, "text/plain; charset=utf-8"),
                        Witnessed(cp.size, cp.root_hash, format_note(note)))

"""The log's side of C2SP tlog-witness: send a checkpoint to a witness, get its cosignature.

`push_checkpoint` is one add-checkpoint request; `witness_checkpoint` adds the protocol's
retry: on 409 the witness says which size it holds, and the log proves consistency from
there instead. Returned cosignature lines are verified with the witness's pinned key, so a
caller can append them to its checkpoint note as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import aiohttp

from tlog.core.checkpoint import Checkpoint
from tlog.core.cosignature import CosignatureVerifier, cosigned_by
from tlog.core.note import Note, parse_note
from tlog.errors import InvalidInput, TlogError, VerificationError
from tlog.witness.cosigner import SIZE_CONTENT_TYPE, format_add_checkpoint


class WitnessError(TlogError):
    """A witness did not cosign: it is unreachable, or it refused (status attached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.witness_status = status  # what the witness answered (`status` is ours, tlog.errors)


class WitnessConflict(WitnessError):
    """409 with `text/x.tlog.size`: the witness holds another size; prove from `size`."""

    def __init__(self, url: str, size: int) -> None:
        super().__init__(f"witness {url} holds size {size}; retry from it", 409)
        self.size = size


def _checkpoint_of(signed_checkpoint: bytes) -> tuple[Note, Checkpoint]:
    note = parse_note(signed_checkpoint)
    return note, Checkpoint.parse(note.text.encode("utf-8"))


async def push_checkpoint(session: aiohttp.ClientSession, url: str, witness: CosignatureVerifier,
                          old_size: int, proof: Sequence[bytes], signed_checkpoint: bytes, *,
                          timeout: float = 10.0) -> bytes:
    """POST one add-checkpoint request to the witness at `url` (its submission prefix).

    Returns the witness's cosignature line(s) — `— <name> <base64>\\n`, verified with
    `witness` against this checkpoint, other lines dropped — ready to append to the note.
    Raises WitnessConflict (with the witness's size) on 409 `text/x.tlog.size`, WitnessError
    on any other refusal or network failure, VerificationError if the answer carries no
    valid cosignature from `witness`.
    """
    note, _ = _checkpoint_of(signed_checkpoint)
    body = format_add_checkpoint(old_size, proof, signed_checkpoint)
    endpoint = url.rstrip("/") + "/add-checkpoint"
    try:
        async with session.post(endpoint, data=body, timeout=aiohttp.ClientTimeout(total=timeout),
                                headers={"Content-Type": "text/plain"}) as r:
            answer = await r.content.read(64 * 1024)
            status, ctype = r.status, r.content_type
    except (TimeoutError, aiohttp.ClientError, OSError) as e:
        raise WitnessError(f"cannot reach witness {url}: {e.__class__.__name__}: {e}".rstrip(": ")) from e
    if status == 409 and ctype == SIZE_CONTENT_TYPE:
        text = answer.decode("ascii", "replace")
        if not (text.endswith("\n") and text[:-1].isdigit()):
            raise WitnessError(f"witness {url} answered 409 with a malformed size {text[:40]!r}", 409)
        raise WitnessConflict(url, int(text[:-1]))
    if status != 200:
        reason = answer[:200].decode("utf-8", "replace").strip()
        raise WitnessError(f"witness {url} refused the checkpoint: {status} {reason}".rstrip(), status)
    return _verified_cosignatures(note, answer, witness, url)


def _verified_cosignatures(note: Note, answer: bytes, witness: CosignatureVerifier, url: str) -> bytes:
    # tlog-witness: "the client MAY concatenate it to the checkpoint, and use a note
    # verification function configured with the witness keys it trusts".
    try:
        lines = parse_note(note.text.encode("utf-8") + b"\n" + answer).signatures
        valid = cosigned_by(Note(note.text, lines), [witness])
    except InvalidInput as e:
        raise VerificationError(f"witness {url} answered with malformed cosignatures: {e}") from e
    if not valid:
        raise VerificationError(f"witness {url} answered without a cosignature from {witness.name}")
    mine = [s for s in lines if (s.name, s.key_id) == (witness.name, witness.key_id)]
    return "".join(s.line() for s in mine).encode("utf-8")


ProveConsistency = Callable[[int, int], Awaitable[Sequence[bytes]]]


async def witness_checkpoint(session: aiohttp.ClientSession, url: str, witness: CosignatureVerifier,
                             signed_checkpoint: bytes, known_size: int, prove: ProveConsistency,
                             *, attempts: int = 3, timeout: float = 10.0) -> tuple[bytes, int]:
    """Get `witness` to cosign a checkpoint, starting from the size it is believed to hold.

    `known_size` is the size this witness last cosigned (0 if unknown); `prove(old, new)`
    returns the RFC 9162 consistency proof between two sizes of the log. On 409 the
    request is retried from the size the witness reports. Returns (cosignature lines, size
    the witness now holds) — remember the size for the next push.
    """
    _, cp = _checkpoint_of(signed_checkpoint)
    old = known_size
    for _ in range(attempts):
        if old > cp.size:
            raise WitnessError(f"witness {url} holds size {old}, larger than this checkpoint "
                               f"({cp.size}); a newer checkpoint is needed", 409)
        proof = await prove(old, cp.size) if 0 < old < cp.size else []
        try:
            return await push_checkpoint(session, url, witness, old, proof, signed_checkpoint,
                                         timeout=timeout), cp.size
        except WitnessConflict as c:
            old = c.size
    raise WitnessError(f"witness {url} kept answering 409 after {attempts} attempts", 409)

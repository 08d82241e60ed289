"""The last line of defence against a fork: a checkpoint signer that will not sign a tree
head it cannot prove consistent with the last one it signed (DESIGN §2: "The log never
signs two checkpoints that are not consistent").

Whatever bug or corruption upstream produced a new root, the guard checks an RFC 9162
consistency proof from its own remembered (size, root) before the key is used. Pure: no
I/O; the caller persists what was signed (the checkpoint row) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from hmac import compare_digest

from tlog.core.checkpoint import Checkpoint, log_note_signers, sign_checkpoint
from tlog.core.keys import LogKey
from tlog.core.merkle import verify_consistency
from tlog.errors import ForkError, VerificationError


class ForkRefused(ForkError):
    """Signing this checkpoint would fork the log's history."""

    hint = ("the log stopped taking entries rather than sign it; what it serves is still "
            "consistent. Keep the data directory as it is, run `tlog fsck DATA_DIR` to find what "
            "disagrees with the signed checkpoints, and restart only once that is understood")


class CheckpointGuard:
    def __init__(self, key: LogKey, origin: str, size: int, root: bytes) -> None:
        self._key = key
        self._origin = origin
        self._signers = log_note_signers(origin, key)
        self.size = size
        self.root = root

    def sign(self, size: int, root: bytes, proof: Sequence[bytes]) -> bytes:
        """Sign (origin, size, root) if `proof` shows it extends the last signed head."""
        if size < self.size:
            raise ForkRefused(f"refusing to sign size {size}: already signed size {self.size}")
        if size == self.size and not compare_digest(root, self.root):
            raise ForkRefused(f"refusing to sign a second root for size {size}")
        if 0 < self.size < size:
            try:
                verify_consistency(self.size, size, proof, self.root, root)
            except VerificationError as e:
                raise ForkRefused(
                    f"refusing to sign size {size}: not consistent with signed size {self.size} ({e})"
                ) from e
        note = sign_checkpoint(Checkpoint(self._origin, size, root), self._key, self._signers)
        self.size, self.root = size, root
        return note

    def rollback(self, size: int, root: bytes) -> None:
        """Forget a head that was signed but never stored (its batch failed): the stored
        history is still at (size, root), and the next head must extend that one."""
        self.size, self.root = size, root

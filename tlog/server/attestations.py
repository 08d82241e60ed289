"""What the log keeps beside attestation entries: the DSSE envelope of a `dsse` entry, the
payload of an `intoto` one (tlog.core.entries: `Entry.attestation`), so that a verifier can
check an attestation's signatures and subjects from the log alone (`tlog verify-attestation`).

Rekor's counterpart is its attestation storage (`--attestation_storage_bucket`, keyed by
the payload hash, served as `LogEntry.attestation.data`). Here: one file per attestation in
DATA_DIR/attestations/, named by the hex SHA-256 its entry's body records (`envelopeHash`,
`payloadHash`), so a reader checks what it gets against the body the log signed. Written
before the entry is sequenced and fsync'd (a file whose entry never lands is harmless, and a duplicate
writes the same bytes), read when an entry is served.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from tlog.files import write_atomically

_NAME = re.compile(r"[0-9a-f]{64}")


class AttestationStore:
    """Content-addressed files under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a hex SHA-256: {name!r}")
        return self.root / name[:2] / name

    async def put(self, name: str, data: bytes) -> None:
        """Keep `data` as `name` (its SHA-256, checked), atomically."""
        if hashlib.sha256(data).hexdigest() != name:
            raise ValueError("an attestation is kept under its own SHA-256")
        await asyncio.to_thread(self._write, self._path(name), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # fsync'd before the entry is sequenced, so an acknowledged entry's attestation
        # survives a crash as its entry does.
        write_atomically(path, data)

    async def get(self, name: str) -> bytes | None:
        """The kept bytes, None if there are none (or they do not hash to `name`)."""
        return await asyncio.to_thread(self.read, name)

    def read(self, name: str) -> bytes | None:
        """`get`, blocking: for offline readers (`tlog fsck`)."""
        try:
            data = self._path(name).read_bytes()
        except (OSError, ValueError):
            return None
        return data if hashlib.sha256(data).hexdigest() == name else None

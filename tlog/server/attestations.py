"""What the log keeps beside attestation entries: the DSSE envelope of a `dsse` entry, the
payload of an `intoto` one (tlog.core.entries: `Entry.attestation`), so that a verifier can
check an attestation's signatures and subjects from the log alone (`tlog verify-attestation`).

Rekor's counterpart is its attestation storage (`--attestation_storage_bucket`, keyed by
the payload hash, served as `LogEntry.attestation.data`). Here: the log's own storage
(`Storage.put_attestation`: SQLite's and PostgreSQL's `attestations` table, so that every
frontend of a PostgreSQL log serves what any of them admitted), content-addressed by the
hex SHA-256 its entry's body records (`envelopeHash`, `payloadHash`), so a reader checks
what it gets against the body the log signed. Written before the entry is sequenced and
durable (one whose entry never lands is harmless, and a duplicate stores nothing new),
read when an entry is served.

Logs written before schema version 4 kept them as files, DATA_DIR/attestations/xx/NAME
(`AttestationFiles`): still read there when storage has none, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

from tlog.server.storage.base import Storage

_NAME = re.compile(r"[0-9a-f]{64}")


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a hex SHA-256: {name!r}")


def _verified(name: str, data: bytes | None) -> bytes | None:
    return data if data is not None and hashlib.sha256(data).hexdigest() == name else None


class AttestationFiles:
    """The content-addressed files older logs kept under `root` (read only, blocking)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> bytes | None:
        """The file's bytes, None if there is none (or they do not hash to `name`)."""
        try:
            _check_name(name)
            data = (self.root / name[:2] / name).read_bytes()
        except (OSError, ValueError):
            return None
        return _verified(name, data)


class AttestationStore:
    """Attestations in `storage`, with the files under `legacy` as a read fallback."""

    def __init__(self, storage: Storage, legacy: Path) -> None:
        self.storage = storage
        self.files = AttestationFiles(legacy)

    async def put(self, name: str, data: bytes) -> None:
        """Keep `data` as `name` (its SHA-256, checked), durably."""
        _check_name(name)
        if hashlib.sha256(data).hexdigest() != name:
            raise ValueError("an attestation is kept under its own SHA-256")
        await self.storage.put_attestation(name, data)

    async def get(self, name: str) -> bytes | None:
        """The kept bytes, None if there are none (or they do not hash to `name`)."""
        if not _NAME.fullmatch(name):
            return None
        kept = _verified(name, await self.storage.get_attestation(name))
        if kept is None:
            kept = await asyncio.to_thread(self.files.read, name)
        return kept

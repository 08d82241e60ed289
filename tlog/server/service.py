"""What the HTTP API needs of a log: the operations tlog.server.api calls, and nothing else.

The API (Rekor v1 routes, DESIGN §3, and C2SP tlog-tiles reads) is written against this
protocol rather than the concrete `Log` (tlog.server.log), so the shell and the service
can change apart, and a test can serve any object that keeps these promises.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from tlog.core.tiles import TileRef
from tlog.server.bundles import Bundle
from tlog.server.metrics import LogMetrics
from tlog.server.sequencer import Published
from tlog.server.storage.base import StoredCheckpoint


@dataclass(frozen=True)
class SearchPage:
    """One answer of an index search: the UUIDs of the newest matches below a log index, in
    log order, and — when older matches remain — the index to ask below for the next page
    (the smallest index on this one)."""

    uuids: list[bytes]
    more_before: int | None


class LogService(Protocol):
    """The log operations behind the HTTP routes. They fail with tlog's errors (tlog.errors),
    which the API answers with their HTTP status; anything else is a 500."""

    @property
    def head(self) -> Published:
        """The latest durable tree head: size, root and signed checkpoint (GET /log)."""
        ...

    @property
    def tree_id(self) -> str:
        """Rekor's treeID for this log (GET /log)."""
        ...

    @property
    def public_url(self) -> str:
        """The URL the log is served at (the OpenAPI document's server)."""
        ...

    @property
    def metrics(self) -> LogMetrics:
        """The Prometheus metrics the routes count into (GET /metrics)."""
        ...

    async def submit(self, request: object) -> dict[str, Any]:
        """Admit and sequence a proposed entry; its Rekor LogEntry (POST /log/entries)."""
        ...

    async def entries_by_index(self, indexes: Sequence[int]) -> list[dict[str, Any]]:
        """LogEntries at log indexes, with inclusion proofs (404 past the tree)."""
        ...

    async def entries_by_uuid(self, uuids: Sequence[bytes]) -> list[dict[str, Any]]:
        """LogEntries for the UUIDs (leaf hashes) in the log; unknown ones are left out."""
        ...

    async def consistency(self, first: int, last: int) -> tuple[bytes, list[bytes]]:
        """The root at `last` and the RFC 9162 §2.1.4 proof from `first` (GET /log/proof)."""
        ...

    async def search(self, artifact_key: str | None, fingerprint: bytes | None,
                     operator: str = "or", *, identities: Sequence[str] = (),
                     before: int | None = None) -> SearchPage:
        """The newest entries for an artifact digest, a key and/or certificate identities
        (SAN emails lower-cased, URIs), below log index `before` (POST /index/retrieve): at
        most limits.MAX_SEARCH_RESULTS of them."""
        ...

    async def tile(self, ref: TileRef) -> bytes:
        """A C2SP tlog-tiles hash tile at the current tree size (GET /tile/L/N…)."""
        ...

    def entry_bundle(self, ref: TileRef) -> AbstractAsyncContextManager[Bundle]:
        """A C2SP tlog-tiles entry bundle at the current tree size (GET /tile/entries/N…),
        held for as long as the response sending it lasts (tlog.server.bundles)."""
        ...

    def checkpoint_note(self) -> bytes:
        """The latest signed checkpoint, with witness cosignatures (GET /checkpoint)."""
        ...

    async def checkpoints(self, before: int, limit: int) -> list[StoredCheckpoint]:
        """Signed checkpoints the log published below tree size `before`, newest first
        (at most `limit`; GET /api/v1/log/checkpoints)."""
        ...

    async def health_problem(self) -> str | None:
        """Why the log cannot serve writes now, or None (GET /readyz)."""
        ...

    def readiness(self) -> dict[str, Any]:
        """What else /readyz reports: on PostgreSQL, this frontend's role and the leader."""
        ...

    def public_key_pem(self) -> bytes:
        """The log's public key, PEM (GET /log/publicKey)."""
        ...

"""Errors raised by tlog's library code: every kind of failure is defined here, and what a
module adds (Duplicate, ForkRefused, ForkAlert, LogUnreachable…) subclasses one of these.

Every error says what happened (`str(e)`) and, through `diagnostics()`, what to do about it
(sigstore-python's `Error.diagnostics()` habit): the CLI prints `diagnostics()` instead of a
traceback. An error that can reach an HTTP client carries its status, so the API answers all
of them with one handler: Rekor's Error model `{"code": status, "message": str(e)}` (Rekor's
openapi.yaml) with the headers the status calls for (`headers()`: Retry-After for 429 and
503, RFC 9110 §10.2.3; Location for a duplicate entry). Status 500 means "not the client's
fault": the server logs the message and the client gets none of it.
"""

from __future__ import annotations

import math
from typing import ClassVar


class TlogError(Exception):
    """Base class of every error tlog raises on purpose."""

    status: ClassVar[int] = 500  # the HTTP status should it reach the API
    retry_after: int | None = None  # seconds a client should wait before retrying
    hint: str = ""  # what to do about it: one per class, an instance may say better

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with the error answer."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    def diagnostics(self) -> str:
        """One line for a person: what happened and, when there is one, what to do."""
        return f"{self} — {self.hint}" if self.hint else str(self)


# -- the client's request (4xx) ----------------------------------------------------------------

class InvalidInput(TlogError):
    """Input from a client or a file is malformed or fails a check (HTTP 400)."""

    status = 400


class NotFound(InvalidInput):
    """What was asked for is not in the log, or not yet: an entry, a tile (HTTP 404)."""

    status = 404


class RequestTimeout(InvalidInput):
    """The request body did not arrive in time (HTTP 408)."""

    status = 408


class PayloadTooLarge(InvalidInput):
    """The request, or the entry made of it, is larger than the log takes (HTTP 413)."""

    status = 413


class UnsupportedMediaType(InvalidInput):
    """The request body is not of a media type the route reads (HTTP 415)."""

    status = 415


class TooManyItems(InvalidInput):
    """Well-formed, but asks for more items than one request may (HTTP 422, as Rekor answers
    a SearchLogQuery beyond its limits)."""

    status = 422


class Forbidden(TlogError):
    """This log never does what was asked: a frozen (read-only) log takes no entries (HTTP 403)."""

    status = 403


class Conflict(TlogError):
    """The request contradicts what the log holds (HTTP 409); `location` names what it holds."""

    status = 409

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.location = location

    def headers(self) -> dict[str, str]:
        return {"Location": self.location} if self.location else {}


class RateLimited(TlogError):
    """One client submits (or searches) faster than the log allows it (HTTP 429). Not
    invalid input: the same request is accepted later."""

    status = 429

    def __init__(self, wait: float, what: str = "submissions") -> None:
        super().__init__(f"too many {what} from this client: retry in {wait:.1f} s")
        self.retry_after = max(1, math.ceil(wait))


class Unavailable(TlogError):
    """The log cannot take entries now: shutting down, storage failing, writes stopped (HTTP 503)."""

    status = 503
    retry_after = 5


class Overloaded(Unavailable):
    """Too many submissions are waiting (tessera's ErrPushback): retry shortly (HTTP 503)."""

    retry_after = 1

    def __init__(self, detail: str) -> None:
        super().__init__(f"the log is busy: {detail}; retry shortly")


# -- checks that failed --------------------------------------------------------------------------

class VerificationError(TlogError):
    """A signature, proof or checkpoint did not verify."""


class ForkError(TlogError):
    """Two tree heads of one log cannot both be true (no RFC 9162 §2.1.4 consistency proof
    joins them): a fork, a rewritten history or a forged checkpoint."""

    hint = ("keep both signed checkpoints: they are the evidence. Do not discard saved state "
            "to make this go away; report it to the log's operator and its other monitors")


# -- the log's own data ------------------------------------------------------------------------

class StartupError(TlogError):
    """The log cannot start with this data directory or configuration."""

    hint = ("the log did not start and changed nothing; fix what is named above and start it "
            "again (`tlog fsck DATA_DIR` checks a data directory without changing it)")


class StorageError(TlogError):
    """The storage could not be read or written (disk full, read-only, corrupt, a write that
    would change history). A failed write has changed nothing."""

    hint = ("check the disk holding the data directory (free space, permissions, a read-only "
            "mount) and run `tlog fsck DATA_DIR`; the log refuses writes until it can store them")

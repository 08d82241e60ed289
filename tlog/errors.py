"""Errors raised by tlog's library code.

Every error carries a sentence a person can act on (`diagnostics()`); the HTTP layer maps
`InvalidInput` to 4xx `{"code","message"}` and the CLI prints the sentence instead of a
traceback (sigstore-python's `Error.diagnostics()` habit).
"""

from __future__ import annotations


class TlogError(Exception):
    """Base class of every error tlog raises on purpose."""

    def diagnostics(self) -> str:
        return str(self)


class InvalidInput(TlogError):
    """Input from a client or a file is malformed or fails a check. HTTP status attached."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class VerificationError(TlogError):
    """A signature, proof or checkpoint did not verify."""

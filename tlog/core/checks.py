"""The one error every verification check raises: `CheckFailed(check, reason)`.

Its own module so that every verifier (tlog.core.verify for tlog's own bundles,
tlog.core.sigstore_verify for any Sigstore bundle) names failures the same way without
importing each other.
"""

from __future__ import annotations

from tlog.errors import VerificationError


class CheckFailed(VerificationError):
    """One named verification check failed; `check` is its name, `reason` the detail."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason

    def diagnostics(self) -> str:
        return f"verification failed: {self}"

"""Signed Entry Timestamps (SET): the log's promise to include an entry (DESIGN §2).

The log key signs the RFC 8785 canonical JSON of
`{"body":"<b64 body>","integratedTime":<unix s>,"logID":"<hex>","logIndex":<int>}` —
exactly the bytes Rekor v1 signs and sigstore-python rebuilds
(`TransparencyLogEntry._encode_canonical`) to check `inclusionPromise`.
"""

from __future__ import annotations

import base64
import re

from tlog.core.keys import LogKey, LogPublicKey
from tlog.errors import InvalidInput, VerificationError

# Clients rebuild the payload from the logID *bytes* and print them lower-case
# (sigstore-python: `log_id.key_id.hex()`), so only that spelling can verify.
_LOG_ID_HEX = re.compile(r"[0-9a-f]{64}")
# RFC 8785 serializes numbers as IEEE 754 doubles: integers past 2^53 are not exact.
_MAX_SAFE_INT = (1 << 53) - 1


def _check_uint(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer")
    if not 0 <= value <= _MAX_SAFE_INT:
        raise InvalidInput(f"{what} {value} is out of range")


def set_payload(body: bytes, integrated_time: int, log_id_hex: str, log_index: int) -> bytes:
    """The bytes a SET signs: RFC 8785 JSON of body (base64), integratedTime, logID, logIndex."""
    _check_uint(integrated_time, "integratedTime")
    _check_uint(log_index, "logIndex")
    if not _LOG_ID_HEX.fullmatch(log_id_hex):
        raise InvalidInput("logID must be 64 lower-case hex digits (SHA-256 of the log key)")
    # body is base64 and logID hex: RFC 8785 writes both as is, and integers below 2^53
    # as plain decimals, with members in this (sorted) order — so formatting directly
    # gives the canonical bytes, far cheaper than rfc8785.dumps (tests pin the equality).
    return b'{"body":"%s","integratedTime":%d,"logID":"%s","logIndex":%d}' % (
        base64.b64encode(body), integrated_time, log_id_hex.encode("ascii"), log_index)


def sign_set(
    key: LogKey, body: bytes, integrated_time: int, log_id_hex: str, log_index: int
) -> bytes:
    """Sign a SET. The caller base64-encodes it as `verification.signedEntryTimestamp`."""
    if log_id_hex != key.public_key.log_id().hex():
        raise InvalidInput("logID of a SET must be the signing key's logID")
    return key.sign(set_payload(body, integrated_time, log_id_hex, log_index))


def verify_set(
    pub: LogPublicKey,
    set_sig: bytes,
    body: bytes,
    integrated_time: int,
    log_id_hex: str,
    log_index: int,
) -> None:
    """Check a SET with a pinned log key; VerificationError if it does not verify."""
    if log_id_hex != pub.log_id().hex():
        # The entry names another log: a signature check could only fail confusingly.
        raise VerificationError(
            f"SET is for log {log_id_hex}, not the pinned log key {pub.log_id().hex()}"
        )
    try:
        payload = set_payload(body, integrated_time, log_id_hex, log_index)
    except InvalidInput as e:
        raise VerificationError(f"SET payload is malformed: {e}") from e
    try:
        pub.verify(set_sig, payload)
    except VerificationError as e:
        raise VerificationError(f"signed entry timestamp does not verify: {e}") from e

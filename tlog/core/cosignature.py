"""Witness cosignatures: C2SP tlog-cosignature/v1, Ed25519 (https://c2sp.org/tlog-cosignature).

A cosignature is a signed-note line (tlog.core.note) on a checkpoint. Key ID =
SHA-256(name || 0x0A || 0x04 || 32-byte key)[:4]; the signature bytes are the u64
big-endian POSIX timestamp followed by Ed25519 (RFC 8032) over
`cosignature/v1\\ntime <timestamp>\\n` || the checkpoint body. Keys are written the way Go's
transparency-dev/formats `note` reads them: verifier keys (vkeys)
`<name>+<hex key ID>+<base64(0x04 || key)>`, signer keys
`PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog.core.note import (
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Note,
    NoteSignature,
    _key_hash,
    cosignature_key_id,
    is_valid_key_name,
    split_key_string,
)
from tlog.errors import InvalidInput, VerificationError

# tlog-cosignature "Format": the timestamp MUST NOT exceed 2^63 - 1.
MAX_TIMESTAMP = (1 << 63) - 1
SIGNATURE_SIZE = 8 + 64  # u64 timestamp || Ed25519 signature

_HEADER = b"cosignature/v1\n"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def cosigned_message(timestamp: int, body: bytes) -> bytes:
    """The bytes an Ed25519 cosignature signs (tlog-cosignature "Ed25519 signed message"):
    `cosignature/v1\\n`, `time <timestamp>\\n`, then the checkpoint body with its final newline."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput(f"cosignature timestamp {timestamp!r} is outside 0..2^63-1")
    # Go's formatEd25519CosignatureV1: the note must hold at least a checkpoint's 3 lines.
    if not body.endswith(b"\n") or body.count(b"\n") < 3:
        raise InvalidInput("a cosigned checkpoint body is at least three lines, each ending in a newline")
    return _HEADER + b"time %d\n" % timestamp + body


def cosignature_timestamp(signature: bytes) -> int:
    """The timestamp inside a cosignature's signature bytes (after the 4-byte key ID)."""
    if len(signature) != SIGNATURE_SIZE:
        raise InvalidInput(f"an Ed25519 cosignature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    return int.from_bytes(signature[:8], "big")


class CosignatureVerifier:
    """Verifies one witness's cosignatures; a note Verifier (tlog.core.note.verify_note accepts it)."""

    __slots__ = ("name", "key_id", "public_key", "_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise InvalidInput(f"invalid witness name {name!r}: no spaces and no '+'")
        self.name = name
        self.key_id: bytes = cosignature_key_id(name, public_key)
        self.public_key = bytes(public_key)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        if len(sig) != SIGNATURE_SIZE:
            return False
        timestamp = struct.unpack(">Q", sig[:8])[0]
        try:
            self._key.verify(sig[8:], cosigned_message(timestamp, msg))
        except (InvalidSignature, InvalidInput):
            return False
        return True

    def verifier_key(self) -> str:
        """`<name>+<hex key ID>+<base64(0x04 || key)>` (the witness's vkey)."""
        b64 = base64.b64encode(bytes([SIG_TYPE_COSIGNATURE_V1]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{b64}"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, CosignatureVerifier)
                and (self.name, self.public_key) == (other.name, other.public_key))

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.verifier_key()!r})"


class CosignatureSigner:
    """A witness key: signs checkpoint bodies as timestamped cosignatures (a note Signer)."""

    __slots__ = ("name", "key_id", "public_key", "_key", "_clock")

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        if not is_valid_key_name(name):
            raise InvalidInput(f"invalid witness name {name!r}: no spaces and no '+'")
        self.name = name
        self._key = private_key
        self._clock = clock
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id: bytes = cosignature_key_id(name, self.public_key)

    @classmethod
    def generate(cls, name: str) -> CosignatureSigner:
        return cls(name, ed25519.Ed25519PrivateKey.generate())

    def sign(self, msg: bytes) -> bytes:
        """timestamp || Ed25519(cosigned_message(timestamp, msg)), timestamp = now."""
        return self.sign_at(int(self._clock()), msg)

    def sign_at(self, timestamp: int, msg: bytes) -> bytes:
        return struct.pack(">Q", timestamp) + self._key.sign(cosigned_message(timestamp, msg))

    def cosign(self, body: bytes) -> NoteSignature:
        """The cosignature line for a checkpoint body, ready to append to its note."""
        return NoteSignature(self.name, self.key_id, self.sign(body))

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def signer_key(self) -> str:
        """`PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`: a secret."""
        seed = self._key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                       serialization.NoEncryption())
        b64 = base64.b64encode(bytes([SIG_TYPE_COSIGNATURE_V1]) + seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{b64}"


def _split_key(s: str, what: str) -> tuple[str, bytes, int, bytes]:
    """`<name>+<8 hex>+<base64(type || 32 bytes)>` → (name, key ID, type, 32 key bytes).

    Types 0x04 and 0x01 are accepted, as Go's NewVerifierForCosignatureV1 does: an Ed25519
    note key (0x01) names the same key pair, which then cosigns under its 0x04 key ID.
    """
    return split_key_string(s, what, (SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519))


def parse_cosignature_verifier_key(s: str) -> CosignatureVerifier:
    """Parse a witness vkey, checking its key ID matches its name, type and key."""
    name, key_id, sig_type, key = _split_key(s, "witness verifier key")
    if _key_hash(name, sig_type, key) != key_id:
        raise InvalidInput(f"witness verifier key ID {key_id.hex()} does not match its name and key")
    return CosignatureVerifier(name, key)


def parse_cosignature_signer_key(s: str, clock: Callable[[], float] = time.time) -> CosignatureSigner:
    """Parse a witness signer key `PRIVATE+KEY+…` (0x04 or 0x01 seed), checking its key ID."""
    if not s.startswith(_PRIVATE_PREFIX):
        raise InvalidInput("malformed witness key: it must start with PRIVATE+KEY+")
    name, key_id, sig_type, seed = _split_key(s[len(_PRIVATE_PREFIX):], "witness key")
    signer = CosignatureSigner(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed), clock)
    # The key ID hashes the public key, so it can only be checked once that is derived.
    if _key_hash(name, sig_type, signer.public_key) != key_id:
        raise InvalidInput(f"witness key ID {key_id.hex()} does not match its name and key")
    return signer


def cosigned_by(note: Note, witnesses: Sequence[CosignatureVerifier]) -> list[CosignatureVerifier]:
    """The witnesses with a valid cosignature on the note, each once, in `witnesses` order.

    Lines from unknown keys are ignored; a line whose (name, key ID) is a known witness's
    MUST verify, else VerificationError (signed-note "Signatures": reject the whole note).
    """
    body = note.text.encode("utf-8")
    valid: list[CosignatureVerifier] = []
    for w in witnesses:
        for sig in note.signatures:
            if sig.name != w.name or sig.key_id != w.key_id:
                continue
            if not w.verify(body, sig.signature):
                raise VerificationError(f"invalid cosignature from witness {w.name}+{w.key_id.hex()}")
            if w not in valid:
                valid.append(w)
    return valid

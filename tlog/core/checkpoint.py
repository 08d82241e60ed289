"""Log checkpoints: signed tree heads as C2SP tlog-checkpoint notes (https://c2sp.org/tlog-checkpoint).

Body: `<origin>\\n<tree size>\\n<base64 root hash>\\n` then optional extension lines; it is
signed as a C2SP signed note (tlog.core.note) whose key name is the origin. DESIGN §2: every
checkpoint carries the line Sigstore clients check (key ID = SHA-256(SPKI DER)[:4]) and,
with an Ed25519 key, also the C2SP Ed25519 line Go's sumdb/note and witnesses check.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tlog.core.keys import LogKey, LogPublicKey
from tlog.core.merkle import HASH_SIZE
from tlog.core.note import (
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    Signer,
    SpkiNoteSigner,
    SpkiNoteVerifier,
    Verifier,
    is_valid_key_name,
    parse_note,
    sign_note,
    verify_note,
)
from tlog.errors import InvalidInput, TlogError, VerificationError

# RFC 9162 tree sizes are uint64.
MAX_TREE_SIZE = (1 << 64) - 1
# Tree size: ASCII decimal, no leading zeros unless the tree is empty (tlog-checkpoint §2).
_SIZE = re.compile(r"0|[1-9][0-9]*")


def _has_control(s: str) -> bool:
    return any(ord(c) < 0x20 for c in s)


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, tree size and RFC 6962 root hash, plus opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # The origin is only required to be a non-empty line (tlog-checkpoint "Note text");
        # it must be a valid key name only when we sign with it (see validate_origin).
        if not self.origin or _has_control(self.origin):
            raise InvalidInput("checkpoint origin must be a non-empty line of text")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InvalidInput("checkpoint tree size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInput(f"checkpoint tree size {self.size} is out of uint64 range")
        if len(self.root_hash) != HASH_SIZE:
            raise InvalidInput(
                f"checkpoint root hash must be {HASH_SIZE} bytes, got {len(self.root_hash)}"
            )
        for ext in self.extensions:
            # Extension lines MUST be non-empty: an empty one would also end the note text
            # early for parsers that split at the first blank line (sigstore-python).
            if not ext or _has_control(ext):
                raise InvalidInput("checkpoint extension lines must be non-empty lines of text")

    def body(self) -> bytes:
        """The note text that gets signed: one line per field, each ending in a newline."""
        lines = [
            self.origin,
            str(self.size),
            base64.b64encode(self.root_hash).decode("ascii"),
            *self.extensions,
        ]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def parse(cls, body: bytes) -> Checkpoint:
        """Parse a checkpoint body (the note text), strictly; InvalidInput if malformed."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("malformed checkpoint: not valid UTF-8") from None
        if not text.endswith("\n"):
            raise InvalidInput("malformed checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        # At least three non-empty lines (tlog-checkpoint "Note text").
        if len(lines) < 3:
            raise InvalidInput("malformed checkpoint: needs origin, tree size and root hash")
        if any(not line for line in lines):
            raise InvalidInput("malformed checkpoint: empty line in the checkpoint text")
        origin, size_s, root_s, *extensions = lines
        if not _SIZE.fullmatch(size_s):
            raise InvalidInput(
                f"malformed checkpoint: tree size {size_s[:40]!r} is not a decimal number "
                "without leading zeros"
            )
        size = int(size_s)
        try:
            root = base64.b64decode(root_s.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise InvalidInput("malformed checkpoint: root hash is not valid base64") from None
        if base64.b64encode(root).decode("ascii") != root_s:
            raise InvalidInput("malformed checkpoint: root hash is not canonical base64")
        return cls(origin, size, root, tuple(extensions))


def validate_origin(name: str) -> None:
    """Check a log name can be both checkpoint origin and note key name.

    Non-empty, printable, no spaces and no '+' (signed-note key names; DESIGN §2).
    """
    if not name:
        raise InvalidInput("log name (checkpoint origin) must not be empty")
    if not name.isprintable() or not is_valid_key_name(name):
        raise InvalidInput(
            f"invalid log name {name!r}: it is the checkpoint origin and key name, so it "
            "must be printable with no spaces and no '+' (e.g. log.example.com)"
        )


def origin_from_url(url: str) -> str:
    """The default log name: host[:port] of the log's public URL (DESIGN §2).

    `@sigstore/verify` requires the checkpoint key name to appear inside the log's base
    URL, so the name is taken from it rather than chosen freely.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # validates the port
    except ValueError as e:
        raise InvalidInput(f"invalid log URL {url!r}: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"log URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise InvalidInput(f"log URL {url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(f"log URL {url!r} must not contain credentials")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal: keep the brackets as in the URL
        host = f"[{host}]"
    name = host if port is None else f"{host}:{port}"
    validate_origin(name)
    return name


def log_note_signers(origin: str, key: LogKey) -> list[Signer]:
    """The note signers of a log checkpoint, in line order (DESIGN §2)."""
    # The SPKI line comes first: sigstore-python verifies the first line whose key ID
    # equals the logID's first 4 bytes and stops there.
    signers: list[Signer] = [SpkiNoteSigner(origin, key)]
    if key.key_type == "ed25519":
        signers.append(Ed25519NoteSigner.from_log_key(origin, key))
    return signers


def log_note_verifiers(origin: str, pub: LogPublicKey) -> list[Verifier]:
    """Note verifiers for a log's checkpoints: the SPKI line, and the C2SP Ed25519 line."""
    verifiers: list[Verifier] = [SpkiNoteVerifier(origin, pub)]
    raw = pub.raw_ed25519()
    if raw is not None:
        verifiers.append(Ed25519NoteVerifier(origin, raw))
    return verifiers


def sign_checkpoint(cp: Checkpoint, key: LogKey, signers: Sequence[Signer] | None = None) -> bytes:
    """Sign a checkpoint as a note whose key name is its origin. A caller that signs every
    batch passes its `log_note_signers(cp.origin, key)`, made once: making them loads the
    key again (~10% of the sequencer's CPU per batch)."""
    validate_origin(cp.origin)
    return sign_note(cp.body().decode("utf-8"),
                     log_note_signers(cp.origin, key) if signers is None else signers)


def verify_checkpoint(
    data: bytes,
    pub: LogPublicKey,
    origin: str | None = None,
    *,
    key_name: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint with a pinned log key and return it.

    origin, if given, must equal the checkpoint's. key_name defaults to the origin (our
    logs); give it for logs whose key name differs, such as Rekor v1's `<host> - <treeID>`
    origins signed by `<host>`. Every failure, malformed input included, raises
    VerificationError: to a verifier, a checkpoint it cannot read proves nothing.
    """
    try:
        note = parse_note(data)
        cp = Checkpoint.parse(note.text.encode("utf-8"))
        if origin is not None and cp.origin != origin:
            raise VerificationError(
                f"checkpoint is for log {cp.origin!r}, expected {origin!r}"
            )
        name = cp.origin if key_name is None else key_name
        if not is_valid_key_name(name):
            raise VerificationError(
                f"checkpoint origin {name!r} cannot be a key name; pass key_name"
            )
        verify_note(note, log_note_verifiers(name, pub))
    except VerificationError as e:
        raise VerificationError(f"checkpoint does not verify: {e}") from e
    except TlogError as e:
        raise VerificationError(f"checkpoint is malformed: {e}") from e
    return cp

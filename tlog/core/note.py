"""C2SP signed notes: text signed by one or more named keys (https://c2sp.org/signed-note).

Wire format, byte for byte: the text (ending in a newline), a blank line, then one line per
signature: U+2014 EM DASH, space, key name, space, base64(4-byte key ID || signature),
newline. Parsing follows Go's golang.org/x/mod/sumdb/note `Open`, and is stricter where
the spec allows it (canonical base64, every known signature verified).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog.core.keys import LogKey, LogPublicKey
from tlog.errors import InvalidInput, VerificationError

# Go's note.Open refuses a note with more than 100 signature lines; the spec requires
# accepting at least 16 (signed-note "Format").
MAX_SIGNATURES = 100
# A byte cap checked before any decoding, so a hostile note costs O(limit). It leaves room
# for 100 post-quantum signatures (the spec warns they approach 5 kB each) and a long text.
MAX_NOTE_SIZE = 1 << 20

# Signature type identifier bytes (signed-note "Signature types").
SIG_TYPE_ED25519 = 0x01
SIG_TYPE_COSIGNATURE_V1 = 0x04

_SIG_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
# ASCII control characters other than newline (forbidden anywhere in a note).
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.key_id) != 4:
            raise InvalidInput(f"note key ID must be 4 bytes, got {len(self.key_id)}")
        if not self.signature:
            raise InvalidInput("note signature must not be empty")

    def line(self) -> str:
        """The signature line, including its final newline."""
        b64 = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {b64}\n"


@dataclass(frozen=True)
class Note:
    """A note's text (with its final newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]


@runtime_checkable
class Signer(Protocol):
    """Signs note text as one (name, key ID) pair."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def sign(self, msg: bytes) -> bytes: ...


@runtime_checkable
class Verifier(Protocol):
    """Checks signatures made by one (name, key ID) pair."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> bytes: ...

    def verify(self, msg: bytes, sig: bytes) -> bool: ...


def _is_unicode_space(ch: str) -> bool:
    # Go's unicode.IsSpace: the Latin-1 spaces plus categories Zs, Zl, Zp.
    return ch.isspace() or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def is_valid_key_name(name: str) -> bool:
    """A key name is non-empty, without Unicode spaces or '+' (signed-note "Format")."""
    return (
        bool(name)
        and "+" not in name
        and not any(_is_unicode_space(c) for c in name)
        and not any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in name)
    )


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise InvalidInput(
            f"invalid note key name {name!r}: it must be non-empty, with no spaces and no '+'"
        )


def _check_text(text: str) -> None:
    # The spec forbids ASCII control characters other than newline anywhere in a note.
    if not text.endswith("\n"):
        raise InvalidInput("note text must end with a newline")
    if m := _CONTROL.search(text):
        raise InvalidInput(f"note text contains control character U+{ord(m.group()):04X}")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InvalidInput("note text is not valid Unicode (lone surrogate)")


def _b64decode_strict(s: str) -> bytes:
    """Standard padded base64 (RFC 4648 §4), canonical: re-encoding must give s back."""
    try:
        raw = base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidInput(f"malformed note: {s[:40]!r} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != s:
        raise InvalidInput(f"malformed note: {s[:40]!r} is not canonical base64")
    return raw


def parse_note(data: bytes) -> Note:
    """Parse a signed note without verifying it; InvalidInput if it is malformed.

    Rejected whole: over MAX_NOTE_SIZE, invalid UTF-8, control characters other than
    newline, no blank line before the signatures, a signature block not ending in a newline,
    any line there that is not `— <name> <base64>` with at least 5 decoded bytes, or more
    than MAX_SIGNATURES lines.
    """
    if len(data) > MAX_NOTE_SIZE:
        raise InvalidInput(f"malformed note: larger than {MAX_NOTE_SIZE} bytes")
    try:
        # Python's strict decoder, like Go's utf8.DecodeRune, rejects overlong forms and
        # encoded surrogates.
        msg = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("malformed note: not valid UTF-8") from None
    if m := _CONTROL.search(msg):
        raise InvalidInput(f"malformed note: control character U+{ord(m.group()):04X}")

    # The text is separated from the signatures by the *last* empty line: the text may
    # itself contain empty lines (signed-note "Format"; Go: bytes.LastIndex).
    split = msg.rfind("\n\n")
    if split < 0:
        raise InvalidInput("malformed note: no blank line between text and signatures")
    text, sigs = msg[: split + 1], msg[split + 2 :]
    if not sigs:
        raise InvalidInput("malformed note: no signature lines")
    if not sigs.endswith("\n"):
        raise InvalidInput("malformed note: signature block must end with a newline")

    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signatures: list[NoteSignature] = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise InvalidInput(
                f"malformed note: signature line {line[:40]!r} does not start with "
                "an em dash (U+2014) and a space"
            )
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise InvalidInput(f"malformed note: signature line {line[:40]!r} has no signature")
        if not is_valid_key_name(name):
            raise InvalidInput(f"malformed note: invalid key name {name[:40]!r}")
        raw = _b64decode_strict(b64)
        if len(raw) < 5:
            raise InvalidInput(
                "malformed note: a signature must hold a 4-byte key ID and at least one "
                f"signature byte, got {len(raw)} bytes"
            )
        signatures.append(NoteSignature(name, raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def format_note(note: Note) -> bytes:
    """Encode a note: text, blank line, one line per signature (inverse of parse_note)."""
    _check_text(note.text)
    if not note.signatures:
        raise InvalidInput("a signed note needs at least one signature")
    if len(note.signatures) > MAX_SIGNATURES:
        raise InvalidInput(f"a note may carry at most {MAX_SIGNATURES} signatures")
    out = (note.text + "\n" + "".join(s.line() for s in note.signatures)).encode("utf-8")
    if len(out) > MAX_NOTE_SIZE:
        raise InvalidInput(f"signed note would be larger than {MAX_NOTE_SIZE} bytes")
    return out


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """Sign text with each signer, in order, and return the encoded signed note.

    Each signature covers the UTF-8 text including its final newline but not the blank
    line (signed-note "Format").
    """
    _check_text(text)
    msg = text.encode("utf-8")
    sigs = []
    for s in signers:
        _check_name(s.name)
        sigs.append(NoteSignature(s.name, bytes(s.key_id), s.sign(msg)))
    return format_note(Note(text, tuple(sigs)))


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a signed note and check it against known verifiers (Go's note.Open).

    Returns the note with only the verified signatures. Raises InvalidInput if the note is
    malformed, VerificationError if it does not verify (see verify_note).
    """
    return verify_note(parse_note(data), verifiers)


def verify_note(note: Note, verifiers: Sequence[Verifier]) -> Note:
    """Check a parsed note's signatures against known verifiers.

    Per signed-note "Signatures": lines whose (name, key ID) match no verifier are ignored;
    a line that matches one MUST verify, else the whole note is rejected; and at least one
    known signature must have verified. Returns the note with only the verified signatures.
    """
    known: dict[tuple[str, bytes], list[Verifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, bytes(v.key_id)), []).append(v)

    msg = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    for sig in note.signatures:
        matches = known.get((sig.name, sig.key_id))
        if not matches:
            continue
        if len(matches) > 1:
            # Two configured keys share name and ID: refuse rather than guess (Go does too).
            raise VerificationError(
                f"ambiguous note verifiers: several keys for {sig.name}+{sig.key_id.hex()}"
            )
        # Every line from a known key is checked, repeats included: the spec says a known
        # signature MUST be verified (Go skips repeats; we are stricter).
        if not matches[0].verify(msg, sig.signature):
            raise VerificationError(
                f"invalid note signature for key {sig.name}+{sig.key_id.hex()}"
            )
        if sig not in verified:
            verified.append(sig)
    if not verified:
        wanted = ", ".join(f"{n}+{k.hex()}" for n, k in known) or "none configured"
        found = ", ".join(f"{s.name}+{s.key_id.hex()}" for s in note.signatures)
        raise VerificationError(
            f"note has no signature from a known key (known: {wanted}; found: {found})"
        )
    return Note(note.text, tuple(verified))


def _key_hash(name: str, sig_type: int, key: bytes) -> bytes:
    # key ID = SHA-256(key name || 0x0A || signature type || public key)[:4]
    # (signed-note "Signatures", RECOMMENDED derivation).
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + key).digest()[:4]


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """C2SP Ed25519 (type 0x01) key ID: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    if len(public_key) != 32:
        raise InvalidInput(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return _key_hash(name, SIG_TYPE_ED25519, public_key)


def cosignature_key_id(name: str, public_key: bytes) -> bytes:
    """C2SP tlog-cosignature/v1 (type 0x04) key ID: SHA-256(name || 0x0A || 0x04 || key)[:4]."""
    if len(public_key) != 32:
        raise InvalidInput(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return _key_hash(name, SIG_TYPE_COSIGNATURE_V1, public_key)


class Ed25519NoteSigner:
    """Signs notes as a C2SP Ed25519 key (type 0x01), as Go's sumdb/note and witnesses do."""

    __slots__ = ("name", "key_id", "public_key", "_key")

    def __init__(self, name: str, private_key: ed25519.Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id: bytes = ed25519_key_id(name, self.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Ed25519NoteSigner:
        if len(seed) != 32:
            raise InvalidInput(f"an Ed25519 private seed is 32 bytes, got {len(seed)}")
        return cls(name, ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_log_key(cls, name: str, key: LogKey) -> Ed25519NoteSigner:
        seed = key.raw_ed25519_seed()
        if seed is None:
            raise InvalidInput("a C2SP Ed25519 note signer needs an Ed25519 log key")
        return cls.from_seed(name, seed)

    def sign(self, msg: bytes) -> bytes:
        return self._key.sign(msg)

    def verifier(self) -> Ed25519NoteVerifier:
        return Ed25519NoteVerifier(self.name, self.public_key)


class Ed25519NoteVerifier:
    """Verifies C2SP Ed25519 (type 0x01) note signatures of one named key."""

    __slots__ = ("name", "key_id", "public_key", "_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        self.name = name
        self.key_id: bytes = ed25519_key_id(name, public_key)
        self.public_key = bytes(public_key)
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(self.public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def verifier_key(self) -> str:
        return format_verifier_key(self.name, self.public_key)


def format_verifier_key(name: str, public_key: bytes) -> str:
    """Verifier key string `<name>+<hex key ID>+<base64(0x01 || key)>` (Go's vkey)."""
    _check_name(name)
    key_id = ed25519_key_id(name, public_key)
    b64 = base64.b64encode(bytes([SIG_TYPE_ED25519]) + public_key).decode("ascii")
    return f"{name}+{key_id.hex()}+{b64}"


def split_key_string(s: str, what: str, types: tuple[int, ...] = (SIG_TYPE_ED25519,)
                     ) -> tuple[str, bytes, int, bytes]:
    """Split `<name>+<8 hex>+<base64(type || 32-byte key)>` into (name, key ID, type, key),
    accepting only the given key types (0x01 note keys; cosignature keys add 0x04)."""
    # Split at the first two '+' only: base64 key data may itself contain '+'.
    parts = s.strip().split("+", 2)
    if len(parts) != 3:
        raise InvalidInput(f"malformed {what}: expected <name>+<key id>+<key data>")
    name, hex_id, b64 = parts
    if not is_valid_key_name(name):
        raise InvalidInput(f"malformed {what}: invalid key name {name!r}")
    if not _HEX8.fullmatch(hex_id):
        raise InvalidInput(f"malformed {what}: key ID {hex_id!r} is not 8 hex digits")
    key = _b64decode_strict(b64) if b64 else b""
    if len(key) != 33 or key[0] not in types:
        kinds = " or ".join(f"0x{t:02x}" for t in types)
        raise InvalidInput(f"malformed {what}: key data must be {kinds} followed by a 32-byte Ed25519 key")
    return name, bytes.fromhex(hex_id), key[0], key[1:]


def parse_verifier_key(s: str) -> Ed25519NoteVerifier:
    """Parse a verifier key string, checking the key ID matches name and key."""
    name, key_id, _, public_key = split_key_string(s, "verifier key")
    v = Ed25519NoteVerifier(name, public_key)
    if v.key_id != key_id:
        raise InvalidInput(
            f"verifier key ID {key_id.hex()} does not match its name and key "
            f"(expected {v.key_id.hex()})"
        )
    return v


def parse_signer_key(s: str) -> Ed25519NoteSigner:
    """Parse Go's signer key `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`."""
    prefix = "PRIVATE+KEY+"
    if not s.startswith(prefix):
        raise InvalidInput("malformed signer key: must start with PRIVATE+KEY+")
    name, key_id, _, seed = split_key_string(s[len(prefix) :], "signer key")
    signer = Ed25519NoteSigner.from_seed(name, seed)
    # The key ID hashes the *public* key, so it can only be checked after deriving it.
    if signer.key_id != key_id:
        raise InvalidInput(
            f"signer key ID {key_id.hex()} does not match its name and key "
            f"(expected {signer.key_id.hex()})"
        )
    return signer


def format_signer_key(name: str, seed: bytes) -> str:
    """Go's signer key string for an Ed25519 seed; it is a secret."""
    signer = Ed25519NoteSigner.from_seed(name, seed)
    b64 = base64.b64encode(bytes([SIG_TYPE_ED25519]) + seed).decode("ascii")
    return f"PRIVATE+KEY+{name}+{signer.key_id.hex()}+{b64}"


def spki_key_id(public_key: LogPublicKey) -> bytes:
    """SHA-256(DER SubjectPublicKeyInfo)[:4]: the first 4 bytes of the logID.

    This is the key hint Sigstore clients look for in a Rekor checkpoint (sigstore-python
    matches it against the entry's logID), and the key ID transparency-dev's ECDSA note
    signatures (type 0x02) use.
    """
    return public_key.log_id()[:4]


class SpkiNoteSigner:
    """Signs notes with a log key under its SPKI-hash key ID (Rekor's checkpoint lines)."""

    __slots__ = ("name", "key_id", "_key")

    def __init__(self, name: str, key: LogKey) -> None:
        _check_name(name)
        self.name = name
        self._key = key
        self.key_id: bytes = spki_key_id(key.public_key)

    def sign(self, msg: bytes) -> bytes:
        # ECDSA: ASN.1 DER over SHA-256(msg); Ed25519: raw over msg (DESIGN §2).
        return self._key.sign(msg)


class SpkiNoteVerifier:
    """Verifies note lines signed by SpkiNoteSigner."""

    __slots__ = ("name", "key_id", "_pub")

    def __init__(self, name: str, public_key: LogPublicKey) -> None:
        _check_name(name)
        self.name = name
        self._pub = public_key
        self.key_id: bytes = spki_key_id(public_key)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._pub.verify(sig, msg)
        except VerificationError:
            return False
        return True


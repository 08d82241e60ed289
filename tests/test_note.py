"""C2SP signed notes (tlog.core.note), pinned to the spec's and Go sumdb/note's own vectors."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tlog.core.keys import KeyType, LogKey
from tlog.core.note import (
    MAX_SIGNATURES,
    Ed25519NoteSigner,
    Ed25519NoteVerifier,
    Note,
    NoteSignature,
    Signer,
    SpkiNoteSigner,
    SpkiNoteVerifier,
    Verifier,
    cosignature_key_id,
    ed25519_key_id,
    format_note,
    format_signer_key,
    format_verifier_key,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
)
from tlog.errors import InvalidInput, VerificationError

# golang.org/x/mod/sumdb/note note_test.go (TestSign, TestOpen, TestVerifierList).
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
PETER_MSG = (TEXT + "\n" + PETER_SIG).encode()

# c2sp.org/signed-note's opening example: the text itself holds an empty line.
QUASIMODO_MSG = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()


def peter() -> Ed25519NoteVerifier:
    return parse_verifier_key(PETER_VKEY)


def enoch() -> Ed25519NoteVerifier:
    return parse_verifier_key(ENOCH_VKEY)


# --- the spec's example -------------------------------------------------------------------


def test_go_example_note_verifies_with_its_verifier_key() -> None:
    note = open_note(PETER_MSG, [peter()])
    assert note.text == TEXT
    assert [(s.name, s.key_id.hex()) for s in note.signatures] == [("PeterNeumann", "c74f20a3")]


def test_signing_with_decoded_example_private_key_reproduces_the_note_byte_for_byte() -> None:
    # Decode the skey by hand: PRIVATE+KEY+<name>+<hex id>+base64(0x01 || 32-byte seed).
    _, _, name, hex_id, b64 = PETER_SKEY.split("+", 4)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x01 and len(raw) == 33
    signer = Ed25519NoteSigner.from_seed(name, raw[1:])
    assert signer.key_id.hex() == hex_id
    # Ed25519 is deterministic (RFC 8032), so the exact bytes must come back.
    assert sign_note(TEXT, [signer]) == PETER_MSG


def test_parse_signer_key_matches_go_and_derives_the_verifier_key() -> None:
    signer = parse_signer_key(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.verifier().verifier_key() == PETER_VKEY
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]
    assert format_signer_key("PeterNeumann", seed) == PETER_SKEY


def test_format_verifier_key_reproduces_go_key_strings() -> None:
    v = peter()
    assert v.key_id == bytes.fromhex("c74f20a3")
    assert format_verifier_key("PeterNeumann", v.public_key) == PETER_VKEY
    assert enoch().verifier_key() == ENOCH_VKEY


def test_spec_example_with_empty_line_in_text_splits_at_last_blank_line() -> None:
    note = parse_note(QUASIMODO_MSG)
    assert note.text == (
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\n"
        "ed \u00e8 subito sera.\n"
    )
    assert len(note.signatures) == 1
    assert note.signatures[0].name == "quasimodo.example/salvatore"
    assert format_note(note) == QUASIMODO_MSG


def test_go_doubly_signed_example() -> None:
    msg = (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()
    # One known key: the other line is unknown and ignored.
    note = open_note(msg, [peter()])
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    # Both known: both verified.
    note = open_note(msg, [peter(), enoch()])
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    # None known: rejected.
    with pytest.raises(VerificationError, match="no signature from a known key"):
        open_note(msg, [])


# --- verifier and signer key strings ------------------------------------------------------


def test_verifier_key_manglings_are_rejected() -> None:
    # Go's TestNewVerifier: every proper substring and every single-byte change fails.
    b = PETER_VKEY
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i == 0 and j == len(b):
                continue
            with pytest.raises(InvalidInput):
                parse_verifier_key(b[i:j])
    for i in range(len(b)):
        mangled = b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :]
        with pytest.raises(InvalidInput):
            parse_verifier_key(mangled)


@pytest.mark.parametrize(
    "vkey",
    [
        # Go: wrong length key with adjusted key hash; unknown algorithm with adjusted hash.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+00000000+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "",
    ],
)
def test_bad_verifier_keys_are_rejected(vkey: str) -> None:
    with pytest.raises(InvalidInput):
        parse_verifier_key(vkey)


def test_signer_key_manglings_are_rejected() -> None:
    b = PETER_SKEY
    for i in range(len(b)):
        mangled = b[:i] + chr(ord(b[i]) + 1) + b[i + 1 :]
        with pytest.raises(InvalidInput):
            parse_signer_key(mangled)
    for j in range(1, len(b)):
        with pytest.raises(InvalidInput):
            parse_signer_key(b[:j])


def test_parse_verifier_key_accepts_other_implementations_keys() -> None:
    # transparency-dev/formats note_cosigv1_test.go: a type 0x01 key whose base64 holds '+'.
    v = parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    assert v.name == "TEST" and v.key_id.hex() == "7997405c"


def test_cosignature_key_id_matches_a_published_witness_key() -> None:
    # transparency-dev/formats note_cosigv1_test.go: a native type 0x04 witness vkey.
    vkey = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    name, hex_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    assert raw[0] == 0x04
    assert cosignature_key_id(name, raw[1:]).hex() == hex_id
    # Same key under type 0x01 gets another ID: the type byte separates domains.
    assert ed25519_key_id(name, raw[1:]) != cosignature_key_id(name, raw[1:])
    # A type 0x04 key string is not a type 0x01 verifier key.
    with pytest.raises(InvalidInput):
        parse_verifier_key(f"{name}+{hex_id}+{b64}")


def test_key_id_helpers_reject_wrong_key_sizes() -> None:
    with pytest.raises(InvalidInput):
        cosignature_key_id("w", b"\x00" * 31)
    with pytest.raises(InvalidInput):
        ed25519_key_id("w", b"\x00" * 33)


# --- parse errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        pytest.param(TEXT, id="no-signature-block"),
        pytest.param(TEXT + "\n", id="blank-line-but-no-signatures"),
        pytest.param(TEXT + PETER_SIG, id="missing-blank-line"),
        pytest.param(TEXT + "\n" + PETER_SIG[:-1], id="no-final-newline"),
        pytest.param("\x01" + TEXT + "\n" + PETER_SIG, id="control-char"),
        pytest.param(TEXT.replace("\n", "\r\n") + "\n" + PETER_SIG, id="carriage-return"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014", "-"), id="hyphen-not-em-dash"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014", "--"), id="double-hyphen"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014", "\u2013"), id="en-dash"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("\u2014 ", "\u2014"), id="no-space-after-dash"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann\n", id="no-signature-field"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann \n", id="empty-signature-field"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name"), id="space-in-name"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter+Neumann"), id="plus-in-name"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter\u00a0N"), id="nbsp-in-name"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann !!!notbase64!!!\n", id="bad-base64"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AM"), id="unpadded-base64"),
        pytest.param(TEXT + "\n" + PETER_SIG.replace("AM=", "AN="), id="non-canonical-base64"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann x08g\n", id="short-key-id"),
        pytest.param(TEXT + "\n" + "\u2014 PeterNeumann x08gow==\n", id="key-id-without-signature"),
        pytest.param(TEXT + "\n" + PETER_SIG + "Unexpected line.\n", id="trailing-text-line"),
        pytest.param(TEXT + "\n" + PETER_SIG + "\n", id="trailing-blank-line"),
    ],
)
def test_malformed_notes_are_rejected(msg: str) -> None:
    with pytest.raises(InvalidInput, match="malformed note"):
        parse_note(msg.encode())
    with pytest.raises(InvalidInput):
        open_note(msg.encode(), [peter()])


def test_invalid_utf8_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="UTF-8"):
        parse_note(b"\xff" + PETER_MSG)
    # An encoded surrogate (CESU-style) is not valid UTF-8 either.
    with pytest.raises(InvalidInput, match="UTF-8"):
        parse_note(b"\xed\xa0\x80\n\n" + PETER_SIG.encode())


def test_more_than_max_signatures_is_rejected_but_the_limit_itself_is_fine() -> None:
    ok = (TEXT + "\n" + PETER_SIG * MAX_SIGNATURES).encode()
    assert len(parse_note(ok).signatures) == MAX_SIGNATURES
    assert len(open_note(ok, [peter()]).signatures) == 1  # repeats collapse
    too_many = (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1)).encode()
    with pytest.raises(InvalidInput, match="more than"):
        parse_note(too_many)


def test_oversized_note_is_rejected_before_decoding() -> None:
    huge = ("a" * (1 << 20) + "\n\n" + PETER_SIG).encode()
    with pytest.raises(InvalidInput, match="larger than"):
        parse_note(huge)


# --- verification semantics ---------------------------------------------------------------


def test_unknown_signers_are_ignored_even_sharing_name_or_key_id() -> None:
    # Spec: ignore signatures from unknown keys even if they share a name or an ID (not both).
    other = Ed25519NoteSigner("PeterNeumann", ed25519.Ed25519PrivateKey.generate())
    same_name = NoteSignature("PeterNeumann", other.key_id, other.sign(TEXT.encode()))
    same_id = NoteSignature("Somebody", bytes.fromhex("c74f20a3"), b"\x00" * 64)
    msg = (TEXT + "\n" + same_name.line() + same_id.line() + PETER_SIG).encode()
    note = open_note(msg, [peter()])
    assert [(s.name, s.key_id.hex()) for s in note.signatures] == [("PeterNeumann", "c74f20a3")]


def test_tampered_text_fails_verification() -> None:
    msg = PETER_MSG.replace(b"answer", b"Answer")
    with pytest.raises(VerificationError, match="invalid note signature for key PeterNeumann"):
        open_note(msg, [peter()])


def test_tampered_signature_fails_verification() -> None:
    # Go's TestOpen "Invalid signature": four base64 characters inserted mid-signature.
    sig = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(VerificationError, match="invalid note signature"):
        open_note((TEXT + "\n" + sig).encode(), [peter()])


def test_bad_signature_from_a_known_key_rejects_the_note_even_with_a_good_one() -> None:
    bad_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    msg = (TEXT + "\n" + PETER_SIG + bad_enoch).encode()
    assert open_note(msg, [peter()]).text == TEXT  # Enoch unknown: ignored
    with pytest.raises(VerificationError, match="EnochRoot"):
        open_note(msg, [peter(), enoch()])


def test_ambiguous_verifiers_are_refused() -> None:
    with pytest.raises(VerificationError, match="ambiguous"):
        open_note(PETER_MSG, [peter(), peter()])


def test_sign_note_with_several_signers_round_trips_through_open() -> None:
    a = Ed25519NoteSigner("a.example/log", ed25519.Ed25519PrivateKey.generate())
    b = Ed25519NoteSigner("b.example", ed25519.Ed25519PrivateKey.generate())
    text = "line one\n\nline three after an empty line\n"
    msg = sign_note(text, [a, b])
    assert msg.startswith((text + "\n\u2014 a.example/log ").encode())
    note = open_note(msg, [a.verifier(), b.verifier()])
    assert note.text == text and len(note.signatures) == 2
    assert format_note(parse_note(msg)) == msg


@pytest.mark.parametrize(
    "text",
    ["no final newline", "", "tab\there\n", "bell\x07\n", "lone \ud800 surrogate\n"],
)
def test_sign_note_rejects_text_that_could_not_be_parsed_back(text: str) -> None:
    signer = parse_signer_key(PETER_SKEY)
    with pytest.raises(InvalidInput):
        sign_note(text, [signer])


def test_sign_note_rejects_invalid_signer_names() -> None:
    class Bad:
        name = "bad name"
        key_id = b"\x00\x00\x00\x00"

        def sign(self, msg: bytes) -> bytes:
            return b"x"

    with pytest.raises(InvalidInput, match="key name"):
        sign_note(TEXT, [Bad()])


def test_note_signature_checks_its_fields() -> None:
    with pytest.raises(InvalidInput):
        NoteSignature("n", b"\x00\x01\x02", b"sig")
    with pytest.raises(InvalidInput):
        NoteSignature("n", b"\x00\x01\x02\x03", b"")
    with pytest.raises(InvalidInput):
        NoteSignature("", b"\x00\x01\x02\x03", b"s")
    with pytest.raises(InvalidInput, match="at least one signature"):
        format_note(Note(TEXT, ()))


# --- SPKI-keyed lines (the log key) -------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
def test_spki_signer_uses_log_id_prefix_and_verifies(key_type: KeyType) -> None:
    key = LogKey.generate(key_type)
    signer = SpkiNoteSigner("log.example", key)
    verifier = SpkiNoteVerifier("log.example", key.public_key)
    assert signer.key_id == verifier.key_id == key.public_key.log_id()[:4]
    msg = sign_note(TEXT, [signer])
    assert open_note(msg, [verifier]).signatures[0].key_id == signer.key_id
    # A different key of the same type with the same name is a different (unknown) key.
    stranger = SpkiNoteVerifier("log.example", LogKey.generate(key_type).public_key)
    with pytest.raises(VerificationError, match="no signature from a known key"):
        open_note(msg, [stranger])
    with pytest.raises(VerificationError):
        open_note(msg.replace(b"If you", b"if you"), [verifier])


def test_concrete_classes_satisfy_the_protocols() -> None:
    key = LogKey.generate("ed25519")
    assert isinstance(SpkiNoteSigner("n", key), Signer)
    assert isinstance(Ed25519NoteSigner.from_log_key("n", key), Signer)
    assert isinstance(SpkiNoteVerifier("n", key.public_key), Verifier)
    assert isinstance(peter(), Verifier)


def test_ed25519_signer_needs_an_ed25519_log_key() -> None:
    with pytest.raises(InvalidInput):
        Ed25519NoteSigner.from_log_key("n", LogKey.generate("ecdsa-p256"))

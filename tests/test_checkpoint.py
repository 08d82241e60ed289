"""Checkpoints (tlog.core.checkpoint): C2SP tlog-checkpoint bodies, signing and verification."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, strategies as st

from tlog.core.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    log_note_signers,
    log_note_verifiers,
    origin_from_url,
    sign_checkpoint,
    validate_origin,
    verify_checkpoint,
)
from tlog.core.keys import KEY_TYPES, LogKey, LogPublicKey
from tlog.core.note import (
    Ed25519NoteSigner,
    SpkiNoteVerifier,
    ed25519_key_id,
    format_verifier_key,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
)
from tlog.errors import InvalidInput, VerificationError

# c2sp.org/tlog-checkpoint's example.
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
).encode()

ROOT = hashlib.sha256(b"root").digest()
ORIGIN = "log.example.com"


@pytest.fixture(params=KEY_TYPES)
def key(request: pytest.FixtureRequest) -> LogKey:
    return LogKey.generate(request.param)


# --- body -------------------------------------------------------------------------------


def test_spec_example_parses_and_body_is_reproduced_byte_for_byte() -> None:
    note = parse_note(SPEC_CHECKPOINT)
    cp = Checkpoint.parse(note.text.encode())
    assert cp == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert cp.body() == note.text.encode()


def test_body_layout_with_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, ROOT, ("Timestamp: 1679349379012118479",))
    b64 = base64.b64encode(ROOT).decode()
    assert cp.body() == f"{ORIGIN}\n0\n{b64}\nTimestamp: 1679349379012118479\n".encode()
    assert Checkpoint.parse(cp.body()) == cp


def _body(origin: str = ORIGIN, size: str = "5", root: str | None = None, *ext: str) -> bytes:
    r = base64.b64encode(ROOT).decode() if root is None else root
    return "".join(line + "\n" for line in (origin, size, r, *ext)).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_body(size="05"), id="leading-zero"),
        pytest.param(_body(size="00"), id="double-zero"),
        pytest.param(_body(size="+5"), id="plus-sign"),
        pytest.param(_body(size="-1"), id="negative"),
        pytest.param(_body(size=" 5"), id="space"),
        pytest.param(_body(size="1_000"), id="underscore"),
        pytest.param(_body(size="\u0665"), id="arabic-digit"),
        pytest.param(_body(size="0x10"), id="hex"),
        pytest.param(_body(size=str(MAX_TREE_SIZE + 1)), id="over-uint64"),
        pytest.param(_body(size=""), id="empty-size"),
        pytest.param(_body(root=base64.b64encode(ROOT[:31]).decode()), id="short-root"),
        pytest.param(_body(root=base64.b64encode(ROOT + b"\0").decode()), id="long-root"),
        pytest.param(_body(root="not base64!"), id="bad-base64"),
        pytest.param(_body(root=base64.b64encode(ROOT).decode().rstrip("=")), id="unpadded-root"),
        pytest.param(_body(origin=""), id="empty-origin"),
        pytest.param(_body(ORIGIN, "5", None, ""), id="empty-extension"),
        pytest.param(_body()[:-1], id="no-final-newline"),
        pytest.param(f"{ORIGIN}\n5\n".encode(), id="two-lines"),
        pytest.param(b"\xff" + _body(), id="bad-utf8"),
        pytest.param(_body(origin="a\x01b"), id="control-char"),
    ],
)
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(InvalidInput, match="checkpoint"):
        Checkpoint.parse(body)


def test_largest_tree_size_is_accepted() -> None:
    cp = Checkpoint.parse(_body(size=str(MAX_TREE_SIZE)))
    assert cp.size == MAX_TREE_SIZE


def test_origin_with_spaces_parses_like_rekor_v1() -> None:
    # Rekor v1 origins are "<host> - <treeID>": legal checkpoint origins, not key names.
    cp = Checkpoint.parse(_body(origin="rekor.sigstore.dev - 1193050959916656506"))
    assert cp.origin == "rekor.sigstore.dev - 1193050959916656506"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root_hash": ROOT},
        {"origin": "a\nb", "size": 1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": -1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": True, "root_hash": ROOT},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT[:16]},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ("",)},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ("a\nb",)},
    ],
)
def test_invalid_checkpoints_cannot_be_built(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(**kwargs)


@given(
    origin=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, exclude_categories=["Cs"]),
        min_size=1,
        max_size=40,
    ),
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    ext=st.lists(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1), max_size=3),
)
def test_body_parse_round_trip(origin: str, size: int, root: bytes, ext: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(ext))
    assert Checkpoint.parse(cp.body()) == cp


# --- signing ----------------------------------------------------------------------------


def test_ecdsa_checkpoint_has_one_spki_line() -> None:
    key = LogKey.generate("ecdsa-p256")
    data = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), key)
    note = parse_note(data)
    assert note.text.encode() == Checkpoint(ORIGIN, 3, ROOT).body()
    assert [(s.name, s.key_id) for s in note.signatures] == [
        (ORIGIN, key.public_key.log_id()[:4])
    ]
    assert data.count("\u2014 ".encode()) == 1


def test_ed25519_checkpoint_has_spki_line_then_c2sp_line() -> None:
    key = LogKey.generate("ed25519")
    data = sign_checkpoint(Checkpoint(ORIGIN, 3, ROOT), key)
    note = parse_note(data)
    raw = key.public_key.raw_ed25519()
    assert raw is not None
    assert [(s.name, s.key_id) for s in note.signatures] == [
        (ORIGIN, key.public_key.log_id()[:4]),
        (ORIGIN, ed25519_key_id(ORIGIN, raw)),
    ]
    # A Go sumdb/note client, configured with only the C2SP verifier key, accepts it.
    vkey = format_verifier_key(ORIGIN, raw)
    assert open_note(data, [parse_verifier_key(vkey)]).signatures[0].key_id == ed25519_key_id(
        ORIGIN, raw
    )
    # And a Sigstore-style client with only the SPKI key accepts it too.
    assert open_note(data, [SpkiNoteVerifier(ORIGIN, key.public_key)]).text == note.text


def test_sign_checkpoint_refuses_origin_that_is_not_a_key_name(key: LogKey) -> None:
    with pytest.raises(InvalidInput, match="log name"):
        sign_checkpoint(Checkpoint("rekor.example - 123", 1, ROOT), key)


# --- verification -----------------------------------------------------------------------


def test_verify_checkpoint_round_trip(key: LogKey) -> None:
    cp = Checkpoint(ORIGIN, 7, ROOT, ("ext line",))
    data = sign_checkpoint(cp, key)
    assert verify_checkpoint(data, key.public_key) == cp
    assert verify_checkpoint(data, key.public_key, origin=ORIGIN) == cp


def test_verify_checkpoint_rejects_another_key(key: LogKey) -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    other = LogKey.generate(key.key_type).public_key
    with pytest.raises(VerificationError, match="no signature from a known key"):
        verify_checkpoint(data, other)


def test_verify_checkpoint_rejects_origin_mismatch(key: LogKey) -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    with pytest.raises(VerificationError, match=r"expected 'other\.example'"):
        verify_checkpoint(data, key.public_key, origin="other.example")


def test_verify_checkpoint_rejects_tampered_size_and_root(key: LogKey) -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    with pytest.raises(VerificationError, match="invalid note signature"):
        verify_checkpoint(data.replace(b"\n7\n", b"\n8\n", 1), key.public_key)
    b64 = base64.b64encode(ROOT)
    evil = base64.b64encode(hashlib.sha256(b"evil").digest())
    with pytest.raises(VerificationError, match="invalid note signature"):
        verify_checkpoint(data.replace(b64, evil), key.public_key)


def test_verify_checkpoint_rejects_a_signature_under_another_name(key: LogKey) -> None:
    # Same key, but the key name is not the origin: it is not the log's checkpoint line.
    cp = Checkpoint(ORIGIN, 7, ROOT)
    data = sign_checkpoint(Checkpoint("evil.example", 7, ROOT), key)
    forged = data.replace(b"evil.example\n", cp.origin.encode() + b"\n", 1)
    with pytest.raises(VerificationError):
        verify_checkpoint(forged, key.public_key)


def test_verify_checkpoint_turns_malformed_input_into_verification_error(key: LogKey) -> None:
    with pytest.raises(VerificationError, match="malformed"):
        verify_checkpoint(b"garbage", key.public_key)
    text = f"{ORIGIN}\n007\n{base64.b64encode(ROOT).decode()}\n"
    data = sign_note(text, log_note_signers(ORIGIN, key))
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        verify_checkpoint(data, key.public_key)


def test_witness_cosignatures_are_ignored(key: LogKey) -> None:
    data = sign_checkpoint(Checkpoint(ORIGIN, 7, ROOT), key)
    witness = Ed25519NoteSigner("witness.example/w1", ed25519.Ed25519PrivateKey.generate())
    body = parse_note(data).text.encode()
    line = f"\u2014 {witness.name} ".encode() + base64.b64encode(
        witness.key_id + witness.sign(body)
    ) + b"\n"
    assert verify_checkpoint(data + line, key.public_key).size == 7


def test_verify_checkpoint_with_a_separate_key_name() -> None:
    # Rekor v1 style: origin "<host> - <treeID>", key name "<host>".
    key = LogKey.generate("ecdsa-p256")
    cp = Checkpoint("rekor.example - 42", 2, ROOT)
    data = sign_note(cp.body().decode(), log_note_signers("rekor.example", key))
    assert verify_checkpoint(data, key.public_key, key_name="rekor.example") == cp
    with pytest.raises(VerificationError, match="key_name"):
        verify_checkpoint(data, key.public_key)


def test_log_note_verifiers_match_key_type() -> None:
    assert len(log_note_verifiers(ORIGIN, LogKey.generate("ecdsa-p256").public_key)) == 1
    assert len(log_note_verifiers(ORIGIN, LogKey.generate("ed25519").public_key)) == 2


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["log.example.com", "log.example.com:8443", "example.com/log42",
                                  "[::1]:3000"])
def test_valid_origins(name: str) -> None:
    validate_origin(name)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\nb", "a\u00a0b", "a\u200bb", "a\u2028b"])
def test_invalid_origins(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_origin(name)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://log.example.com", "log.example.com"),
        ("https://log.example.com/", "log.example.com"),
        ("https://log.example.com:8443/api/v1", "log.example.com:8443"),
        ("http://LOG.Example.COM", "log.example.com"),
        ("http://127.0.0.1:3000", "127.0.0.1:3000"),
        ("http://[::1]:3000/", "[::1]:3000"),
    ],
)
def test_origin_from_url(url: str, origin: str) -> None:
    assert origin_from_url(url) == origin
    # @sigstore/verify: the key name must appear inside the log's base URL.
    assert origin in url.lower()


@pytest.mark.parametrize(
    "url",
    ["log.example.com", "ftp://log.example.com", "https://", "https://u:p@log.example.com", "https://x:99999"],
)
def test_origin_from_bad_url(url: str) -> None:
    with pytest.raises(InvalidInput):
        origin_from_url(url)


# --- a production Rekor v1 checkpoint -------------------------------------------------------

# rekor.sigstore.dev, from sigstore-python test/assets/npm/sigstore-3.1.0.sigstore.json:
# origin "<host> - <treeID>", key name "<host>", key ID = first 4 bytes of the logID.
REKOR_PUBLIC_KEY_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""
REKOR_CHECKPOINT = (
    "rekor.sigstore.dev - 1193050959916656506\n"
    "46800506\n"
    "UwYvBhbfZgoyJ/HqARKhExgzALK6fluhbUSp5RaSai0=\n"
    "\n"
    "\u2014 rekor.sigstore.dev wNI9ajBFAiAXulrSrSNrVQgAVW4p5YBhXJEkOxCT1Zu9fdWpmeEu1QIhANZsrJ2o38g2"
    "VDIHoVd8Fj5sn3tGcMw/8Cv2BFlsiSau\n"
).encode()


def test_rekor_production_checkpoint_verifies_with_its_host_as_key_name() -> None:
    pub = LogPublicKey.from_pem(REKOR_PUBLIC_KEY_PEM)
    assert parse_note(REKOR_CHECKPOINT).signatures[0].key_id == pub.log_id()[:4]
    cp = verify_checkpoint(REKOR_CHECKPOINT, pub, key_name="rekor.sigstore.dev")
    assert cp.origin == "rekor.sigstore.dev - 1193050959916656506"
    assert cp.size == 46800506
    assert cp.root_hash.hex() == base64.b64decode("UwYvBhbfZgoyJ/HqARKhExgzALK6fluhbUSp5RaSai0=").hex()
    with pytest.raises(VerificationError):
        verify_checkpoint(
            REKOR_CHECKPOINT.replace(b"46800506", b"46800507"), pub, key_name="rekor.sigstore.dev"
        )

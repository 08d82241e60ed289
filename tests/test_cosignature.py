"""C2SP tlog-cosignature/v1: the spec's example, a real witness's cosignature, key formats."""

from __future__ import annotations

import base64
import hashlib

import pytest

from tlog.core.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosignature_timestamp,
    cosigned_by,
    cosigned_message,
    parse_cosignature_signer_key,
    parse_cosignature_verifier_key,
)
from tlog.core.note import (
    Ed25519NoteVerifier,
    NoteSignature,
    open_note,
    parse_note,
    parse_verifier_key,
    sign_note,
)
from tlog.errors import InvalidInput, VerificationError

# https://c2sp.org/tlog-cosignature: the example checkpoint, its witness line, and the
# signed message the spec shows for that line's timestamp.
SPEC_BODY = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_LINE = ("\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZ"
             "CB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n")
SPEC_MESSAGE = (b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
                b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")

# A production witness (remora.n621.de) cosigning a CT log checkpoint, with both parties'
# published vkeys — the spec publishes no key for its own example, so this is the vector a
# signature can be checked against (it is also in transparency-dev/formats' tests).
REAL_BODY = (b"arche2025h1.staging.ct.transparency.dev\n1432088532\n"
             b"U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n")
REAL_SIGS = (
    "\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3Ny"
    "gNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n"
    "\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9s"
    "XTynk5XeU/zZ0WBxtqB0DrAWfBw==\n"
    "\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY"
    "/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n")
REAL_WITNESS = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
REAL_LOG = "arche2025h1.staging.ct.transparency.dev+ba2f06c0+AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f"


def test_signed_message_matches_the_spec_example_byte_for_byte() -> None:
    assert cosigned_message(1679315147, SPEC_BODY) == SPEC_MESSAGE


def test_spec_example_line_is_a_timestamped_ed25519_cosignature() -> None:
    (sig,) = parse_note(SPEC_BODY + b"\n" + SPEC_LINE.encode()).signatures
    assert sig.name == "witness.example.com/w1" and sig.key_id == bytes.fromhex("8d66cf3f")
    # key ID (4) || u64 timestamp || 64-byte Ed25519 signature; the timestamp is the one the
    # spec's signed-message example shows.
    assert len(sig.signature) == 72 and cosignature_timestamp(sig.signature) == 1679315147


def test_real_witness_cosignature_verifies_and_binds_the_checkpoint() -> None:
    witness = parse_cosignature_verifier_key(REAL_WITNESS)
    assert witness.key_id.hex() == "da77ade7"
    note = parse_note(REAL_BODY + b"\n" + REAL_SIGS.encode())
    assert cosigned_by(note, [witness]) == [witness]
    # The log's own C2SP Ed25519 line verifies with our note verifier, from the same note.
    open_note(REAL_BODY + b"\n" + REAL_SIGS.encode(), [parse_verifier_key(REAL_LOG)])
    tampered = parse_note(REAL_BODY.replace(b"1432088532", b"1432088533") + b"\n" + REAL_SIGS.encode())
    with pytest.raises(VerificationError):
        cosigned_by(tampered, [witness])


def test_key_id_is_sha256_of_name_newline_0x04_key() -> None:
    signer = CosignatureSigner.generate("witness.example/w1")
    expected = hashlib.sha256(b"witness.example/w1\n\x04" + signer.public_key).digest()[:4]
    assert signer.key_id == expected
    vkey = signer.verifier().verifier_key()
    name, key_id, data = vkey.split("+", 2)
    assert (name, key_id) == ("witness.example/w1", expected.hex())
    assert base64.b64decode(data) == b"\x04" + signer.public_key
    assert parse_cosignature_verifier_key(vkey).public_key == signer.public_key


def test_cosignature_round_trip_covers_timestamp_and_extension_lines() -> None:
    clock = iter([1_700_000_000.7])
    signer = CosignatureSigner.generate("w.example/1")
    signer = parse_cosignature_signer_key(signer.signer_key(), clock=lambda: next(clock))
    body = b"log.example\n5\n" + base64.b64encode(bytes(32)) + b"\nextension line\n"
    sig = signer.sign(body)
    assert cosignature_timestamp(sig) == 1_700_000_000
    v = signer.verifier()
    assert v.verify(body, sig)
    assert not v.verify(body.replace(b"extension", b"Extension"), sig)
    later = (1_700_000_001).to_bytes(8, "big") + sig[8:]
    assert not v.verify(body, later)  # the timestamp is signed too


def test_cosignature_is_not_an_ed25519_note_signature() -> None:
    signer = CosignatureSigner.generate("w.example/1")
    body = "log.example\n5\n" + base64.b64encode(bytes(32)).decode() + "\n"
    note = sign_note(body, [signer])
    plain = Ed25519NoteVerifier("w.example/1", signer.public_key)
    assert plain.key_id != signer.key_id  # type 0x01 vs 0x04: different key IDs
    with pytest.raises(VerificationError):
        open_note(note, [plain])
    open_note(note, [signer.verifier()])


def test_cosigned_by_ignores_unknown_lines_and_rejects_bad_known_ones() -> None:
    a, b = CosignatureSigner.generate("a.example/w"), CosignatureSigner.generate("b.example/w")
    body = "log.example\n5\n" + base64.b64encode(bytes(32)).decode() + "\n"
    note = parse_note(sign_note(body, [a, b]))
    assert cosigned_by(note, [b.verifier()]) == [b.verifier()]
    assert cosigned_by(note, [b.verifier(), a.verifier()]) == [b.verifier(), a.verifier()]
    unknown = CosignatureVerifier("c.example/w", CosignatureSigner.generate("x").public_key)
    assert cosigned_by(note, [unknown]) == []
    forged = NoteSignature(a.name, a.key_id, bytes(72))
    bad = parse_note(body.encode() + b"\n" + forged.line().encode())
    with pytest.raises(VerificationError):
        cosigned_by(bad, [a.verifier()])


def test_ed25519_note_vkey_is_accepted_as_cosignature_key_like_go() -> None:
    signer = CosignatureSigner.generate("w.example/1")
    note_vkey = Ed25519NoteVerifier("w.example/1", signer.public_key).verifier_key()
    assert parse_cosignature_verifier_key(note_vkey).key_id == signer.key_id


@pytest.mark.parametrize("bad", [
    "w.example/1+00000000+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",  # wrong key ID
    "w.example/1+da77ade7",
    "w example+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    "remora.n621.de+da77ade7+AuvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",  # type 0x02
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw",  # short
    "remora.n621.de+xyz12345+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
])
def test_malformed_witness_vkeys_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_cosignature_verifier_key(bad)


def test_signer_key_with_wrong_id_is_refused() -> None:
    key = CosignatureSigner.generate("w.example/1").signer_key()
    parts = key.split("+")
    parts[3] = "00000000"
    with pytest.raises(InvalidInput):
        parse_cosignature_signer_key("+".join(parts))

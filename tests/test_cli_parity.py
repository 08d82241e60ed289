"""rekor-cli's and cosign's habits in `tlog` (README "Coming from cosign / rekor-cli"), each
against a real log: `get --log-index`, `trust remove`, `logproof`, `verify-entry`."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import Result

from tlog.core.checkpoint import Checkpoint, sign_checkpoint
from tlog.core.keys import LogKey
from tlog.core.userkeys import SigningKey

from .cli_support import Server, fails, json_out, ok, server_fixture, tlog  # noqa: F401


@pytest.fixture(scope="module")
def home(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three signed files (entries 0..2 of a fresh log), the log pinned, a key pair."""
    d = tmp_path_factory.mktemp("parity")
    ok(tlog("keygen", "--out", "me", cwd=d, env={"TLOG_PASSWORD": ""}))
    ok(run(d, "trust", "add", server.url))
    for name in ("a.txt", "b.txt", "c.txt"):
        (d / name).write_text(f"{name}\n")
        ok(run(d, "sign", "--key", "me.key", name))
    return d


def run(home: Path, *args: str | Path) -> Result:
    return tlog(*args, "--trust", home / "trust.json", cwd=home,
                env={"TLOG_PASSWORD": "", "XDG_STATE_HOME": str(home / "state")})


def test_get_log_index_is_index(home: Path) -> None:
    assert ok(run(home, "get", "--log-index", "1")).stdout == ok(run(home, "get", "--index", "1")).stdout
    assert "Entry 1 in log" in run(home, "get", "--log-index", "1").stdout


def test_trust_remove(home: Path, server: Server, tmp_path: Path) -> None:
    copy = tmp_path / "trust.json"
    copy.write_text((home / "trust.json").read_text())
    removed = json_out(tlog("trust", "remove", server.url + "/", "--trust", copy, "--json"))
    assert removed["removed"] and removed["url"] == server.url
    assert json_out(tlog("trust", "list", "--trust", copy, "--json")) == []
    fails(tlog("trust", "remove", server.url, "--trust", copy), "is not pinned")


def test_logproof_verifies_both_roots(home: Path, server: Server) -> None:
    proof = json_out(run(home, "logproof", "--first-size", "1", "--last-size", "3", "--json"))
    assert proof["verified"] and proof["firstSize"] == 1 and proof["lastSize"] == 3
    first = json_out(run(home, "get", "--index", "0", "--json"))
    (entry,) = first.values()
    assert proof["firstRootHash"] == hashlib.sha256(
        b"\x00" + base64.b64decode(entry["body"])).hexdigest()  # RFC 6962 leaf hash
    current = json_out(run(home, "info", "--json"))
    whole = json_out(run(home, "logproof", "--first-size", "2", "--json"))
    assert whole["lastSize"] == current["treeSize"] and whole["lastRootHash"] == current["rootHash"]
    assert "verified" in ok(run(home, "logproof", "--first-size", "2")).stdout
    fails(run(home, "logproof", "--first-size", "1", "--last-size", "1000"), "fewer than 1000")


def test_verify_entry_by_uuid_index_and_content(home: Path) -> None:
    state = home / "state" / "seen.json"
    by_index = json_out(run(home, "verify-entry", "--log-index", "1", "--state", state, "--json"))
    assert by_index["verified"] and by_index["lastSeenTreeSize"] is None
    saved = json.loads(state.read_text())["checkpoint"]
    assert f"\n{by_index['consistentWith']['treeSize']}\n" in saved
    by_uuid = json_out(run(home, "verify-entry", "--uuid", by_index["uuid"], "--state", state,
                           "--json"))
    assert by_uuid["logIndex"] == 1 and by_uuid["lastSeenTreeSize"] == by_index["consistentWith"]["treeSize"]
    bundle = json.loads((home / "b.txt.bundle.json").read_text())
    (home / "b.sig").write_text(bundle["messageSignature"]["signature"])  # base64, as cosign's
    by_content = json_out(run(home, "verify-entry", "--artifact", "b.txt", "--signature", "b.sig",
                              "--public-key", "me.pub", "--state", state, "--json"))
    assert by_content["uuid"] == by_index["uuid"]
    # Another valid signature of the same file by the same key (ECDSA is randomized) was
    # never logged:
    key = SigningKey.from_pem((home / "me.key").read_bytes(), None)
    (home / "b2.sig").write_bytes(key.sign_digest(hashlib.sha256(b"b.txt\n").digest()))
    fails(run(home, "verify-entry", "--artifact", "b.txt", "--signature", "b2.sig",
              "--public-key", "me.pub", "--state", state), "none with this signature")


def test_verify_entry_catches_a_log_that_rewrote_what_this_client_saw(home: Path, server: Server,
                                                                       tmp_path: Path) -> None:
    """A checkpoint signed by the log's own key for the current size, with another root: the
    log showed this client a different history before. verify-entry must refuse."""
    info = json_out(run(home, "info", "--json"))
    key = LogKey.from_pem((server.data / "log.key").read_bytes())
    forged = sign_checkpoint(Checkpoint(info["name"], info["treeSize"], b"\x01" * 32), key)
    state = tmp_path / "seen.json"
    state.write_text(json.dumps({"checkpoint": forged.decode()}))
    out = fails(run(home, "verify-entry", "--log-index", "0", "--state", state), "consistency")
    assert "different roots" in out


def test_sign_output_signature_then_verify_it_online(home: Path, tmp_path: Path) -> None:
    """cosign's sign-blob --output-signature and verify-blob --signature: no bundle needed,
    the entry is found in the log and checked there."""
    (home / "d.txt").write_text("d\n")
    signed = json_out(run(home, "sign", "--key", "me.key", "d.txt", "--output-signature", "d.sig",
                          "--json"))
    assert signed["signature"] == "d.sig" and signed["bundle"] == "d.txt.bundle.json"
    bundle = json.loads((home / "d.txt.bundle.json").read_text())
    assert (home / "d.sig").read_text() == bundle["messageSignature"]["signature"]  # base64
    got = json_out(run(home, "verify", "--signature", "d.sig", "--key", "me.pub", "d.txt", "--json"))
    assert got["verified"] and got["logIndex"] == signed["logIndex"] and got["uuid"] == signed["uuid"]
    assert got["consistentWith"]["treeSize"] >= got["checkpoint"]["treeSize"] > got["logIndex"]
    (home / "d.txt.bundle.json").unlink()  # nothing of the bundle is used
    assert "Verified OK: d.txt" in ok(run(home, "verify", "--signature", "d.sig", "--key", "me.pub",
                                          "d.txt")).stdout
    (tmp_path / "d.txt").write_text("tampered\n")
    fails(run(home, "verify", "--signature", "d.sig", "--key", "me.pub", tmp_path / "d.txt"),
          "entry:", "no entry for sha256:")
    other = SigningKey.generate("ecdsa-p256")
    (home / "other.pub").write_bytes(other.public_pem())
    fails(run(home, "verify", "--signature", "d.sig", "--key", "other.pub", "d.txt"),
          "none with this signature and key")
    failed = json.loads(run(home, "verify", "--signature", "d.sig", "--key", "other.pub", "d.txt",
                            "--json").stdout)
    assert failed["ok"] is False and failed["check"] == "entry"
    assert run(home, "verify", "--signature", "d.sig", "--key", "me.pub", "d.txt",
               "--offline").exit_code == 2


def test_verify_signature_with_the_certificate_that_was_logged(server: Server, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from .org_ca import OrgCA

    ca = OrgCA.create()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.issue(key.public_key(), email="alice@example.com", issuer="https://issuer.example")
    (tmp_path / "me.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (tmp_path / "me.crt").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "f").write_text("f\n")
    ok(run(tmp_path, "trust", "add", server.url))
    ok(run(tmp_path, "sign", "--key", "me.key", "--certificate", "me.crt", "f",
           "--output-signature", "f.sig", "--output-certificate", "out.crt"))
    assert (tmp_path / "out.crt").read_bytes() == (tmp_path / "me.crt").read_bytes()
    got = json_out(run(tmp_path, "verify", "--signature", "f.sig", "--certificate", "out.crt", "f",
                       "--json"))
    assert got["verified"]
    other = SigningKey.generate("ecdsa-p256")
    (tmp_path / "other.pub").write_bytes(other.public_pem())
    fails(run(tmp_path, "verify", "--signature", "f.sig", "--certificate", "out.crt", "--key",
              "other.pub", "f"), "certificate:", "another key")
    assert run(tmp_path, "sign", "--key", "me.key", "f", "--output-certificate", "x.crt",
               "--force").exit_code == 2  # no --certificate to write


def test_sign_keeps_an_existing_bundle_unless_forced(home: Path) -> None:
    (home / "e.txt").write_text("e\n")
    first = json_out(run(home, "sign", "--key", "me.key", "e.txt", "--json"))
    before = (home / "e.txt.bundle.json").read_bytes()
    size = json_out(run(home, "info", "--json"))["treeSize"]
    fails(run(home, "sign", "--key", "me.key", "e.txt"), "e.txt.bundle.json already exists",
          "--force")
    assert (home / "e.txt.bundle.json").read_bytes() == before
    assert json_out(run(home, "info", "--json"))["treeSize"] == size  # nothing was logged
    again = json_out(run(home, "sign", "--key", "me.key", "e.txt", "--force", "--json"))
    assert again["logIndex"] > first["logIndex"]
    helptext = ok(run(home, "sign", "--help")).stdout
    assert "TLOG_PASSWORD" in helptext and "COSIGN_PASSWORD" in helptext
    assert "standard input" in helptext


def test_upload_entry_posts_a_proposed_entry_as_is(home: Path) -> None:
    from tlog.core.entries.hashedrekord import proposed_entry

    key = SigningKey.from_pem((home / "me.key").read_bytes(), None)
    digest = hashlib.sha256(b"an entry made elsewhere\n").digest()
    proposed = proposed_entry("sha256", digest, key.sign_digest(digest), key.public_pem())
    (home / "entry.json").write_text(json.dumps(proposed))
    up = json_out(run(home, "upload", "--entry", "entry.json", "--json"))
    assert up["kind"] == "hashedrekord" and up["created"] is True
    got = json_out(run(home, "get", "--uuid", up["uuid"], "--json"))
    (entry,) = got.values()
    assert entry["logIndex"] == up["logIndex"]
    again = ok(run(home, "upload", "--entry", "entry.json")).stdout
    assert again.startswith("Already logged a hashedrekord 0.0.1 entry as entry "
                            f"{up['logIndex']}")
    bad = json.loads(json.dumps(proposed))  # a copy, as JSON (the shape is the log's concern)
    bad["spec"]["signature"]["content"] = base64.b64encode(b"\x30\x00").decode()
    (home / "bad.json").write_text(json.dumps(bad))
    fails(run(home, "upload", "--entry", "bad.json"))  # the log's refusal, one line
    (home / "notjson.json").write_text("{")
    fails(run(home, "upload", "--entry", "notjson.json"), "is not JSON")
    assert run(home, "upload", "--entry", "entry.json", "--artifact", "a.txt").exit_code == 2


def test_a_private_key_given_to_verify_is_refused_before_anything_is_sent(home: Path) -> None:
    for args in (("verify", "--key", "me.key", "a.txt"),
                 ("verify-entry", "--artifact", "a.txt", "--signature", "b.sig",
                  "--public-key", "me.key"),
                 ("search", "--public-key", "me.key")):
        line = fails(run(home, *args), "me.key is a private key", "nothing was sent")
        assert "left your machine" not in line

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

"""The CLI's failures: one `tlog: error:` line, exit 1, no traceback (unless --verbose).
Keys: keygen's files, modes and passphrases, including the terminal prompt."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import Result

from tlog.core.keys import LogKey

from .cli_support import Server, fails, json_out, ok, server_fixture, tlog  # noqa: F401
from .test_serve import free_port

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def home(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with an encrypted key (passphrase "pw"), the log pinned, a signed file."""
    d = tmp_path_factory.mktemp("home")
    ok(tlog("keygen", "--out", d / "me", env={"TLOG_PASSWORD": "pw"}))
    ok(tlog("trust", "add", server.url, "--trust", d / "trust.json"))
    (d / "a.txt").write_text("a\n")
    ok(tlog("sign", "--key", "me.key", "a.txt", "--trust", d / "trust.json",
            env={"TLOG_PASSWORD": "pw"}, cwd=d))
    return d


def run(home: Path, *args: str | Path, password: str | None = "pw",
        input: str | None = None) -> Result:
    env = {} if password is None else {"TLOG_PASSWORD": password}
    return tlog(*args, "--trust", home / "trust.json", env=env, input=input, cwd=home)


# --- the network and the trust file -----------------------------------------------------------


def test_network_failure_is_one_line(home: Path, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    trust = tmp_path / "trust.json"
    (tmp_path / "log.pub").write_bytes(LogKey.generate("ed25519").public_key.pem())
    fails(tlog("trust", "add", dead, "--trust", trust), f"cannot reach the log at {dead}")
    # Pinned without the network (key and name given), the log is still down:
    ok(tlog("trust", "add", dead, "--log-key", tmp_path / "log.pub", "--name", "dead.example",
            "--trust", trust))
    fails(tlog("sign", "--key", home / "me.key", home / "a.txt", "--bundle", tmp_path / "a.json",
               "--trust", trust, env={"TLOG_PASSWORD": "pw"}), f"cannot reach the log at {dead}")
    fails(tlog("info", "--trust", trust), "cannot reach the log")


def test_online_verify_needs_the_log_but_offline_does_not(home: Path, server: Server,
                                                          tmp_path: Path) -> None:
    # The same log pinned under a URL where nothing listens.
    (entry,) = json.loads((home / "trust.json").read_text())["logs"]
    (tmp_path / "log.pub").write_text(entry["publicKey"])
    trust = tmp_path / "trust.json"
    ok(tlog("trust", "add", f"http://127.0.0.1:{free_port()}", "--log-key", tmp_path / "log.pub",
            "--name", entry["name"], "--trust", trust))
    fails(tlog("verify", "--key", "me.pub", "a.txt", "--trust", trust, cwd=home), "cannot reach the log")
    ok(tlog("verify", "--offline", "--key", "me.pub", "a.txt", "--trust", trust, cwd=home))


def test_unknown_log(home: Path, tmp_path: Path) -> None:
    fails(run(home, "sign", "--key", "me.key", "a.txt", "--log-url", "http://127.0.0.1:9"),
          "log http://127.0.0.1:9 is not pinned in the trust file; run `tlog trust add")
    fails(tlog("info", "--trust", tmp_path / "none.json"), "no log is pinned yet")
    fails(tlog("verify", "--key", "me.pub", "a.txt", "--trust", tmp_path / "none.json", cwd=home),
          "no log is pinned yet")
    other = tmp_path / "other.json"
    (tmp_path / "k.pem").write_bytes(LogKey.generate("ecdsa-p256").public_key.pem())
    ok(tlog("trust", "add", "https://other.example", "--log-key", tmp_path / "k.pem", "--name",
            "other.example", "--trust", other))
    fails(tlog("verify", "--key", "me.pub", "a.txt", "--trust", other, cwd=home),
          "verification failed: log: the entry is from log ", "which is not pinned")


def test_env_log_url_selects_the_log(home: Path, server: Server) -> None:
    fails(tlog("info", "--trust", home / "trust.json", env={"TLOG_URL": "http://127.0.0.1:9"}),
          "is not pinned")
    assert json_out(tlog("info", "--json", "--trust", home / "trust.json",
                         env={"TLOG_URL": server.url + "/"}))["url"] == server.url


def test_malformed_trust_file(tmp_path: Path) -> None:
    (tmp_path / "trust.json").write_text("{not json")
    fails(tlog("info", "--trust", tmp_path / "trust.json"), "trust file", "is malformed")


def test_trust_add_refuses_a_changed_key_without_force(home: Path, server: Server,
                                                       tmp_path: Path) -> None:
    trust = tmp_path / "trust.json"
    out = ok(tlog("trust", "add", server.url, "--trust", trust)).stdout
    assert "trust" in out and "on first use" in out and "logID" in out
    assert "already pinned" in ok(tlog("trust", "add", server.url, "--trust", trust)).stdout
    (tmp_path / "k.pem").write_bytes(LogKey.generate("ed25519").public_key.pem())
    # A key the log does not sign with is refused when the log can be asked...
    fails(tlog("trust", "add", server.url, "--log-key", tmp_path / "k.pem", "--trust", trust),
          "does not sign its checkpoints with this key")
    # ...and a change of pinned key needs --force.
    fails(tlog("trust", "add", server.url, "--log-key", tmp_path / "k.pem", "--name", "x.example",
               "--trust", trust), "already pinned", "--force")
    ok(tlog("trust", "add", server.url, "--log-key", tmp_path / "k.pem", "--name", "x.example",
            "--force", "--trust", trust))
    (pinned,) = json_out(tlog("trust", "list", "--json", "--trust", trust))
    assert pinned["name"] == "x.example"
    fails(tlog("trust", "add", "ftp://x", "--trust", trust), "must start with http")


# --- keys and passphrases ---------------------------------------------------------------------


def test_bad_key_files(home: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.key").write_text("junk\n")
    fails(run(home, "sign", "--key", tmp_path / "junk.key", "a.txt"), "not a PEM private key")
    fails(run(home, "sign", "--key", "me.pub", "a.txt"), "this is a public key")
    fails(run(home, "sign", "--key", tmp_path / "missing.key", "a.txt"),
          "cannot read private key", "No such file or directory")
    fails(run(home, "verify", "--key", tmp_path / "junk.key", "a.txt"), "public key: ")


def test_wrong_or_missing_passphrase(home: Path) -> None:
    fails(run(home, "sign", "--key", "me.key", "a.txt", password="nope"), "wrong passphrase")
    fails(run(home, "sign", "--key", "me.key", "a.txt", password=None, input=""),
          "is encrypted and no passphrase was given")
    # Without TLOG_PASSWORD and a terminal, the passphrase is read from standard input (cosign).
    ok(run(home, "sign", "--key", "me.key", "a.txt", "--bundle", "stdin.json", password=None,
           input="pw\n"))


def test_unreadable_artifact_and_bundle(home: Path) -> None:
    fails(run(home, "sign", "--key", "me.key", "missing.txt"),
          "cannot read artifact missing.txt: No such file or directory")
    fails(run(home, "sign", "--key", "me.key", "."), "cannot read artifact .: Is a directory")
    fails(run(home, "verify", "--key", "me.pub", "--bundle", "none.json", "a.txt"),
          "cannot read bundle none.json")
    (home / "junk.json").write_text("[]")
    fails(run(home, "verify", "--key", "me.pub", "--bundle", "junk.json", "a.txt"),
          "verification failed: bundle: junk.json is malformed")


def test_image_tags_are_refused(home: Path) -> None:
    # With a bundle file there is no registry to resolve a tag (without one, a tag is resolved
    # in the registry: tests/test_registry.py).
    fails(run(home, "sign", "--key", "me.key", "--image", "ghcr.io/org/app:latest", "--bundle", "b.json"),
          "has the tag 'latest'", "by digest")
    fails(run(home, "verify", "--key", "me.pub", "--image", "ghcr.io/org/app:latest", "--bundle", "b.json"),
          "has the tag 'latest'")


def test_usage_errors_exit_2(home: Path) -> None:
    assert run(home, "sign", "--key", "me.key").exit_code == 2
    assert run(home, "sign", "--key", "me.key", "a.txt", "--image", "x@sha256:" + "0" * 64).exit_code == 2
    assert run(home, "get").exit_code == 2
    assert run(home, "search").exit_code == 2


def test_keygen_files_modes_and_no_overwrite(tmp_path: Path) -> None:
    out = json_out(tlog("keygen", "--json", "--out", tmp_path / "k", "--type", "rsa-3072",
                        env={"TLOG_PASSWORD": "pw"}))
    assert out["encrypted"] is True and out["fingerprint"].startswith("SHA256:")
    key = tmp_path / "k.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")  # cosign's
    assert (tmp_path / "k.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    before = key.read_bytes()
    fails(tlog("keygen", "--out", tmp_path / "k", env={"TLOG_PASSWORD": "pw"}), "already exists", "--force")
    assert key.read_bytes() == before
    key.chmod(0o644)
    r = ok(tlog("keygen", "--out", tmp_path / "k", "--force", env={"TLOG_PASSWORD": ""}))
    assert "is not encrypted" in r.stderr and "unencrypted PKCS#8" in r.stdout
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600


# --- real processes: no traceback, --verbose, the terminal prompt -----------------------------


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_")}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=30, env={**base, "PYTHONPATH": str(ROOT), **(env or {})},
                          stdin=subprocess.DEVNULL)


def test_a_real_process_prints_one_line_and_verbose_a_traceback(home: Path) -> None:
    trust = str(home / "trust.json")
    r = _cli("sign", "--key", "me.key", "a.txt", "--trust", trust, cwd=home, env={"TLOG_PASSWORD": "x"})
    assert r.returncode == 1 and r.stderr == "tlog: error: me.key: wrong passphrase for the private key\n"
    r = _cli("--verbose", "sign", "--key", "me.key", "a.txt", "--trust", trust, cwd=home,
             env={"TLOG_PASSWORD": "x"})
    assert r.returncode == 1 and "Traceback" in r.stderr


def _expect(fd: int, text: bytes, seen: bytearray, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while text not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"waited for {text!r}, got {bytes(seen)!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"EOF before {text!r}, got {bytes(seen)!r}")
        seen += chunk


def test_keygen_asks_twice_for_the_passphrase_on_a_terminal(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_")}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "keygen", "--out", "t"], cwd=tmp_path,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env={**env, "PYTHONPATH": str(ROOT)})
    os.close(slave)
    seen = bytearray()
    try:
        _expect(master, b"Passphrase for t.key", seen)
        os.write(master, b"typed secret\n")
        _expect(master, b"Repeat", seen)
        os.write(master, b"typed secret\n")
        assert proc.wait(timeout=30) == 0, bytes(seen)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert b"typed secret" not in seen  # hidden input
    from tlog.core.userkeys import SigningKey

    SigningKey.from_pem((tmp_path / "t.key").read_bytes(), b"typed secret")

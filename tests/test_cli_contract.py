"""The contract every `tlog` command keeps (cli/contract.py, README "Exit codes"), checked for
every command in click's command tree, so a command added later is checked too (or this test
fails until it says how to run it):

- with --json, exactly one JSON document on stdout on success and on failure, the failure one
  `{"ok": false, "error": {"code", "message"}}`, even when the log is down;
- exit 0 on success, 1 on a failed operation, 2 on bad usage; errors on stderr as
  `tlog: error: ...`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import Result

from cli.main import main
from tlog.core.userkeys import SigningKey

from .cli_support import Server, ok, server_fixture, tlog  # noqa: F401
from .test_serve import free_port

# Commands without --json, and why.
NO_JSON = {
    ("serve",): "a long-running server: its output is its log",
    ("witness", "serve"): "a long-running server: its output is its log",
    ("witness", "keygen"): "prints the witness's keys for its operator",
    ("completion",): "prints a shell script",
    ("trust", "root"): "always prints JSON (a Sigstore trusted root)",
    ("compose", "sign"): "not yet: prints one line per image",
    ("compose", "verify"): "not yet: prints one line per image",
}
# Commands whose --json output is a stream of JSON documents, one a line (JSON Lines).
JSON_LINES = {("monitor",)}


def leaf_commands() -> list[tuple[str, ...]]:
    """Every runnable command, as its path of names (`("trust", "add")`)."""
    out: list[tuple[str, ...]] = []

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, (*path, name))
        else:
            out.append(path)

    walk(main, ())
    return out


def command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        sub = cmd.get_command(click.Context(cmd), name)
        assert sub is not None
        cmd = sub
    return cmd


@dataclass
class Home:
    dir: Path
    url: str
    dead: str
    data: Path


@dataclass(frozen=True)
class Recipe:
    """How to run a command: successfully (None: it needs what a test cannot have), and so
    that it fails (with the log down where it talks to one) with exit status `fails_with`."""

    ok: list[str] | None
    fail: list[str]
    fails_with: int = 1


def recipes(h: Home) -> dict[tuple[str, ...], Recipe]:
    live, down = ["--trust", "trust.json"], ["--trust", "dead.json"]
    return {
        ("attest",): Recipe(["attest", "--key", "me.key", "--type", "custom", "--predicate",
                             "predicate.json", "b.txt", "--bundle", "b.att.json", *live],
                            ["attest", "--key", "me.key", "--type", "custom", "--predicate",
                             "predicate.json", "b.txt", "--bundle", "x.att.json", *down]),
        ("migrate",): Recipe(None, ["migrate", "--from", str(h.dir / "empty"), "--to",
                                    f"postgresql://tlog@127.0.0.1:{free_port()}/tlog"]),
        ("verify-attestation",): Recipe(["verify-attestation", "--key", "me.pub", "--type", "custom",
                                         "a.txt", *live],
                                        ["verify-attestation", "--key", "me.pub", "--type",
                                         "custom", "a.txt", *down]),
        ("audit",): Recipe(["audit", "--state", "audit.json", *live],
                           ["audit", "--state", "audit-dead.json", *down]),
        ("bench",): Recipe(["bench", "--log-url", h.url, "-n", "2", "--reads", "2",
                            "--no-calibrate", "-c", "2"],
                           ["bench", "--log-url", h.dead, "-n", "2", "--reads", "2",
                            "--no-calibrate"]),
        ("fsck",): Recipe(["fsck", str(h.data)], ["fsck", "no-such-dir"], fails_with=2),
        ("get",): Recipe(["get", "--log-index", "0", *live], ["get", "--log-index", "0", *down]),
        ("info",): Recipe(["info", *live], ["info", *down]),
        ("keygen",): Recipe(["keygen", "--out", "other", "--force"], ["keygen", "--out", "me"]),
        ("logproof",): Recipe(["logproof", "--first-size", "1", *live],
                              ["logproof", "--first-size", "1", *down]),
        ("monitor",): Recipe(["monitor", "--once", "--state", "monitor.json", *live],
                             ["monitor", "--once", "--state", "monitor-dead.json", *down]),
        ("search",): Recipe(["search", "--artifact", "a.txt", *live],
                            ["search", "--artifact", "a.txt", *down]),
        ("sign",): Recipe(["sign", "--key", "me.key", "b.txt", *live],
                          ["sign", "--key", "me.key", "b.txt", "--bundle", "x.json", *down]),
        ("trust", "add"): Recipe(["trust", "add", h.url, "--trust", "added.json"],
                                 ["trust", "add", h.dead, "--trust", "added-dead.json"]),
        ("trust", "list"): Recipe(["trust", "list", *live], ["trust", "list", "--trust", "a.txt"]),
        ("trust", "remove"): Recipe(["trust", "remove", h.url, "--trust", "copy.json"],
                                    ["trust", "remove", h.dead, *live]),
        ("trust", "sigstore"): Recipe(None, ["trust", "sigstore", "--update", "--url", h.dead]),
        ("upload",): Recipe(["upload", "--public-key", "me.pub", "--signature", "c.sig",
                             "--artifact", "c.txt", *live],
                            ["upload", "--public-key", "me.pub", "--signature", "c.sig",
                             "--artifact", "c.txt", *down]),
        ("verify",): Recipe(["verify", "--key", "me.pub", "a.txt", *live],
                            ["verify", "--key", "me.pub", "a.txt", *down]),
        ("verify-entry",): Recipe(["verify-entry", "--log-index", "0", "--state", "seen.json",
                                   *live],
                                  ["verify-entry", "--log-index", "0", *down]),
    }


@pytest.fixture(scope="module")
def home(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """A key pair (unencrypted), the log pinned (trust.json, copy.json) and pinned at a port
    where nothing listens (dead.json), a signed file, a signature made elsewhere."""
    d = tmp_path_factory.mktemp("contract")
    h = Home(d, server.url, f"http://127.0.0.1:{free_port()}", server.data)
    ok(run(h, "keygen", "--out", "me"))
    ok(run(h, "trust", "add", server.url, "--trust", "trust.json"))
    shutil.copy(d / "trust.json", d / "copy.json")
    (entry,) = json.loads((d / "trust.json").read_text())["logs"]
    (d / "log.pub").write_text(entry["publicKey"])
    ok(run(h, "trust", "add", h.dead, "--log-key", "log.pub", "--name", entry["name"],
           "--trust", "dead.json"))
    for name in ("a.txt", "b.txt", "c.txt"):
        (d / name).write_text(f"{name}\n")
    ok(run(h, "sign", "--key", "me.key", "a.txt", "--trust", "trust.json"))
    (d / "predicate.json").write_text('{"note": "contract test"}\n')
    (d / "empty").mkdir()
    ok(run(h, "attest", "--key", "me.key", "--type", "custom", "--predicate", "predicate.json",
           "a.txt", "--trust", "trust.json"))
    key = SigningKey.from_pem((d / "me.key").read_bytes(), None)
    (d / "c.sig").write_bytes(key.sign_digest(hashlib.sha256(b"c.txt\n").digest()))
    yield h


def run(h: Home, *args: str) -> Result:
    env = {"TLOG_PASSWORD": "", "XDG_STATE_HOME": str(h.dir / "state"),
           "XDG_CONFIG_HOME": str(h.dir / "config"), "XDG_CACHE_HOME": str(h.dir / "cache")}
    return tlog(*args, env=env, cwd=h.dir)


def documents(result: Result, path: tuple[str, ...]) -> list[object]:
    """The JSON documents on stdout: exactly one, or one a line for a JSON Lines command."""
    text = result.stdout
    if path in JSON_LINES:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def is_failure(doc: object) -> bool:
    return (isinstance(doc, dict) and doc.get("ok") is False and isinstance(doc.get("error"), dict)
            and isinstance(doc["error"].get("code"), str)
            and isinstance(doc["error"].get("message"), str))


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("tlog: error: ")]
    assert lines, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[-1]


COMMANDS = leaf_commands()
JSON_COMMANDS = [c for c in COMMANDS if c not in NO_JSON]


def test_every_command_has_a_recipe_or_says_why_not(home: Home) -> None:
    assert set(JSON_COMMANDS) == set(recipes(home)), (
        "a command was added or removed: give it a Recipe, or list it in NO_JSON with why")
    for path in JSON_COMMANDS:
        opts = {o for p in command(path).params for o in getattr(p, "opts", ())}
        assert "--json" in opts, path


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_bad_usage_exits_2_with_one_error_line(home: Home, path: tuple[str, ...]) -> None:
    args = [*path, "--no-such-option"] + (["--json"] if path in JSON_COMMANDS else [])
    result = run(home, *args)
    assert result.exit_code == 2, result.output
    assert "No such option" in error_line(result)
    if path in JSON_COMMANDS:
        (doc,) = documents(result, ())
        assert is_failure(doc) and doc["error"]["code"] == "usage", doc  # type: ignore[index]


@pytest.mark.parametrize("path", JSON_COMMANDS, ids=" ".join)
def test_json_on_failure(home: Home, path: tuple[str, ...]) -> None:
    recipe = recipes(home)[path]
    result = run(home, *recipe.fail, "--json")
    assert result.exit_code == recipe.fails_with, result.output
    docs = documents(result, path)
    assert docs and is_failure(docs[-1]), result.stdout
    if path not in JSON_LINES:
        assert len(docs) == 1
    if recipe.fails_with == 1:
        assert error_line(result)


# Commands whose success needs what this test has not: the network (Sigstore's TUF
# repository; tests/test_trust_sigstore.py serves one), a PostgreSQL server (tests/test_postgres.py).
NO_SUCCESS_HERE = {("trust", "sigstore"), ("migrate",)}


@pytest.mark.parametrize("path", [c for c in JSON_COMMANDS if c not in NO_SUCCESS_HERE],
                         ids=" ".join)
def test_json_on_success(home: Home, path: tuple[str, ...]) -> None:
    recipe = recipes(home)[path]
    assert recipe.ok is not None
    result = run(home, *recipe.ok, "--json")
    assert result.exit_code == 0, result.output
    docs = documents(result, path)
    assert docs and not any(is_failure(d) for d in docs), result.stdout


def test_log_down_names_the_log(home: Home) -> None:
    result = run(home, "get", "--log-index", "0", "--trust", "dead.json", "--json")
    (doc,) = documents(result, ())
    assert is_failure(doc)
    assert doc["error"]["code"] == "log_unreachable"  # type: ignore[index]
    assert home.dead in doc["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("args", [["search", "--sha256", "zz"], ["get", "--uuid", "deadbeef"],
                                  ["get"], ["verify-entry", "--uuid", "00"],
                                  ["logproof", "--first-size", "3", "--last-size", "2"]])
def test_malformed_arguments_are_usage_errors(home: Home, args: list[str]) -> None:
    result = run(home, *args, "--trust", "trust.json")
    assert result.exit_code == 2, result.output
    error_line(result)


def test_verbose_and_log_url_go_before_or_after_the_command(home: Home) -> None:
    after = json.loads(ok(run(home, "info", "--json", "-v", "--log-url", home.url,
                              "--trust", "trust.json")).stdout)
    before = json.loads(ok(run(home, "-v", "--log-url", home.url, "info", "--json",
                               "--trust", "trust.json")).stdout)
    assert after["url"] == before["url"] == home.url
    # --log-url before the command is used by it: a log that is not pinned is refused.
    result = run(home, "--log-url", home.dead, "info", "--trust", "trust.json")
    assert "is not pinned" in error_line(result)

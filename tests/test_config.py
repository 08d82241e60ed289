"""Configuration: flag > TLOG_ env > TOML file > default; --print-config; clear errors."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli.config import GLOBAL_ENV, configurable, configurable_commands, known_env
from cli.main import main


def _effective(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    r = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env or {})
    assert r.exit_code == 0, r.output
    settings: dict[str, Any] = json.loads(r.output)
    return settings


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = tmp_path / "tlog.toml"
    cfg.write_text('port = 4000\nbatch-ms = 7\n[serve]\ndata-dir = "/srv/tlog"\nbatch-size = 50\n')
    got = _effective(["--config", str(cfg), "--batch-size", "99"],
                     {"TLOG_PORT": "5000", "TLOG_BATCH_MS": "3"})
    assert got["batch-size"] == {"value": 99, "from": "flag"}
    assert got["port"] == {"value": 5000, "from": "env TLOG_PORT"}
    assert got["batch-ms"] == {"value": 3.0, "from": "env TLOG_BATCH_MS"}
    assert got["data-dir"] == {"value": "/srv/tlog", "from": "config file"}
    assert got["host"] == {"value": "127.0.0.1", "from": "default"}
    # The config file itself may come from the environment.
    got = _effective([], {"TLOG_CONFIG": str(cfg)})
    assert got["port"]["value"] == 4000 and got["batch-size"]["value"] == 50


def test_invalid_settings_fail_naming_the_setting(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["serve", "--print-config"], env={"TLOG_PORT": "abc"})
    assert r.exit_code == 2 and "--port" in r.output and "TLOG_PORT" in r.output
    bad = tmp_path / "bad.toml"
    bad.write_text("prot = 1\n")
    r = CliRunner().invoke(main, ["serve", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown setting 'prot' (did you mean port?)" in r.output
    bad.write_text("port = 'x'\n")
    r = CliRunner().invoke(main, ["serve", "--config", str(bad), "--print-config"])
    assert r.exit_code == 2 and "--port" in r.output
    bad.write_text("port = [\n")
    r = CliRunner().invoke(main, ["serve", "--config", str(bad)])
    assert r.exit_code == 2 and "not valid TOML" in r.output
    r = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_print_config_masks_secrets() -> None:
    @configurable
    @click.command("demo")
    @click.option("--api-token", default=None)
    @click.option("--name", default="x")
    def demo(api_token: str | None, name: str) -> None:
        click.echo("ran")

    r = CliRunner().invoke(demo, ["--print-config"], env={"TLOG_API_TOKEN": "hunter2"})
    out = json.loads(r.output)
    assert out["api-token"] == {"value": "********", "from": "env TLOG_API_TOKEN"}
    assert "hunter2" not in r.output
    assert CliRunner().invoke(demo, []).output == "ran\n"


def test_witness_serve_is_configurable_with_its_own_prefix(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('[witness]\nport = 3999\nlog = ["a.example=/keys/a.pem"]\n[serve]\nport = 1\n')
    (tmp_path / "w.key").write_text("x")
    r = CliRunner().invoke(main, ["witness", "serve", "--config", str(cfg), "--print-config"],
                           env={"TLOG_WITNESS_KEY": str(tmp_path / "w.key"), "TLOG_URL": "u"})
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["port"] == {"value": 3999, "from": "config file"}  # not [serve]
    assert got["key"] == {"value": str(tmp_path / "w.key"), "from": "env TLOG_WITNESS_KEY"}
    assert got["log"] == {"value": ["a.example=/keys/a.pem"], "from": "config file"}


def test_every_command_module_is_registered_under_its_name() -> None:
    import importlib

    from cli.main import COMMANDS
    for name, module in COMMANDS.items():
        importlib.import_module(module)
        assert name in main.commands, f"{module} does not define `tlog {name}`"
    assert set(main.commands) == set(COMMANDS)


@pytest.mark.parametrize("command,env,message", [
    # Issue 11: the deploy files said TLOG_WITNESSES; the log started and never pushed.
    (["serve"], {"TLOG_WITNESSES": "http://w=k"},
     "unknown environment variable TLOG_WITNESSES (did you mean TLOG_WITNESS?)"),
    (["serve"], {"TLOG_RATE_LIMITS": "5", "TLOG_PROT": "1"},
     "unknown environment variables TLOG_PROT (did you mean TLOG_PORT?), "
     "TLOG_RATE_LIMITS (did you mean TLOG_RATE_LIMIT?)"),
    # Each command knows its own settings: the log's are not the witness's, and back.
    (["witness", "serve"], {"TLOG_PORT": "3100"},
     "unknown environment variable TLOG_PORT (did you mean TLOG_WITNESS_PORT?)"),
    (["serve"], {"TLOG_WITNESS_PORT": "3100"},
     "unknown environment variable TLOG_WITNESS_PORT (did you mean TLOG_PORT?)"),
])
def test_unknown_tlog_variables_stop_the_command_with_a_did_you_mean(
        tmp_path: Path, command: list[str], env: dict[str, str], message: str) -> None:
    (tmp_path / "w.key").write_text("x")
    args = [*command, "--print-config"]
    if command[0] == "witness":
        args += ["--key", str(tmp_path / "w.key"), "--log", "a.example=k"]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 2, r.output
    [error] = [line for line in r.output.splitlines() if line.startswith("tlog: error:")]
    assert message in error, error
    assert f"`main {' '.join(command)}` reads TLOG_" in error
    # The variables every command reads are known to each.
    env = {"TLOG_URL": "http://log.example", "TLOG_PASSWORD": "pw"}
    assert CliRunner().invoke(main, args, env=env).exit_code == 0


def test_unknown_variable_stops_a_real_server_before_it_creates_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_")}
    env["TLOG_WITNESSES"] = "http://127.0.0.1:3100=witness.example/w1+00000000+AAAA"
    r = subprocess.run([sys.executable, "-m", "cli", "serve", "--data-dir", str(tmp_path / "data"),
                        "--port", "0"], env=env, capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 2, r.stderr
    assert "TLOG_WITNESSES (did you mean TLOG_WITNESS?)" in r.stderr
    assert "`tlog serve` reads TLOG_<FLAG>" in r.stderr
    assert not (tmp_path / "data").exists()


def test_every_tlog_variable_read_anywhere_is_known_to_every_command() -> None:
    """GLOBAL_ENV is complete: each TLOG_ name tlog's code reads (a string constant such as
    `os.environ.get("TLOG_URL")`) is a global variable or a setting of a configurable
    command (which reads it through click's envvar)."""
    root = Path(__file__).resolve().parents[1]
    names = {node.value for path in [*root.glob("cli/*.py"), *root.glob("tlog/**/*.py")]
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and re.fullmatch(r"TLOG_[A-Z0-9_]*[A-Z0-9]", node.value)}  # not a prefix
    settings = set().union(*(known_env(c) for c in configurable_commands()))
    assert names - settings <= GLOBAL_ENV, names - settings - GLOBAL_ENV
    for name in ("TLOG_URL", "TLOG_PASSWORD"):
        assert name in names

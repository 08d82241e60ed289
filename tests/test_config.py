"""Configuration: flag > TLOG_ env > TOML file > default; --print-config; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner

from cli.config import configurable
from cli.main import main


def _effective(args: list[str], env: dict[str, str] | None = None) -> dict:
    r = CliRunner().invoke(main, ["serve", *args, "--print-config"], env=env or {})
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    cfg = tmp_path / "tlog.toml"
    cfg.write_text('port = 4000\nbatch-ms = 7\n[serve]\ndata-dir = "/srv/tlog"\nbatch-size = 50\n')
    got = _effective(["--config", str(cfg), "--batch-size", "99"], {"TLOG_PORT": "5000", "TLOG_BATCH_MS": "3"})
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
    assert r.exit_code == 2 and "unknown setting 'prot'" in r.output
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
                           env={"TLOG_WITNESS_KEY": str(tmp_path / "w.key"), "TLOG_PORT": "7"})
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert got["port"] == {"value": 3999, "from": "config file"}  # not [serve], not TLOG_PORT
    assert got["key"] == {"value": str(tmp_path / "w.key"), "from": "env TLOG_WITNESS_KEY"}
    assert got["log"] == {"value": ["a.example=/keys/a.pem"], "from": "config file"}


def test_every_command_module_is_registered_under_its_name() -> None:
    import importlib

    from cli.main import COMMANDS
    for name, module in COMMANDS.items():
        importlib.import_module(module)
        assert name in main.commands, f"{module} does not define `tlog {name}`"
    assert set(main.commands) == set(COMMANDS)

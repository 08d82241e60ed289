"""Configuration for long-running commands: flag > environment (TLOG_…) > TOML file > default.

Each option of a configurable command gets an environment variable named after its flag
(`--data-dir` → `TLOG_DATA_DIR`). `--config FILE` reads a TOML file whose keys are the flag
names (`data-dir = "/var/lib/tlog"`), at top level or under a table named for the command
(`[serve]`); click then resolves each value command line first, environment second, file
third (its `default_map`), default last. `--print-config` shows the effective values and
where each came from, with secrets masked.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

F = TypeVar("F", bound=Callable[..., Any])
_SECRET_WORDS = ("password", "secret", "token")


def flag_name(param: click.Parameter) -> str:
    """The long flag without dashes (`--data-dir` → `data-dir`): the name users write."""
    longs = [o for o in param.opts if o.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-")


def env_name(param: click.Parameter, prefix: str = "TLOG_") -> str:
    return prefix + flag_name(param).upper().replace("-", "_")


def _load_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    if value is None:
        return None
    try:
        doc = tomllib.loads(value.read_text())
    except OSError as e:
        raise click.BadParameter(f"cannot read {value}: {e.strerror}", ctx, param) from e
    except tomllib.TOMLDecodeError as e:
        raise click.BadParameter(f"{value} is not valid TOML: {e}", ctx, param) from e
    name = getattr(ctx.command, "config_section", None) or ctx.command.name or ""
    section = doc.get(name, {})
    if not isinstance(section, dict):
        raise click.BadParameter(f"[{name}] in {value} must be a table", ctx, param)
    merged = {k: v for k, v in doc.items() if not isinstance(v, dict)} | section
    known = {flag_name(p).replace("-", "_"): p.name for p in ctx.command.params
             if isinstance(p, click.Option) and p.name and p.name not in ("config", "print_config")}
    values: dict[str, Any] = {}
    for key, v in merged.items():
        pname = known.get(key.replace("-", "_"))
        if pname is None:
            raise click.BadParameter(f"{value}: unknown setting {key!r} for `{ctx.command_path}`", ctx, param)
        values[pname] = v
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


def configurable(command: F | None = None, *, env_prefix: str = "TLOG_", section: str | None = None) -> Any:
    """Give every option an env var (`env_prefix` + NAME), and add --config and
    --print-config. `section` names the TOML table (default: the command's name)."""
    if command is None:
        return lambda c: configurable(c, env_prefix=env_prefix, section=section)
    cmd = command if isinstance(command, click.Command) else None
    assert cmd is not None, "apply @configurable above @main.command()"
    cmd.config_section = section  # type: ignore[attr-defined]
    cmd.env_prefix = env_prefix  # type: ignore[attr-defined]
    for p in cmd.params:
        if isinstance(p, click.Option) and p.name and p.envvar is None:
            p.envvar = env_name(p, env_prefix)
            p.show_envvar = True
    cmd.params.insert(0, click.Option(
        ["--config"], type=click.Path(dir_okay=False, path_type=Path), is_eager=True,
        expose_value=False, callback=_load_file, envvar=env_prefix + "CONFIG", show_envvar=True,
        help="A TOML file of settings (keys are the flag names)."))
    cmd.params.append(click.Option(
        ["--print-config"], is_flag=True,
        help="Print the effective settings and where each came from, then exit."))
    inner = cmd.callback
    assert inner is not None

    def callback(print_config: bool, **kwargs: Any) -> Any:
        if print_config:  # every parameter is resolved by now
            _print_config(click.get_current_context())
            return None
        return inner(**kwargs)

    cmd.callback = callback
    return command  # type: ignore[return-value]


def _print_config(ctx: click.Context) -> None:
    out: dict[str, Any] = {}
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or not p.name or p.name in ("config", "print_config"):
            continue
        if p.name not in ctx.params:
            continue
        v = ctx.params[p.name]
        if any(w in p.name for w in _SECRET_WORDS) and v:
            v = "********"
        source = ctx.get_parameter_source(p.name)
        prefix = getattr(ctx.command, "env_prefix", "TLOG_")
        where = {ParameterSource.COMMANDLINE: "flag", ParameterSource.ENVIRONMENT: f"env {env_name(p, prefix)}",
                 ParameterSource.DEFAULT_MAP: "config file", ParameterSource.DEFAULT: "default"}.get(source, "?")
        if isinstance(v, tuple):
            v = [str(x) for x in v]
        out[flag_name(p)] = {"value": str(v) if isinstance(v, Path) else v, "from": where}
    click.echo(json.dumps(out, indent=2))

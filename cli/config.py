"""Configuration for long-running commands: flag > environment (TLOG_…) > TOML file > default.

Each option of a configurable command gets an environment variable named after its flag
(`--data-dir` → `TLOG_DATA_DIR`). `--config FILE` reads a TOML file whose keys are the flag
names (`data-dir = "/var/lib/tlog"`), at top level or under a table named for the command
(`[serve]`); click then resolves each value command line first, environment second, file
third (its `default_map`), default last. `--print-config` shows the effective values and
where each came from, with secrets masked.

A misspelt setting must not be silently ignored (issue 11: `TLOG_WITNESSES` for
`TLOG_WITNESS` left a log that never pushed to its witness). So an unknown key in the file,
and an unknown TLOG_ variable in the environment, stop the command before it starts, with a
did-you-mean. The variables a command knows are its own (its env prefix + each flag's name)
and GLOBAL_ENV, which every command reads; another command's settings are unknown to it
(`TLOG_PORT` is the log's, the witness's is `TLOG_WITNESS_PORT`).
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, overload

import click
from click.core import ParameterSource

C = TypeVar("C", bound=click.Command)
_SECRET_WORDS = ("password", "secret", "token")
ENV_NAMESPACE = "TLOG_"
# Read by any command, outside the settings of the configurable ones: the log to talk to
# (tlog/client/trust.py), a key's passphrase (cli/common.py PASSWORD_ENVS) and registry
# credentials (tlog/client/registry.py): a shell set up for signing must still start a server.
GLOBAL_ENV = frozenset({"TLOG_URL", "TLOG_PASSWORD", "TLOG_REGISTRY_USERNAME", "TLOG_REGISTRY_PASSWORD"})


def flag_name(param: click.Parameter) -> str:
    """The long flag without dashes (`--data-dir` → `data-dir`): the name users write."""
    longs = [o for o in param.opts if o.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-")


def env_name(param: click.Parameter, prefix: str = "TLOG_") -> str:
    return prefix + flag_name(param).upper().replace("-", "_")


def did_you_mean(name: str, candidates: Collection[str]) -> str:
    """` (did you mean X?)` for the closest candidate (difflib), or nothing."""
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def known_env(command: click.Command) -> frozenset[str]:
    """The TLOG_ variables `command` reads: its options' and GLOBAL_ENV."""
    own: set[str] = set()
    for p in command.params:
        envvar = getattr(p, "envvar", None)
        own.update([envvar] if isinstance(envvar, str) else envvar or ())
    return GLOBAL_ENV | own


def configurable_commands() -> list[click.Command]:
    """Every @configurable command of `tlog` (their modules are imported to find them)."""
    from cli.main import COMMANDS, main

    ctx = click.Context(main)
    found: list[click.Command] = []
    todo = [c for c in (main.get_command(ctx, n) for n in sorted(COMMANDS)) if c is not None]
    while todo:
        command = todo.pop()
        if isinstance(command, click.Group):
            todo += command.commands.values()
        elif hasattr(command, "env_prefix"):
            found.append(command)
    return found


def suggest_env(name: str, command: click.Command) -> str:
    """A did-you-mean for a variable `command` does not read: first the same setting under
    its prefix (TLOG_PORT → TLOG_WITNESS_PORT for the witness, TLOG_WITNESS_PORT → TLOG_PORT
    for the log), else the closest name."""
    known = known_env(command)
    prefix = getattr(command, "env_prefix", ENV_NAMESPACE)
    same = [v for v in known if v.startswith(prefix) and name.endswith("_" + v.removeprefix(prefix))]
    if same:
        return f" (did you mean {max(same, key=len)}?)"
    return did_you_mean(name, known)


def check_env(ctx: click.Context, environ: Mapping[str, str] = os.environ) -> None:
    """Refuse to start with a TLOG_ variable this command does not read (a UsageError that
    names each, with a did-you-mean): a typo must not silently leave a setting at its default."""
    known = known_env(ctx.command)
    prefix = getattr(ctx.command, "env_prefix", ENV_NAMESPACE)
    unknown = sorted(v for v in environ if v.startswith(ENV_NAMESPACE) and v not in known)
    if unknown:
        names = ", ".join(v + suggest_env(v, ctx.command) for v in unknown)
        raise click.UsageError(
            f"unknown environment variable{'s' if len(unknown) > 1 else ''} {names}: "
            f"`{ctx.command_path}` reads {prefix}<FLAG> and {', '.join(sorted(GLOBAL_ENV))} "
            "(see --help)", ctx)


def _load_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """--config's callback (eager, so first): check the environment, then read the file."""
    check_env(ctx)
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
            hint = did_you_mean(key.replace("_", "-"), [k.replace("_", "-") for k in known])
            raise click.BadParameter(f"{value}: unknown setting {key!r}{hint} for `{ctx.command_path}`",
                                     ctx, param)
        values[pname] = v
    ctx.default_map = {**(ctx.default_map or {}), **values}
    return value


@overload
def configurable(command: C, *, env_prefix: str = ..., section: str | None = ...) -> C: ...
@overload
def configurable(command: None = None, *, env_prefix: str = ...,
                 section: str | None = ...) -> Callable[[C], C]: ...
def configurable(command: C | None = None, *, env_prefix: str = "TLOG_",
                 section: str | None = None) -> C | Callable[[C], C]:
    """Give every option an env var (`env_prefix` + NAME), and add --config and
    --print-config. `section` names the TOML table (default: the command's name)."""
    if command is None:
        return lambda c: configurable(c, env_prefix=env_prefix, section=section)
    assert isinstance(command, click.Command), "apply @configurable above @main.command()"
    cmd = command
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
    return command


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
        where = {ParameterSource.COMMANDLINE: "flag",
                 ParameterSource.ENVIRONMENT: f"env {env_name(p, prefix)}",
                 ParameterSource.DEFAULT_MAP: "config file",
                 ParameterSource.DEFAULT: "default"}.get(source, "?") if source is not None else "?"
        if isinstance(v, tuple):
            v = [str(x) for x in v]
        out[flag_name(p)] = {"value": str(v) if isinstance(v, Path) else v, "from": where}
    click.echo(json.dumps(out, indent=2))

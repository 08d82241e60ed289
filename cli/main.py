"""The `tlog` command: a thin shell over the library (sigstore-python's _cli habit)."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from tlog.errors import TlogError


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"tlog: error: {message}", err=True)
    sys.exit(code)


# Command name → the module that defines it. Modules are imported on first use, so
# `tlog serve` starts without loading every other command (restart time matters: DESIGN §5).
COMMANDS = {
    "audit": "cli.audit_cmd", "bench": "cli.bench_cmd", "completion": "cli.completion_cmd",
    "compose": "cli.compose_cmd",
    "fsck": "cli.fsck_cmd",
    "keygen": "cli.keys_cmd", "monitor": "cli.monitor_cmd", "get": "cli.query_cmd",
    "info": "cli.query_cmd", "search": "cli.query_cmd", "serve": "cli.serve_cmd",
    "sign": "cli.sign_cmd", "upload": "cli.sign_cmd", "trust": "cli.trust_cmd",
    "verify": "cli.verify_cmd", "witness": "cli.witness_cmd",
}


class TlogGroup(click.Group):
    """Turns library errors into one-line messages; --verbose shows the traceback.
    Loads each command's module when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(COMMANDS[name])  # registers itself on `main`
        return self.commands.get(name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TlogError as e:
            if ctx.params.get("verbose"):
                raise
            _fail(e.diagnostics())
        except OSError as e:
            if ctx.params.get("verbose"):
                raise
            _fail(f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}")


@click.group(cls=TlogGroup)
@click.option("--verbose", "-v", is_flag=True, help="Show debug logs and tracebacks.")
@click.version_option(package_name="tlog", prog_name="tlog")
def main(verbose: bool) -> None:
    """tlog: a transparency log for software signatures."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")



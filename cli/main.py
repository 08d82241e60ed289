"""The `tlog` command: a thin shell over the library (sigstore-python's _cli habit)."""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from cli.contract import TlogCommand, run_standalone

# Command name → the module that defines it. Modules are imported on first use, so
# `tlog serve` starts without loading every other command (restart time matters: DESIGN §5).
COMMANDS = {
    "attest": "cli.attest_cmd", "verify-attestation": "cli.attest_cmd",
    "audit": "cli.audit_cmd", "bench": "cli.bench_cmd", "completion": "cli.completion_cmd",
    "compose": "cli.compose_cmd",
    "fsck": "cli.fsck_cmd",
    "logproof": "cli.log_cmd", "verify-entry": "cli.log_cmd",
    "keygen": "cli.keys_cmd", "monitor": "cli.monitor_cmd", "get": "cli.query_cmd",
    "info": "cli.query_cmd", "search": "cli.query_cmd", "serve": "cli.serve_cmd",
    "migrate": "cli.migrate_cmd",
    "sign": "cli.sign_cmd", "upload": "cli.sign_cmd", "trust": "cli.trust_cmd",
    "verify": "cli.verify_cmd", "witness": "cli.witness_cmd",
}


class CommandGroup(click.Group):
    """A group whose commands keep tlog's contract (cli.contract): every command made with
    `@group.command()` is a TlogCommand, every subgroup a CommandGroup."""

    command_class = TlogCommand
    group_class: type[click.Group] | type[type] | None = type  # subgroups: this class


class TlogGroup(CommandGroup):
    """The root: loads each command's module when that command is asked for, and prints
    click's own errors with tlog's prefix."""

    group_class = CommandGroup

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(COMMANDS[name])  # registers itself on `main`
        return self.commands.get(name)

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        run_standalone(lambda: super(TlogGroup, self).main(
            args, prog_name, complete_var, False, **extra))


@click.group(cls=TlogGroup)
@click.option("--verbose", "-v", is_flag=True, help="Show debug logs and tracebacks.")
@click.option("--log-url", metavar="URL", default=None,
              help="The log to use (as each command's --log-url).")
@click.version_option(package_name="tlog-transparency", prog_name="tlog")
def main(verbose: bool, log_url: str | None) -> None:
    """tlog: a transparency log for software signatures."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")



"""`tlog completion SHELL`: print the shell completion script (click's own)."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from cli.main import main


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL; e.g. add `eval "$(tlog completion bash)"`
    to ~/.bashrc."""
    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(main, {}, "tlog", "_TLOG_COMPLETE").source())

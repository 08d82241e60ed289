"""The `tlog` command: a thin shell over the library (sigstore-python's _cli habit)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from tlog.errors import TlogError


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"tlog: error: {message}", err=True)
    sys.exit(code)


class TlogGroup(click.Group):
    """Turns library errors into one-line messages; --verbose shows the traceback."""

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


# Commands live one module per concern; importing them registers them on `main`.
from cli import audit_cmd, bench_cmd, fsck_cmd, keys_cmd, monitor_cmd, query_cmd, serve_cmd, sign_cmd, trust_cmd, verify_cmd, witness_cmd  # noqa: E402,F401,E501


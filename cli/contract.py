"""The contract every `tlog` command keeps, in one place so a new command gets it by default.

- **Exit status**: 0 success; 1 a check or an operation failed; 2 bad usage (click's own
  status for a usage error); a command may document more (`monitor` 3/4, `audit` 3, `fsck` 2
  for a directory it cannot check).
- **Errors** are one line on standard error, `tlog: error: ...` (click's usage errors too), and
  a traceback only with --verbose.
- **--json**: exactly one JSON document on standard output, success or failure. On failure it
  is `{"ok": false, "error": {"code", "message"}}` plus whatever the command added with
  `failure_details` (`verify` adds `verified`, `check` and `reason`); a success document is the
  command's own (an object or a list) and never has `"ok": false`, so a script tells the two
  apart by the exit status or by `ok`.

`TlogCommand` is the class of every command registered on `main` (and of every group's
commands), so the contract needs nothing from the command's own code.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from tlog.errors import TlogError

EXIT_FAILED = 1
EXIT_USAGE = 2
_META_DETAILS = "tlog.failure_details"
_META_JSON = "tlog.json"


class Failure(click.ClickException):
    """A failure with an exit status of its own, documented by its command (fsck's 2: the
    directory cannot be checked), printed and put in the --json document like any other."""

    def __init__(self, message: str, exit_code: int, code: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares it per class
        self.code = code


def error_code(e: BaseException) -> str:
    """A stable, machine-readable name for the kind of failure: the exception class in
    snake_case (`CheckFailed` → `check_failed`, `LogUnreachable` → `log_unreachable`); every
    usage error is `usage`."""
    if isinstance(e, Failure):
        return e.code
    if isinstance(e, click.UsageError):
        return "usage"
    if isinstance(e, OSError):
        return "os_error"
    if type(e) is TlogError:
        return "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(e).__name__).lower()


def error_message(e: BaseException) -> str:
    """The one line a person reads: what happened, and what to do when the error says."""
    if isinstance(e, TlogError):
        return e.diagnostics()
    if isinstance(e, click.ClickException):
        return e.format_message()
    if isinstance(e, OSError):
        return f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
    return str(e)


def failure_details(**fields: Any) -> None:
    """Fields the command wants in its --json failure document besides `ok` and `error`
    (e.g. which check failed). Printing a document of its own would make two."""
    ctx = click.get_current_context()
    ctx.meta.setdefault(_META_DETAILS, {}).update(fields)


def _emit_json_failure(ctx: click.Context | None, e: BaseException) -> None:
    details: dict[str, Any] = ctx.meta.get(_META_DETAILS, {}) if ctx is not None else {}
    doc = {"ok": False, "error": {"code": error_code(e), "message": error_message(e)}, **details}
    click.echo(json.dumps(doc, indent=2))


def _wants_json(ctx: click.Context | None, args: Sequence[str] = ()) -> bool:
    """--json was given: parsed already (ctx.params), or still in the raw arguments when the
    parse itself failed."""
    if ctx is not None and (ctx.params.get("as_json") or ctx.meta.get(_META_JSON)):
        return True
    return "--json" in args and "--" not in args[: list(args).index("--json")]


def _verbose(ctx: click.Context) -> bool:
    return any(c.params.get("verbose") for c in _lineage(ctx))


def _lineage(ctx: click.Context) -> list[click.Context]:
    out: list[click.Context] = []
    c: click.Context | None = ctx
    while c is not None:
        out.append(c)
        c = c.parent
    return out


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    """-v after the subcommand means what it means before it."""
    if value:
        ctx.find_root().params["verbose"] = True
        logging.getLogger().setLevel(logging.DEBUG)
    return value


class TlogCommand(click.Command):
    """A command that keeps the contract above: it also takes -v/--verbose after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        taken = {o for p in self.params for o in getattr(p, "opts", ())}
        if not {"-v", "--verbose"} & taken:
            self.params.append(click.Option(
                ["--verbose", "-v"], is_flag=True, expose_value=False, is_eager=True,
                callback=_set_verbose, help="Show debug logs and tracebacks."))

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            if _wants_json(None, args):
                _emit_json_failure(None, e)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            if _wants_json(ctx):
                _emit_json_failure(ctx, e)
            raise
        except (TlogError, OSError) as e:
            if _wants_json(ctx):
                _emit_json_failure(ctx, e)
            if _verbose(ctx):
                raise
            fail(error_message(e))


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print the error line (red on a terminal: cli.terminal) and exit with `code`."""
    from cli.terminal import FAILED, echo

    echo(f"tlog: error: {message}", FAILED, err=True)
    sys.exit(code)


def run_standalone(invoke: Any) -> NoReturn:
    """Run the root command the way click's standalone mode does, but print click's own
    errors with tlog's prefix (`tlog: error:`) and the usage line before it."""
    try:
        rv = invoke()
    except click.UsageError as e:
        if e.ctx is not None:
            click.echo(e.ctx.get_usage(), err=True)
            if e.ctx.command.get_help_option(e.ctx) is not None:
                click.echo(f"Try '{e.ctx.command_path} --help' for help.", err=True)
        fail(e.format_message(), e.exit_code)
    except click.ClickException as e:
        fail(e.format_message(), e.exit_code)
    except click.Abort:
        fail("aborted", EXIT_FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)

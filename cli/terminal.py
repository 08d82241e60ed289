"""Output a person reads: colour and tables on a terminal (rich), plain lines anywhere else.

A line printed here is exactly `click.echo`'s when its stream is not a terminal (a pipe, a
file, click's test runner), so scripts and tests see the same bytes with or without this
module; on a terminal it is styled, unless NO_COLOR is set (https://no-color.org, which
rich's Console honours, as it does TERM=dumb). rich is imported only for a terminal: a
command piped into a script does not pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console

OK = "green"
FAILED = "red"


def is_terminal(err: bool = False) -> bool:
    stream = sys.stderr if err else sys.stdout
    return stream is not None and stream.isatty()


def console(err: bool = False) -> Console:
    """A Console on standard output (or error), made for each use: click's test runner swaps
    the streams, and rich decides colour from the stream it has when it is made."""
    from rich.console import Console

    return Console(stderr=err, highlight=False, emoji=False, markup=False, soft_wrap=True)


def echo(text: str, style: str | None = None, *, err: bool = False,
         via: Console | None = None) -> None:
    """Print one line (or a few), styled on a terminal. `via`: the Console a live display
    (a progress bar) draws with, so that the line is printed above the display instead of
    through it."""
    if via is None and not is_terminal(err):
        click.echo(text, err=err)
        return
    from rich.text import Text

    (via or console(err)).print(Text(text, style=style or ""))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Rows under headers on standard output, as a table that fits the terminal's width: a
    long value (a URL, a logID) folds onto more lines rather than being cut, since it is read
    whole. Only for a terminal: the caller prints plain lines otherwise."""
    from rich.table import Table

    out = console()
    t = Table(box=None, pad_edge=False, header_style="bold")
    for h in headers:
        t.add_column(h, overflow="fold")
    for row in rows:
        t.add_row(*row)
    out.print(t)

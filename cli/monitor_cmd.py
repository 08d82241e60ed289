"""`tlog monitor`: watch a log for forks and for entries of watched keys or artifacts.

Exit status: 0 all checks passed; 1 an error (network, configuration, log errors);
3 FORK ALERT (the log contradicted the saved checkpoint; the state is not advanced);
4 the checkpoint lacks the required witness cosignatures; 130 interrupted mid-round.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli import terminal
from cli.common import log_url_option, selected_log, trust_option
from cli.main import main

EXIT_ERROR = 1
EXIT_FORK = 3
EXIT_UNWITNESSED = 4
EXIT_INTERRUPTED = 130

# Show a progress bar only when catching up on at least this many entries.
PROGRESS_THRESHOLD = 1024


class ProgressBar:
    """A rich progress bar on stderr, shown only on a terminal and for long catch-ups.

    Transient: stopped, it leaves nothing on the screen. While it is drawn, lines go through
    its own Console (`echo`), which prints them above the bar: a line written to the
    terminal past rich would land in the middle of the bar and stay there."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            if total < PROGRESS_THRESHOLD or not sys.stderr.isatty():
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self._progress = Progress("[progress.description]{task.description}", BarColumn(),
                                      MofNCompleteColumn(), TimeRemainingColumn(),
                                      console=terminal.console(err=True), transient=True)
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def echo(self, text: str, style: str | None = None, *, err: bool = False) -> None:
        """Print a line (cli.terminal.echo), above the bar while it is drawn. A line for
        standard output goes there too when that is the same terminal; to a pipe or a file
        it goes as usual (the bar is not in it)."""
        if self._progress is not None and (err or terminal.is_terminal()):
            terminal.echo(text, style, err=err, via=self._progress.console)
        else:
            terminal.echo(text, style, err=err)


def state_option(kind: str, what: str) -> Callable[[Any], Any]:
    return click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help=f"Where {what} is kept. Default: "
                        f"~/.local/state/tlog/{kind}-<log name>.json.")


def emitter(as_json: bool, bar: ProgressBar) -> Callable[[dict[str, Any]], None]:
    """Print each event (through `bar`, which may be drawn): a JSON line with --json, else
    the lines describe() makes, alerts and errors in red on standard error."""
    def emit(event: dict[str, Any]) -> None:
        alarm = event["event"] in ("fork", "error")
        if as_json:
            bar.echo(json.dumps(event, sort_keys=True))
            if event["event"] == "error":  # on stderr too, as every command's errors
                bar.echo(describe(event), terminal.FAILED, err=True)
        else:
            bar.echo(describe(event), terminal.FAILED if alarm else None, err=alarm)
    return emit


def error_event(e: Exception) -> dict[str, Any]:
    """An error as a monitor event: an `error` line in the event stream that also carries the
    failure document every command prints with --json (cli.contract)."""
    from cli.contract import error_code, error_message

    message = error_message(e)
    return {"event": "error", "message": message, "ok": False,
            "error": {"code": error_code(e), "message": message}}


def describe(e: dict[str, Any]) -> str:
    """One event as a line (or, for an alert, a few) a person reads."""
    kind = e["event"]
    if kind == "checkpoint":
        if e["previousSize"] is None:
            what = f"first run: trusting size {e['size']}, {e['newEntries']} entries read"
        elif e["newEntries"]:
            what = f"size {e['size']} (+{e['newEntries']}), consistent with size {e['previousSize']}"
        else:
            what = f"size {e['size']}, unchanged"
        cosigned = f"; cosigned by {', '.join(e['witnesses'])}" if e["witnesses"] else ""
        root = base64.b64decode(e["rootHash"]).hex()  # hex for people, as every command shows
        return f"{e['origin']}: {what}; root {root}{cosigned}"
    if kind == "match":
        by = f" signed by watched key {e['watchedKey']}" if "watchedKey" in e else ""
        return (f"MATCH {e['origin']} entry {e['index']} (uuid {e['uuid']}): "
                f"{e['artifact']}{by}")
    if kind == "fork":
        lines = [f"FORK ALERT {e['origin']} ({e['log']}): {e['detail']}"]
        for name in ("saved", "seen"):
            if "checkpoint" in e.get(name, {}):
                lines.append(f"--- {name} checkpoint:\n{e[name]['checkpoint'].rstrip()}")
        if "advice" in e:
            lines.append(f"--- what to do: {e['advice']}")
        return "\n".join(lines)
    return f"tlog: error: {e.get('message', e)}"


async def _loop(log: Any, state_path: Path, options: Any, interval: float | None,
                emit: Callable[[dict[str, Any]], None], bar: ProgressBar) -> int:
    from tlog.audit.monitor import ForkAlert, WitnessQuorumError, monitor_round
    from tlog.errors import TlogError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            round_ = asyncio.ensure_future(monitor_round(log, state_path, options, emit, bar))
            await asyncio.wait({round_, stopping}, return_when=asyncio.FIRST_COMPLETED)
            bar.close()
            if not round_.done():
                round_.cancel()
                await asyncio.gather(round_, return_exceptions=True)
                return EXIT_INTERRUPTED
            code = 0
            try:
                round_.result()
            except ForkAlert as alert:
                emit(alert.event)
                return EXIT_FORK
            except WitnessQuorumError as e:
                emit({**error_event(e), "kind": "witnesses"})
                code = EXIT_UNWITNESSED
            except (TlogError, OSError) as e:
                emit(error_event(e))
                code = EXIT_ERROR
            if interval is None:
                return code
            # Errors in a long-running monitor are reported and retried at the next round.
            try:
                await asyncio.wait_for(asyncio.shield(stopping), timeout=interval)
                return 0
            except TimeoutError:
                continue
    finally:
        stopping.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@main.command()
@log_url_option
@trust_option
@state_option("monitor", "the last verified checkpoint")
@click.option("--once", is_flag=True, help="Check once and exit (the default; for cron).")
@click.option("--interval", type=click.FloatRange(1, 86_400), default=None, metavar="SECONDS",
              help="Keep checking, every SECONDS, until interrupted.")
@click.option("--watch-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, metavar="PUB",
              help="Report new entries signed by this key (PEM public key or certificate). Repeatable.")
@click.option("--watch-sha256", multiple=True, metavar="HEX",
              help="Report new entries for this artifact SHA-256 digest. Repeatable.")
@click.option("--witness", "witnesses", multiple=True, metavar="VKEY",
              help="A witness verifier key (name+id+base64). Repeatable.")
@click.option("--min-witnesses", type=click.IntRange(0), default=None, metavar="K",
              help="Require K valid cosignatures from the --witness keys. Default: 1 if any are given.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per event.")
def monitor(log_url: str | None, trust_file: Path | None, state_file: Path | None, once: bool,
            interval: float | None, watch_key: tuple[Path, ...], watch_sha256: tuple[str, ...],
            witnesses: tuple[str, ...], min_witnesses: int | None, as_json: bool) -> None:
    """Check that the log only ever grows, and report entries of watched keys or artifacts.

    Each round fetches the checkpoint, verifies it with the pinned key, proves it consistent
    with the last one seen, then reads the new entries from the log's entry tiles. Exit
    status: 0 fine, 1 error, 3 FORK ALERT (state not advanced), 4 not enough cosignatures.
    """
    from tlog.audit.monitor import MonitorOptions, Watchlist
    from tlog.audit.tilesync import default_state_path
    from tlog.core.cosignature import parse_cosignature_verifier_key

    if once and interval is not None:
        raise click.UsageError("--once and --interval cannot be used together")
    log = selected_log(trust_file, log_url)
    verifiers = tuple(parse_cosignature_verifier_key(v) for v in witnesses)
    options = MonitorOptions(
        watch=Watchlist.build([(str(p), p.read_bytes()) for p in watch_key], watch_sha256),
        witnesses=verifiers,
        min_witnesses=(1 if verifiers else 0) if min_witnesses is None else min_witnesses)
    state_path = state_file or default_state_path("monitor", log.name)
    bar = ProgressBar(f"reading {log.name}")
    code = asyncio.run(_loop(log, state_path, options, interval, emitter(as_json, bar), bar))
    sys.exit(code)

"""`tlog audit`: rebuild a log from its tiles and check everything in it.

Exit status: 0 the audit passed; 1 an error kept it from running; 3 the audit found
failures (listed in the report, and kept in the state file for later runs).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.common import json_option, log_url_option, selected_log, trust_option
from cli.main import main
from cli.monitor_cmd import EXIT_FORK, ProgressBar, state_option
from cli.terminal import FAILED, OK, echo

EXIT_FAILED = EXIT_FORK


def render(rep: Any) -> list[tuple[str, str | None]]:
    """The report a person reads, line by line with a style (cli.terminal): a fork first,
    since it is what the rest of the report means; the root only if this run compared it."""
    lines: list[tuple[str, str | None]] = [
        (f"audit of {rep.origin} ({rep.log_url}) at tree size {rep.size}", None)]
    lines += [(f"  FORK ALERT: {f.detail}", FAILED) for f in rep.failures if f.kind == "fork"]
    resumed = f" (resumed at {rep.resumed_from})" if rep.resumed_from else ""
    lines.append((f"  entries checked this run: {rep.entries_checked}{resumed}; "
                  f"tiles compared: {rep.tiles_checked}", None))
    if not rep.root_compared:
        lines.append(("  root not compared: the audit stopped at the failure below", None))
    elif rep.root_matches:
        lines.append((f"  root matches the signed checkpoint ({rep.root.hex()})", None))
    else:
        lines.append((f"  root DOES NOT MATCH the signed checkpoint ({rep.root.hex()})", FAILED))
    if rep.failure_count:
        lines.append((f"  FAILURES: {rep.failure_count}", FAILED))
        lines += [(f"    {f}", None) for f in rep.failures]
        if rep.failure_count > len(rep.failures):
            lines.append((f"    … and {rep.failure_count - len(rep.failures)} more", None))
    lines.append(("  result: OK", OK) if rep.ok else ("  result: FAILED", FAILED))
    return lines


@main.command()
@log_url_option
@trust_option
@state_option("audit", "progress (to resume) and past findings")
@json_option
def audit(log_url: str | None, trust_file: Path | None, state_file: Path | None, as_json: bool) -> None:
    """Download every tile, recompute the root, check every entry and signature.

    Resumes from the state file; run it again as the log grows and it checks only what is
    new. Exit status: 0 passed, 1 error, 3 failures found.
    """
    from tlog.audit.rebuild import audit_round
    from tlog.audit.tilesync import default_state_path

    log = selected_log(trust_file, log_url)
    state_path = state_file or default_state_path("audit", log.name)
    bar = ProgressBar(f"auditing {log.name}")
    try:
        rep = asyncio.run(audit_round(log, state_path, bar))
    except KeyboardInterrupt:
        bar.close()
        click.echo("tlog audit: interrupted; progress so far is saved", err=True)
        sys.exit(130)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(rep.to_json(), sort_keys=True))
    else:
        for line, style in render(rep):
            echo(line, style)
    sys.exit(0 if rep.ok else EXIT_FAILED)

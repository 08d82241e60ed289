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

EXIT_FAILED = EXIT_FORK


def render(rep: Any) -> str:
    from tlog.audit.tilesync import b64

    lines = [f"audit of {rep.origin} ({rep.log_url}) at tree size {rep.size}"]
    resumed = f" (resumed at {rep.resumed_from})" if rep.resumed_from else ""
    lines.append(f"  entries checked this run: {rep.entries_checked}{resumed}; "
                 f"tiles compared: {rep.tiles_checked}")
    lines.append(f"  root {'matches' if rep.root_matches else 'DOES NOT MATCH'} the signed "
                 f"checkpoint ({b64(rep.root)})")
    if rep.failure_count:
        lines.append(f"  FAILURES: {rep.failure_count}")
        lines += [f"    {f}" for f in rep.failures]
        if rep.failure_count > len(rep.failures):
            lines.append(f"    … and {rep.failure_count - len(rep.failures)} more")
    lines.append("  result: " + ("OK" if rep.ok else "FAILED"))
    return "\n".join(lines)


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
    click.echo(json.dumps(rep.to_json(), sort_keys=True) if as_json else render(rep))
    sys.exit(0 if rep.ok else EXIT_FAILED)

"""`tlog fsck DATA_DIR`: check a log's data directory offline, without modifying it.

Exit status: 0 nothing is wrong; 1 faults found (listed); 2 the directory cannot be
checked (no such directory, no log.db, no key to verify checkpoints with, bad options).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from cli.common import json_option
from cli.contract import Failure
from cli.main import main
from cli.monitor_cmd import ProgressBar

if TYPE_CHECKING:
    from tlog.server.fsck import FsckReport

EXIT_FAULTS = 1
EXIT_CANNOT_CHECK = 2


def render(rep: FsckReport) -> str:
    root = rep.root.hex() if rep.root is not None else "unknown"
    lines = [f"fsck of {rep.data_dir}: tree size {rep.tree_size}, root {root}"]
    signatures = "signatures verified" if rep.signatures_checked else "signatures not checked"
    cp_signatures = "" if rep.checkpoint_signatures_checked else " (signatures not checked)"
    unchecked = (f", {rep.checkpoints_unchecked} of them without a recomputable root"
                 if rep.checkpoints_unchecked else "")
    lines.append(f"  checked: {rep.entries_checked} entries ({signatures}), {rep.tiles_checked} "
                 f"tiles, {rep.checkpoints_checked} checkpoints{cp_signatures}{unchecked}")
    if rep.fault_count:
        counts = ", ".join(f"{kind} {n}" for kind, n in rep.counts.items())
        lines.append(f"  FAULTS: {rep.fault_count} ({counts})")
        for kind, n in rep.counts.items():
            listed = [f for f in rep.faults if f.kind == kind]
            lines += [f"    {f}" for f in listed]
            if n > len(listed):
                lines.append(f"    … and {n - len(listed)} more {kind} faults")
    if not rep.complete:
        lines.append("  the check stopped early: the database could not be read to the end")
    lines += [f"  note: {note}" for note in rep.notes]
    lines.append("  result: " + ("OK" if rep.ok else "FAILED"))
    return "\n".join(lines)


def _cannot_check(message: str) -> NoReturn:
    raise Failure(message, EXIT_CANNOT_CHECK, "cannot_check")


@main.command()
@click.argument("data_dir", type=click.Path(path_type=Path), required=False)
@click.option("--database", default=None, metavar="postgresql://USER@HOST:PORT/DB",
              help="Check the log kept in this PostgreSQL database (tlog serve --database); "
                   "DATA_DIR is then optional: a frontend's data directory, for its attestations.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --database: the log key file the frontends use (tlog serve --key).")
@click.option("--log-key", "log_key_file", metavar="PEM",
              type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The log's public key (PEM) to verify checkpoints with. "
                   "Default: the key in DATA_DIR/log.key (--key with --database).")
@click.option("--no-signatures", is_flag=True,
              help="Do not verify each entry's signature (the slow part on a large log).")
@json_option
def fsck(data_dir: Path | None, database: str | None, key_file: Path | None,
         log_key_file: Path | None, no_signatures: bool, as_json: bool) -> None:
    """Check a data directory (or --database): entries, tiles, checkpoints, indexes, database.

    Recomputes every tile and the root from the stored entries, verifies every entry's
    signature and every checkpoint's, checks the checkpoints are consistent with each other
    and the search indexes complete. Reads only: safe on a running log.
    Exit status: 0 clean, 1 faults found, 2 cannot check.
    """
    from tlog.core.keys import LogPublicKey
    from tlog.errors import InvalidInput
    from tlog.server.fsck import FsckError, check_data_dir, check_database

    pinned = None
    if log_key_file is not None:
        try:
            pinned = LogPublicKey.from_pem(log_key_file.read_bytes())
        except OSError as e:
            _cannot_check(f"cannot read the log key {log_key_file}: {e.strerror or e}")
        except InvalidInput as e:
            _cannot_check(f"{log_key_file}: {e}")
    if database is None and data_dir is None:
        _cannot_check("give the data directory to check (DATA_DIR), or --database")
    if database is None and key_file is not None:
        _cannot_check("--key is for --database: a data directory's key is DATA_DIR/log.key")
    bar = None if as_json else ProgressBar(f"checking {data_dir if database is None else 'the database'}")
    try:
        if database is not None:
            rep = check_database(database, key_file=key_file, data_dir=data_dir, progress=bar,
                                 log_key=pinned, signatures=not no_signatures)
        else:
            assert data_dir is not None
            rep = check_data_dir(data_dir, progress=bar, log_key=pinned, signatures=not no_signatures)
    except FsckError as e:
        _cannot_check(e.diagnostics())
    finally:
        if bar is not None:
            bar.close()
    click.echo(json.dumps(rep.to_json(), indent=2) if as_json else render(rep))
    sys.exit(0 if rep.ok else EXIT_FAULTS)

"""`tlog migrate --from DATA_DIR --to postgresql://…`: copy a SQLite log into PostgreSQL,
verified (tlog.server.migrate)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from cli.common import echo_json, json_option
from cli.main import main


@main.command()
@click.option("--from", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The data directory of the log to copy (read only; stop its server first).")
@click.option("--to", "dsn", required=True, metavar="postgresql://USER@HOST:PORT/DB",
              help="An empty PostgreSQL database (tlog creates its schema).")
@json_option
def migrate(data_dir: Path, dsn: str, as_json: bool) -> None:
    """Copy a log from SQLite to PostgreSQL and verify the copy: same entries, same roots.

    Then serve it with `tlog serve --database DSN --key DATA_DIR/log.key`."""
    from tlog.server.migrate import migrate_sqlite_to_postgres

    done = asyncio.run(migrate_sqlite_to_postgres(data_dir, dsn))
    if as_json:
        echo_json({"entries": done.entries, "checkpoints": done.checkpoints,
                   "root": done.root.hex(), "entriesDigest": done.digest})
        return
    click.echo(f"copied {done.entries} entries and {done.checkpoints} checkpoints; verified: "
               f"root {done.root.hex()}, entries digest {done.digest}")

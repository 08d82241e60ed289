"""`tlog serve`: run the log server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.config import configurable
from cli.main import main

if TYPE_CHECKING:
    from tlog.core.keys import KeyType


@configurable
@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("tlog-data"),
              show_default=True, help="Where the database and the log key live.")
@click.option("--database", default=None, metavar="postgresql://USER@HOST:PORT/DB",
              help="Keep the log in this PostgreSQL database instead of SQLite in --data-dir; "
                   "every frontend given the same database serves the same log.")
@click.option("--key", "key_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The log key (PKCS#8 PEM, mode 0600; created on first start if missing). "
                   "Default: DATA_DIR/log.key.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option("--public-url", default=None,
              help="The URL clients use; its host[:port] names the log. Default: http://HOST:PORT")
@click.option("--key-type", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519",
              show_default=True, help="Type of the log key created on first start.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="Most entries written in one transaction.")
@click.option("--batch-ms", type=click.FloatRange(0, 10_000), default=1.0, show_default=True,
              help="How long a batch waits for more entries before it is written.")
@click.option("--max-pending", type=click.IntRange(1, 10_000_000), default=4096, show_default=True,
              help="Queued submissions beyond which the log answers 503.")
@click.option("--max-body", type=click.IntRange(1024, 16 << 20), default=64 * 1024, show_default=True,
              help="Largest request body, in bytes (413 beyond); hashedrekord entries and "
                   "every other request.")
@click.option("--max-attestation-body", type=click.IntRange(1024, 64 << 20), default=1024 * 1024,
              show_default=True,
              help="Largest request body for a dsse or intoto entry (a DSSE attestation), in "
                   "bytes (413 beyond).")
@click.option("--rate-limit", type=click.FloatRange(0, 1e6), default=0.0, show_default=True,
              help="Submissions per second per client address (0: unlimited); 429 beyond.")
@click.option("--rate-burst", type=click.IntRange(1, 1_000_000), default=20, show_default=True,
              help="Submissions a client may send at once before --rate-limit applies.")
@click.option("--search-rate-limit", type=click.FloatRange(0, 1e6), default=0.0, show_default=True,
              help="Searches (POST /api/v1/index/retrieve) per second per client address "
                   "(0: unlimited); 429 beyond.")
@click.option("--search-rate-burst", type=click.IntRange(1, 1_000_000), default=20, show_default=True,
              help="Searches a client may send at once before --search-rate-limit applies.")
@click.option("--max-connections", type=click.IntRange(1, 1_000_000), default=1024, show_default=True,
              help="Requests answered at once (slow readers included); 503 beyond.")
@click.option("--bundle-memory", type=click.IntRange(64, 1 << 20), default=128, show_default=True,
              help="MiB for entry bundles (/tile/entries/…) being sent or cached; 503 when "
                   "slow readers hold all of it.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a client has to send its request headers and body (408 beyond), "
                   "and to take each 64 KiB of a large answer (disconnected beyond).")
@click.option("--max-header-size", type=click.IntRange(256, 1 << 20), default=8190, show_default=True,
              help="Longest request line or header field, in bytes (400 beyond).")
@click.option("--witness", "witnesses", multiple=True, metavar="URL=VKEY",
              help="A witness to push checkpoints to (repeatable): its URL and cosignature "
                   "verifier key (name+hexid+base64).")
@click.option("--read-only", is_flag=True,
              help="Serve an existing log frozen: reads and proofs only, submissions get 403 "
                   "(key rotation: freeze the old log, start a new one).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes that serve HTTP (admit, verify, read) in front of this one's "
                   "sequencer, on SQLite: up to one per core. 1: a single process.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as plain text or as JSON objects (one per line, with request IDs).")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per HTTP request.")
def serve(data_dir: Path, database: str | None, key_file: Path | None, host: str, port: int,
          public_url: str | None, key_type: KeyType,
          batch_size: int, batch_ms: float, max_pending: int, max_body: int,
          max_attestation_body: int, rate_limit: float,
          rate_burst: int, search_rate_limit: float, search_rate_burst: int, max_connections: int,
          bundle_memory: int, request_timeout: float, max_header_size: int, witnesses: tuple[str, ...],
          read_only: bool, workers: int, log_format: str, access_log: bool) -> None:
    """Run the log server."""
    import logging

    from tlog.logs import setup_logging
    from tlog.server.api import ApiLimits
    from tlog.server.witnessing import parse_witness_option

    verbose = click.get_current_context().find_root().params.get("verbose")
    setup_logging(log_format, logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("tlog.access").setLevel(logging.INFO if access_log else logging.WARNING)
    from tlog.server.log import LogConfig
    from tlog.server.run import serve as run

    url = public_url or f"http://{host}:{port}"
    config = LogConfig(data_dir=data_dir, public_url=url, key_type=key_type,
                       batch_size=batch_size, batch_ms=batch_ms, max_pending=max_pending,
                       witnesses=tuple(parse_witness_option(w) for w in witnesses),
                       read_only=read_only, bundle_memory=bundle_memory << 20,
                       database=database, key_file=key_file,
                       public_url_given=public_url is not None)
    limits = ApiLimits(max_body=max_body, max_attestation_body=max_attestation_body, rate=rate_limit,
                       burst=rate_burst, body_timeout=request_timeout,
                       search_rate=search_rate_limit, search_burst=search_rate_burst,
                       max_connections=max_connections)
    asyncio.run(run(config, host, port, limits=limits, max_header_size=max_header_size, workers=workers))

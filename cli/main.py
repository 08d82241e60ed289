"""The `tlog` command: a thin shell over the library (sigstore-python's _cli habit)."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
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


@main.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("tlog-data"),
              show_default=True, help="Where the database and the log key live.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option("--public-url", default=None,
              help="The URL clients use; its host[:port] names the log. Default: http://HOST:PORT")
@click.option("--key-type", type=click.Choice(["ed25519", "ecdsa-p256"]), default="ed25519",
              show_default=True, help="Type of the log key created on first start.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=256, show_default=True,
              help="Most entries written in one transaction.")
@click.option("--batch-ms", type=click.FloatRange(0, 10_000), default=5.0, show_default=True,
              help="How long a batch waits for more entries before it is written.")
@click.option("--max-pending", type=click.IntRange(1, 10_000_000), default=4096, show_default=True,
              help="Queued submissions beyond which the log answers 503.")
@click.option("--max-body", type=click.IntRange(1024, 16 << 20), default=64 * 1024, show_default=True,
              help="Largest request body, in bytes (413 beyond).")
def serve(data_dir: Path, host: str, port: int, public_url: str | None, key_type: str,
          batch_size: int, batch_ms: float, max_pending: int, max_body: int) -> None:
    """Run the log server."""
    from tlog.log import LogConfig
    from tlog.server import serve as run

    url = public_url or f"http://{host}:{port}"
    config = LogConfig(data_dir=data_dir, public_url=url, key_type=key_type,  # type: ignore[arg-type]
                       batch_size=batch_size, batch_ms=batch_ms, max_pending=max_pending)
    asyncio.run(run(config, host, port, max_body=max_body))


@main.command()
@click.option("--log-url", default=None, help="A running log to load. Default: start a fresh one.")
@click.option("--entries", "-n", type=click.IntRange(1), default=5000, show_default=True)
@click.option("--concurrency", "-c", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(log_url: str | None, entries: int, concurrency: int, as_json: bool) -> None:
    """Submit N signed entries with C concurrent clients; print entries/s and latencies."""
    import json as jsonlib

    from cli.benchrun import run_bench

    results = run_bench(log_url, entries, concurrency, progress=not as_json)
    if as_json:
        click.echo(jsonlib.dumps(results, indent=2))
        return
    for name, r in results["runs"].items():
        errors = ", ".join(f"{k}×{v}" for k, v in r["errors"].items()) or "none"
        click.echo(f"{name:<12} {r['ok']:>7} ok  {r['per_second']:>9.0f}/s  p50 {r['p50_ms']:7.2f} ms  "
                   f"p90 {r['p90_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  max {r['max_ms']:7.2f} ms  "
                   f"errors: {errors}")


if __name__ == "__main__":
    main()

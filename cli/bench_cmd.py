"""`tlog bench`: load a log and print throughput and latency; `--fill` builds a big log."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path

import click

from cli.main import main


@main.command()
@click.option("--log-url", default=None, help="A running log to load. Default: start one.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Serve this data directory for the run (e.g. one made with --fill).")
@click.option("--entries", "-n", type=click.IntRange(0), default=5000, show_default=True,
              help="Entries to submit (0: only read).")
@click.option("--reads", type=click.IntRange(1), default=5000, show_default=True,
              help="Requests in each read run (proofs by index and UUID, tiles, checkpoint).")
@click.option("--concurrency", "-c", type=click.IntRange(1, 4096), default=64, show_default=True)
@click.option("--calibrate/--no-calibrate", default=True, show_default=True,
              help="Also load a bare aiohttp handler and report our ratio to it.")
@click.option("--fill", type=click.IntRange(1), default=None,
              help="Instead: append this many signed entries to --data-dir directly (no HTTP).")
@click.option("--kind", type=click.Choice(["hashedrekord", "dsse"]), default="hashedrekord",
              show_default=True, help="What to submit: signatures, or DSSE attestations.")
@click.option("--envelope-kib", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Size of each DSSE envelope (--kind dsse).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The port of the log the run starts. Default: a free one.")
@click.option("--log-name", metavar="HOST[:PORT]", default=None,
              help="The name (checkpoint origin) of the log the run or --fill creates. "
              "Default: 127.0.0.1:PORT (127.0.0.1:3000 for --fill).")
@click.option("--database", is_flag=False, flag_value="auto", default=None,
              metavar="[postgresql://USER@HOST:PORT/DB]",
              help="Run the log on PostgreSQL: this empty database, or with no value a "
                   "throw-away server started for the run.")
@click.option("--frontends", type=click.IntRange(1, 8), default=1, show_default=True,
              help="With --database: `tlog serve` processes sharing the log; the load is "
                   "spread over them.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="HTTP processes of the log the run starts (tlog serve --workers).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(log_url: str | None, data_dir: Path | None, entries: int, reads: int, concurrency: int,
          calibrate: bool, fill: int | None, kind: str, envelope_kib: int, port: int | None,
          log_name: str | None, database: str | None, frontends: int, workers: int,
          as_json: bool) -> None:
    """Benchmark a log: submissions, proofs, tiles, checkpoints (or build one with --fill)."""
    if database is None and frontends > 1:
        raise click.UsageError("--frontends is for a log on PostgreSQL: add --database")
    if database is not None and workers > 1:
        raise click.UsageError("--workers is for a log on SQLite; on PostgreSQL run --frontends")
    if log_url and (port or log_name):
        raise click.UsageError("--port and --log-name are for the log the run starts: drop "
                               "--log-url")
    if fill is not None:
        if port:
            raise click.UsageError("--fill writes --data-dir directly: drop --port")
        _fill(data_dir, fill, as_json, log_name)
        return
    from cli.benchrun import run_bench

    result = run_bench(log_url, data_dir, entries, concurrency, reads, calibrate,
                       progress=not as_json, kind=kind, envelope_kib=envelope_kib, port=port,
                       log_name=log_name, database=database, frontends=frontends,
                       workers=workers)
    if as_json:
        click.echo(jsonlib.dumps(result, indent=2))
        return
    click.echo(f"{'run':<12} {'ok':>7} {'per s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
               f"{'max ms':>8}  {'vs bare':>7}  {'cpu µs':>7}  errors")
    for name, r in result["runs"].items():
        errors = ", ".join(f"{k}×{v}" for k, v in r["errors"].items()) or "-"
        ratio = f"{r['ratio_to_bare_aiohttp']:.2f}" if "ratio_to_bare_aiohttp" in r else "-"
        cpu = f"{r['server_cpu_us']:.0f}" if "server_cpu_us" in r else "-"
        click.echo(f"{name:<12} {r['ok']:>7} {r['per_second']:>9.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} "
                   f"{r['p99_ms']:>8.2f} {r['max_ms']:>8.2f}  {ratio:>7}  {cpu:>7}  {errors}")
    if result.get("rss_mb"):
        click.echo(f"server RSS: max {max(result['rss_mb']):.0f} MB; tree size {result.get('tree_size')}")
    if (batches := result.get("leader_batches")) is not None:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in batches["stage_ms_per_batch"].items())
        rate = batches["serial_entries_per_second"]
        click.echo(f"sequencer: {batches['batches']} batches of {batches['entries_per_batch']:.1f} "
                   f"entries; ms per batch: {stages}"
                   + (f"; alone it integrates {rate:.0f} entries/s" if rate else ""))


def _fill(data_dir: Path | None, count: int, as_json: bool, name: str | None) -> None:
    import asyncio
    import time

    from rich.progress import Progress

    from tlog.bench.fill import fill

    if data_dir is None:
        raise click.UsageError("--fill needs --data-dir")
    t0 = time.monotonic()
    with Progress(disable=as_json, transient=True) as bar:
        task = bar.add_task("appending signed entries", total=count)
        size = asyncio.run(fill(data_dir, count, progress=lambda k: bar.advance(task, k), name=name))
    seconds = time.monotonic() - t0
    if as_json:
        click.echo(jsonlib.dumps({"appended": count, "tree_size": size, "seconds": seconds}))
    else:
        click.echo(f"appended {count} entries in {seconds:.1f} s ({count / seconds:.0f}/s); tree size {size}")

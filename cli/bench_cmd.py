"""`tlog bench`: load a log and print throughput and latency."""

from __future__ import annotations

import click

from cli.main import main


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

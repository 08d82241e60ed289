"""`tlog bench`: start a throwaway log (or use --log-url / --data-dir), load it, report.

Each run prints throughput and p50/p90/p99/max latency; every run is also given as a ratio
of the same load against a minimal aiohttp handler started in the same run (calibration),
the figure that survives a noisy shared machine.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import click

from tlog.bench.loadgen import Request, drive, signed_entries, signed_envelopes
from tlog.core.tiles import TileRef


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_pids(pid: int) -> list[int]:
    """The server and its worker processes (`--workers`)."""
    return [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]


def _rss_mb(pid: int | None) -> float | None:
    """The resident memory of the server and of its worker processes, together."""
    if pid is None:
        return None
    try:
        total = 0
        for p in _server_pids(pid):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    except OSError:
        return None
    return total / 1024


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time the server and its worker processes have used (proc(5)
    stat fields 14 and 15, in clock ticks): per request, the figure a busy machine
    disturbs least, so the one to compare changes by."""
    if pid is None:
        return None
    try:
        ticks = 0
        for p in _server_pids(pid):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK")


async def _wait_ready(url: str, timeout: float = 60) -> float:
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as s:
        while time.monotonic() - t0 < timeout:
            try:
                async with s.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
    raise click.ClickException(f"{url} did not become ready")


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _runs(url: str | list[str], bodies: list[bytes], n: int, c: int, say: Callable[[str], None],
                pid: int | None) -> dict[str, Any]:
    """Each run's requests go to the URLs given in turn (several frontends of one log)."""
    urls = [url] if isinstance(url, str) else url
    url = urls[0]

    def at(i: int) -> str:
        return urls[i % len(urls)]

    runs: dict[str, Any] = {}
    rss: list[float] = []

    # Server CPU per request: only where `pid` is the whole server (with several frontends,
    # it is the first of them and answers only its share of the requests).
    cpu_pid = pid if len(urls) == 1 else None
    cpu_before = [_cpu_seconds(cpu_pid)]

    def record(name: str, result: Any) -> None:
        runs[name] = result.as_dict()
        mb = _rss_mb(pid)
        if mb is not None:
            rss.append(mb)
        cpu = _cpu_seconds(cpu_pid)
        if cpu is not None and cpu_before[0] is not None and result.ok:
            # Between runs the server idles: what it used is this run's requests' cost.
            runs[name]["server_cpu_us"] = (cpu - cpu_before[0]) / result.ok * 1e6
        cpu_before[0] = _cpu_seconds(cpu_pid)
        say(f"{name}: {result.per_second:.0f}/s")

    async with aiohttp.ClientSession() as s, s.get(f"{url}/api/v1/log") as r:
        size = (await r.json())["treeSize"]
    if bodies:
        say(f"submitting {len(bodies)} entries with {c} clients…")
        reqs: list[Request] = [("POST", f"{at(i)}/api/v1/log/entries", b) for i, b in enumerate(bodies)]
        record("submit", await drive(reqs, c, 201))
        size += len(bodies)
    if size == 0:
        return {"runs": runs, "rss_mb": rss}
    rng = random.Random(1)
    indexes = [rng.randrange(size) for _ in range(n)]
    record("proof-index", await drive([("GET", f"{at(k)}/api/v1/log/entries?logIndex={i}", None)
                                       for k, i in enumerate(indexes)], c, 200))
    # UUIDs of random entries, read from entry bundles (no per-entry requests needed).
    uuids = await _uuids(url, [rng.randrange(size) for _ in range(min(n, 2000))])
    cpu_before[0] = _cpu_seconds(cpu_pid)  # the bundles read for the UUIDs are not the run's
    record("proof-uuid", await drive([("GET", f"{at(i)}/api/v1/log/entries/{uuids[i % len(uuids)]}", None)
                                      for i in range(n)], c, 200))
    full = size // 256
    if full:
        record("tile", await drive([("GET", f"{at(i)}/{TileRef(0, rng.randrange(full)).path()}", None)
                                    for i in range(n)], c, 200))
    record("checkpoint", await drive([("GET", f"{at(i)}/checkpoint", None) for i in range(n)], c, 200))
    return {"runs": runs, "rss_mb": rss, "tree_size": size}


async def _uuids(url: str, indexes: list[int]) -> list[str]:
    from tlog.core.merkle import leaf_hash
    from tlog.core.tiles import decode_entry_bundle, tile_width_at

    out: list[str] = []
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/api/v1/log") as r:
            size = (await r.json())["treeSize"]
        for t in sorted({i // 256 for i in indexes})[:64]:
            width = tile_width_at(0, t, size)
            async with s.get(f"{url}/{TileRef(None, t, width).path()}") as r:
                out += [leaf_hash(b).hex() for b in decode_entry_bundle(await r.read())]
    return out


async def _calibrate(n: int, c: int, bodies: list[bytes]) -> dict[str, Any]:
    port = _free_port()
    proc = _spawn(["-m", "tlog.bench.loadgen", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url)
        posts: list[Request] = [("POST", f"{url}/api/v1/log/entries", b) for b in bodies[:n]]
        post = await drive(posts, c, 201) if bodies else None
        get = await drive([("GET", f"{url}/api/v1/log/entries?logIndex=1", None)] * n, c, 200)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"post": post.as_dict() if post else None, "get": get.as_dict()}


def run_bench(log_url: str | None, data_dir: Path | None, entries: int, concurrency: int,
              reads: int, calibrate: bool, progress: bool, kind: str = "hashedrekord",
              envelope_kib: int = 100, port: int | None = None,
              log_name: str | None = None, database: str | None = None,
              frontends: int = 1, workers: int = 1) -> dict[str, Any]:
    """`kind` dsse submits DSSE envelopes of `envelope_kib` KiB instead of hashedrekords.
    The log the run starts serves HTTP from `workers` processes (`tlog serve --workers`).
    The log the run starts listens on `port` (default: a free one) and, if new, is named
    `log_name` (default: 127.0.0.1:PORT). With `database` (a DSN, or "auto" for a
    throw-away server) it is `frontends` processes on PostgreSQL (cli.benchpg)."""
    def say(msg: str) -> None:
        if progress:
            click.echo(msg, err=True)

    if entries:
        say(f"signing {entries} {kind} entries…")
    bodies = ([] if not entries else signed_envelopes(entries, envelope_kib) if kind == "dsse"
              else signed_entries(entries))

    async def main() -> dict[str, Any]:
        result: dict[str, Any] = {"entries": entries, "concurrency": concurrency, "reads": reads,
                                  "kind": kind, "workers": workers,
                                  **({"envelope_kib": envelope_kib} if kind == "dsse" else {})}
        if log_url:
            result.update(await _runs(log_url.rstrip("/"), bodies, reads, concurrency, say, None))
        elif database is not None:
            from cli.benchpg import frontends as start_frontends, leader_batches

            with tempfile.TemporaryDirectory(prefix="tlog-bench-") as tmp:
                async with start_frontends(database, frontends, Path(tmp),
                                           max(4096, 4 * concurrency), say) as (urls, pids, _):
                    result.update(frontends=len(urls), log=urls)
                    result.update(await _runs(urls, bodies, reads, concurrency, say, pids[0]))
                    result["leader_batches"] = await leader_batches(urls)
        else:
            with tempfile.TemporaryDirectory(prefix="tlog-bench-") as tmp:
                data = data_dir or Path(tmp) / "data"
                bound = port or _free_port()
                named = ["--public-url", f"http://{log_name}"] if log_name else []
                proc = _spawn(["-m", "cli", "serve", "--data-dir", str(data), "--port", str(bound),
                               "--max-pending", str(max(4096, 4 * concurrency)),
                               "--workers", str(workers), *named])
                try:
                    url = f"http://127.0.0.1:{bound}"
                    result["log"] = url
                    result["ready_s"] = await _wait_ready(url)
                    say(f"log on {url} ({data}) ready in {result['ready_s']:.2f} s")
                    result.update(await _runs(url, bodies, reads, concurrency, say, proc.pid))
                    from cli.benchpg import leader_batches

                    result["leader_batches"] = await leader_batches([url])
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
        if calibrate:
            say("calibrating: the same load against a bare aiohttp handler…")
            cal = await _calibrate(reads, concurrency, bodies)
            result["calibration"] = cal
            for name, r in result["runs"].items():
                base = cal["post"] if name == "submit" else cal["get"]
                if base and base["per_second"]:
                    r["ratio_to_bare_aiohttp"] = r["per_second"] / base["per_second"]
        return result

    return asyncio.run(main())

"""`tlog bench --database [DSN] --frontends N`: the log on PostgreSQL (issue 15), served by
N `tlog serve --database` processes sharing one key, the load spread over all of them.

With no DSN given, a throw-away PostgreSQL is started for the run (tlog.bench.pgserver:
the machine's binaries, fsync on — the figures are of durable commits, like SQLite's) and
stopped by its PID at the end. A DSN given must name an empty database: the run creates
the log, and its key in a temporary directory.

`leader_batches` reads the sequencer's per-stage batch times from a frontend's /metrics
(tlog_batch_stage_seconds, tlog_batch_entries): the serial part of the write path, what
one leader can integrate per second whatever the number of frontends.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@contextlib.asynccontextmanager
async def frontends(database: str, count: int, tmp: Path, max_pending: int,
                    say: Callable[[str], None]) -> AsyncIterator[tuple[list[str], list[int], str]]:
    """Start `count` frontends on `database` ("auto": a throw-away server); yield their
    URLs, their PIDs and the DSN. Every process started is stopped, by PID, on the way out."""
    from cli.benchrun import _free_port, _spawn, _wait_ready
    from tlog.bench.pgserver import TempPostgres, create_database

    server = None
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if database == "auto":
            server = TempPostgres(fsync=True).start()
            database = create_database(server, "bench")
            say(f"PostgreSQL on 127.0.0.1:{server.port} (throw-away, fsync on)")
        (tmp / "secret").mkdir(mode=0o700)
        key = tmp / "secret" / "log.key"
        urls = []
        for n in range(count):  # one after the other: the first creates the key and the log
            port = _free_port()
            procs.append(_spawn(["-m", "cli", "serve", "--database", database, "--key", str(key),
                                 "--data-dir", str(tmp / f"fe{n}"), "--port", str(port),
                                 "--public-url", "http://bench.tlog.invalid",
                                 "--max-pending", str(max_pending), "--no-access-log"]))
            urls.append(f"http://127.0.0.1:{port}")
            seconds = await _wait_ready(urls[-1])
            say(f"frontend {n + 1} of {count} on {urls[-1]} ready in {seconds:.2f} s")
        yield urls, [p.pid for p in procs], database
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if server is not None:
            server.stop()


async def leader_batches(urls: list[str]) -> dict[str, Any] | None:
    """The sequencer's batches as its /metrics count them: batches, entries per batch, and
    the mean milliseconds per batch of each stage; from the frontend that leads (or the
    only one). None if no frontend reports a batch."""
    async with aiohttp.ClientSession() as s:
        for url in urls:
            async with s.get(f"{url}/metrics") as r:
                text = await r.text()
            samples = {(x.name, x.labels.get("stage", "")): x.value
                       for family in text_string_to_metric_families(text) for x in family.samples}
            if len(urls) > 1 and samples.get(("tlog_is_leader", "")) != 1:
                continue
            batches = samples.get(("tlog_batch_entries_count", ""), 0)
            if not batches:
                return None
            stages = {stage: 1000 * value / batches for (name, stage), value in samples.items()
                      if name == "tlog_batch_stage_seconds_sum"}
            per_batch = samples.get(("tlog_batch_entries_sum", ""), 0) / batches
            busy_ms = sum(stages.values())
            return {"frontend": url, "batches": int(batches), "entries_per_batch": per_batch,
                    "stage_ms_per_batch": stages,
                    "serial_entries_per_second": 1000 * per_batch / busy_ms if busy_ms else None}
    return None

"""`tlog bench`: start a throwaway log (or use --log-url), load it, report figures."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import click

from tlog.bench import drive, signed_entries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise click.ClickException(f"the log at {url} did not become ready")


async def _run(url: str, bodies: list[bytes], concurrency: int) -> dict[str, Any]:
    await _wait_ready(url)
    n = len(bodies)
    runs = {}
    runs["submit"] = await drive(f"{url}/api/v1/log/entries", "POST", bodies, n, concurrency, 201)
    runs["proof-index"] = await drive(f"{url}/api/v1/log/entries?logIndex={n // 2}", "GET", None,
                                      n, concurrency, 200)
    runs["checkpoint"] = await drive(f"{url}/api/v1/log", "GET", None, n, concurrency, 200)
    return {"url": url, "entries": n, "concurrency": concurrency,
            "runs": {k: v.as_dict() for k, v in runs.items()}}


def run_bench(log_url: str | None, entries: int, concurrency: int, progress: bool) -> dict[str, Any]:
    if progress:
        click.echo(f"signing {entries} entries…", err=True)
    bodies = signed_entries(entries)
    if log_url:
        return asyncio.run(_run(log_url.rstrip("/"), bodies, concurrency))
    with tempfile.TemporaryDirectory(prefix="tlog-bench-") as data:
        port = _free_port()
        proc = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--data-dir", data,
                                 "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if progress:
                click.echo(f"started a fresh log on 127.0.0.1:{port} ({data}); loading it…", err=True)
            return asyncio.run(_run(f"http://127.0.0.1:{port}", bodies, concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)

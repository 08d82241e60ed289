"""`tlog serve` as a real process: first start, restart, key checks, SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from tlog.core.keys import LogKey, LogPublicKey

from .support import Signer, check_log_entry

TLOG = [sys.executable, "-m", "cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*TLOG, "serve", "--data-dir", str(data), "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parents[1])


async def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise AssertionError(f"server exited: {out}")
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("server did not become ready")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out: str
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    return out


async def test_first_start_creates_private_key_and_restart_reuses_it(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    proc = start(data, port)
    await wait_ready(port, proc)
    key_file = data / "log.key"
    assert (key_file.stat().st_mode & 0o777) == 0o600
    pub = LogKey.from_pem(key_file.read_bytes()).public_key
    signer = Signer()
    async with aiohttp.ClientSession() as s, \
            s.post(f"http://127.0.0.1:{port}/api/v1/log/entries", json=signer.proposed()) as r:
        assert r.status == 201
        check_log_entry(await r.json(), pub)
    out = stop(proc)
    start_line = next(line for line in out.splitlines() if "serving" in line)
    assert f"http://127.0.0.1:{port}" in start_line and pub.log_id().hex() in start_line
    assert "tree size 0" in start_line

    proc = start(data, port)
    await wait_ready(port, proc)
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/api/v1/log/publicKey") as r:
        assert LogPublicKey.from_pem(await r.read()) == pub
    out = stop(proc)
    assert "tree size 1" in next(line for line in out.splitlines() if "serving" in line)


def test_world_readable_key_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    key_file = data / "log.key"
    key_file.write_bytes(LogKey.generate("ed25519").to_pem())
    os.chmod(key_file, 0o644)
    r = subprocess.run([*TLOG, "serve", "--data-dir", str(data), "--port", str(free_port())],
                       capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode != 0
    assert "readable by other users" in r.stderr and "Traceback" not in r.stderr


async def test_key_that_does_not_match_database_is_refused(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    proc = start(data, port)
    await wait_ready(port, proc)
    stop(proc)
    key_file = data / "log.key"
    key_file.write_bytes(LogKey.generate("ed25519").to_pem())
    r = subprocess.run([*TLOG, "serve", "--data-dir", str(data), "--port", str(port)],
                       capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode != 0
    assert "not this log's key" in r.stderr and "Traceback" not in r.stderr


async def test_sigterm_drains_pending_batch(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    proc = start(data, port, "--batch-ms", "300")
    await wait_ready(port, proc)
    signer = Signer()
    url = f"http://127.0.0.1:{port}/api/v1/log/entries"

    async with aiohttp.ClientSession() as s:
        async def submit() -> tuple[int, dict[str, Any] | None]:
            try:
                async with s.post(url, json=signer.proposed()) as r:
                    return r.status, (await r.json() if r.status == 201 else None)
            except aiohttp.ClientError:
                return 0, None

        tasks = [asyncio.create_task(submit()) for _ in range(20)]
        await asyncio.sleep(0.1)  # the batch is lingering: submissions are queued
        proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*tasks)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    accepted = [b for st, b in results if st == 201 and b is not None]
    assert len(accepted) == 20, f"queued submissions were not drained: {[st for st, _ in results]}"

    port2 = free_port()
    proc = start(data, port2)
    await wait_ready(port2, proc)
    pub = LogKey.from_pem((data / "log.key").read_bytes()).public_key
    async with aiohttp.ClientSession() as s:
        for body in accepted:
            uuid, e = next(iter(body.items()))
            async with s.get(f"http://127.0.0.1:{port2}/api/v1/log/entries/{uuid}") as r:
                assert r.status == 200
                got = await r.json()
                assert next(iter(got.values()))["logIndex"] == e["logIndex"]
                check_log_entry(got, pub)
    stop(proc)

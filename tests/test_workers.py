"""`tlog serve --workers 2` as real processes on loopback (issue 16, item 1): HTTP in two
worker processes, one sequencer in the parent.

A request reaches one chosen worker by stopping (SIGSTOP) the other while it is sent: the
workers share one listening socket, and a stopped process accepts nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tlog.core.keys import LogKey, LogPublicKey

from .support import Signer, check_log_entry
from .test_serve import TLOG, free_port, wait_ready


def workers_of(proc: subprocess.Popen[str]) -> list[int]:
    """The server's worker processes (its children), by pid."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return sorted(int(c) for c in children)


def alive(pid: int) -> bool:
    """Is the process running (not gone, not a zombie nobody reaped)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int


async def wait_workers(srv: Server, n: int, timeout: float = 20) -> list[int]:
    """The server's workers, once n of them serve (each has answered /readyz alone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = workers_of(srv.proc)
        if len(pids) == n:
            try:
                for pid in pids:
                    with only(pid, pids):
                        await get_json(srv.port, "/readyz", timeout=1)
                return pids
            except (aiohttp.ClientError, TimeoutError):
                pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{n} workers did not start: {workers_of(srv.proc)}")


@contextmanager
def only(pid: int, pids: list[int]) -> Iterator[None]:
    """While the block runs, only worker `pid` accepts connections (the others are stopped)."""
    others = [p for p in pids if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            os.kill(p, signal.SIGCONT)


async def get_json(port: int, path: str, timeout: float = 10) -> Any:
    # A new connection per request: it is accepted by whichever worker runs.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s, \
            s.get(f"http://127.0.0.1:{port}{path}") as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def post(port: int, body: dict[str, Any]) -> tuple[int, Any, str | None]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as s, \
            s.post(f"http://127.0.0.1:{port}/api/v1/log/entries", json=body) as r:
        return r.status, await r.json(), r.headers.get("Location")


@asynccontextmanager
async def server(data: Path, *extra: str) -> AsyncIterator[Server]:
    """`tlog serve --workers 2`, its log in a file (a pipe nobody reads would fill up, and
    block the worker writing its access log)."""
    port = free_port()
    logged = data.parent / f"server-{port}.log"
    with logged.open("w") as out:
        proc = subprocess.Popen([*TLOG, "serve", "--data-dir", str(data), "--port", str(port),
                                 "--workers", "2", *extra], stdout=out, stderr=subprocess.STDOUT,
                                text=True)
    try:
        await wait_ready(port, proc)
        srv = Server(proc, port)
        await wait_workers(srv, 2)
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)
        print(logged.read_text())  # the server's log, shown if the test failed


def stopped(proc: subprocess.Popen[str], *, signalled: bool = False) -> None:
    """SIGTERM (unless sent already): the server drains and exits 0."""
    if not signalled:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0


def public_key(data: Path) -> LogPublicKey:
    return LogKey.from_pem((data / "log.key").read_bytes()).public_key


async def submit_many(port: int, signer: Signer, n: int, clients: int) -> list[dict[str, Any]]:
    """n submissions from `clients` concurrent clients, each on connections of its own."""
    queue = list(range(n))
    out: list[dict[str, Any]] = []

    async def client() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            while queue:
                queue.pop()
                async with s.post(f"http://127.0.0.1:{port}/api/v1/log/entries",
                                  json=signer.proposed()) as r:
                    assert r.status == 201, await r.text()
                    out.append(await r.json())

    await asyncio.gather(*(client() for _ in range(clients)))
    return out


async def test_submissions_land_once_with_proofs_and_every_worker_agrees(tmp_path: Path) -> None:
    data = tmp_path / "d"
    signer = Signer()
    async with server(data) as srv:
        port, proc = srv.port, srv.proc
        pids = workers_of(proc)
        accepted = await submit_many(port, signer, 120, clients=16)
        pub = public_key(data)
        indexes = sorted(check_log_entry(e, pub)[1]["logIndex"] for e in accepted)
        assert indexes == list(range(120))  # every one landed, each at its own index

        # Every worker serves the same head, and the same entries with valid proofs.
        heads = []
        for pid in pids:
            with only(pid, pids):
                heads.append(await get_json(port, "/api/v1/log"))
                for e in accepted[:5]:
                    uuid = next(iter(e))
                    got = await get_json(port, f"/api/v1/log/entries/{uuid}")
                    check_log_entry(got, pub)
                    assert got[uuid]["logIndex"] == e[uuid]["logIndex"]
                tail = await get_json(port, "/api/v1/log/entries?logIndex=119")
                check_log_entry(tail, pub)
        assert {h["treeSize"] for h in heads} == {120}
        assert len({(h["rootHash"], h["signedTreeHead"]) for h in heads}) == 1

        # The same entry sent to each worker: one index; the second answer is Rekor's 409.
        entry = signer.proposed()
        with only(pids[0], pids):
            status, first, _ = await post(port, entry)
        assert status == 201
        with only(pids[1], pids):
            status, _, location = await post(port, entry)
        assert status == 409
        assert location is not None and location.endswith(next(iter(first)))
        stopped(proc)


async def test_sigterm_drains_every_worker(tmp_path: Path) -> None:
    data = tmp_path / "d"
    signer = Signer()
    async with server(data, "--batch-ms", "300") as srv:
        port, proc = srv.port, srv.proc
        pids = workers_of(proc)

        async def submit() -> dict[str, Any] | None:
            try:
                status, body, _ = await post(port, signer.proposed())
            except aiohttp.ClientError:
                return None
            return body if status == 201 else None

        tasks = [asyncio.create_task(submit()) for _ in range(20)]
        await asyncio.sleep(0.15)  # the batch lingers: the submissions wait in the sequencer
        proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*tasks)
        stopped(proc, signalled=True)
        assert not any(alive(p) for p in pids), "a worker outlived the server"
    accepted = [b for b in results if b is not None]
    assert len(accepted) == 20, "queued submissions were not drained"
    async with server(data) as srv:
        pub = public_key(data)
        for body in accepted:
            uuid = next(iter(body))
            check_log_entry(await get_json(srv.port, f"/api/v1/log/entries/{uuid}"), pub)
        stopped(srv.proc)


async def test_a_killed_worker_is_restarted_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data = tmp_path / "d"
    signer = Signer()
    async with server(data) as srv:
        port, proc = srv.port, srv.proc
        pids = workers_of(proc)
        acknowledged: list[dict[str, Any]] = []

        async def load() -> None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
                for _ in range(40):
                    try:
                        async with s.post(f"http://127.0.0.1:{port}/api/v1/log/entries",
                                          json=signer.proposed()) as r:
                            if r.status == 201:
                                acknowledged.append(await r.json())
                    except aiohttp.ClientError:
                        pass  # its worker died: not acknowledged

        clients = [asyncio.create_task(load()) for _ in range(8)]
        await asyncio.sleep(0.3)
        os.kill(pids[0], signal.SIGKILL)
        await asyncio.gather(*clients)
        new = await wait_workers(srv, 2)
        assert pids[0] not in new and pids[1] in new
        assert proc.poll() is None
        # The restarted worker serves the whole log; nothing acknowledged is missing.
        pub = public_key(data)
        with only(next(p for p in new if p != pids[1]), new):
            head = await get_json(port, "/api/v1/log")
            for body in acknowledged:
                uuid = next(iter(body))
                got = await get_json(port, f"/api/v1/log/entries/{uuid}")
                check_log_entry(got, pub)
        assert head["treeSize"] >= len(acknowledged) > 0
        stopped(proc)


async def test_workers_exit_when_the_sequencer_is_killed(tmp_path: Path) -> None:
    async with server(tmp_path / "d") as srv:
        pids = workers_of(srv.proc)
        srv.proc.kill()  # SIGKILL: the parent cannot tell its workers
        srv.proc.communicate(timeout=20)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not any(alive(p) for p in pids), "workers outlived the sequencer"

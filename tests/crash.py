"""Crash test: SIGKILL a real `tlog serve` under concurrent submission load, many times.

After every restart it checks the log's promises (issue 5):
- every entry whose submission got a 201 is present at the index it was given, same body;
- every checkpoint any client received is consistent with the current tree (and the
  current checkpoint verifies with the log key);
- SQLite's integrity_check is "ok";
- the restarted server is ready in under a second.

`python -m tests.crash --kills 25` (what `make crash-test` runs); `run()` is also called
with a few kills by the test suite. Everything talks to 127.0.0.1 only and ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.support import Signer
from tlog.core.checkpoint import verify_checkpoint
from tlog.core.keys import LogKey, LogPublicKey
from tlog.core.merkle import verify_consistency
from tlog.core.tiles import TileRef, decode_entry_bundle

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CrashReport:
    kills: int = 0
    acknowledged: int = 0
    verified_present: int = 0
    checkpoints_checked: int = 0
    ready_seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        r = sorted(self.ready_seconds)
        ready = (f"ready after restart: min {r[0]:.3f} s, median {r[len(r) // 2]:.3f} s, max {r[-1]:.3f} s"
                 if r else "no restarts")
        return (f"{self.kills} kills survived, {self.acknowledged} entries acknowledged, "
                f"{self.verified_present} verified present, {self.checkpoints_checked} checkpoints "
                f"checked consistent; {ready}; {len(self.failures)} failures")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, port: int) -> None:
        self.data, self.port = data, port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, http: aiohttp.ClientSession) -> float:
        """Start and wait for /readyz; the seconds it took from spawn to ready."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--data-dir", str(self.data), "--port", str(self.port),
             "--batch-ms", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while time.monotonic() - t0 < 30:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited on start: {err[-2000:]}")
            try:
                async with http.get(f"{self.url}/readyz") as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.005)
        raise RuntimeError("server not ready after 30 s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


async def _load(url: str, signer: Signer, stop: asyncio.Event, acked: dict[int, bytes],
                heads: dict[int, bytes], http: aiohttp.ClientSession) -> None:
    """One client: submit until told to stop or the server dies."""
    while not stop.is_set():
        try:
            async with http.post(f"{url}/api/v1/log/entries", json=signer.proposed()) as r:
                if r.status != 201:
                    continue
                body = await r.json()
        except (TimeoutError, aiohttp.ClientError):
            return  # the server was killed
        (e,) = body.values()
        acked[e["logIndex"]] = base64.b64decode(e["body"])
        p = e["verification"]["inclusionProof"]
        heads[p["treeSize"]] = p["checkpoint"].encode()


async def _verify(server: Server, pub: LogPublicKey, acked: dict[int, bytes], heads: dict[int, bytes],
                  checked_heads: set[int], report: CrashReport, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{server.url}/checkpoint") as r:
        current = verify_checkpoint(await r.read(), pub)
    # Every acknowledged entry (all of them, after every restart), read back through
    # entry bundles, 256 per request.
    report.verified_present = 0
    by_tile: dict[int, list[int]] = {}
    for i in acked:
        by_tile.setdefault(i // 256, []).append(i)
    for t, indexes in by_tile.items():
        width = min(256, current.size - 256 * t)
        if width <= 0:
            report.failures.append(f"entries {sorted(indexes)[:5]}… acknowledged but tree size is "
                                   f"{current.size}")
            continue
        async with http.get(f"{server.url}/{TileRef(None, t, width).path()}") as r:
            bodies = decode_entry_bundle(await r.read())
        for i in indexes:
            if i - 256 * t >= len(bodies) or bodies[i - 256 * t] != acked[i]:
                report.failures.append(f"acknowledged entry {i} is missing or changed")
            else:
                report.verified_present += 1
    # Every checkpoint a client was given is consistent with the current tree.
    for size in sorted(set(heads) - checked_heads):
        cp = verify_checkpoint(heads[size], pub)
        if cp.size > current.size:
            report.failures.append(f"a client saw size {cp.size}, the log now has {current.size}")
            continue
        hashes: list[bytes] = []
        if cp.size < current.size:
            async with http.get(f"{server.url}/api/v1/log/proof",
                                params={"firstSize": str(cp.size), "lastSize": str(current.size)}) as r:
                hashes = [bytes.fromhex(h) for h in (await r.json())["hashes"]]
        try:
            verify_consistency(cp.size, current.size, hashes, cp.root_hash, current.root_hash)
            report.checkpoints_checked += 1
            checked_heads.add(size)
        except Exception as e:  # noqa: BLE001 — any failure here is a fork to report
            report.failures.append(f"checkpoint at size {cp.size} is not consistent with size "
                                   f"{current.size}: {e}")
    with sqlite3.connect(f"file:{server.data / 'log.db'}?mode=ro", uri=True) as db:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
    if result != "ok":
        report.failures.append(f"integrity_check: {result}")


async def run(kills: int, data: Path, *, clients: int = 16, min_run: float = 0.2, max_run: float = 1.5,
              seed: int | None = None, progress: bool = False) -> CrashReport:
    rng = random.Random(seed)
    report = CrashReport()
    server = Server(data, _free_port())
    acked: dict[int, bytes] = {}
    heads: dict[int, bytes] = {}
    checked: set[int] = set()
    signers = [Signer() for _ in range(4)]
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            await server.start(http)
            pub = LogKey.from_pem((data / "log.key").read_bytes()).public_key
            for k in range(kills):
                stop = asyncio.Event()
                load = [asyncio.create_task(_load(server.url, signers[c % 4], stop, acked, heads, http))
                        for c in range(clients)]
                await asyncio.sleep(rng.uniform(min_run, max_run))
                server.kill()
                stop.set()
                await asyncio.gather(*load)
                report.kills += 1
                ready = await server.start(http)
                report.ready_seconds.append(ready)
                if ready >= 1.0:
                    report.failures.append(f"restart {k + 1} took {ready:.2f} s to be ready")
                await _verify(server, pub, acked, heads, checked, report, http)
                if progress:
                    print(f"kill {k + 1}/{kills}: {len(acked)} acknowledged, ready in {ready:.3f} s, "
                          f"{len(report.failures)} failures", file=sys.stderr, flush=True)
        finally:
            server.stop()
    report.acknowledged = len(acked)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=25)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a fresh temporary directory")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tlog-crash-") as tmp:
        data = args.data_dir or Path(tmp) / "data"
        report = asyncio.run(run(args.kills, data, clients=args.clients, seed=args.seed,
                                 progress=not args.json))
    if args.json:
        print(json.dumps(report.__dict__, indent=2))
    else:
        print(report.summary())
        for f in report.failures:
            print("FAIL:", f)
    sys.exit(1 if report.failures else 0)


if __name__ == "__main__":
    main()

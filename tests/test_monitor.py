"""`tlog monitor`: follows a real log through its tiles, reports watched entries, and raises a
fork alert — without advancing its state — when a log with the same key shows another history."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tlog.audit.monitor import (
    ForkAlert,
    MonitorOptions,
    Watchlist,
    WitnessQuorumError,
    load_state,
    monitor_round,
)
from tlog.client.trust import save_trust
from tlog.core.cosignature import CosignatureSigner
from tlog.core.keys import LogKey
from tlog.core.merkle import leaf_hash
from tlog.core.trusted import TrustedLog
from tlog.errors import TlogError
from tlog.server.log import Log
from tlog.server.sequencer import Admitted

from .support import ApiClient, OpenLog, Signer
from .test_serve import free_port, start, stop, wait_ready

TLOG = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parents[1]


async def grow(lg: Log, n: int) -> list[bytes]:
    """Append n distinct synthetic bodies through the real sequencer (not hashedrekord)."""
    bodies = [b"synthetic " + os.urandom(8).hex().encode() for _ in range(n)]
    await asyncio.gather(*[lg.sequencer.submit(Admitted(b, leaf_hash(b), ())) for b in bodies])
    return bodies


async def submit(client: ApiClient, signer: Signer, artifact: bytes) -> int:
    r = await client.post("/api/v1/log/entries", json=signer.proposed(artifact))
    assert r.status == 201, await r.text()
    (entry,) = (await r.json()).values()
    index = entry["logIndex"]
    assert isinstance(index, int)
    return index


def write_log_key(data_dir: Path, key: LogKey) -> None:
    """Put a given log key where `tlog serve` (or Log.open) looks for it, mode 0600."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "log.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, key.to_pem())
    os.close(fd)


def pinned(lg: Log, client: ApiClient) -> TrustedLog:
    return TrustedLog(str(client.make_url("")).rstrip("/"), lg.origin, lg.public_key)


async def tampering_proxy(aiohttp_client: AiohttpClient, upstream: ApiClient,
                          tamper: Callable[[str, bytes], bytes]) -> ApiClient:
    """A log that misbehaves: serves what the real one does, through tamper(path, body)."""

    async def forward(request: web.Request) -> web.Response:
        r = await upstream.get(request.path_qs)
        body = await r.read()
        return web.Response(status=r.status, body=tamper(request.path, body),
                            content_type=r.content_type)

    app = web.Application()
    app.router.add_get("/{tail:.*}", forward)
    return await aiohttp_client(app)


async def test_monitor_follows_a_log_across_tile_boundaries_and_reports_watched_entries(
        open_log: OpenLog, tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    watched, other = Signer(), Signer()
    artifact = b"release-1.0.tar.gz"
    await grow(lg, 250)
    hits = [await submit(client, watched, b"a"), await submit(client, other, artifact)]
    await submit(client, other, b"unrelated")
    await grow(lg, 10)  # 263: across the first tile boundary
    options = MonitorOptions(watch=Watchlist.build(
        [("me.pub", watched.pem)], [hashlib.sha256(artifact).hexdigest().upper()]))
    state_path = tmp_path / "state" / "monitor.json"
    events: list[dict[str, Any]] = []
    progress: list[tuple[int, int]] = []

    state = await monitor_round(pinned(lg, client), state_path, options, events.append,
                                lambda d, t: progress.append((d, t)))
    assert state.size == 263 and state.root == lg.head.root
    assert events[0]["event"] == "checkpoint" and events[0]["previousSize"] is None
    assert events[0]["newEntries"] == 263
    matches = [e for e in events if e["event"] == "match"]
    assert [(m["index"], m["matched"]) for m in matches] == [(hits[0], ["key"]), (hits[1], ["sha256"])]
    assert matches[0]["watchedKey"] == "me.pub"
    assert progress[-1] == (263, 263) and len(progress) == 2  # one step per entry bundle
    assert load_state(state_path) == state

    # The log grows past the next boundaries; only the new entries are read and reported.
    await grow(lg, 300)
    late = await submit(client, watched, b"b")
    events.clear()
    progress.clear()
    state = await monitor_round(pinned(lg, client), state_path, options, events.append,
                                lambda d, t: progress.append((d, t)))
    assert state.size == 564 and state.root == lg.head.root
    first = events[0]  # a new name: mypy still holds events[0]["previousSize"] to be None
    assert first["previousSize"] == 263 and first["newEntries"] == 301
    assert [e["index"] for e in events if e["event"] == "match"] == [late]
    assert progress[-1] == (301, 301)

    events.clear()
    assert (await monitor_round(pinned(lg, client), state_path, options, events.append)) == state
    assert [e["event"] for e in events] == ["checkpoint"] and events[0]["newEntries"] == 0


async def test_fork_alerts_leave_the_state_alone(open_log: OpenLog, tmp_path: Path) -> None:
    """Two logs with one key and one name but different entries: the second is a fork."""
    key = LogKey.generate("ed25519")
    dirs = [tmp_path / "a", tmp_path / "b"]
    for d in dirs:
        write_log_key(d, key)
    lg_a, client_a = await open_log(data_dir=dirs[0], batch_ms=0)
    lg_b, client_b = await open_log(data_dir=dirs[1], batch_ms=0)
    assert lg_a.origin == lg_b.origin and lg_a.public_key == lg_b.public_key
    a, b = pinned(lg_a, client_a), pinned(lg_b, client_b)
    state_path = tmp_path / "monitor.json"
    await grow(lg_a, 5)
    await grow(lg_b, 5)
    await monitor_round(a, state_path, MonitorOptions(), lambda e: None)
    saved = state_path.read_bytes()

    async def alert(lg_url: TrustedLog) -> dict[str, Any]:
        with pytest.raises(ForkAlert) as caught:
            await monitor_round(lg_url, state_path, MonitorOptions(), lambda e: None)
        assert state_path.read_bytes() == saved
        return caught.value.event

    event = await alert(b)  # same size, different root
    assert event["kind"] == "root_mismatch" and event["saved"]["size"] == event["seen"]["size"] == 5
    assert "checkpoint" in event["saved"] and "checkpoint" in event["seen"]  # the evidence
    await grow(lg_b, 3)
    assert (await alert(b))["kind"] == "inconsistent"  # a consistency proof that fails
    # Once the monitor has seen a at 15, b (at 8) is a tree that shrank.
    await grow(lg_a, 10)
    await monitor_round(a, state_path, MonitorOptions(), lambda e: None)
    saved = state_path.read_bytes()
    assert (await alert(b))["kind"] == "shrank"
    # A checkpoint that does not verify with the pinned key.
    impostor = TrustedLog(a.url, a.name, LogKey.generate("ed25519").public_key)
    state_path.unlink()
    with pytest.raises(ForkAlert) as caught:
        await monitor_round(impostor, state_path, MonitorOptions(), lambda e: None)
    assert caught.value.event["kind"] == "bad_signature" and not state_path.exists()


async def test_entries_that_do_not_hash_to_the_checkpoint_are_an_alert(
        open_log: OpenLog, aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await grow(lg, 5)
    state_path = tmp_path / "monitor.json"
    await monitor_round(pinned(lg, client), state_path, MonitorOptions(), lambda e: None)
    saved = state_path.read_bytes()
    await grow(lg, 300)
    # The log swaps one entry in the bundles it serves (not in the tree it signed).
    evil = await tampering_proxy(aiohttp_client, client, lambda path, body: body.replace(
        b"synthetic ", b"Synthetic ", 1) if path.startswith("/tile/entries/001") else body)
    log = TrustedLog(str(evil.make_url("")).rstrip("/"), lg.origin, lg.public_key)
    with pytest.raises(ForkAlert) as caught:
        await monitor_round(log, state_path, MonitorOptions(), lambda e: None)
    assert caught.value.event["kind"] == "bad_entries" and state_path.read_bytes() == saved


async def test_state_of_another_log_or_corrupt_state_is_an_error(open_log: OpenLog, tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await grow(lg, 3)
    state_path = tmp_path / "monitor.json"
    await monitor_round(pinned(lg, client), state_path, MonitorOptions(), lambda e: None)
    other = TrustedLog(pinned(lg, client).url, "other.example", lg.public_key)
    with pytest.raises(TlogError, match="another --state"):
        await monitor_round(other, state_path, MonitorOptions(), lambda e: None)
    doc = json.loads(state_path.read_text())
    doc["treeSize"] = 4
    state_path.write_text(json.dumps(doc))
    with pytest.raises(TlogError, match="malformed"):
        load_state(state_path)


async def test_missing_witness_cosignatures_do_not_advance_the_state(open_log: OpenLog,
                                                                     tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await grow(lg, 3)
    state_path = tmp_path / "monitor.json"
    witness = CosignatureSigner.generate("witness.example/w1").verifier()
    with pytest.raises(WitnessQuorumError, match="0 valid cosignature"):
        await monitor_round(pinned(lg, client), state_path,
                            MonitorOptions(witnesses=(witness,), min_witnesses=1), lambda e: None)
    assert not state_path.exists()
    with pytest.raises(TlogError):
        MonitorOptions(witnesses=(witness,), min_witnesses=2)


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TLOG, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


async def test_cli_monitor_on_two_served_logs_with_one_key_raises_a_fork_alert(tmp_path: Path) -> None:
    """Two `tlog serve` processes share a key and a public URL (so a name) but not entries."""
    key = LogKey.generate("ed25519")
    ports = [free_port(), free_port()]
    procs = []
    for name in ("a", "b"):
        write_log_key(tmp_path / name, key)
    for name, port in zip(("a", "b"), ports, strict=True):
        procs.append(start(tmp_path / name, port, "--public-url", "http://log.test"))
    try:
        for port, proc in zip(ports, procs, strict=True):
            await wait_ready(port, proc)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        trust = tmp_path / "trust.json"
        save_trust(trust, [TrustedLog(u, "log.test", key.public_key) for u in urls])
        me = Signer()
        (tmp_path / "me.pub").write_bytes(me.pem)
        async with aiohttp.ClientSession() as s:
            for url, artifacts in ((urls[0], [b"a1", b"a2"]), (urls[1], [b"b1", b"b2"])):
                for art in artifacts:
                    async with s.post(f"{url}/api/v1/log/entries", json=me.proposed(art)) as resp:
                        assert resp.status == 201
        state = tmp_path / "state.json"
        common = ["--trust", str(trust), "--state", str(state)]

        r = _run("monitor", "--log-url", urls[0], *common, "--json", "--watch-key", str(tmp_path / "me.pub"))
        assert r.returncode == 0, r.stderr
        events = [json.loads(line) for line in r.stdout.splitlines()]
        assert [e["event"] for e in events] == ["checkpoint", "match", "match"]
        assert events[0]["size"] == 2 and [e["index"] for e in events[1:]] == [0, 1]
        saved = state.read_bytes()

        r = _run("monitor", "--log-url", urls[1], *common, "--json")
        assert r.returncode == 3, (r.stdout, r.stderr)
        (event,) = [json.loads(line) for line in r.stdout.splitlines()]
        assert event["event"] == "fork" and event["kind"] == "root_mismatch"
        assert state.read_bytes() == saved

        async with aiohttp.ClientSession() as s, \
                s.post(f"{urls[1]}/api/v1/log/entries", json=me.proposed(b"b3")) as resp:
            assert resp.status == 201
        r = _run("monitor", "--log-url", urls[1], *common)
        assert r.returncode == 3 and "FORK ALERT log.test" in r.stderr and "size 2" in r.stderr
        assert "Traceback" not in r.stderr and state.read_bytes() == saved

        r = _run("monitor", "--log-url", urls[0], *common)
        assert r.returncode == 0 and "log.test: size 2, unchanged" in r.stdout

        # A long-running monitor stops cleanly on Ctrl-C between rounds.
        monitor = subprocess.Popen([*TLOG, "monitor", "--log-url", urls[0], *common, "--interval", "30"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert monitor.stdout is not None
        assert "unchanged" in monitor.stdout.readline()
        monitor.send_signal(signal.SIGINT)
        _, err = monitor.communicate(timeout=10)
        assert monitor.returncode == 0 and "Traceback" not in err, err
    finally:
        for proc in procs:
            stop(proc)

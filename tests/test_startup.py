"""Starting `tlog serve` and `tlog witness serve` as real processes (issue 11, items 9 and 10):
one server per data directory, and nothing created by a start that cannot serve."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.cosignature import CosignatureSigner
from tlog.core.keys import LogKey
from tlog.witness.server import write_witness_key

from .support import Signer, check_log_entry
from .test_serve import TLOG, free_port, start, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def tlog(*args: str | Path | int) -> subprocess.CompletedProcess[str]:
    """Run a `tlog` command that is expected to exit by itself (a refusal)."""
    return subprocess.run([*TLOG, *map(str, args)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def refused(r: subprocess.CompletedProcess[str], *expected: str) -> None:
    """A one-line refusal: non-zero exit, the expected words, no traceback."""
    assert r.returncode != 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("tlog: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for word in expected:
        assert word in lines[0], lines[0]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file of a directory and a digest of its content: to see that nothing changed."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir()) if p.is_file()}


@contextmanager
def port_taken() -> Iterator[int]:
    """A loopback port that another program listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


async def submit(port: int, signer: Signer, pub: LogKey) -> int:
    """Submit one entry, check it and the log's checkpoint; the tree size after it."""
    base = f"http://127.0.0.1:{port}/api/v1/log"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/entries", json=signer.proposed()) as r:
            assert r.status == 201, await r.text()
            check_log_entry(await r.json(), pub.public_key)
        async with s.get(base) as r:
            info = await r.json()
    cp = verify_checkpoint(info["signedTreeHead"].encode(), pub.public_key)
    assert cp.size == info["treeSize"] and cp.root_hash.hex() == info["rootHash"]
    return int(info["treeSize"])


async def test_a_second_server_on_a_data_dir_is_refused_and_the_first_keeps_serving(
        tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    first = start(data, port)
    try:
        await wait_ready(port, first)
        key = LogKey.from_pem((data / "log.key").read_bytes())
        signer = Signer()
        assert await submit(port, signer, key) == 1
        before = snapshot(data)
        for mode in ((), ("--read-only",)):  # a frozen second server is refused as well
            r = tlog("serve", "--data-dir", data, "--port", free_port(), *mode)
            refused(r, str(data), f"PID {first.pid}")
        assert snapshot(data) == before  # the refused servers wrote nothing
        assert tlog("fsck", data).returncode == 0  # offline checks still run beside the server
        # The first server still takes entries and signs checkpoints that include them all.
        assert await submit(port, signer, key) == 2
        assert await submit(port, signer, key) == 3
    finally:
        stop(first)

    # A frozen log may be served by several processes at once, but then by no writer.
    ports = free_port(), free_port()
    frozen = [start(data, p, "--read-only") for p in ports]
    try:
        for p, proc in zip(ports, frozen, strict=True):
            await wait_ready(p, proc)
        r = tlog("serve", "--data-dir", data, "--port", free_port())
        refused(r, str(data), "PID ")
        assert any(f"PID {proc.pid}" in r.stderr for proc in frozen), r.stderr
    finally:
        for proc in frozen:
            stop(proc)
    # Once the holder has stopped, the directory is free again.
    port = free_port()
    proc = start(data, port)
    await wait_ready(port, proc)
    assert await submit(port, signer, key) == 4
    stop(proc)


def test_a_taken_port_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    with port_taken() as port:
        r = tlog("serve", "--data-dir", data, "--port", port)
    assert not data.exists(), r.stderr  # no key, no database named after a port it never had
    refused(r, f"cannot listen on 127.0.0.1:{port}")

    # Likewise a name that cannot be a log's: refused before any key is made.
    r = tlog("serve", "--data-dir", data, "--port", free_port(), "--public-url", "ftp://log.example")
    refused(r, "http")
    assert not (data / "log.key").exists() and not (data / "log.db").exists()


async def test_a_database_whose_key_was_lost_gets_no_new_key(tmp_path: Path) -> None:
    data, port = tmp_path / "d", free_port()
    proc = start(data, port)
    await wait_ready(port, proc)
    await submit(port, Signer(), LogKey.from_pem((data / "log.key").read_bytes()))
    stop(proc)
    (data / "log.key").unlink()
    before = snapshot(data)
    r = tlog("serve", "--data-dir", data, "--port", free_port())
    assert not (data / "log.key").exists(), r.stderr
    refused(r, str(data / "log.key"), "restore", "backup")
    after = snapshot(data)
    del before["LOCK"], after["LOCK"]  # the refused start held the directory (its PID is there)
    assert after == before


async def test_a_second_witness_on_a_data_dir_is_refused(tmp_path: Path) -> None:
    key_file, pub = tmp_path / "witness.key", tmp_path / "log.pub"
    write_witness_key(key_file, CosignatureSigner.generate("witness.example/w1"))
    pub.write_bytes(LogKey.generate("ed25519").public_key.pem())
    data = tmp_path / "wdata"

    def witness(port: int) -> list[str]:
        return ["witness", "serve", "--key", str(key_file), "--data-dir", str(data),
                "--port", str(port), "--log", f"log.example={pub}"]

    with port_taken() as port:
        r = tlog(*witness(port))
    assert not data.exists(), r.stderr  # no database for a witness that never served
    refused(r, f"cannot listen on 127.0.0.1:{port}")

    port = free_port()
    first = subprocess.Popen([*TLOG, *witness(port)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        await wait_ready(port, first)
        before = snapshot(data)
        refused(tlog(*witness(free_port())), str(data), f"PID {first.pid}")
        assert snapshot(data) == before
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
    finally:
        stop(first)

"""Disk full and read-only storage while serving: 503, nothing half-written, reads keep
working, and the log recovers by itself. On a real size-limited tmpfs when this machine
lets tests mount one (root); otherwise SQLite's own page limit injects SQLITE_FULL."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest

from tlog.core.merkle import verify_consistency
from tlog.server.log import Log
from tlog.server.storage.sqlite import SqliteStorage

from .support import ApiClient, OpenLog, Signer, check_log_entry

ENTRIES = "/api/v1/log/entries"


def _writer(lg: Log) -> aiosqlite.Connection:
    """The log's SQLite writer connection, where these tests inject faults."""
    assert isinstance(lg.storage, SqliteStorage)
    return lg.storage._w


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path | None]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(mnt: Path) -> Path:
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


async def _assert_refused_cleanly(lg: Log, client: ApiClient, signer: Signer, expected_size: int) -> None:
    r = await client.post(ENTRIES, json=signer.proposed())
    assert r.status == 503, await r.text()
    body = await r.json()
    assert body["code"] == 503 and "cannot store" in body["message"]
    assert "Retry-After" in r.headers
    assert lg.head.state.size == expected_size
    # Reads keep working: entries with proofs, the tree head, tiles.
    got = await client.get(ENTRIES, params={"logIndex": str(expected_size - 1)})
    assert got.status == 200
    check_log_entry(await got.json(), lg.public_key)
    assert (await client.get("/api/v1/log")).status == 200
    assert (await client.get("/readyz")).status == 503


async def test_disk_full_then_space_returns(small_fs: Path | None, tmp_path: Path, open_log: OpenLog) -> None:
    data = (small_fs or tmp_path) / "data"
    lg, client = await open_log(data_dir=data, batch_ms=0)
    signer = Signer()
    for _ in range(10):
        assert (await client.post(ENTRIES, json=signer.proposed())).status == 201
    root10 = lg.head.root
    if small_fs is not None:
        filler = _fill(small_fs)
    else:  # no mount here: SQLite refuses to grow the file past its current pages
        await _writer(lg).execute("PRAGMA max_page_count = 1")
    for _ in range(3):
        await _assert_refused_cleanly(lg, client, signer, 10)
    if small_fs is not None:
        os.unlink(filler)
    else:
        await _writer(lg).execute("PRAGMA max_page_count = 1073741823")
    r = await client.post(ENTRIES, json=signer.proposed())
    assert r.status == 201
    _, e = check_log_entry(await r.json(), lg.public_key)
    assert e["logIndex"] == 10
    assert (await client.get("/readyz")).status == 200
    proof = await (await client.get("/api/v1/log/proof", params={"firstSize": 10, "lastSize": 11})).json()
    verify_consistency(10, 11, [bytes.fromhex(h) for h in proof["hashes"]], root10, lg.head.root)
    # Nothing half-written survives a restart either.
    await lg.close()
    lg2, _ = await open_log(data_dir=data)
    assert lg2.head.state.size == 11 and lg2.head.root == lg.head.root


async def test_read_only_database_then_writable_again(tmp_path: Path, open_log: OpenLog) -> None:
    """SQLITE_READONLY on the writer (a file system cannot be remounted read-only under an
    open database, so SQLite's own read-only switch injects the fault)."""
    lg, client = await open_log(data_dir=tmp_path / "data", batch_ms=0)
    signer = Signer()
    for _ in range(5):
        assert (await client.post(ENTRIES, json=signer.proposed())).status == 201
    await _writer(lg).execute("PRAGMA query_only = ON")
    for _ in range(2):
        await _assert_refused_cleanly(lg, client, signer, 5)
    await _writer(lg).execute("PRAGMA query_only = OFF")
    r = await client.post(ENTRIES, json=signer.proposed())
    assert r.status == 201
    assert lg.head.state.size == 6

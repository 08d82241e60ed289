"""Issue 11, items 1 and 2: reads that cost the client little and the log a lot, against a
real server — searches over thousands of large entries under one key, and readers that
request a 16.6 MB entry bundle and never read it.

Each log here is filled through its own sequencer and storage, as `tlog bench --fill` does
(admission's checks skipped: the entries are signed here, a moment ago), then served.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.client.http import LogClient
from tlog.core.entries.hashedrekord import MAX_BODY_BYTES, HashedRekord, parse_body
from tlog.core.merkle import leaf_hash
from tlog.core.tiles import TileRef, decode_entry_bundle
from tlog.errors import NotFound
from tlog.server.api import ApiLimits
from tlog.server.limits import MAX_SEARCH_RESULTS
from tlog.server.log import Log, LogConfig
from tlog.server.sequencer import Admitted
from tlog.server.storage.base import search_key

from .support import OpenLog, Signer
from .test_serve import free_port, start, stop, wait_ready

SEARCH = "/api/v1/index/retrieve"
# A certificate this large makes a body of 65,000 bytes, near the most an entry holds.
LARGE_CERTIFICATE = 35_780  # bytes of DER


def _certificate(signer: Signer, der_size: int) -> bytes:
    """A self-signed PEM certificate for the signer's key, padded to `der_size` bytes of DER
    with a private extension (what a certificate with many SANs or policies looks like)."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "large")])
    start_ = datetime.datetime(2025, 1, 1)

    def build(pad: int) -> bytes:
        padding = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), bytes(pad))
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(signer.key.public_key()).serial_number(1).not_valid_before(start_)
                .not_valid_after(start_ + datetime.timedelta(days=1)).add_extension(padding, False)
                .sign(signer.key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.DER)

    der = build(der_size - len(build(16)) + 12)  # the length fields grow by 4 bytes
    assert abs(len(der) - der_size) <= 16  # ECDSA signatures vary by a few bytes of DER
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


async def _fill(lg: Log, signer: Signer, count: int, pem: bytes | None = None) -> list[bytes]:
    """Append `count` entries signed by `signer` (with `pem`: its key or a certificate for
    it) through the log's sequencer; their UUIDs in log order."""
    pem = pem or signer.pem
    model = HashedRekord("sha256", b"", b"", pem, b"CERTIFICATE" in pem)
    by_key = search_key("k", model.public_key_fingerprint())
    admitted = []
    for _ in range(count):
        digest = os.urandom(32)
        signature = signer.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        entry = HashedRekord("sha256", digest, signature, pem, model.is_certificate)
        body = entry.canonical_body()
        by_artifact = search_key("a", entry.artifact_key().encode())
        admitted.append(Admitted(body, leaf_hash(body), (by_artifact, by_key), answer=False))
    done = await asyncio.gather(*(lg.sequencer.submit(a) for a in admitted))
    uuids = [b""] * (lg.head.state.size)
    for a, d in zip(admitted, done, strict=True):
        uuids[d.index] = a.leaf_hash
    return uuids[-count:]


async def _filled_dir(data: Path, signer: Signer, count: int, pem: bytes) -> list[bytes]:
    lg = await Log.open(LogConfig(data_dir=data, batch_size=4096, batch_ms=0, max_pending=count))
    try:
        return await _fill(lg, signer, count, pem)
    finally:
        await lg.close()


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert m is not None, status
    return int(m.group(1)) / 1024


def _by_key(pem: bytes) -> dict[str, object]:
    return {"publicKey": {"format": "x509", "content": base64.b64encode(pem).decode()}}


# -- item 1: search -------------------------------------------------------------------------
async def test_more_matches_than_sqlite_variables_come_newest_first_in_pages(open_log: OpenLog) -> None:
    """33,000 entries under one key. The old search answered with all of them at once, read
    with one `IN (?,…)` of 33,000 variables: past SQLite's default limit of 32,766 (some
    builds allow more), an error. Now: the newest page with a truncation header, and pages,
    each read a chunk of candidates per query, that reach every match exactly once."""
    lg, client = await open_log(batch_size=4096, batch_ms=0, max_pending=40_000)
    signer = Signer()
    uuids = await _fill(lg, signer, 33_000)
    r = await client.post(SEARCH, json=_by_key(signer.pem))
    assert r.status == 200, await r.text()
    first = await r.json()
    assert first == [u.hex() for u in uuids[-MAX_SEARCH_RESULTS:]]
    assert r.headers["X-Tlog-Truncated"] == "true"
    assert r.headers["X-Tlog-Next-Before"] == str(33_000 - MAX_SEARCH_RESULTS)
    pages = [first]
    while "X-Tlog-Next-Before" in r.headers:
        r = await client.post(f"{SEARCH}?before={r.headers['X-Tlog-Next-Before']}", json=_by_key(signer.pem))
        assert r.status == 200
        pages.append(await r.json())
    assert "X-Tlog-Truncated" not in r.headers
    assert [u for page in reversed(pages) for u in page] == [u.hex() for u in uuids]
    async with LogClient(str(client.make_url("/")).rstrip("/")) as log_client:  # `tlog search`'s
        assert await log_client.search(public_key_pem=signer.pem) == [u.hex() for u in uuids]
    # One artifact among them, and an "and" with the key: exactly that entry, untruncated.
    digest = parse_body((await lg.storage.read_entries([1234]))[1234][1]).digest.hex()
    for query in ({"hash": f"sha256:{digest}"}, {"hash": digest, **_by_key(signer.pem), "operator": "and"}):
        r = await client.post(SEARCH, json=query)
        assert await r.json() == [uuids[1234].hex()] and "X-Tlog-Truncated" not in r.headers
    r = await client.post(f"{SEARCH}?before=x", json=_by_key(signer.pem))
    assert r.status == 400


async def test_searches_are_rate_limited_per_client(open_log: OpenLog) -> None:
    _, client = await open_log(limits=ApiLimits(search_rate=0.5, search_burst=2))
    signer = Signer()
    statuses = []
    for _ in range(3):
        r = await client.post(SEARCH, json=_by_key(signer.pem))
        statuses.append(r.status)
    assert statuses == [200, 200, 429]
    assert int(r.headers["Retry-After"]) >= 1 and "too many searches" in (await r.json())["message"]
    r = await client.post("/api/v1/log/entries", json=signer.proposed())  # submissions have their own
    assert r.status == 201


async def test_searches_over_large_entries_neither_stall_the_log_nor_grow_its_memory(tmp_path: Path) -> None:
    """1,200 entries of 65 KB (35 KB certificates) under one key, 6 searches at once: before,
    each search parsed every body on the event loop (3,000 such entries: 23 s for one search,
    a GET /api/v1/log waited 21 s; 6 searches: 123 s, RSS 54 MB → 1.4 GB)."""
    signer = Signer()
    pem = _certificate(signer, LARGE_CERTIFICATE)
    uuids = await _filled_dir(tmp_path / "d", signer, 1200, pem)
    port = free_port()
    proc = start(tmp_path / "d", port)
    await wait_ready(port, proc)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async def search() -> tuple[int, list[str], str | None]:
                async with http.post(base + SEARCH, json=_by_key(pem)) as r:
                    return r.status, await r.json(), r.headers.get("X-Tlog-Truncated")

            await search()  # warm: the database's page cache, the first allocations
            rss_before = peak = _rss_mb(proc.pid)
            latencies: list[float] = []

            async def probe() -> None:
                nonlocal peak
                while True:
                    t0 = time.monotonic()
                    async with http.get(base + "/api/v1/log") as r:
                        assert r.status == 200
                    latencies.append(time.monotonic() - t0)
                    peak = max(peak, _rss_mb(proc.pid))
                    await asyncio.sleep(0.01)

            prober = asyncio.create_task(probe())
            await asyncio.sleep(0.05)
            t0 = time.monotonic()
            results = await asyncio.gather(*(search() for _ in range(6)))
            took = time.monotonic() - t0
            prober.cancel()
        newest = [u.hex() for u in uuids[-MAX_SEARCH_RESULTS:]]
        assert results == [(200, newest, "true")] * 6
        grown = peak - rss_before
        print(f"6 searches over 1,200 × 65 KB entries: {took:.2f} s; GET /api/v1/log at most "
              f"{max(latencies) * 1000:.0f} ms over {len(latencies)} probes; RSS {rss_before:.0f} MB, "
              f"peak {peak:.0f} MB")
        assert max(latencies) < 1.0 and len(latencies) >= 2
        assert grown < 100, f"RSS grew {grown:.0f} MB"
    finally:
        stop(proc)


# -- item 2: readers of big entry bundles that never read -----------------------------------
async def test_readers_of_a_bundle_share_one_build_and_one_bytes_object(open_log: OpenLog) -> None:
    lg, client = await open_log(batch_ms=0)
    await _fill(lg, Signer(), 300)

    async def read(ref: TileRef) -> bytes:
        async with lg.entry_bundle(ref) as bundle:
            await asyncio.sleep(0.01)  # held while another reader arrives
            return bundle.data

    full, again, partial = await asyncio.gather(read(TileRef(None, 0)), read(TileRef(None, 0)),
                                                read(TileRef(None, 1, 44)))
    assert full is again and lg.bundles.used == len(full) + len(partial)
    assert len(decode_entry_bundle(full)) == 256 and len(decode_entry_bundle(partial)) == 44
    r = await client.get("/tile/entries/000")
    assert await r.read() == full
    with pytest.raises(NotFound):
        lg.entry_bundle(TileRef(None, 1))  # not full yet


async def test_a_monitors_concurrent_reads_of_small_bundles_fit_a_small_budget(open_log: OpenLog) -> None:
    """A bundle counts what its entries really hold, not 256 maximal bodies: with 8 MiB for
    bundles, 8 full bundles of ordinary entries are read at once (a monitor's prefetch) with
    no 503, where counting the largest possible bundle (33 MB each) refused every one."""
    lg, client = await open_log(batch_ms=0, bundle_memory=8 << 20)
    await _fill(lg, Signer(), 8 * 256)
    answers = await asyncio.gather(*(client.get(f"/tile/entries/00{t}") for t in range(8)))
    assert [r.status for r in answers] == [200] * 8
    for r in answers:
        assert len(decode_entry_bundle(await r.read())) == 256



def _stalled_reader(port: int, path: str) -> socket.socket:
    """A client that asks for `path` and reads nothing (a receive buffer of 4 KB), once the
    answer has begun to arrive (a peek at its status line, which leaves it unread)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    s.settimeout(20)
    assert s.recv(12, socket.MSG_PEEK) == b"HTTP/1.1 200"
    return s


def _drain(s: socket.socket, timeout: float) -> tuple[bytes, int]:
    """What the server sent before it closed the connection: the status line, and the
    number of bytes. A timeout means it never closed it."""
    s.settimeout(timeout)
    head, total = b"", 0
    try:
        while chunk := s.recv(1 << 20):
            head = head or chunk[:12]
            total += len(chunk)
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return head, total


async def _max_bundle_log(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen[str], int]:
    """A log of 256 entries of the largest size (a 16.6 MB entry bundle), served."""
    signer = Signer()
    pem = _certificate(signer, LARGE_CERTIFICATE)
    await _filled_dir(tmp_path / "d", signer, 256, pem)
    port = free_port()
    proc = start(tmp_path / "d", port, *flags)
    await wait_ready(port, proc)
    return proc, port


async def test_readers_that_never_read_a_16_mb_bundle_cost_the_log_no_memory(tmp_path: Path) -> None:
    """Before: 60 such readers took the log from 54 MB to 1.3 GB while they stalled and to
    2.6 GB after they closed; a GET /api/v1/log meanwhile took 11 s. Now every reader is sent
    the one cached bundle a chunk at a time, and is cut off when it stalls (--request-timeout)."""
    proc, port = await _max_bundle_log(tmp_path, "--request-timeout", "2")
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/tile/entries/000") as r:
                bundle = await r.read()
            bodies = decode_entry_bundle(bundle)
            assert r.status == 200 and len(bodies) == 256 and len(bundle) > 256 * 65_000
            assert all(len(b) <= MAX_BODY_BYTES for b in bodies) and r.headers["X-Request-ID"]
            async with http.head(base + "/tile/entries/000") as r:
                assert r.status == 200 and int(r.headers["Content-Length"]) == len(bundle)
                assert await r.read() == b""
            etag = r.headers["ETag"]
            async with http.get(base + "/tile/entries/000", headers={"If-None-Match": etag}) as r:
                assert r.status == 304 and r.headers["ETag"] == etag
            rss_before = peak = _rss_mb(proc.pid)
            readers = [_stalled_reader(port, "/tile/entries/000") for _ in range(60)]
            for _ in range(10):
                await asyncio.sleep(0.1)
                peak = max(peak, _rss_mb(proc.pid))
            t0 = time.monotonic()
            async with http.get(base + "/api/v1/log") as r:
                assert r.status == 200
            log_latency = time.monotonic() - t0
            # The server cuts each stalled reader off after the request timeout, having sent
            # it no more than the socket buffers took.
            await asyncio.sleep(3)
            cut = await asyncio.gather(*(loop.run_in_executor(None, _drain, s, 20) for s in readers))
            assert all(head == b"HTTP/1.1 200" and sent < len(bundle) for head, sent in cut), cut[:3]
            await asyncio.sleep(0.5)
            rss_after = _rss_mb(proc.pid)
            async with http.get(base + "/tile/entries/000") as r:
                assert r.status == 200 and await r.read() == bundle
        print(f"60 stalled readers of a {len(bundle) / 1e6:.1f} MB bundle: RSS {rss_before:.0f} MB, "
              f"peak {peak:.0f} MB, after {rss_after:.0f} MB; GET /api/v1/log {log_latency * 1000:.0f} ms")
        assert peak - rss_before < 50 and rss_after - rss_before < 30
        assert log_latency < 1.0
    finally:
        stop(proc)


async def test_bundle_memory_and_connections_in_use_are_capped(tmp_path: Path) -> None:
    """With --bundle-memory 64 (MiB), three distinct 16.6 MB bundles held by stalled readers
    leave no room to build a fourth: 503 with Retry-After, not more memory. With
    --max-connections 8, the 9th request while 8 are being answered gets 503 too. Once the
    stalled readers are cut off, both are served again."""
    proc, port = await _max_bundle_log(tmp_path, "--request-timeout", "3", "--bundle-memory", "64",
                                          "--max-connections", "8")
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    try:
        readers = [_stalled_reader(port, path) for path in ["/tile/entries/000"] * 5
                   + ["/tile/entries/000.p/255", "/tile/entries/000.p/254"]]
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/tile/entries/000.p/253") as r:
                assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
                assert "MiB for entry bundles" in (await r.json())["message"]
            readers.append(_stalled_reader(port, "/tile/entries/000"))
            await asyncio.sleep(0.3)
            async with http.get(base + "/api/v1/log") as r:
                assert r.status == 503 and "connections" in (await r.json())["message"]
            cut = await asyncio.gather(*(loop.run_in_executor(None, _drain, s, 20) for s in readers))
            assert [head for head, _ in cut] == [b"HTTP/1.1 200"] * 8
            async with http.get(base + "/tile/entries/000.p/253") as r:
                assert r.status == 200 and len(decode_entry_bundle(await r.read())) == 253
            async with http.get(base + "/api/v1/log") as r:
                assert r.status == 200
    finally:
        stop(proc)

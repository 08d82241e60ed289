from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tlog.server.api import BUCKETS_KEY, ApiLimits, make_app
from tlog.server.log import Log, LogConfig
from tlog.server.ratelimit import TokenBuckets, client_key

from .support import OpenLog, Signer


def test_bucket_allows_burst_then_refills_at_rate() -> None:
    now = [0.0]
    tb = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [tb.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert tb.take("a") == 0.5
    assert tb.take("b") == 0.0  # clients are independent
    now[0] = 0.5
    assert tb.take("a") == 0.0
    assert tb.take("a") == 0.5
    now[0] = 100.0
    assert [tb.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than burst
    assert tb.take("a") > 0


def test_bucket_memory_is_bounded() -> None:
    tb = TokenBuckets(rate=1.0, burst=1, max_clients=100)
    for i in range(10_000):
        tb.take(f"10.0.{i // 256}.{i % 256}")
    assert len(tb._buckets) == 100


async def test_submissions_beyond_rate_get_429_with_retry_after(open_log: OpenLog) -> None:
    from tlog.server.api import ApiLimits
    lg, client = await open_log(limits=ApiLimits(rate=1.0, burst=3))
    signer = Signer()
    rs = [await client.post("/api/v1/log/entries", json=signer.proposed()) for _ in range(5)]
    assert [r.status for r in rs] == [201, 201, 201, 429, 429]
    assert int(rs[3].headers["Retry-After"]) >= 1
    assert (await rs[3].json())["code"] == 429
    assert lg.head.state.size == 3
    # Reads are not rate limited.
    assert (await client.get("/api/v1/log")).status == 200
    await asyncio.sleep(1.05)
    assert (await client.post("/api/v1/log/entries", json=signer.proposed())).status == 201


def test_ipv6_clients_are_bucketed_by_their_64_and_ipv4_mapped_as_ipv4() -> None:
    """Issue 11, item 12: one IPv6 subscriber holds a whole /64 (2^64 addresses); a bucket
    per address would let it submit without limit."""
    tb = TokenBuckets(rate=1.0, burst=2, clock=lambda: 0.0)
    # Two addresses of one /64 share a bucket...
    assert [tb.take("2001:db8:1:2::1"), tb.take("2001:db8:1:2:ffff:ffff:ffff:fffe")] == [0.0, 0.0]
    assert tb.take("2001:db8:1:2:abcd::9") > 0
    assert tb.take("fe80::1%eth0") == 0.0 and client_key("fe80::2%lo") == "fe80::/64"
    # ...the next /64 has its own.
    assert tb.take("2001:db8:1:3::1") == 0.0
    # IPv4 clients seen through a dual-stack socket are IPv4 clients, each its own bucket:
    # not all of ::ffff:0:0/64 together.
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert [tb.take("::ffff:192.0.2.7"), tb.take("192.0.2.7")] == [0.0, 0.0]
    assert tb.take("::ffff:192.0.2.7") > 0
    assert tb.take("::ffff:192.0.2.8") == 0.0
    assert client_key("unknown") == "unknown"


@contextlib.asynccontextmanager
async def _served(lg: Log, sock: socket.socket, limits: ApiLimits) -> AsyncIterator[web.Application]:
    """`lg` served on an already bound socket (so the test chooses its address family)."""
    app = make_app(lg, limits)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield app
    finally:
        await runner.cleanup()
        await lg.close()


async def _submit(url: str, signer: Signer, *, source: str | None = None) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
    async with aiohttp.ClientSession(connector=connector) as s, \
            s.post(f"{url}/api/v1/log/entries", json=signer.proposed()) as r:
        return r.status


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
async def test_ipv6_client_over_loopback_is_limited_per_64(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.bind(("::1", 0))
    except OSError as e:
        sock.close()
        pytest.skip(f"no IPv6 loopback: {e}")
    port = sock.getsockname()[1]
    lg = await Log.open(LogConfig(data_dir=tmp_path))
    async with _served(lg, sock, ApiLimits(rate=0.01, burst=2)) as app:
        signer = Signer()
        assert [await _submit(f"http://[::1]:{port}", signer) for _ in range(3)] == [201, 201, 429]
        buckets = app[BUCKETS_KEY]
        assert buckets is not None and list(buckets._buckets) == ["::/64"]


async def test_ipv4_clients_of_a_dual_stack_socket_each_get_their_bucket(tmp_path: Path) -> None:
    """A socket bound to ::ffff:127.0.0.1 sees IPv4 peers as ::ffff:127.0.0.x: bucketed by
    /64, every IPv4 client on earth would share one bucket."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind(("::ffff:127.0.0.1", 0))
    except OSError as e:
        sock.close()
        pytest.skip(f"no dual-stack sockets: {e}")
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    lg = await Log.open(LogConfig(data_dir=tmp_path))
    async with _served(lg, sock, ApiLimits(rate=0.01, burst=2)) as app:
        signer = Signer()
        assert [await _submit(url, signer, source="127.0.0.1") for _ in range(3)] == [201, 201, 429]
        assert await _submit(url, signer, source="127.0.0.2") == 201
        buckets = app[BUCKETS_KEY]
        assert buckets is not None and sorted(buckets._buckets) == ["127.0.0.1", "127.0.0.2"]

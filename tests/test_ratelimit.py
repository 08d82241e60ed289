from __future__ import annotations

import asyncio

from tlog.server.ratelimit import TokenBuckets

from .support import Signer


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


async def test_submissions_beyond_rate_get_429_with_retry_after(open_log) -> None:
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

"""Load generation for `tlog bench`: N distinct, validly signed entries, C concurrent clients.

The entries are made (and signed) before the clock starts, so the figures measure the log,
not the client's signing. Latency is request → 201 with inclusion proof: the entry is
durable (its batch was fsync'd) by the time it is counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import statistics
import sys
import time
import json
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def signed_entries(n: int, keys: int = 8) -> list[bytes]:
    """`n` distinct hashedrekord requests (JSON bytes), signed by `keys` ECDSA P-256 keys."""
    signers = [ec.generate_private_key(ec.SECP256R1()) for _ in range(keys)]
    pems = [base64.b64encode(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        for k in signers]
    out = []
    for i in range(n):
        digest = hashlib.sha256(os.urandom(32)).digest()
        k = i % keys
        sig = signers[k].sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        out.append((
            '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":'
            f'"sha256","value":"{digest.hex()}"}}}},"signature":{{"content":"'
            f'{base64.b64encode(sig).decode()}","publicKey":{{"content":"{pems[k]}"}}}}}}}}').encode())
    return out


@dataclass(frozen=True)
class LoadResult:
    requests: int
    ok: int
    errors: dict[str, int]
    seconds: float
    per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(latencies: list[float], errors: dict[str, int], seconds: float, total: int) -> LoadResult:
    lat = sorted(latencies) or [0.0]
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    return LoadResult(total, len(latencies), errors, seconds, len(latencies) / seconds if seconds else 0.0,
                      q[49] * 1000, q[89] * 1000, q[98] * 1000, lat[-1] * 1000)


Request = tuple[str, str, bytes | None]  # method, URL, body


async def drive(requests: list[Request], concurrency: int, ok_status: int) -> LoadResult:
    """Send `requests` with `concurrency` workers over keep-alive connections; time each."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_i = 0
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_i
        while next_i < len(requests):
            method, url, data = requests[next_i]
            next_i += 1
            t0 = time.perf_counter()
            try:
                async with session.request(method, url, data=data, headers=headers) as r:
                    await r.read()
                    status = r.status
            except aiohttp.ClientError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                continue
            if status == ok_status:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(session) for _ in range(concurrency)])
        seconds = time.perf_counter() - t0
    return _summary(latencies, errors, seconds, len(requests))


def calibration_app() -> web.Application:
    """The yardstick: aiohttp answering the same requests with no log behind them (it
    parses the JSON it is sent and returns a LogEntry-sized body). Our throughput as a
    ratio of this one survives noisy, shared machines better than absolute figures."""
    answer = json.dumps({"x" * 64: {"body": "A" * 900, "verification": {"hashes": ["0" * 64] * 20}}}).encode()

    async def post(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(body=answer, status=201, content_type="application/json")

    async def get(request: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1/log/entries", post)
    app.router.add_get("/{tail:.*}", get)
    return app


if __name__ == "__main__":  # python -m tlog.bench PORT: serve the calibration app
    web.run_app(calibration_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)

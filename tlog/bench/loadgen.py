"""Load generation for `tlog bench`: N distinct, validly signed entries, C concurrent clients.

The entries are made (and signed) before the clock starts, so the figures measure the log,
not the client's signing. Latency is request → 201 with inclusion proof: the entry is
durable (its batch was fsync'd) by the time it is counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

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


def signed_envelopes(n: int, kib: int, keys: int = 8) -> list[bytes]:
    """`n` distinct dsse requests (JSON bytes) whose envelopes are about `kib` KiB: an
    in-toto statement padded in its predicate (issue 13: attestations are far larger
    than signatures), signed over the DSSE PAE by `keys` ECDSA P-256 keys."""
    from tlog.core.attestation import envelope_json, statement
    from tlog.core.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae
    from tlog.core.entries import dsse

    signers = [ec.generate_private_key(ec.SECP256R1()) for _ in range(keys)]
    pems = [k.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
            for k in signers]
    pad = "x" * max(0, kib * 1024 * 3 // 4 - 400)  # base64 makes the payload 4/3 larger
    out = []
    for i in range(n):
        payload = statement([("artifact", os.urandom(32))], "https://slsa.dev/provenance/v1",
                            {"pad": pad})
        sig = signers[i % keys].sign(pae(IN_TOTO_PAYLOAD_TYPE, payload), ec.ECDSA(hashes.SHA256()))
        env = Envelope(payload, IN_TOTO_PAYLOAD_TYPE, (sig,))
        out.append(json.dumps(dsse.proposed_entry(envelope_json(env), [pems[i % keys]]),
                              separators=(",", ":")).encode())
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


def _raw_request(method: str, url: str, body: bytes | None) -> tuple[str, int, bytes]:
    """(host, port, the HTTP/1.1 request bytes), built once before the clock starts."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return parts.hostname or "127.0.0.1", parts.port or 80, head.encode() + b"\r\n" + (body or b"")


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off a keep-alive connection; its status. (The log always sends
    Content-Length: a chunked answer is not expected and ends the connection.)"""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def drive(requests: list[Request], concurrency: int, ok_status: int) -> LoadResult:
    """Send `requests` with `concurrency` keep-alive connections; time each request.

    A lean HTTP/1.1 client on raw asyncio streams with the request bytes prepared in
    advance: the load generator shares the machine with the server, and aiohttp's client
    costs about as much CPU per request as the server does, which the figures would then
    measure instead.
    """
    raw = [_raw_request(m, u, b) for m, u, b in requests]
    latencies: list[float] = []
    errors: dict[str, int] = {}
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while next_i < len(raw):
            host, port, data = raw[next_i]
            next_i += 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                assert reader is not None
                writer.write(data)
                status = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            if status == ok_status:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
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


if __name__ == "__main__":  # python -m tlog.bench.loadgen PORT: serve the calibration app
    web.run_app(calibration_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)

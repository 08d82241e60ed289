"""Server limits on a real `tlog serve`: stalled clients, oversized headers, rate limits."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp

from .support import Signer
from .test_serve import free_port, start, stop, wait_ready


def _recv(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    sock.settimeout(timeout)
    t0 = time.monotonic()
    try:
        return sock.recv(400), time.monotonic() - t0
    except TimeoutError:
        return b"<no answer>", time.monotonic() - t0


async def test_stalled_and_oversized_requests_are_cut_off(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path / "d", port, "--request-timeout", "1", "--max-header-size", "1024",
                 "--rate-limit", "2", "--rate-burst", "2")
    await wait_ready(port, proc)
    try:
        loop = asyncio.get_running_loop()
        # Half a request line and headers, then silence: the connection is closed.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\n")
        data, took = await loop.run_in_executor(None, _recv, s, 10)
        assert data == b"" and took < 5
        # Headers, then half a body: 408 as JSON.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"kind\":")
        data, took = await loop.run_in_executor(None, _recv, s, 10)
        assert data.startswith(b"HTTP/1.1 408") and b'"code":408' in data and took < 5
        # A header past the limit: 400, and the server keeps serving.
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
        data, _ = await loop.run_in_executor(None, _recv, s, 10)
        assert data.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), data
        signer = Signer()
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(4):
                url = f"http://127.0.0.1:{port}/api/v1/log/entries"
                async with http.post(url, json=signer.proposed()) as r:
                    statuses.append(r.status)
            assert statuses[:2] == [201, 201] and 429 in statuses[2:]
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 200
    finally:
        stop(proc)

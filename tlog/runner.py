"""Serving an aiohttp application as a process until SIGTERM/SIGINT, then draining.

Shared by the log (`tlog serve`) and the witness (`tlog witness serve`), so neither imports
the other's service to run. Listening is split from serving: a service binds its port with
`listen` before it opens or creates anything, so a port that is taken refuses the start
while the data directory is still untouched, and only then opens its state and `run_app`s.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from tlog.errors import StartupError

BACKLOG = 128  # aiohttp's default: connections the kernel queues while the service opens


@contextmanager
def listen(host: str, port: int) -> Iterator[list[socket.socket]]:
    """Sockets bound and listening on every address of host:port (as asyncio's
    create_server binds them: SO_REUSEADDR, IPv6 sockets IPv6-only), closed on exit.
    Clients that connect before the service runs wait in the backlog. A busy or unknown
    address is a one-line StartupError."""
    sockets: list[socket.socket] = []
    try:
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(BACKLOG)
                sock.setblocking(False)
        except OSError as e:  # socket.gaierror included
            raise StartupError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                               hint="free the port, or choose an address of this machine "
                                    "and a free port (--host, --port); nothing was created") from e
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


async def run_app(app: web.Application, sockets: Sequence[socket.socket], *,
                  started: Callable[[], None], stopping: Callable[[], Awaitable[None]] | None = None,
                  **runner_args: Any) -> None:
    """Serve `app` on `sockets` (from `listen`) until SIGTERM/SIGINT. On the signal the
    listeners close first, then `stopping` runs (in-flight requests may still finish), then
    the app is torn down."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_args)
    await runner.setup()
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            for sock in sockets:
                await web.SockSite(runner, sock, backlog=BACKLOG).start()
            started()
            await stop.wait()
        finally:
            for site in runner.sites:  # those that started
                await site.stop()
            if stopping is not None:
                await stopping()
    finally:
        await runner.cleanup()

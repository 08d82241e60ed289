"""Serving an aiohttp application as a process until SIGTERM/SIGINT, then draining.

Shared by the log (`tlog serve`) and the witness (`tlog witness serve`), so neither imports
the other's service to run.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


async def run_app(app: web.Application, host: str, port: int, *, started: Callable[[], None],
                  stopping: Callable[[], Awaitable[None]] | None = None, **runner_args: Any) -> None:
    """Serve `app` on host:port until SIGTERM/SIGINT. On the signal the listener closes
    first, then `stopping` runs (in-flight requests may still finish), then the app is
    torn down."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **runner_args)
    await runner.setup()
    try:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        try:
            started()
            await stop.wait()
        finally:
            await site.stop()
            if stopping is not None:
                await stopping()
    finally:
        await runner.cleanup()

"""Running the log as a process: open the data directory, serve HTTP, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from tlog.api import ApiLimits, make_app
from tlog.log import Log, LogConfig

log = logging.getLogger("tlog")


async def serve(config: LogConfig, host: str, port: int, *, limits: ApiLimits | None = None,
                max_header_size: int = 8190, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish the queued batch, exit."""
    lg = await Log.open(config)
    if lg.created_key:
        log.info("created a new %s log key in %s", config.key_type, config.data_dir / "log.key")
    app = make_app(lg, limits)
    # Header limits are enforced by aiohttp's parser (400 beyond); an idle or stalled
    # connection is closed after the request timeout (keep-alive timer).
    timeout = (limits or ApiLimits()).body_timeout
    runner = web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=max_header_size,
                           max_field_size=max_header_size, keepalive_timeout=timeout)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        log.info("serving %s on http://%s:%d", lg.describe(), host, port)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: draining %d queued submissions", lg.sequencer.pending)
    finally:
        # Stop listening first, let in-flight requests finish (their batch commits), then
        # close the sequencer (drains what is still queued) and the database.
        await site.stop()
        if lg.witnessing is not None:
            await lg.witnessing.close()
        await lg.sequencer.close()
        await runner.cleanup()
        await lg.storage.close()
        log.info("stopped at tree size %d", lg.head.state.size)

"""Running the log as a process: bind the port, open the data directory, serve HTTP, drain
on SIGTERM. In that order: a start that cannot serve (the port is taken) creates nothing."""

from __future__ import annotations

import asyncio
import logging

from tlog.runner import listen, run_app
from tlog.server.api import ApiLimits, make_app
from tlog.server.log import Log, LogConfig

log = logging.getLogger("tlog")


async def serve(config: LogConfig, host: str, port: int, *, limits: ApiLimits | None = None,
                max_header_size: int = 8190, ready: asyncio.Event | None = None,
                workers: int = 1) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting, finish the queued batch, exit.
    With `workers` > 1, that many processes serve HTTP in front of this one's sequencer
    (tlog.server.workers)."""
    limits = limits or ApiLimits()
    # Header limits are enforced by aiohttp's parser (400 beyond); an idle or stalled
    # connection is closed after the request timeout (keep-alive timer).
    timeout = limits.body_timeout
    runner_args = {"max_line_size": max_header_size, "max_field_size": max_header_size,
                   "keepalive_timeout": timeout, "lingering_time": min(timeout, 2.0)}
    with listen(host, port) as sockets:  # first: a taken port creates nothing
        if workers > 1:
            from tlog.server.workers import serve_workers

            await serve_workers(config, sockets, workers, {"limits": limits, **runner_args}, ready=ready)
            return
        lg = await Log.open(config)
        if lg.created_key:
            log.info("created a new %s log key in %s", config.key_type, config.key_path)

        def started() -> None:
            bound = f"http://{host}:{port}"  # said once: it is most often the public URL too
            log.info("serving %s%s", lg.describe(),
                     "" if bound == lg.public_url.rstrip("/") else f" (listening on {bound})")
            if ready is not None:
                ready.set()

        async def stopping() -> None:
            # In-flight submissions finish (their batch commits), then what is still queued.
            log.info("stopping: draining %d queued submissions", lg.sequencer.pending)
            if lg.witnessing is not None:
                await lg.witnessing.close()
            await lg.sequencer.close()

        try:
            await run_app(make_app(lg, limits), sockets, started=started, stopping=stopping,
                          **runner_args)
        finally:
            # Also when serving failed to start: `stopping` did not run, and the witness loops,
            # the sequencer and the storage are still open. Closing twice is fine.
            await lg.close()
            log.info("stopped at tree size %d", lg.head.state.size)

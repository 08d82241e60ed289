from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from tlog.server.api import make_app
from tlog.server.log import Log, LogConfig

from . import pg_support
from .support import ApiClient, OpenLog, Signer


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres() -> Iterator[None]:
    """Stop the session's PostgreSQL server (tests/pg_support.py) by PID, if a test started it."""
    yield
    pg_support.stop()


# Loggers that commands run in-process (`tlog -v …`, `tlog serve`) set to chattier levels.
_LOGGERS = ("", "tlog", "tlog.access", "aiohttp.access", "aiohttp.server")


@pytest.fixture(autouse=True)
def _logging_levels() -> Iterator[None]:
    """Put the levels of the loggers a test may change back as they were: otherwise one
    in-process `tlog -v` leaves the root at DEBUG, and every later test's access lines are
    kept in memory by pytest's log capture (tests that measure memory then see it grow)."""
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    handlers = list(logging.getLogger().handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
async def open_log(tmp_path: Path, aiohttp_client: AiohttpClient) -> AsyncIterator[OpenLog]:
    """Open a real log on a real SQLite file (or the `storage_factory` given) and serve it
    on a loopback port."""
    opened: list[Log] = []

    async def factory(data_dir: Path | None = None, **kw: Any) -> tuple[Log, ApiClient]:
        max_body = kw.pop("max_body", None)
        limits = kw.pop("limits", None)
        storage_factory = kw.pop("storage_factory", None)
        config = LogConfig(data_dir=data_dir or tmp_path / "data", **kw)
        lg = await Log.open(config, storage_factory=storage_factory)
        opened.append(lg)
        app = make_app(lg, limits, max_body=max_body)
        return lg, await aiohttp_client(app)

    yield factory
    for lg in opened:
        if not lg.sequencer.closed:
            await lg.close()

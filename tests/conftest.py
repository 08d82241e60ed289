from __future__ import annotations

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

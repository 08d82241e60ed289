from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Awaitable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from tlog.server.api import make_app
from tlog.server.log import Log, LogConfig

from .support import Signer

LogClient = tuple[Log, TestClient]


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
async def open_log(tmp_path: Path, aiohttp_client) -> AsyncIterator[Callable[..., Awaitable[LogClient]]]:
    """Open a real log on a real SQLite file and serve it on a loopback port."""
    opened: list[Log] = []

    async def factory(data_dir: Path | None = None, **kw) -> LogClient:
        max_body = kw.pop("max_body", None)
        limits = kw.pop("limits", None)
        config = LogConfig(data_dir=data_dir or tmp_path / "data", **kw)
        lg = await Log.open(config)
        opened.append(lg)
        app = make_app(lg, limits, max_body=max_body)
        return lg, await aiohttp_client(app)

    yield factory
    for lg in opened:
        if not lg.sequencer._closing:
            await lg.close()

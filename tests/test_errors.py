"""Errors (tlog.errors): each HTTP-facing class carries its status, the API answers all of
them with one handler, start-up and storage failures are never a client's 4xx, and every
error a person sees says what to do."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tlog.audit.monitor import ForkAlert
from tlog.client.http import LogClient, LogUnreachable
from tlog.core.cosignature import CosignatureSigner
from tlog.core.keys import LogKey
from tlog.core.rekor import API_PREFIX
from tlog.errors import (
    Conflict,
    Forbidden,
    ForkError,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    StartupError,
    StorageError,
    TlogError,
    TooManyItems,
    Unavailable,
    UnsupportedMediaType,
    VerificationError,
)
from tlog.server.api import make_app
from tlog.server.guard import ForkRefused
from tlog.server.log import Log, LogConfig
from tlog.server.run import serve
from tlog.server.sequencer import Duplicate
from tlog.server.witnessing import WitnessSpec

from .cli_support import fails, tlog
from .support import Signer
from .test_serve import free_port

UUID = bytes(range(32))


@contextmanager
def socket_bound() -> Iterator[int]:
    """A loopback port that something is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])

# name → (the error, its status, its headers); status 500 answers carry no message of theirs.
CASES: dict[str, tuple[Callable[[], Exception], int, dict[str, str]]] = {
    "invalid": (lambda: InvalidInput("bad field"), 400, {}),
    "forbidden": (lambda: Forbidden("frozen log"), 403, {}),
    "not found": (lambda: NotFound("no such entry"), 404, {}),
    "timeout": (lambda: RequestTimeout("too slow"), 408, {}),
    "conflict": (lambda: Conflict("held elsewhere", location="/there"), 409, {"Location": "/there"}),
    "duplicate": (lambda: Duplicate(3, UUID), 409, {"Location": f"{API_PREFIX}/log/entries/{UUID.hex()}"}),
    "too large": (lambda: PayloadTooLarge("too big"), 413, {}),
    "media type": (lambda: UnsupportedMediaType("not JSON"), 415, {}),
    "too many": (lambda: TooManyItems("11 UUIDs"), 422, {}),
    "rate limited": (lambda: RateLimited(2.2), 429, {"Retry-After": "3"}),
    "unavailable": (lambda: Unavailable("shutting down"), 503, {"Retry-After": "5"}),
    "overloaded": (lambda: Overloaded("9 waiting"), 503, {"Retry-After": "1"}),
    "storage": (lambda: StorageError("disk /secret/path failed"), 500, {}),
    "startup": (lambda: StartupError("cannot start /secret/path"), 500, {}),
    "fork refused": (lambda: ForkRefused("refusing /secret/path"), 500, {}),
    "verification": (lambda: VerificationError("bad /secret/path"), 500, {}),
    "plain": (lambda: TlogError("internal /secret/path"), 500, {}),
    "not ours": (lambda: ValueError("bug at /secret/path"), 500, {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_error_class_carries_its_status_and_headers(name: str) -> None:
    make, status, headers = CASES[name]
    e = make()
    if isinstance(e, TlogError):
        assert e.status == status
        assert e.headers() == headers


def test_only_the_client_request_errors_are_invalid_input() -> None:
    # RateLimited: the same request succeeds later. Storage and start-up failures are the
    # log's, never a 400 (a corrupt database is not the client's fault).
    others: tuple[type[TlogError], ...] = (
        RateLimited, Forbidden, Conflict, Unavailable, StorageError, StartupError, ForkError)
    assert not [cls for cls in others if issubclass(cls, InvalidInput)]
    requests: tuple[type[TlogError], ...] = (
        NotFound, RequestTimeout, PayloadTooLarge, UnsupportedMediaType, TooManyItems)
    assert all(issubclass(cls, InvalidInput) for cls in requests)
    assert issubclass(Overloaded, Unavailable) and issubclass(Duplicate, Conflict)
    assert str(Overloaded("9 waiting")) == "the log is busy: 9 waiting; retry shortly"
    assert RateLimited(0.01).retry_after == 1  # never "retry in 0 s"


async def test_the_api_answers_every_error_with_its_status_and_headers(
        tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    lg = await Log.open(LogConfig(data_dir=tmp_path / "data"))
    try:
        app = make_app(lg)

        async def fail(request: web.Request) -> web.Response:
            raise CASES[request.match_info["name"]][0]()

        app.router.add_get("/raise/{name}", fail)
        client = await aiohttp_client(app)
        for name, (_, status, headers) in CASES.items():
            r = await client.get(f"/raise/{name}")
            body = await r.json()
            assert r.status == status and body["code"] == status and set(body) == {"code", "message"}, name
            assert {k: r.headers[k] for k in headers} == headers, name
            if status == 500:
                assert "/secret/path" not in body["message"], name
            else:
                assert body["message"] == str(CASES[name][0]()), name
    finally:
        await lg.close()


def _log_with_entries(data: Path, n: int) -> None:
    async def fill() -> None:
        lg = await Log.open(LogConfig(data_dir=data, batch_ms=0))
        try:
            signer = Signer()
            for _ in range(n):
                await lg.submit(signer.proposed())
        finally:
            await lg.close()
    asyncio.run(fill())


def test_a_corrupt_stored_tree_is_a_startup_error_the_cli_explains(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _log_with_entries(data, 5)
    conn = sqlite3.connect(data / "log.db", isolation_level=None)
    try:  # a stray chunk that is not whole hashes (tiles are append-only: an INSERT suffices)
        conn.execute("INSERT INTO tiles (level, idx, start, hashes) VALUES (0, 0, 5, ?)", (b"\x01" * 5,))
    finally:
        conn.close()
    with pytest.raises(StartupError) as e:
        asyncio.run(Log.open(LogConfig(data_dir=data)))
    assert not isinstance(e.value, InvalidInput)
    assert "the stored tree is corrupt" in str(e.value) and f"tlog fsck {data}" in e.value.diagnostics()
    fails(tlog("serve", "--data-dir", data, "--port", str(free_port()), "--public-url", "http://127.0.0.1:3000"),
          "the stored tree is corrupt", "the log did not start and changed nothing", f"tlog fsck {data}")


def test_diagnostics_say_what_to_do() -> None:
    assert InvalidInput("bad field").diagnostics() == "bad field"
    for e, advice in [
        (StartupError("the key is readable by others"), "changed nothing"),
        (StorageError("cannot write to the database: disk full"), "free space"),
        (ForkRefused("refusing to sign size 9"), "tlog fsck"),
        (ForkAlert({"origin": "log.example", "detail": "two roots for size 3"}), "Do not remove"),
        (LogUnreachable("cannot reach the log at http://log.example"), "tlog trust list"),
    ]:
        line = e.diagnostics()
        assert line.startswith(str(e)) and advice in line and "\n" not in line, line


def test_cli_prints_the_diagnostics_of_an_unreachable_log(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    trust = tmp_path / "trust.json"
    (tmp_path / "log.pub").write_bytes(LogKey.generate("ed25519").public_key.pem())
    tlog("trust", "add", dead, "--log-key", tmp_path / "log.pub", "--name", "dead.example", "--trust", trust)
    fails(tlog("info", "--trust", trust), f"cannot reach the log at {dead}", "tlog trust list")


async def test_client_raises_unreachable_for_a_dead_log() -> None:
    async with LogClient(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(LogUnreachable):
            await client.checkpoint()


class _BrokenReady(asyncio.Event):
    """A `ready` that fails when told: serving fails right after the log opened."""

    def set(self) -> None:
        raise RuntimeError("start-up failed after the log opened")


async def test_serve_closes_everything_when_start_up_fails(tmp_path: Path) -> None:
    """A taken port refuses the start before anything is created; a start that fails later
    still closes the witness loops, the sequencer and the storage (no task left behind)."""
    verifier = CosignatureSigner.generate("w.example").verifier()
    config = LogConfig(data_dir=tmp_path / "data", public_url="http://127.0.0.1:3000",
                       witnesses=(WitnessSpec(f"http://127.0.0.1:{free_port()}", verifier),))
    with socket_bound() as port, pytest.raises((StartupError, OSError)):
        await serve(config, "127.0.0.1", port)
    assert not config.data_dir.exists()
    with pytest.raises(RuntimeError, match="after the log opened"):
        await serve(config, "127.0.0.1", free_port(), ready=_BrokenReady())
    left = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [n for n in left if n.startswith(("witness-", "tlog-"))], left
    lg = await Log.open(config)  # and the storage was closed: the log opens again
    await lg.close()

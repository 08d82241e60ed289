"""The tests' PostgreSQL (issue 15): one real server per test session, started on first use
(tlog.bench.pgserver: the machine's PostgreSQL binaries, as the postgres user, on a loopback
port) and stopped by PID at the session's end (conftest's `_stop_postgres`); a fresh
database for each test that asks for one."""

from __future__ import annotations

import itertools

from tlog.bench.pgserver import TempPostgres, create_database
from tlog.server.storage.postgres import PostgresDriver

_server: TempPostgres | None = None
_numbers = itertools.count()


def server() -> TempPostgres:
    """The session's server, started now if it is not yet."""
    global _server
    if _server is None:
        # fsync off: what the tests kill is tlog, never the machine, and an fsync'd
        # shutdown checkpoint of every test's database costs seconds.
        _server = TempPostgres(fsync=False).start()
    return _server


def stop() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def fresh_database() -> str:
    """A new, empty database on the session's server: its DSN."""
    return create_database(server(), f"t{next(_numbers)}")


class FreshDatabase(PostgresDriver):
    """A `StorageFactory` on a database of its own, created when the driver is made: a
    contract test opens, closes and reopens the same log through it."""

    def __init__(self) -> None:
        super().__init__(fresh_database())

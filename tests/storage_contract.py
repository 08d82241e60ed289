"""The storage drivers every contract test in tests/test_storage.py runs against.

A new driver (PostgreSQL, say) adds one line to `DRIVERS`: a function that, given a test's
temporary directory, returns its `StorageFactory`. Each test then opens, closes and reopens
its storage through `Driver.open`, the way `Log.open` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tlog.core.merkle import leaf_hash
from tlog.core.tilestate import TreeState
from tlog.server.storage.base import NewEntry, Storage, StorageFactory, StoredCheckpoint
from tlog.server.storage.memory import MemoryDriver
from tlog.server.storage.sqlite import SqliteStorage

from .pg_support import FreshDatabase

DRIVERS: dict[str, Callable[[Path], StorageFactory]] = {
    "sqlite": lambda tmp: SqliteStorage.open_in,  # a real file in the test's directory
    "memory": lambda tmp: MemoryDriver(),
    "postgres": lambda tmp: FreshDatabase(),  # a database of its own on the session's server
}

TIME = 1700000000


@dataclass
class Driver:
    name: str
    factory: StorageFactory
    data_dir: Path

    async def open(self, *, read_only: bool = False) -> Storage:
        return await self.factory(self.data_dir, read_only=read_only)


@pytest.fixture(name="driver", params=sorted(DRIVERS))
def driver_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    """Each storage driver in turn, on a fresh log in the test's temporary directory."""
    name: str = request.param
    return Driver(name, DRIVERS[name](tmp_path), tmp_path / "data")


def body(i: int) -> bytes:
    return f"body-{i}".encode()


async def append(st: Storage, state: TreeState, bodies: Sequence[bytes],
                 keys: Callable[[int], tuple[int, ...]] = lambda i: (i,),
                 events: Callable[[int], bytes | None] = lambda i: None) -> TreeState:
    """Append one batch as the sequencer does (entries, their tiles, a checkpoint); entry
    i has search keys `keys(i)` and event key `events(i)`."""
    leaves = [leaf_hash(b) for b in bodies]
    new, writes = state.extended(leaves)
    entries = [NewEntry(state.size + i, b, h, keys(state.size + i), events(state.size + i))
               for i, (b, h) in enumerate(zip(bodies, leaves, strict=True))]
    await st.append_batch(entries, TIME, writes, StoredCheckpoint(new.size, new.root(), b"note", TIME))
    return new


async def fill(st: Storage, n: int, batch: int = 100) -> TreeState:
    """Entries body-0 … body-(n-1), in batches of `batch`; the search key of entry i is i."""
    state = TreeState.empty()
    for start in range(0, n, batch):
        state = await append(st, state, [body(i) for i in range(start, min(n, start + batch))])
    return state

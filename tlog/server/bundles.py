"""Entry bundles in memory: built once, sent from one bytes object to every reader, within
a byte budget (issue 11, item 2).

A full entry bundle never changes (C2SP tlog-tiles), nor does a partial one of a given
width, so a bundle many clients read is read from storage and encoded once, and every
response sends the same bytes object (no copy per request). Its memory is bounded by
design, not by how fast clients read: every bundle in memory — being built, being sent, or
kept for the next reader — counts against `max_bytes`. One being built counts twice its
largest possible size (the bodies read, and the bundle made of them); once built, its size.
Bundles no response holds are kept while there is room, least recently used dropped first;
when the bundles responses hold leave no room for a new one, that request is refused (503
with Retry-After) instead of memory growing with every reader that stops reading — 60 of
them on a 16.6 MB bundle took a log from 255 MB to 2.4 GB before.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from tlog.errors import Overloaded, Unavailable


def etag_of(data: bytes) -> str:
    """The ETag of a tile or bundle: a quoted hash of its bytes (RFC 9110 §8.8.3)."""
    return f'"{hashlib.sha256(data).hexdigest()[:32]}"'


@dataclass(frozen=True)
class Bundle:
    """An encoded entry bundle and its ETag."""

    data: bytes
    etag: str


@dataclass
class _Slot:
    ready: asyncio.Future[Bundle]
    size: int  # bytes counted against the budget
    holders: int = 0  # responses holding it


class BundleCache:
    """Bundles by (tile index, width), in at most `max_bytes` (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._slots: OrderedDict[tuple[int, int], _Slot] = OrderedDict()

    def has(self, key: tuple[int, int]) -> bool:
        """Whether bundle `key` is in memory or being built (no size estimate needed)."""
        return key in self._slots

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[int, int], largest: int,
                   build: Callable[[], Awaitable[bytes]]) -> AsyncIterator[Bundle]:
        """The bundle `key`, made by `build` unless it is in memory (concurrent first
        readers share one build), held until the block ends. `largest` bounds its size (the
        bodies' lengths and their framing, known from storage before any is read).
        Overloaded if the bundles held leave no room to build it."""
        slot = self._slots.get(key)
        building = slot is None
        if slot is None:
            slot = self._reserve(key, 2 * largest)
        else:
            self._slots.move_to_end(key)
        slot.holders += 1
        try:
            if building:
                await self._build(key, slot, build)
            # Shielded: a reader that goes away must not cancel the build others wait for.
            yield await asyncio.shield(slot.ready)
        finally:
            slot.holders -= 1

    def _reserve(self, key: tuple[int, int], size: int) -> _Slot:
        """A new slot of `size` bytes, made room for by dropping bundles no one holds."""
        for old_key in list(self._slots):
            if self.used + size <= self.max_bytes:
                break
            old = self._slots[old_key]
            if old.holders == 0 and old.ready.done():
                del self._slots[old_key]
                self.used -= old.size
        if self.used + size > self.max_bytes:
            raise Overloaded(f"the {self.max_bytes >> 20} MiB for entry bundles are taken by "
                             "responses still being sent")
        slot = _Slot(asyncio.get_running_loop().create_future(), size)
        self._slots[key] = slot
        self.used += size
        return slot

    async def _build(self, key: tuple[int, int], slot: _Slot, build: Callable[[], Awaitable[bytes]]) -> None:
        try:
            data = await build()
            bundle = Bundle(data, await asyncio.to_thread(etag_of, data))  # hashlib frees the GIL
        except BaseException as e:
            del self._slots[key]
            self.used -= slot.size
            slot.ready.set_exception(e if isinstance(e, Exception)
                                     else Unavailable("reading the entry bundle was interrupted"))
            slot.ready.exception()  # retrieved here: waiters re-raise it, no "never retrieved"
            raise
        self.used += len(data) - slot.size
        slot.size = len(data)
        slot.ready.set_result(bundle)

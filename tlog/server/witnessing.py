"""The log asks witnesses to cosign its checkpoints (C2SP tlog-witness, issue 4 §6).

One loop per witness pushes the newest checkpoint after each batch, proving consistency
from the size that witness last cosigned (on 409 the witness says which size it holds and
the push is retried from there). A slow or dead witness only slows its own loop: it never
blocks submissions or the other witnesses. `/checkpoint` then serves the recent checkpoint
carrying the most valid cosignatures (the newest among equals), with those lines appended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from tlog.core.cosignature import CosignatureVerifier, parse_cosignature_verifier_key
from tlog.errors import InvalidInput, TlogError
from tlog.witness.client import witness_checkpoint

log = logging.getLogger("tlog.witnessing")

# How many recent checkpoints keep their cosignatures (the best one is served).
_KEEP = 16


@dataclass(frozen=True)
class WitnessSpec:
    url: str
    verifier: CosignatureVerifier


def parse_witness_option(spec: str) -> WitnessSpec:
    """`URL=VKEY`: the witness's add-checkpoint prefix and its cosignature verifier key."""
    url, sep, vkey = spec.partition("=")
    if not sep or not url.startswith(("http://", "https://")):
        raise InvalidInput(f"--witness {spec!r}: expected URL=VERIFIER_KEY, e.g. "
                           "http://127.0.0.1:3100=witness.example+1a2b3c4d+BASE64")
    return WitnessSpec(url.rstrip("/"), parse_cosignature_verifier_key(vkey))


Head = tuple[int, bytes]  # (tree size, signed checkpoint note)
Prove = Callable[[int, int], Awaitable[Sequence[bytes]]]


Cosigned = Mapping[int, tuple[bytes, dict[str, bytes]]]  # size → (note, witness → lines)


def choose_checkpoint(cosigned: Cosigned, served: int, head_size: int, head_note: bytes,
                      witnesses_stale: bool) -> tuple[int, bytes, dict[str, bytes]]:
    """Which checkpoint /checkpoint serves: (size, note, cosignature lines by witness).

    Never a tree smaller than one already served (monitors rightly call that a fork).
    Among cosigned checkpoints at least that large, the one with the most cosignatures,
    the newest among equals. The fresh head, uncosigned, when none qualifies or when the
    witnesses have been silent too long (they must not freeze what the log publishes).
    """
    best: tuple[int, int] | None = None
    for size, (_, lines) in cosigned.items():
        if lines and size >= served and (best is None or (len(lines), size) > best):
            best = (len(lines), size)
    if best is None or (witnesses_stale and head_size > best[1]):
        return max(served, head_size), head_note, {}
    note, lines = cosigned[best[1]]
    return best[1], note, lines


class Witnessing:
    def __init__(self, witnesses: Sequence[WitnessSpec], current: Callable[[], Head], prove: Prove,
                 *, timeout: float = 10.0, max_lag: float = 30.0,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.witnesses = list(witnesses)
        self._current = current
        self._prove = prove
        self._timeout = timeout
        self._on_result = on_result
        self._wake = [asyncio.Event() for _ in self.witnesses]
        # size → (note, {witness name: cosignature lines}) for recent checkpoints.
        self._cosigned: OrderedDict[int, tuple[bytes, dict[str, bytes]]] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._served = 0  # the largest tree size /checkpoint has served: it never goes back
        self._last_cosigned = float("-inf")
        self.max_lag = max_lag

    def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._tasks = [asyncio.create_task(self._loop(i), name=f"witness-{w.url}")
                       for i, w in enumerate(self.witnesses)]

    def head_changed(self) -> None:
        """Called after every committed batch: wake every witness loop."""
        for ev in self._wake:
            ev.set()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def published(self, head_size: int, head_note: bytes) -> bytes:
        """The checkpoint to serve at /checkpoint (see `choose_checkpoint`)."""
        stale = time.monotonic() - self._last_cosigned > self.max_lag
        size, note, lines = choose_checkpoint(self._cosigned, self._served, head_size, head_note, stale)
        self._served = size
        return note + b"".join(lines.get(w.verifier.name, b"") for w in self.witnesses)

    async def _loop(self, i: int) -> None:
        w = self.witnesses[i]
        known = 0  # the size this witness holds, as far as we know (0: ask it)
        backoff = 0.5
        while True:
            size, note = self._current()
            if size == 0 or size == known:
                self._wake[i].clear()
                await self._wake[i].wait()
                continue
            assert self._session is not None
            try:
                lines, known = await witness_checkpoint(self._session, w.url, w.verifier, note, known,
                                                        self._prove, timeout=self._timeout)
            except (TimeoutError, TlogError, aiohttp.ClientError) as e:
                log.warning("witness %s did not cosign size %d: %s", w.url, size, e)
                if self._on_result:
                    self._on_result(w.verifier.name, "failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            entry = self._cosigned.setdefault(size, (note, {}))
            entry[1][w.verifier.name] = lines
            self._cosigned.move_to_end(size)
            while len(self._cosigned) > _KEEP:
                self._cosigned.popitem(last=False)
            self._last_cosigned = time.monotonic()
            if self._on_result:
                self._on_result(w.verifier.name, "cosigned")

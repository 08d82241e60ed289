"""The sequencer: group commit of admitted entries (DESIGN §4).

Submissions queue up; one task takes up to `batch_size` of them (lingering at most
`batch_ms` for more), dedupes them by signing event, appends them to the tree, signs one checkpoint and
writes entries + tiles + checkpoint in one fsync'd transaction. Only then are the waiting
requests answered, each with its index and the snapshot its proof is built against.
A bounded queue gives back-pressure (tessera's ErrPushback) instead of unbounded memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tlog.core import rekor
from tlog.core.keys import LogKey
from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH
from tlog.core.tilestate import TileWrite, TreeState
from tlog.core.timestamp import sign_set
from tlog.errors import Conflict, Overloaded, TlogError, Unavailable
from tlog.server.guard import CheckpointGuard, ForkRefused
from tlog.server.metrics import LogMetrics
from tlog.server.storage.base import NewEntry, Storage, StorageError, StoredCheckpoint
from tlog.server.tree import ExpandedTile, TileTree

log = logging.getLogger("tlog.sequencer")


class Duplicate(Conflict):
    """An entry for the same signing event — the same canonical body, or the same ECDSA
    signature with the other s — is already in the log (HTTP 409, with that entry's path as
    Location: Rekor's answer, which clients follow to fetch it)."""

    def __init__(self, index: int, uuid: bytes) -> None:
        super().__init__(
            f"an equivalent entry already exists in the log with UUID {uuid.hex()} at index {index}",
            location=rekor.entry_path(uuid.hex()))
        self.index = index
        self.uuid = uuid


@dataclass(frozen=True)
class Admitted:
    """A checked submission: its canonical body and what indexes it."""

    body: bytes
    leaf_hash: bytes
    search_keys: tuple[int, ...]
    answer: bool = True  # False: the submitter needs no SET or proof (bulk fill)
    # The signing event's key where it is not leaf_hash (storage.base.NewEntry.event_key).
    event_key: bytes | None = None

    @property
    def event(self) -> bytes:
        """What the sequencer dedupes by: one signing event, one entry."""
        return self.event_key or self.leaf_hash


@dataclass(frozen=True)
class Published:
    """A durable tree head: the snapshot, its root and its signed checkpoint."""

    state: TreeState
    root: bytes
    note: bytes
    # Level-0 tiles the last batch touched, as they are at this size: proofs for the
    # batch's own entries need no storage read.
    fresh_tiles: dict[int, bytes | ExpandedTile]
    # Roots of the tree's right-edge ranges at this size, shared by every proof against it.
    memo: dict[tuple[int, int], bytes] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Sequenced:
    """The answer to one submission."""

    index: int
    integrated_time: int
    head: Published
    set_sig: bytes  # the signed entry timestamp
    proof: list[bytes]  # inclusion proof against head


@dataclass
class _Pending:
    entry: Admitted
    future: asyncio.Future[Sequenced]


class _Events:
    """The `key_of` of the dedupe lookup (Storage.find_leaves): a stored body's signing-
    event key. The bodies a lookup meets are mostly a submitted body itself (its event is
    known) or the low-s twin whose leaf hash is the event key wanted; only another body
    (the high-s twin, or an 8-byte prefix collision) is parsed, with `derive`. Called in
    index order, it also keeps the leaf hash of the first stored entry of each event: the
    UUID a 409 points at."""

    def __init__(self, batch: Iterable[Admitted], derive: Callable[[bytes], bytes]) -> None:
        self._known = {a.leaf_hash: a.event for a in batch}
        self.wanted = list(dict.fromkeys(self._known.values()))
        self._wanted = set(self.wanted)
        self._derive = derive
        self.stored_leaf: dict[bytes, bytes] = {}  # event key → UUID of its stored entry

    def __call__(self, body: bytes) -> bytes:
        h = leaf_hash(body)
        event = self._known.get(h) or (h if h in self._wanted else self._derive(body))
        self.stored_leaf.setdefault(event, h)
        return event


class Sequencer:
    def __init__(self, storage: Storage, key: LogKey, origin: str, head: Published, *,
                 batch_size: int = 256, batch_ms: float = 1.0, max_pending: int = 4096,
                 clock: Callable[[], float] = time.time, metrics: LogMetrics | None = None,
                 event_key_of: Callable[[bytes], bytes] = leaf_hash) -> None:
        """`event_key_of` gives a stored body's signing-event key (for the log's entries,
        hashedrekord.event_key_of_body); by default every body is an event of its own."""
        self.storage = storage
        self.event_key_of = event_key_of
        self.key = key
        self.origin = origin
        self.head = head
        self.guard = CheckpointGuard(key, origin, head.state.size, head.root)
        self.batch_size = batch_size
        self.batch_ms = batch_ms
        self.max_pending = max_pending
        self._clock = clock
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tlog-set")
        self._log_id_hex = key.public_key.log_id().hex()
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        # Set when the signing guard refused a head: memory no longer matches what was
        # signed, so no further write is safe until a restart reloads it from storage.
        self.halted: str | None = None
        self.listeners: list[Callable[[], None]] = []  # told after every committed batch
        self.last_error: str | None = None  # why the last batch failed; None once one succeeds

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tlog-sequencer")

    async def close(self) -> None:
        """Stop taking submissions, finish every queued one (SIGTERM drains), then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        self._executor.shutdown(wait=False)

    def _refuse_unless_open(self, waiting: int) -> None:
        """Admission to the queue, the same for every sequencer (this one, a worker's, a
        PostgreSQL frontend's): 503 while shutting down or halted, 503 (overloaded) once
        `waiting` submissions fill `--max-pending`."""
        if self._closing:
            raise Unavailable("the log is shutting down")
        if self.halted:
            raise Unavailable(f"writes are stopped: {self.halted}; the operator must restart the log")
        if waiting >= self.max_pending:
            raise Overloaded(f"{waiting} submissions are already waiting")

    async def submit(self, entry: Admitted) -> Sequenced:
        self._refuse_unless_open(len(self._queue))
        fut: asyncio.Future[Sequenced] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(entry, fut))
        self._wakeup.set()
        return await fut

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if len(self._queue) < self.batch_size and self.batch_ms > 0 and not self._closing:
                # Linger briefly so concurrent submitters share one fsync.
                await asyncio.sleep(self.batch_ms / 1000)
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            try:
                await self._commit(batch)
                self.last_error = None
            except Exception as e:  # noqa: BLE001 — answer every waiter; the loop itself must survive
                log.error("batch of %d not stored: %s", len(batch), e)
                self.last_error = str(e)
                if self.metrics is not None:
                    self.metrics.batch_failures.inc()
                err = e if isinstance(e, TlogError) else Unavailable(f"internal error: {e}")
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)

    async def _commit(self, batch: list[_Pending]) -> None:
        # Dedupe against the log and within the batch by signing event (Admitted.event):
        # the same canonical body, or one ECDSA signature with s and with n - s (issue 11,
        # item 7). Each later one is answered with the first's index and UUID.
        started = time.perf_counter()
        events = _Events((p.entry for p in batch), self.event_key_of)
        existing = await self.storage.find_leaves(events.wanted, writer=True, key_of=events)
        started = self.stage("dedupe", started)
        old = self.head.state
        accepted: list[_Pending] = []
        first_in_batch: dict[bytes, tuple[int, bytes]] = {}  # event → (index, UUID)
        later_dupes: list[tuple[_Pending, int, bytes]] = []
        for p in batch:
            event = p.entry.event
            if event in existing:
                p.future.set_exception(Duplicate(existing[event], events.stored_leaf[event]))
            elif event in first_in_batch:
                later_dupes.append((p, *first_in_batch[event]))
            else:
                first_in_batch[event] = (old.size + len(accepted), p.entry.leaf_hash)
                accepted.append(p)
        if accepted:
            now = int(self._clock())
            leaves = [p.entry.leaf_hash for p in accepted]
            new_state, writes = old.extended(leaves)
            root = new_state.root()
            fresh = _fresh_tiles(old, leaves, writes)
            memo: dict[tuple[int, int], bytes] = {}  # right-edge roots of new_state, shared
            proof = (TileTree(new_state, fresh, memo).consistency_proof(old.size, new_state.size)
                     if old.size else [])
            started = self.stage("tree", started)
            try:
                note = self.guard.sign(new_state.size, root, proof)
                self.stage("sign", started)
            except ForkRefused as e:
                new_state.truncate_to(old)
                self.halted = str(e)
                log.critical("signing guard refused a checkpoint; writes stopped: %s", e)
                raise Unavailable(f"writes are stopped: {e}") from e
            entries = [NewEntry(old.size + i, p.entry.body, p.entry.leaf_hash, p.entry.search_keys,
                                p.entry.event_key) for i, p in enumerate(accepted)]
            t0 = time.perf_counter()
            write = asyncio.ensure_future(self.storage.append_batch(
                entries, now, writes, StoredCheckpoint(new_state.size, root, note, now)))
            # While the batch is written and fsync'd (in SQLite's thread), prepare each
            # entry's answer: SETs are signed on a thread (signing releases the GIL) and
            # inclusion proofs computed here. Nothing is released before the write is done.
            answers_error: Exception | None = None
            try:
                wanted = [(e, p.entry.answer) for e, p in zip(entries, accepted, strict=True)]
                sets = asyncio.get_running_loop().run_in_executor(
                    self._executor, self._sign_sets, [e.body if a else None for e, a in wanted], now,
                    old.size)
                tree = TileTree(new_state, fresh, memo)
                proofs = [tree.inclusion_proof(e.index, new_state.size) if a else [] for e, a in wanted]
                set_sigs = await sets
            except Exception as e:  # noqa: BLE001 — a bug; the write's outcome still decides what is stored
                answers_error = e
            try:
                await write
                self.stage("store", t0)
            except BaseException as e:
                new_state.truncate_to(old)
                self.guard.rollback(old.size, self.head.root)
                if isinstance(e, StorageError):
                    raise Unavailable(f"the log cannot store entries right now: {e}") from e
                raise
            self._publish(new_state, root, note, fresh, len(entries), t0, memo)
            if answers_error is not None:
                raise answers_error
            for i, p in enumerate(accepted):
                if not p.future.done():
                    p.future.set_result(Sequenced(old.size + i, now, self.head, set_sigs[i], proofs[i]))
        for p, index, uuid in later_dupes:
            if not p.future.done():
                p.future.set_exception(Duplicate(index, uuid))

    def stage(self, name: str, since: float) -> float:
        """Record how long a stage of the batch took (tlog_batch_stage_seconds); now."""
        now = time.perf_counter()
        if self.metrics is not None:
            self.metrics.batch_stage.labels(name).observe(now - since)
        return now

    def _publish(self, state: TreeState, root: bytes, note: bytes, fresh: dict[int, bytes | ExpandedTile],
                 entries: int, t0: float, memo: dict[tuple[int, int], bytes]) -> None:
        """The batch is durable: make it the head that reads and proofs are served from."""
        self.head = Published(state, root, note, fresh, memo)
        self.batches += 1
        if self.metrics is not None:
            self.metrics.batch_committed(entries, time.perf_counter() - t0, state.size)
        for listener in self.listeners:
            listener()

    def _sign_sets(self, bodies: list[bytes | None], integrated_time: int, first: int) -> list[bytes]:
        return [b"" if b is None else sign_set(self.key, b, integrated_time, self._log_id_hex, first + i)
                for i, b in enumerate(bodies)]


def _fresh_tiles(old: TreeState, leaves: list[bytes],
                 writes: Sequence[TileWrite]) -> dict[int, bytes | ExpandedTile]:
    """The level-0 tiles a batch touched, from the old tail and the new leaves. Tiles the
    batch completed come expanded, as `TreeState.extended` expanded them for storage: for
    the guard's proof, the batch's answers and the readers that come after (the log's tile
    cache takes them as they are)."""
    start = (old.size >> TILE_HEIGHT) << TILE_HEIGHT
    run = b"".join(old.tail[0]) + b"".join(leaves)
    expanded = {w.index: w.expansion for w in writes if w.level == 0 and w.expansion}
    out: dict[int, bytes | ExpandedTile] = {}
    full = TILE_WIDTH * HASH_SIZE
    for off in range(0, len(run), full):
        data = run[off:off + full]
        index = (start >> TILE_HEIGHT) + off // full
        nodes = expanded.get(index)
        out[index] = ExpandedTile(nodes) if nodes is not None else data
    return out

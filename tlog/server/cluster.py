"""Several frontends, one sequence (issue 15, item 3): the sequencer of a log on PostgreSQL.

Every frontend (`tlog serve --database …`) admits submissions, and writes each admitted
entry to the `pending` table (group-committed with the other submissions waiting on this
frontend: one INSERT and one fsync for all of them). Exactly one frontend, the leader,
sequences: it holds a session-level advisory lock (`SEQUENCER_LOCK`) on a connection of
its own, drains `pending` in id order in batches of up to `batch_size`, and runs the same
group commit as a single log (tlog.server.sequencer: dedupe by signing event, extend the
tree, sign through the checkpoint guard, one transaction). The same transaction deletes the
batch's pending rows and records each one's outcome in `pending_done` (its index, or the
index it duplicates), so an outcome is stored exactly when the batch is: a leader killed
at any point leaves every admitted entry either in the log with its outcome, or still
pending for the next leader. This is tessera's MySQL/AWS design (a `Seq` table drained by
the one `IntCoord` lock holder), with PostgreSQL's advisory lock as the lease.

The lease is the connection: when a leader dies its connection closes, PostgreSQL drops the
lock, and another frontend's next attempt (every LEADER_RETRY seconds) takes it, reloads
the tree from the database and drains what is pending. A leader that lost its connection
without noticing cannot fork the log: each batch checks, in its transaction, that the lock
is still held by this frontend's lock session, and entry indexes and checkpoint sizes are
unique, so a stale leader's batch is refused and it steps down.

Submitters wait for their outcome: LISTEN/NOTIFY (`tlog_head`, sent by each batch's
commit) wakes them, with a POLL-second poll as a fallback; a follower then reloads its
tree head from the database (never moving back) and answers with index, SET and inclusion
proof, built from its own copy of the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from tlog.core.keys import LogKey
from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH, split_hashes
from tlog.core.tilestate import TreeState, tiles_for_inclusion
from tlog.core.timestamp import sign_set
from tlog.errors import Unavailable
from tlog.server.guard import CheckpointGuard
from tlog.server.metrics import LogMetrics
from tlog.server.sequencer import Admitted, Duplicate, Published, Sequenced, Sequencer, _Pending
from tlog.server.storage.base import NewEntry, StorageError
from tlog.server.storage.postgres import SEQUENCER_LOCK, PostgresStorage, connect
from tlog.server.tree import TileTree

log = logging.getLogger("tlog.cluster")

LEADER_RETRY = 0.5  # seconds between a follower's attempts to take the lock
POLL = 0.2  # seconds: the fallback when a notification is missed
# Leaves a follower reads to catch up with one new checkpoint (a batch is ≤ 256 leaves);
# farther behind, it recovers the whole tree from the level-1 tiles instead.
FOLLOW_MAX_LEAVES = 1 << 16
CLOSE_WAIT = 5.0  # seconds a closing frontend waits for its submitters' outcomes
# Outcomes (`pending_done`) older than this are deleted by the leader: the frontend that
# queued them died before collecting them (a live one collects and deletes its own within
# milliseconds). Checked every PRUNE_EVERY seconds while leading, and on taking the lead.
DONE_TTL = 600.0
PRUNE_EVERY = 60.0
PENDING_CHANNEL = "tlog_pending"
HEAD_CHANNEL = "tlog_head"
_WAITERS_PER_INSERT = 1024


@dataclass(frozen=True)
class Outcome:
    """What became of a pending row: its entry's index, or the index it duplicates."""

    index: int
    duplicate: bool


class ClusterSequencer(Sequencer):
    """A `Sequencer` whose queue is the database's `pending` table, shared by every
    frontend; it sequences while it leads, and follows the leader's checkpoints otherwise."""

    def __init__(self, storage: PostgresStorage, key: LogKey, origin: str, head: Published, *,
                 batch_size: int = 256, max_pending: int = 4096, metrics: LogMetrics | None = None,
                 event_key_of: Callable[[bytes], bytes] = leaf_hash, name: str | None = None,
                 done_ttl: float = DONE_TTL) -> None:
        """`name` tells the other frontends (and /readyz) who leads: host:pid by default;
        `done_ttl`: seconds an uncollected outcome is kept."""
        super().__init__(storage, key, origin, head, batch_size=batch_size, batch_ms=0,
                         max_pending=max_pending, metrics=metrics, event_key_of=event_key_of)
        self.pg = storage
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.is_leader = False
        self.leader_name: str | None = None
        self.pending_depth = 0  # rows in `pending`, as last counted
        self.done_ttl = done_ttl
        self._pruned = float("-inf")  # monotonic time of the last _prune_done
        self._waiters: dict[int, asyncio.Future[Outcome]] = {}
        self._to_insert: list[tuple[Admitted, asyncio.Future[int]]] = []
        self._insert_wakeup = asyncio.Event()
        self._pending_event = asyncio.Event()
        self._head_event = asyncio.Event()
        self._stop = False
        self._lock_conn: asyncpg.Connection | None = None
        self._listen_conn: asyncpg.Connection | None = None
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._refresh_lock = asyncio.Lock()
        self._connections_lock = asyncio.Lock()
        self._miss_lock = asyncio.Lock()  # one catch_up refresh in flight at most
        self._caught_up_at = 0.0  # monotonic time the last catch_up refresh started
        self.miss_refreshes = 0  # refreshes catch_up ran (reads that missed)
        self._batch: list[tuple[int, _Pending]] = []  # (pending id, entry) of the batch committing
        # A new head may answer waiters whose outcomes were read before it was published.
        self.listeners.append(self._head_event.set)
        self._recorded = False

    @property
    def pending(self) -> int:
        return self.pending_depth

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._lead_or_follow(), name="tlog-cluster-sequencer"),
                       asyncio.create_task(self._insert_loop(), name="tlog-cluster-pending"),
                       asyncio.create_task(self._outcome_loop(), name="tlog-cluster-outcomes")]

    async def _connections(self) -> None:
        """(Re)open the notification connection and the pool that writes pending rows. The
        insert and outcome loops both call this: one at a time, or both would open a pool
        (or a listener) while the other's open is in flight, and one would leak — an idle
        connection that also blocks CREATE DATABASE … TEMPLATE of the log's database."""
        async with self._connections_lock:
            await self._open_connections()

    async def _open_connections(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.pg.dsn, min_size=1, max_size=2, timeout=10,
                server_settings={"synchronous_commit": "on", "application_name": "tlog"})
        if self._listen_conn is None or self._listen_conn.is_closed():
            conn = await connect(self.pg.dsn)
            await conn.add_listener(PENDING_CHANNEL, lambda *_: self._pending_event.set())
            await conn.add_listener(HEAD_CHANNEL, lambda *_: self._head_event.set())
            self._listen_conn = conn

    async def close(self) -> None:
        """Stop admitting; wait (CLOSE_WAIT at most) for this frontend's submitters — the
        leader keeps draining meanwhile — then release the lock and the connections."""
        self._closing = True
        self._insert_wakeup.set()
        deadline = time.monotonic() + CLOSE_WAIT
        while (self._waiters or self._to_insert) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._stop = True
        self._pending_event.set()
        self._head_event.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        futures: list[asyncio.Future[Outcome] | asyncio.Future[int]] = [
            *self._waiters.values(), *(f for _, f in self._to_insert)]
        for fut in futures:
            if not fut.done():
                fut.set_exception(Unavailable("the log is shutting down; the entry stays queued "
                                              "and another frontend will log it"))
        for conn in (self._lock_conn, self._listen_conn):
            if conn is not None:
                await conn.close()
        if self._pool is not None:
            await self._pool.close()
        self._executor.shutdown(wait=False)

    # -- submitting -------------------------------------------------------------------------
    async def submit(self, entry: Admitted) -> Sequenced:
        """Queue the entry in the database, wait for the leader's outcome, answer."""
        self._refuse_unless_open(len(self._waiters) + len(self._to_insert))
        loop = asyncio.get_running_loop()
        queued: asyncio.Future[int] = loop.create_future()
        self._to_insert.append((entry, queued))
        self._insert_wakeup.set()
        pending_id = await queued
        outcome = self._waiters[pending_id] = loop.create_future()
        self._head_event.set()  # the outcome may already be stored (a fast leader)
        try:
            done = await outcome
        finally:
            self._waiters.pop(pending_id, None)
        rows = await self.pg.read_entries([done.index])
        integrated_time, body = rows[done.index]
        if done.duplicate:
            raise Duplicate(done.index, leaf_hash(body))
        head = self.head
        size = head.state.size
        tiles = await self.pg.read_leaf_tiles(tiles_for_inclusion(head.state, done.index, size))
        proof = TileTree(head.state, dict(tiles), head.memo).inclusion_proof(done.index, size)
        set_sig = await loop.run_in_executor(
            self._executor, sign_set, self.key, body, integrated_time, self._log_id_hex, done.index)
        return Sequenced(done.index, integrated_time, head, set_sig, proof)

    async def _insert_loop(self) -> None:
        """Group commit of pending rows: every submission waiting here, one transaction."""
        while not self._stop:
            if not self._to_insert:
                self._insert_wakeup.clear()
                await self._insert_wakeup.wait()
                continue
            batch = self._to_insert[:_WAITERS_PER_INSERT]
            del self._to_insert[:len(batch)]
            try:
                await self._connections()
                assert self._pool is not None
                async with self._pool.acquire() as conn, conn.transaction():
                    ids = [r[0] for r in await conn.fetch(
                        "SELECT nextval('pending_id_seq') FROM generate_series(1, $1)", len(batch))]
                    await conn.execute(
                        "INSERT INTO pending (id, body, leaf_hash, event_key, search_keys, queued) "
                        "SELECT i, b, h, e, ARRAY(SELECT jsonb_array_elements_text(k)::bigint), $6 "
                        "FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::jsonb[]) "
                        "AS u(i, b, h, e, k)", ids, [a.body for a, _ in batch],
                        [a.leaf_hash for a, _ in batch], [a.event_key for a, _ in batch],
                        [_json_ints(a.search_keys) for a, _ in batch], int(time.time()))
                    await conn.execute("SELECT pg_notify($1, '')", PENDING_CHANNEL)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, StorageError) as e:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(Unavailable(f"the log cannot queue entries right now: {e}"))
                continue
            for (_, fut), pending_id in zip(batch, ids, strict=True):
                if not fut.done():
                    fut.set_result(pending_id)

    async def _outcome_loop(self) -> None:
        """Answer this frontend's waiting submitters once their outcomes are stored."""
        counted = 0.0
        while not self._stop:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._head_event.wait(), POLL)
            self._head_event.clear()
            try:
                await self._connections()
                if time.monotonic() - counted > 1:
                    async with self.pg.reader() as r:
                        self.pending_depth = int(await r.fetchval("SELECT count(*) FROM pending"))
                    counted = time.monotonic()
                await self.refresh_head()
                if self._waiters:
                    await self._collect_outcomes()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, StorageError) as e:
                log.warning("cannot read outcomes from the database: %s", e)
                await asyncio.sleep(POLL)

    async def _collect_outcomes(self) -> None:
        """Answer the waiters whose outcomes are stored and within the head served, and
        delete those outcomes. One past the head (the leader's batch committed, its head
        not yet published; a follower's refresh behind) stays stored for the next round
        (POLL at most): deleted unanswered, its submitter would wait forever."""
        waiting = list(self._waiters)
        async with self.pg.reader() as r:
            rows = await r.fetch("SELECT id, idx, duplicate FROM pending_done WHERE id = ANY($1::bigint[])",
                                 waiting)
        if not rows:
            return
        if max(idx for _, idx, _ in rows) >= self.head.state.size:
            await self.refresh_head()
            self._pending_event.set()  # a leader catches up between batches (_drain_once)
        answered = []
        for pending_id, idx, duplicate in rows:
            fut = self._waiters.get(pending_id)
            if fut is None or fut.done():
                answered.append(pending_id)  # nobody waits for it any more
            elif idx < self.head.state.size:
                fut.set_result(Outcome(idx, duplicate))
                answered.append(pending_id)
        if answered:
            assert self._pool is not None
            async with self._pool.acquire() as conn:
                await conn.execute("DELETE FROM pending_done WHERE id = ANY($1::bigint[])", answered)

    async def refresh_head(self, *, leading: bool = False) -> None:
        """Follow the database's latest checkpoint: reload the tree when it is newer than
        the head served (never older: a frontend never serves a checkpoint older than one it
        served), and check that its tiles give the signed root. The leader's head is the
        last batch it committed: it reloads only when told (`leading`), between batches."""
        if self.is_leader and not leading:
            return
        async with self._refresh_lock:
            old = self.head.state
            latest = await self.pg.latest_checkpoint()
            if latest is None or latest.size <= old.size:
                return
            state = await self._extended_to(old, latest.size)
            checkpoint = latest
            if state is None:  # far behind, or the tiles do not line up: rebuild it all
                rec = await self.pg.recover()
                if rec.checkpoint is None or rec.size <= old.size:
                    return
                state, checkpoint = TreeState.restore(rec.size, rec.level8, rec.tail_leaves), rec.checkpoint
            root = state.root()
            if root != checkpoint.root:
                if checkpoint is latest:  # extended from `old`: it shares old's upper lists
                    state.truncate_to(old)  # take back what the refused leaves appended
                raise StorageError(f"stored tiles give root {root.hex()} at size {state.size}, but "
                                   f"the checkpoint says {checkpoint.root.hex()}")
            self.head = Published(state, root, checkpoint.note, {})
            if self.metrics is not None:
                self.metrics.tree_size.set(state.size)
                self.metrics.checkpoint_time.set(checkpoint.created)
            for listener in self.listeners:
                listener()

    async def _extended_to(self, old: TreeState, size: int) -> TreeState | None:
        """The tree at `size` from `old` and only the leaves added since, read from the
        level-0 tiles that hold them (one query): a follower keeps up with each batch at the
        cost of the batch, not of the whole tree (`recover`, which reads every level-1 tile
        and rehashes the upper levels). None when the gap is too wide for one read or the
        stored tiles do not hold those leaves; the caller then recovers."""
        if size - old.size > FOLLOW_MAX_LEAVES:
            return None
        first = old.size >> TILE_HEIGHT
        tiles = range(first, ((size - 1) >> TILE_HEIGHT) + 1)
        stored = await self.pg.read_leaf_tiles(tiles)
        if any(len(stored.get(t, b"")) != TILE_WIDTH * HASH_SIZE for t in tiles[:-1]):
            return None
        leaves = split_hashes(b"".join(stored.get(t, b"") for t in tiles))
        start = old.size - first * TILE_WIDTH
        new_leaves = leaves[start:start + size - old.size]
        if len(new_leaves) != size - old.size:
            return None
        return old.extended(new_leaves)[0]

    async def catch_up(self) -> bool:
        """A read missed (an entry past this frontend's tree size, an index at or past
        it): another frontend may have answered 201 for it a few milliseconds ago, before
        this one was notified. Refresh the head from the database before answering 404.

        Bounded, since misses are what anyone can send: one refresh in flight at most (a
        cheap query for the latest checkpoint's size, and a reload only when the head
        moved), and a miss is answered by the first refresh that started after it asked,
        so a burst of misses costs two refreshes, not one each. True if the head moved.
        The leader's head is the last batch committed: nothing newer exists."""
        if self.is_leader:
            return False
        asked = time.monotonic()
        size = self.head.state.size
        async with self._miss_lock:
            if self._caught_up_at < asked:
                started = time.monotonic()
                self.miss_refreshes += 1
                await self.refresh_head()
                self._caught_up_at = started
        return self.head.state.size > size

    # -- leading ----------------------------------------------------------------------------
    async def _lead_or_follow(self) -> None:
        while not self._stop:
            try:
                if not self.is_leader and not await self._try_lead():
                    await asyncio.sleep(LEADER_RETRY)
                    continue
                if self._lock_conn is None or self._lock_conn.is_closed():
                    raise StorageError("the connection holding the sequencing lock closed")
                await self._prune_done()
                if not await self._drain_once():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._pending_event.wait(), POLL)
                    self._pending_event.clear()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 — step down and compete again; the loop must survive
                log.error("sequencing stopped on this frontend: %s", e)
                await self._step_down()
                await asyncio.sleep(LEADER_RETRY)

    async def _try_lead(self) -> bool:
        """Take the sequencing lock if it is free: then reload the tree and lead."""
        if self._lock_conn is None or self._lock_conn.is_closed():
            self._lock_conn = await connect(self.pg.dsn)
        if not await self._lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", SEQUENCER_LOCK):
            async with self.pg.reader() as r:
                self.leader_name = await r.fetchval("SELECT name FROM leader")
            return False
        await self.refresh_head()
        self.guard = CheckpointGuard(self.key, self.origin, self.head.state.size, self.head.root)
        async with self.pg.writer() as w:
            await w.execute("INSERT INTO leader (one, name, since) VALUES (1, $1, $2) ON CONFLICT (one) "
                            "DO UPDATE SET name = excluded.name, since = excluded.since",
                            self.name, int(time.time()))
        self.is_leader = True
        self.leader_name = self.name
        self.last_error = None
        if self.metrics is not None:
            self.metrics.leader_changes.inc()
            self.metrics.is_leader.set(1)
        log.info("this frontend (%s) now sequences the log, at tree size %d", self.name, self.head.state.size)
        return True

    async def _step_down(self) -> None:
        was = self.is_leader
        self.is_leader = False
        if self.metrics is not None:
            self.metrics.is_leader.set(0)
        if self._lock_conn is not None:
            conn, self._lock_conn = self._lock_conn, None
            try:
                await conn.close()  # releases the lock, if the session still holds it
            except (OSError, asyncpg.InterfaceError):
                conn.terminate()
        if was:
            log.warning("this frontend (%s) no longer sequences the log", self.name)

    async def _prune_done(self) -> int:
        """Delete the outcomes older than `done_ttl` (every PRUNE_EVERY seconds): left by
        frontends that died waiting, they would pile up forever. The pending tables are
        a queue, not history: no append-only trigger guards them. Returns rows deleted."""
        if time.monotonic() - self._pruned < PRUNE_EVERY:
            return 0
        self._pruned = time.monotonic()
        async with self.pg.writer() as w:
            status = await w.execute("DELETE FROM pending_done WHERE done < $1",
                                     int(time.time() - self.done_ttl))
        deleted = int(status.rsplit(" ", 1)[-1])
        if deleted:
            log.info("deleted %d outcomes older than %.0f s: their frontends died before "
                     "collecting them", deleted, self.done_ttl)
        return deleted

    async def _drain_once(self) -> bool:
        """Sequence one batch of pending rows; False when there were none.

        First, catch up: the previous leader's last COMMIT may reach PostgreSQL after its
        lock was dropped (both sessions close when it dies, in no set order), so the tree
        this leader loaded can be one batch behind. Its next batch would be refused (entry
        indexes and checkpoint sizes are unique: no fork), but the submitters of that late
        batch would wait for a head that never comes."""
        latest = await self.pg.latest_checkpoint()
        if latest is not None and latest.size != self.head.state.size:
            await self.refresh_head(leading=True)
            self.guard = CheckpointGuard(self.key, self.origin, self.head.state.size, self.head.root)
        drained = time.perf_counter()
        async with self.pg.reader() as r:
            rows = await r.fetch("SELECT id, body, leaf_hash, event_key, search_keys FROM pending "
                                 "ORDER BY id LIMIT $1", self.batch_size)
        if rows:
            self.stage("drain", drained)
        if not rows:
            self.pending_depth = 0
            return False
        loop = asyncio.get_running_loop()
        self._batch = [(pid, _Pending(Admitted(body, bytes(h), tuple(keys), answer=False,
                                               event_key=None if e is None else bytes(e)),
                                      loop.create_future()))
                       for pid, body, h, e, keys in rows]
        self._recorded = False
        self.pg.batch_hook = self._record_outcomes
        t0 = time.perf_counter()
        try:
            await self._commit([p for _, p in self._batch])
        finally:
            self.pg.batch_hook = None
        if not self._recorded:  # every row a duplicate of an entry already in the log
            async with self.pg.writer() as w, w.transaction():
                await self._record_outcomes(w, [])
        for _, p in self._batch:  # the outcomes went to the database; nobody awaits these
            if p.future.done() and not p.future.cancelled():
                p.future.exception()
        if self.metrics is not None:
            self.metrics.queue_wait.observe(time.perf_counter() - t0)
        self._batch = []
        return True

    async def _record_outcomes(self, conn: asyncpg.Connection, entries: Sequence[NewEntry]) -> None:
        """In the batch's transaction: check the lock is still this frontend's, delete the
        batch's pending rows and store their outcomes. `entries` are the batch's new entries,
        in the batch's order (Sequencer._commit): the first row of each signing event that
        is not yet in the log is the entry; a later one, or one whose future already holds
        a Duplicate (in the log before), is a duplicate."""
        assert self._lock_conn is not None
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1 "
            "AND ((classid::bigint << 32) | objid::bigint) = $2",
            self._lock_conn.get_server_pid(), SEQUENCER_LOCK)
        if not held:
            raise StorageError("this frontend no longer holds the sequencing lock")
        out: list[tuple[int, Outcome]] = []
        first: dict[bytes, int] = {}
        new = iter(entries)
        upcoming = next(new, None)
        for pid, p in self._batch:
            event = p.entry.event
            fut = p.future
            if fut.done():
                err = fut.exception()
                assert isinstance(err, Duplicate), err
                out.append((pid, Outcome(err.index, True)))
            elif event in first:
                out.append((pid, Outcome(first[event], True)))
            else:
                assert upcoming is not None and upcoming.leaf_hash == p.entry.leaf_hash
                first[event] = upcoming.index
                out.append((pid, Outcome(upcoming.index, False)))
                upcoming = next(new, None)
        ids = [pid for pid, _ in out]
        await conn.execute("DELETE FROM pending WHERE id = ANY($1::bigint[])", ids)
        await conn.execute(
            "INSERT INTO pending_done (id, idx, duplicate, done) SELECT i, x, d, $4 FROM "
            "unnest($1::bigint[], $2::bigint[], $3::bool[]) AS u(i, x, d)",
            ids, [o.index for _, o in out], [o.duplicate for _, o in out], int(time.time()))
        await conn.execute("SELECT pg_notify($1, '')", HEAD_CHANNEL)
        self._recorded = True


def _json_ints(values: Sequence[int]) -> str:
    """Search keys as a JSON array: asyncpg cannot pass an array of arrays of varying length."""
    return "[" + ",".join(str(v) for v in values) + "]"

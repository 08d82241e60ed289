"""Several HTTP processes, one sequencer: `tlog serve --workers N` on SQLite (issue 16, item 1).

One Python event loop does HTTP, admission and sequencing on one core; what costs the most
per request (aiohttp, JSON, signature verification) needs no shared state. So the parent
process binds the port (tlog.runner.listen), opens the log as always — it alone owns the
data directory's lock, the key's signing guard and the SQLite writer — and starts N worker
processes that inherit the listening sockets. The kernel spreads connections over them.
A worker parses, canonicalizes and verifies a submission, then sends the admitted entry to
the parent over a socketpair; the parent's sequencer group-commits it and answers with its
index and integrated time, and the worker signs its SET and computes its inclusion proof
(the parent, which every submission passes through, does only what must be done once).
The entry is acknowledged only after its batch is durable, so a worker that dies loses
nothing acknowledged.

After every committed batch the parent tells every worker the new head (size, root, signed
checkpoint) and the batch's leaf hashes, written to each worker's stream before any answer
of that batch: a worker extends its own TreeState (the hashes at level ≥ 8 and the tail,
the same work the sequencer does), checks the root, and serves reads from its own read-only
SQLite connections (WAL: a committed batch is visible to them) with its own caches.

Metrics are per process: /metrics shows the worker that answered (its requests, its
signature checks) and the log's tree size; the sequencer's batch histograms stay in the
parent, which serves no HTTP. A worker that dies is restarted by the parent; when the
parent goes away, every worker drains and exits (its channel closes). SIGTERM to the
parent drains the workers first (their submissions in flight still reach the sequencer),
then the sequencer.

The channel carries pickles: both ends are this program, over a socketpair the child
inherits and nothing else can open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from tlog.core.merkle import HASH_SIZE
from tlog.core.tiles import TILE_HEIGHT
from tlog.core.tilestate import TreeState
from tlog.core.timestamp import sign_set
from tlog.errors import Overloaded, StartupError, TlogError, Unavailable
from tlog.server import api
from tlog.server.log import Log, LogConfig
from tlog.server.metrics import LogMetrics
from tlog.server.sequencer import Admitted, Duplicate, Published, Sequenced, Sequencer, _fresh_tiles
from tlog.server.storage.sqlite import SqliteStorage
from tlog.server.tree import TileTree

log = logging.getLogger("tlog.workers")

_LENGTH = struct.Struct(">I")
# Message kinds on the channel. Parent → worker: a new head, the answer to a submission,
# the checkpoint /checkpoint serves (witness cosignatures), the sequencer's health.
# Worker → parent: a submission.
HEAD, ANSWER, NOTE, STATUS, SUBMIT = range(5)
RECENT_HEADS = 128  # heads a worker keeps for the answers still coming (one per batch)
RESTART_DELAY = 0.5  # seconds before a dead worker is started again
STOP_TIMEOUT = 30.0  # seconds the workers get to drain on SIGTERM before they are killed


def _frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        (n,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
        return pickle.loads(await reader.readexactly(n))  # our own parent or child (module docstring)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def _error_message(e: BaseException) -> tuple[Any, ...]:
    """An error a submission met, as the worker raises it again for its HTTP answer: the
    sequencer answers a duplicate (409), back-pressure (503, retry shortly) or being unable
    to write (503)."""
    if isinstance(e, Duplicate):
        return ("dup", e.index, e.uuid)
    if isinstance(e, Overloaded):
        return ("busy", str(e))
    return ("unavailable", str(e) if isinstance(e, TlogError) else f"internal error: {e}")


def _error(error: tuple[Any, ...]) -> TlogError:
    if error[0] == "dup":
        return Duplicate(error[1], error[2])
    cls = Overloaded if error[0] == "busy" else Unavailable
    e = cls.__new__(cls)
    Exception.__init__(e, error[1])  # the parent's message as it is, not wrapped again
    return e


def _batch_leaves(old_size: int, head: Published) -> list[bytes]:
    """The leaf hashes a batch appended, read off the level-0 tiles it touched."""
    start = (old_size >> TILE_HEIGHT) << TILE_HEIGHT
    run = b"".join(t if isinstance(t, bytes) else t.leaves
                   for _, t in sorted(head.fresh_tiles.items()))
    run = run[(old_size - start) * HASH_SIZE:(head.state.size - start) * HASH_SIZE]
    return [run[i:i + HASH_SIZE] for i in range(0, len(run), HASH_SIZE)]


# -- the parent ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Hello:
    """The parent's first message to a new worker: how to serve, and the head to start from
    (the tree is rebuilt from its level-8 hashes and tail, as at a restart)."""

    config: LogConfig
    run_args: dict[str, Any]  # tlog.runner.run_app's, and "limits": the API's
    logging: tuple[str, int, int]  # format, root level, access-log level
    size: int
    level8: list[bytes]
    tail: list[bytes]
    root: bytes
    note: bytes
    status: tuple[str | None, str | None]  # the sequencer's halted, last_error
    witnessed: bool  # /checkpoint serves the note the parent chose (cosignatures)
    served: bytes


def _log_settings() -> tuple[str, int, int]:
    """The parent's logging (tlog.logs.setup_logging), for its workers to log alike."""
    from tlog.logs import JsonFormatter

    root = logging.getLogger()
    json = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
    return "json" if json else "text", root.level, logging.getLogger("tlog.access").level


class _Channel:
    """The parent's end of one worker's channel: submissions in, answers and heads out."""

    def __init__(self, lg: Log, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.lg = lg
        self.reader = reader
        self.writer = writer
        self.tasks: set[asyncio.Task[None]] = set()

    def send(self, message: object) -> None:
        if not self.writer.is_closing():
            self.writer.write(_frame(message))

    async def serve(self, status: _Status) -> None:
        while (msg := await _read(self.reader)) is not None:
            task = asyncio.create_task(self._submit(msg, status))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _submit(self, msg: tuple[Any, ...], status: _Status) -> None:
        _, req, body, leaf, keys, event_key = msg
        try:
            # answer=False: the worker signs the SET and computes the proof itself, off the
            # one process every submission passes through.
            done = await self.lg.sequencer.submit(Admitted(body, leaf, keys, answer=False,
                                                           event_key=event_key))
        except Exception as e:  # noqa: BLE001 — every outcome goes back to the worker
            self.send((ANSWER, req, _error_message(e)))
            status.check()
            return
        self.send((ANSWER, req, None, done.index, done.integrated_time, done.head.state.size))


class _Status:
    """What every worker must know of the parent's sequencer and witnesses: the sequencer's
    health (a halted signing guard, a failed batch: /readyz) and the checkpoint to serve."""

    def __init__(self, lg: Log, channels: list[_Channel]) -> None:
        self.lg = lg
        self.channels = channels
        self.sent: tuple[str | None, str | None] = (None, None)
        self.note = b""

    def now(self) -> tuple[str | None, str | None]:
        return self.lg.sequencer.halted, self.lg.sequencer.last_error

    def check(self) -> None:
        if (now := self.now()) != self.sent:
            self.sent = now
            for ch in self.channels:
                ch.send((STATUS, *now))

    def check_note(self) -> None:
        if (note := self.lg.checkpoint_note()) != self.note:
            self.note = note
            for ch in self.channels:
                ch.send((NOTE, note))


async def serve_workers(config: LogConfig, sockets: Sequence[socket.socket], workers: int,
                        worker_args: dict[str, Any], *, ready: asyncio.Event | None = None) -> None:
    """Run the log's sequencer here and `workers` HTTP processes on `sockets` until SIGTERM.
    `worker_args` are run_app's arguments and the API limits, for the workers."""
    if config.database is not None:
        raise StartupError("--workers is for a log on SQLite", hint=(
            "on PostgreSQL, run several `tlog serve --database …` frontends instead"))
    lg = await Log.open(config)
    if lg.created_key:
        log.info("created a new %s log key in %s", config.key_type, config.key_path)
    channels: list[_Channel] = []
    status = _Status(lg, channels)
    last = [lg.head]

    def head_changed() -> None:
        # Called by the sequencer once a batch is durable, before any of its answers.
        old, head = last[0], lg.head
        last[0] = head
        msg = (HEAD, head.state.size, head.root, head.note, _batch_leaves(old.state.size, head))
        for ch in channels:
            ch.send(msg)
        status.check()
        if lg.witnessing is not None:
            status.check_note()

    lg.sequencer.listeners.append(head_changed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    procs: list[asyncio.subprocess.Process | None] = [None] * workers

    async def run_worker(n: int) -> None:
        """Start worker n, serve its channel, and start it again if it dies."""
        while not stop.is_set():
            mine, theirs = socket.socketpair()
            fds = [theirs.fileno(), *(s.fileno() for s in sockets)]
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tlog.server.workers", *map(str, fds), pass_fds=fds)
            finally:
                theirs.close()
            procs[n] = proc
            reader, writer = await asyncio.open_connection(sock=mine)
            ch = _Channel(lg, reader, writer)
            head = lg.head
            state = head.state
            full = state.size >> TILE_HEIGHT
            level8 = state.upper[0][:full] if state.upper else []
            ch.send(_Hello(dataclasses.replace(config, witnesses=()), worker_args, _log_settings(),
                           state.size, level8, list(state.tail[0]), head.root, head.note,
                           status.now(), bool(config.witnesses), lg.checkpoint_note()))
            channels.append(ch)  # from here on, every head is sent to it too
            try:
                await ch.serve(status)
            finally:
                channels.remove(ch)
                writer.close()
            code = await proc.wait()
            if not stop.is_set():
                log.error("worker %d (pid %d) exited with %s; starting it again", n, proc.pid, code)
                await asyncio.sleep(RESTART_DELAY)

    async def witness_notes() -> None:
        while lg.witnessing is not None:
            status.check_note()
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(run_worker(n)) for n in range(workers)]
    notes = asyncio.create_task(witness_notes())
    try:
        log.info("serving %s with %d worker processes", lg.describe(), workers)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: draining %d worker processes", workers)
        for proc in procs:
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.wait(tasks, timeout=STOP_TIMEOUT)
        for proc in procs:
            if proc is not None and proc.returncode is None:
                proc.kill()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        notes.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(notes, *tasks, return_exceptions=True)
        for proc in procs:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
        await lg.close()
        log.info("stopped at tree size %d", lg.head.state.size)


# -- a worker --------------------------------------------------------------------------------
class WorkerSequencer(Sequencer):
    """A worker's stand-in for the sequencer: submissions go to the parent over the channel;
    the head follows the parent's broadcasts."""

    def __init__(self, storage: SqliteStorage, lg_key: Any, origin: str, head: Published,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, max_pending: int,
                 metrics: LogMetrics) -> None:
        super().__init__(storage, lg_key, origin, head, max_pending=max_pending, metrics=metrics)
        self._reader = reader
        self._writer = writer
        self._waiting: dict[int, tuple[Admitted, asyncio.Future[Sequenced]]] = {}
        self._next = 0
        self._heads: OrderedDict[int, Published] = OrderedDict({head.state.size: head})
        self.served_note = head.note
        self.parent_gone = asyncio.Event()

    @property
    def pending(self) -> int:
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="tlog-worker-channel")

    async def close(self) -> None:
        """Wait for the answers to the submissions sent (SIGTERM drains), then stop."""
        self._closing = True
        while self._waiting and not self.parent_gone.is_set():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer.close()
        self._executor.shutdown(wait=False)

    async def submit(self, entry: Admitted) -> Sequenced:
        if self.parent_gone.is_set():
            raise Unavailable("the log is shutting down")
        self._refuse_unless_open(len(self._waiting))
        self._next += 1
        req = self._next
        fut: asyncio.Future[Sequenced] = asyncio.get_running_loop().create_future()
        self._waiting[req] = (entry, fut)
        self._writer.write(_frame((SUBMIT, req, entry.body, entry.leaf_hash, entry.search_keys,
                                   entry.event_key)))
        try:
            return await fut
        finally:
            self._waiting.pop(req, None)

    async def _follow(self) -> None:
        while (msg := await _read(self._reader)) is not None:
            kind = msg[0]
            if kind == HEAD:
                self._extend(*msg[1:])
            elif kind == ANSWER:
                self._answer(*msg[1:])
            elif kind == NOTE:
                self.served_note = msg[1]
            elif kind == STATUS:
                self.halted, self.last_error = msg[1], msg[2]
        self.parent_gone.set()
        for _, fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(Unavailable("the log's sequencer went away"))

    def _extend(self, size: int, root: bytes, note: bytes, leaves: list[bytes]) -> None:
        old = self.head.state
        if size <= old.size:
            return
        new_state, writes = old.extended(leaves)
        if new_state.size != size or new_state.root() != root:
            log.critical("the sequencer's head at size %d does not extend this worker's tree; exiting", size)
            os.kill(os.getpid(), signal.SIGTERM)
            self.halted = "this worker's tree does not match the sequencer's"
            return
        self.head = Published(new_state, root, note, _fresh_tiles(old, leaves, writes))
        self._heads[size] = self.head
        while len(self._heads) > RECENT_HEADS:
            self._heads.popitem(last=False)
        if self.metrics is not None:
            self.metrics.tree_size.set(size)
            self.metrics.checkpoint_time.set(time.time())
        for listener in self.listeners:
            listener()

    def _answer(self, req: int, error: tuple[Any, ...] | None, *done: Any) -> None:
        """Answer a submission from its outcome: its SET is signed here and its proof
        computed from the head of its batch (the leaf's tile is among the batch's fresh
        tiles, the rest is in memory: no storage read)."""
        waiting = self._waiting.get(req)
        if waiting is None or waiting[1].done():
            return
        entry, fut = waiting
        if error is not None:
            fut.set_exception(_error(error))
            return
        index, integrated_time, size = done
        head = self._heads.get(size)
        if head is None:  # RECENT_HEADS batches went by before the answer: cannot happen
            fut.set_exception(Unavailable(f"the head at size {size} is gone"))
            return
        proof = TileTree(head.state, head.fresh_tiles, head.memo).inclusion_proof(index, size)
        set_sig = sign_set(self.key, entry.body, integrated_time, self._log_id_hex, index)
        fut.set_result(Sequenced(index, integrated_time, head, set_sig, proof))


async def _worker(channel_fd: int, socket_fds: list[int]) -> None:
    from tlog.core import entries
    from tlog.core.keys import LogKey
    from tlog.logs import setup_logging
    from tlog.runner import run_app
    from tlog.server.witnessing import Witnessing

    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=channel_fd))
    hello: _Hello | None = await _read(reader)
    if hello is None:
        return
    fmt, level, access = hello.logging
    setup_logging(fmt, level)
    logging.getLogger("tlog.access").setLevel(access)
    config = hello.config
    args = dict(hello.run_args)
    limits = args.pop("limits")
    key = LogKey.from_pem(config.key_path.read_bytes())
    storage = await SqliteStorage.open_in(config.data_dir, read_only=True)
    state = TreeState.restore(hello.size, hello.level8, hello.tail)
    if state.root() != hello.root:
        raise StartupError(f"the tree sent by the sequencer does not give its root at size {hello.size}")
    head = Published(state, hello.root, hello.note, {})
    metrics = LogMetrics()
    metrics.tree_size.set(hello.size)
    meta = await storage.get_meta()
    seq = WorkerSequencer(storage, key, meta["origin"], head, reader, writer,
                          max_pending=config.max_pending, metrics=metrics)
    seq.halted, seq.last_error = hello.status
    seq.served_note = hello.served
    metrics.pending.set_function(lambda: seq.pending)
    metrics.key_cache_bytes.set_function(lambda: entries.hashedrekord.KEY_CACHE.weight)
    metrics.key_cache_keys.set_function(lambda: len(entries.hashedrekord.KEY_CACHE))
    lg = Log(config, key, storage, meta["origin"], seq, metrics)
    if hello.witnessed:

        class Relayed(Witnessing):
            """/checkpoint serves the note the parent's witnessing chose (NOTE messages)."""

            def published(self, head_size: int, head_note: bytes) -> bytes:
                return seq.served_note

        lg.witnessing = Relayed([], lambda: (0, b""), lg._proof_hashes)
    seq.start()

    async def parent_gone() -> None:
        await seq.parent_gone.wait()
        os.kill(os.getpid(), signal.SIGTERM)  # run_app drains and returns

    watcher = asyncio.create_task(parent_gone())
    sockets = [socket.socket(fileno=fd) for fd in socket_fds]
    try:
        await run_app(api.make_app(lg, limits), sockets, started=lambda: None,
                      stopping=seq.close, **args)
    finally:
        watcher.cancel()
        await lg.close()


if __name__ == "__main__":  # started by serve_workers: CHANNEL_FD SOCKET_FD…
    fds = [int(a) for a in sys.argv[1:]]
    asyncio.run(_worker(fds[0], fds[1:]))

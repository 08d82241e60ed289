"""The log service: one data directory, one key, one tree — the shell around the core.

Opens (or creates) `DATA_DIR/log.key` and the log's storage (a `StorageFactory`: SQLite's
`DATA_DIR/log.db` unless another driver is given), recovers the tree from stored tiles,
runs the sequencer, and answers reads by plan → fetch → compute: list the level-0 tiles a
proof needs, read them in one query, fold them with the tree engine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import stat
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tlog.core import entries, rekor
from tlog.core.checkpoint import Checkpoint, origin_from_url, sign_checkpoint, validate_origin
from tlog.core.entries import hashedrekord
from tlog.core.keys import KeyType, LogKey
from tlog.core.merkle import HASH_SIZE, leaf_hash
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH, TileRef, encode_entry_bundle, tile_width_at
from tlog.core.tilestate import TreeState, tiles_for_consistency, tiles_for_inclusion
from tlog.core.timestamp import sign_set
from tlog.errors import Forbidden, InvalidInput, NotFound, Overloaded, StartupError, TlogError
from tlog.files import DirLock, write_private
from tlog.server.attestations import AttestationStore
from tlog.server.bundles import Bundle, BundleCache
from tlog.server.cluster import ClusterSequencer
from tlog.server.layout import ATTESTATIONS_DIR, KEY_FILE
from tlog.server.limits import MAX_SEARCH_RESULTS
from tlog.server.metrics import LogMetrics
from tlog.server.sequencer import Admitted, Published, Sequenced, Sequencer
from tlog.server.service import SearchPage
from tlog.server.storage.base import (
    NoStorage,
    Storage,
    StorageError,
    StorageFactory,
    StoredCheckpoint,
    search_key,
)
from tlog.server.storage.postgres import PostgresDriver, PostgresStorage
from tlog.server.storage.sqlite import SqliteStorage
from tlog.server.tree import ExpandedTile, TileCache, TileTree
from tlog.server.witnessing import Witnessing, WitnessSpec

log = logging.getLogger("tlog")
T = TypeVar("T")

# How a search walks the index (Log.search): candidates per storage read, searches reading
# at once (each holds at most one chunk of bodies, ≤ 64 × 64 KiB), and the longest run of
# confirmations before the event loop gets a turn.
SEARCH_CHUNK = 64
SEARCH_SLOTS = 4
SEARCH_SLICE = 0.002  # seconds

# Signature checks that cost more than handing them to a thread (hashedrekord.Submission.
# costly: P-384, P-521, RSA-4096, 0.3 to 0.9 ms each) run on VERIFY_THREADS threads, which
# cryptography lets run beside the event loop (it releases the GIL around OpenSSL); at most
# VERIFY_WAITING wait for one, past that a submission is answered 503 (issue 11, item 4).
# P-256 and RSA up to 3072 bits stay inline: a thread hand-off costs what they cost.
VERIFY_THREADS = 2
VERIFY_WAITING = 64


class _Matcher:
    """Does a stored body match a search? Decided from the values `indexed_values` reads
    off its bytes, each criterion tested only as far as the operator needs (the artifact
    first: it costs nothing), and what a signer's key content gives — its fingerprint, its
    certificate's identities — computed once per distinct key (a search by key or identity
    mostly meets the same key or certificate again and again)."""

    def __init__(self, artifact_key: str | None, fingerprint: bytes | None,
                 identities: Sequence[str], every: bool) -> None:
        self.artifact_key = artifact_key
        self.fingerprint = fingerprint
        self.identities = tuple(identities)
        self.every = every
        # key content → fingerprint, → certificate identities: a few of each
        self._fingerprints: dict[bytes, bytes] = {}
        self._identities: dict[bytes, tuple[str, ...]] = {}

    def __call__(self, body: bytes) -> bool:
        # Any kind of the registry (tlog.core.entries): its artifact keys and signer keys.
        values = entries.indexed_values(body)
        if values is None:
            return False
        artifacts, keys, complete = values
        tests: list[Callable[[], bool]] = []
        if self.artifact_key is not None:
            # An in-toto subject is not in a dsse/intoto body: such a kind is confirmed by
            # the index alone for the artifact (`complete` False), as Rekor's search is.
            tests.append(lambda: self.artifact_key in artifacts or not complete)
        if self.fingerprint is not None:
            tests.append(lambda: any(self._fingerprint_of(k) == self.fingerprint for k in keys))
        for identity in self.identities:  # a certificate's SANs, parsed for candidates only
            tests.append(functools.partial(self._signed_by, identity, keys))
        return (all if self.every else any)(test() for test in tests)

    def _fingerprint_of(self, key: bytes) -> bytes:
        def fingerprint() -> bytes:
            try:
                return hashedrekord.stored_key_fingerprint(key)
            except InvalidInput:
                return b""
        return _memo(self._fingerprints, key, fingerprint)

    def _signed_by(self, identity: str, keys: tuple[bytes, ...]) -> bool:
        return any(identity in self._identities_of(k) for k in keys)

    def _identities_of(self, key: bytes) -> tuple[str, ...]:
        return _memo(self._identities, key, lambda: entries.key_identities(key))


def _memo(cache: dict[bytes, T], key: bytes, compute: Callable[[], T]) -> T:
    """`compute()` remembered under `key` in a cache of at most 8 (emptied when full)."""
    known = cache.get(key)
    if known is None:
        known = compute()
        if len(cache) >= 8:
            cache.clear()
        cache[key] = known
    return known


@dataclass(frozen=True)
class LogConfig:
    data_dir: Path
    public_url: str = "http://127.0.0.1:3000"
    key_type: KeyType = "ed25519"
    batch_size: int = 256
    batch_ms: float = 1.0
    max_pending: int = 4096
    witnesses: tuple[WitnessSpec, ...] = ()
    read_only: bool = False  # a frozen log: serves reads and proofs, accepts no entries
    bundle_memory: int = 128 << 20  # bytes for entry bundles being sent or cached
    # The log on PostgreSQL (issue 15): its DSN; frontends sharing it share one log, and
    # the data directory then holds nothing of the log's (nor is it locked).
    database: str | None = None
    key_file: Path | None = None  # the log key; DATA_DIR/log.key unless given (`--key`)
    # False when public_url is only the default made of --host and --port: a log created
    # under another URL keeps its name without a warning about an option no one passed.
    public_url_given: bool = True

    @property
    def key_path(self) -> Path:
        return self.key_file or self.data_dir / KEY_FILE


async def _load_or_create_key(config: LogConfig, storage_factory: StorageFactory) -> tuple[LogKey, bool]:
    """The log key, created 0600 on first start; a key others can read is refused. A new
    key is written once nothing else can refuse the start (the port is bound, the directory
    locked, the log's name valid), before the database that will name it (a key without a
    database is harmless, a database without its key is a dead log), and never beside a
    database that already holds a log: that log's key was lost, and a new one could never
    sign for it."""
    path = config.key_path
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise StartupError(
                f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
                f"the log key must be private: chmod 600 {path}")
        try:
            return LogKey.from_pem(path.read_bytes()), False
        except InvalidInput as e:
            raise StartupError(f"{path}: {e}") from e
    validate_origin(origin_from_url(config.public_url))
    try:
        probe = await storage_factory(config.data_dir, read_only=True)  # creates nothing
    except NoStorage:
        meta = {}
    else:
        try:
            meta = await probe.get_meta()
        finally:
            await probe.close()
    if meta:
        raise StartupError(
            f"{config.data_dir if config.database is None else 'the database'} holds log "
            f"{meta.get('origin')} (logID "
            f"{meta.get('log_id')}) but not its key: restore {path} from a backup; a new "
            f"key cannot sign for this log, so none was created")
    key = LogKey.generate(config.key_type)
    write_private(path, key.to_pem())
    return key, True


class Log:
    """A running log. Use `await Log.open(config)`, then `await log.close()`."""

    def __init__(self, config: LogConfig, key: LogKey, storage: Storage, origin: str,
                 sequencer: Sequencer, metrics: LogMetrics) -> None:
        self.config = config
        self.key = key
        self.public_key = key.public_key
        self.log_id = self.public_key.log_id()
        self.log_id_hex = self.log_id.hex()
        self.tree_id = rekor.tree_id_of(self.log_id)
        self.storage = storage
        self.origin = origin
        self.sequencer = sequencer
        self.metrics = metrics
        self.created_key = False
        self.tile_cache = TileCache()
        self.bundles = BundleCache(config.bundle_memory)
        self.witnessing: Witnessing | None = None
        self._sets: OrderedDict[int, bytes] = OrderedDict()
        self._search_slots = asyncio.Semaphore(SEARCH_SLOTS)
        self._verifier = ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="tlog-verify")
        self._verifying = 0  # costly signature checks running or waiting for a thread
        self._lock: DirLock | None = None
        self.attestations = AttestationStore(storage, config.data_dir / ATTESTATIONS_DIR)

    @classmethod
    async def open(cls, config: LogConfig, *, storage_factory: StorageFactory | None = None) -> Log:
        """Open the log in `config.data_dir` on the storage `storage_factory` opens there:
        SQLite's DATA_DIR/log.db by default (tests may pass tlog.server.storage.memory's).
        The directory is this log's until `close` (tlog.files.DirLock, shared when read-only):
        a second process on it is refused before it reads or writes anything."""
        data = config.data_dir
        if config.read_only and not config.key_path.exists():
            # A frozen log writes nothing, not even a new key.
            raise StartupError(f"--read-only serves an existing log, and {data} holds none "
                               f"(it needs {config.key_path.name} and the log's database)")
        if config.database is not None:  # shared by frontends: PostgreSQL decides who writes
            lock = None
            storage_factory = storage_factory or PostgresDriver(config.database)
        else:
            lock = DirLock.acquire(data, shared=config.read_only)
        try:
            self = await cls._open_locked(config, storage_factory or SqliteStorage.open_in)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._lock = lock
        return self

    @classmethod
    async def _open_locked(cls, config: LogConfig, storage_factory: StorageFactory) -> Log:
        data = config.data_dir
        key, created = await _load_or_create_key(config, storage_factory)
        log_id_hex = key.public_key.log_id().hex()
        try:
            storage = await storage_factory(data, read_only=config.read_only)
        except NoStorage as e:
            raise StartupError(f"--read-only serves an existing log, and {data} holds none ({e})") from e
        try:
            meta = await storage.get_meta()
            if config.read_only and not meta:
                raise StartupError(f"--read-only serves an existing log, and {data} holds none")
            if not meta:
                origin = origin_from_url(config.public_url)
                validate_origin(origin)
                try:
                    await storage.init_meta({"log_id": log_id_hex, "origin": origin})
                except StorageError:  # another frontend named the log first: checked below
                    if not await storage.get_meta():
                        raise
                meta = await storage.get_meta()
            if meta.get("log_id") != log_id_hex:
                raise StartupError(
                    f"{config.key_path} is not this log's key: the database belongs to logID "
                    f"{meta.get('log_id')}, the key file's logID is {log_id_hex}")
            origin = meta["origin"]
            wanted = origin_from_url(config.public_url)
            if wanted != origin and config.database is not None:
                raise StartupError(
                    f"--public-url {config.public_url} names the log {wanted}, but the database "
                    f"holds log {origin}: every frontend of a log serves it under its one name")
            if wanted != origin and config.public_url_given:
                log.warning("this log's name is %s (fixed when it was created); "
                            "--public-url %s would name it %s", origin, config.public_url, wanted)
            try:
                recovered = await storage.recover()
                state = TreeState.restore(recovered.size, recovered.level8, recovered.tail_leaves)
            except (InvalidInput, ValueError) as e:  # stored tiles that do not make a tree
                raise StartupError(f"the stored tree is corrupt: {e}", hint=(
                    f"the log did not start and changed nothing; `tlog fsck {data}` lists what is "
                    "damaged; restore the data directory from a backup")) from e
            root = state.root()
            if recovered.checkpoint is None:
                now = int(time.time())
                note = sign_checkpoint(Checkpoint(origin, 0, root), key)
                recovered_cp = StoredCheckpoint(0, root, note, now)
                try:
                    await storage.append_batch([], now, [], recovered_cp)  # the empty tree's checkpoint
                except StorageError:  # another frontend stored it first
                    recovered_cp = await storage.latest_checkpoint() or recovered_cp
                    if recovered_cp.size != 0:
                        raise
            else:
                recovered_cp = recovered.checkpoint
            if recovered_cp.root != root:
                raise StartupError(
                    f"stored tiles give root {root.hex()} at size {state.size}, but the latest "
                    f"checkpoint says {recovered_cp.root.hex()}: run `tlog fsck`")
            head = Published(state, root, recovered_cp.note, {})
            metrics = LogMetrics()
            metrics.tree_size.set(state.size)
            metrics.checkpoint_time.set(recovered_cp.created)
            metrics.pending.set_function(lambda: seq.pending)
            metrics.key_cache_bytes.set_function(lambda: hashedrekord.KEY_CACHE.weight)
            metrics.key_cache_keys.set_function(lambda: len(hashedrekord.KEY_CACHE))
            seq: Sequencer
            if isinstance(storage, PostgresStorage) and not config.read_only:
                seq = ClusterSequencer(storage, key, origin, head, batch_size=config.batch_size,
                                       max_pending=config.max_pending, metrics=metrics,
                                       event_key_of=entries.event_key_of_body)
            else:
                seq = Sequencer(storage, key, origin, head, batch_size=config.batch_size,
                                batch_ms=config.batch_ms, max_pending=config.max_pending,
                                metrics=metrics, event_key_of=entries.event_key_of_body)
        except BaseException:
            await storage.close()
            raise
        self = cls(config, key, storage, origin, seq, metrics)
        if config.witnesses:
            self.witnessing = Witnessing(
                config.witnesses, lambda: (self.head.state.size, self.head.note), self._proof_hashes,
                on_result=lambda name, outcome: metrics.witness_cosignatures.labels(name, outcome).inc())
            seq.listeners.append(self.witnessing.head_changed)
            self.witnessing.start()
        self.created_key = created
        seq.start()
        return self

    async def close(self) -> None:
        try:
            if self.witnessing is not None:
                await self.witnessing.close()
            await self.sequencer.close()
            await self.storage.close()
        finally:
            self._verifier.shutdown(wait=False)
            if self._lock is not None:
                self._lock.release()

    @property
    def head(self) -> Published:
        return self.sequencer.head

    @property
    def public_url(self) -> str:
        return self.config.public_url

    # -- writes ---------------------------------------------------------------------------
    async def admit(self, request: object) -> Admitted:
        """Check a proposed entry (shape, key, signature) and prepare it for sequencing.
        A costly signature check runs on a verification thread (VERIFY_THREADS), so one
        expensive request does not stall every other one."""
        submission = entries.check_request(request)  # by kind (tlog.core.entries)
        checks = self.metrics.signature_checks
        if not submission.costly:
            checks.labels("inline").inc()
            entry = submission.verify()
        elif self._verifying >= VERIFY_WAITING:
            raise Overloaded(f"{self._verifying} signature checks are already waiting")
        else:
            checks.labels("thread").inc()
            self._verifying += 1
            try:
                entry = await asyncio.get_running_loop().run_in_executor(self._verifier,
                                                                          submission.verify)
            finally:
                self._verifying -= 1
        body = entry.canonical_body()
        keys = (*(search_key("a", a.encode()) for a in entry.artifact_keys()),
                *(search_key("k", k) for k in entry.key_fingerprints()),
                *(search_key("i", i.encode()) for i in entries.body_identities(body)))
        if (kept := entry.attestation()) is not None:
            await self.attestations.put(*kept)
        return Admitted(body, leaf_hash(body), keys, event_key=submission.event_key())

    async def submit(self, request: object) -> dict[str, Any]:
        """Admit, sequence and answer with the LogEntry (raises Duplicate, Overloaded…)."""
        if self.config.read_only:
            raise Forbidden("this log is frozen (read-only): it accepts no new entries; its "
                            "entries, proofs and checkpoints stay available")
        admitted = await self.admit(request)
        done: Sequenced = await self.sequencer.submit(admitted)
        self._remember_set(done.index, done.set_sig)
        head = done.head
        proof = rekor.InclusionProof(done.index, head.state.size, head.root, done.proof, head.note)
        return rekor.log_entry(admitted.leaf_hash, admitted.body, done.integrated_time, self.log_id,
                               done.index, done.set_sig, proof)

    # -- reads ----------------------------------------------------------------------------
    async def _tree(self, head: Published, tiles: set[int]) -> TileTree:
        """Fetch the level-0 tiles a computation needs: from the expanded-tile cache, from
        the last batch's tiles, else from storage — the stored expansions of full tiles in
        one query (nothing rehashed), and the leaves of any other in a second."""
        fetched: dict[int, bytes | ExpandedTile] = {}
        missing = set()
        for t in tiles:
            cached = self.tile_cache.get(t)
            if cached is not None:
                fetched[t] = cached
            elif t in head.fresh_tiles:
                fetched[t] = self.tile_cache.put(t, head.fresh_tiles[t])
            else:
                missing.add(t)
        if missing:
            for t, nodes in (await self.storage.read_expanded_tiles(missing)).items():
                fetched[t] = self.tile_cache.put(t, ExpandedTile(nodes))
                missing.discard(t)
        if missing:  # tiles of an older database opened read-only, expanded here
            for t, data in (await self.storage.read_leaf_tiles(missing)).items():
                fetched[t] = self.tile_cache.put(t, data)
        return TileTree(head.state, fetched, head.memo)

    def _set(self, index: int, integrated_time: int, body: bytes) -> bytes:
        """The entry's SET: signed once, then served from a small cache (an entry's SET
        payload never changes; re-signing it per read only burns CPU)."""
        hit = self._sets.get(index)
        if hit is None:
            hit = sign_set(self.key, body, integrated_time, self.log_id_hex, index)
            self._remember_set(index, hit)
        return hit

    def _remember_set(self, index: int, set_sig: bytes) -> None:
        self._sets[index] = set_sig
        if len(self._sets) > 65536:
            self._sets.popitem(last=False)

    async def _log_entry(self, index: int, integrated_time: int, body: bytes,
                         head: Published) -> dict[str, Any]:
        size = head.state.size
        tree = await self._tree(head, tiles_for_inclusion(head.state, index, size))
        proof = rekor.InclusionProof(index, size, head.root, tree.inclusion_proof(index, size),
                                     head.note)
        set_sig = self._set(index, integrated_time, body)
        answer = rekor.log_entry(leaf_hash(body), body, integrated_time, self.log_id, index,
                                 set_sig, proof)
        kind = entries.stored_kind(body)
        name = None if kind is None else kind.attestation_key(body)
        if name is not None and (kept := await self.attestations.get(name)) is not None:
            # Rekor's LogEntry.attestation {data}: the envelope (dsse), the payload (intoto).
            next(iter(answer.values()))["attestation"] = {"data": base64.b64encode(kept).decode()}
        return answer

    async def entries_by_index(self, indexes: Sequence[int]) -> list[dict[str, Any]]:
        """LogEntries with fresh inclusion proofs against the current checkpoint."""
        head = self.head
        size = head.state.size
        if any(i >= size for i in indexes) and await self._caught_up():
            head = self.head
            size = head.state.size
        for i in indexes:
            if not 0 <= i < size:
                raise NotFound(f"log index {i} is not in the log (tree size {size})")
        rows = await self.storage.read_entries(list(indexes))
        return [await self._log_entry(i, rows[i][0], rows[i][1], head) for i in indexes]

    async def entries_by_uuid(self, uuids: Sequence[bytes]) -> list[dict[str, Any]]:
        """The entries of the UUIDs found. One stored but past the tree size served is
        another frontend's newest (`_caught_up`); one not stored at all is not in the log
        (every frontend reads the same database): no refresh could find it."""
        found = await self.storage.find_leaves(list(uuids))
        size = self.head.state.size
        if any(found.get(u, -1) >= size for u in uuids) and await self._caught_up():
            size = self.head.state.size
        return await self.entries_by_index([found[u] for u in uuids if u in found and found[u] < size])

    async def _caught_up(self) -> bool:
        """On PostgreSQL, a follower's head can lag another frontend's 201 by the few
        milliseconds its notification takes: refresh it (ClusterSequencer.catch_up) before
        a read answers 404. True if the head moved; a log of its own is always current."""
        seq = self.sequencer
        return isinstance(seq, ClusterSequencer) and await seq.catch_up()

    async def consistency(self, first: int, last: int) -> tuple[bytes, list[bytes]]:
        """Root at `last` and the RFC 9162 proof from `first` — O(log n) lookups."""
        head = self.head
        size = head.state.size
        if not 1 <= first <= last <= size:
            raise InvalidInput(
                f"no consistency proof from size {first} to size {last}: need "
                f"1 ≤ firstSize ≤ lastSize ≤ {size} (the current tree size)")
        tree = await self._tree(head, tiles_for_consistency(head.state, first, last))
        hashes = tree.consistency_proof(first, last) if first < last else []
        return tree.root_at(last), hashes

    async def _proof_hashes(self, first: int, last: int) -> list[bytes]:
        return (await self.consistency(first, last))[1]

    def checkpoint_note(self) -> bytes:
        """The checkpoint for C2SP readers: with witness cosignatures when there are some."""
        head = self.head
        if self.witnessing is None:
            return head.note
        return self.witnessing.published(head.state.size, head.note)

    async def checkpoints(self, before: int, limit: int) -> list[StoredCheckpoint]:
        """Signed checkpoints the log published below tree size `before`, newest first."""
        return await self.storage.checkpoints_before(min(before, self.head.state.size + 1), limit)

    async def search(self, artifact_key: str | None, fingerprint: bytes | None,
                     operator: str = "or", *, identities: Sequence[str] = (),
                     before: int | None = None, limit: int = MAX_SEARCH_RESULTS) -> SearchPage:
        """The newest entries (at most `limit`, below log index `before`) for an artifact
        digest, a public key and/or certificate identities (each as
        tlog.core.identity.identity_query gives it), confirmed against their bodies.

        What one search costs is bounded however many entries share a key (issue 11, item
        1): candidates come from the index SEARCH_CHUNK at a time, newest first, and stop
        one match past `limit`; their bodies are read per chunk (never one query over every
        candidate) under one of SEARCH_SLOTS slots, so concurrent searches hold at most that
        many chunks; each body is confirmed from the values read off its bytes
        (`_Matcher`); and the event loop is handed back every SEARCH_SLICE seconds.
        """
        keys = []  # the artifact's first: for "and", storage scans the first key's entries
        if artifact_key is not None:
            keys.append(search_key("a", artifact_key.encode()))
        if fingerprint is not None:
            keys.append(search_key("k", fingerprint))
        keys += [search_key("i", i.encode()) for i in identities]
        every = operator == "and"
        matches = _Matcher(artifact_key, fingerprint, identities, every)
        size = self.head.state.size
        cursor = size if before is None else min(before, size)
        found: list[tuple[int, bytes]] = []  # (index, UUID), newest first
        slice_end = time.perf_counter() + SEARCH_SLICE
        while keys and cursor > 0 and len(found) <= limit:
            async with self._search_slots:
                chunk = await self.storage.search(keys, before=cursor, limit=SEARCH_CHUNK, every=every)
                rows = await self.storage.read_entries(chunk)
                for index in chunk:
                    body = rows[index][1] if index in rows else b""
                    if matches(body):
                        found.append((index, leaf_hash(body)))
                        if len(found) > limit:
                            break
                    if time.perf_counter() > slice_end:
                        await asyncio.sleep(0)
                        slice_end = time.perf_counter() + SEARCH_SLICE
            if len(chunk) < SEARCH_CHUNK:
                break
            cursor = chunk[-1]
        page = found[:limit]
        more_before = page[-1][0] if len(found) > limit else None
        return SearchPage([uuid for _, uuid in reversed(page)], more_before)

    def _check_exists(self, ref: TileRef, size: int) -> None:
        """404 for a tile or bundle the tree of this size does not have (yet)."""
        if tile_width_at(0 if ref.level is None else ref.level, ref.index, size) < ref.width:
            what = "entry bundle" if ref.level is None else "tile"
            raise NotFound(f"{what} {ref.path()} does not exist at tree size {size}")

    async def tile(self, ref: TileRef) -> bytes:
        """A C2SP hash tile at the current tree size (404 if it does not exist yet). Hash
        tiles are stored (level 0) or held in memory (levels ≥ 1), never recomputed from the
        leaves. Entry bundles: `entry_bundle`."""
        if ref.level is None:
            raise ValueError("an entry bundle is read with entry_bundle()")
        head = self.head
        size = head.state.size
        self._check_exists(ref, size)
        start = ref.index * TILE_WIDTH
        if ref.level == 0:
            if ref.index == size >> TILE_HEIGHT:  # the partial tail tile is in memory
                return b"".join(head.state.tail[0][:ref.width])
            # A full tile is the first 8 KiB of its expansion: cached, or as stored.
            cached = self.tile_cache.get(ref.index)
            nodes = cached.nodes if cached is not None else (
                await self.storage.read_expanded_tiles([ref.index])).get(ref.index)
            if nodes is not None:
                return nodes[:ref.width * HASH_SIZE]
            return (await self.storage.read_tile(0, ref.index))[:ref.width * HASH_SIZE]
        return b"".join(head.state.upper[TILE_HEIGHT * ref.level - TILE_HEIGHT][start:start + ref.width])

    def entry_bundle(self, ref: TileRef) -> AbstractAsyncContextManager[Bundle]:
        """A C2SP entry bundle at the current tree size (404 if it does not exist yet), held
        in `bundles` while the block runs: read and encoded once, then the same bytes for
        every reader, in bounded memory (tlog.server.bundles)."""
        self._check_exists(ref, self.head.state.size)
        start = ref.index * TILE_WIDTH

        async def build() -> bytes:
            return encode_entry_bundle(await self.storage.read_entry_range(start, start + ref.width))

        async def hold() -> AsyncIterator[Bundle]:
            # Reserve what this bundle really holds (a uint16 length per body, the bodies),
            # not the largest a bundle could be: 256 maximal bodies would make every bundle
            # count as 33 MB and a modest budget refuse a monitor's few concurrent reads.
            key = (ref.index, ref.width)
            size = 0 if self.bundles.has(key) else (
                2 * ref.width + await self.storage.entry_range_size(start, start + ref.width))
            async with self.bundles.hold(key, size, build) as bundle:
                yield bundle

        return contextlib.asynccontextmanager(hold)()

    async def health_problem(self) -> str | None:
        """Why the log cannot serve writes now, or None: halted by the signing guard, the
        last batch failed to store, or the database does not answer."""
        if self.sequencer.halted:
            return f"writes are stopped: {self.sequencer.halted}"
        if self.sequencer.last_error:
            return f"the last batch could not be stored: {self.sequencer.last_error}"
        try:
            await asyncio.wait_for(self.storage.ping(), timeout=2)
        except (TlogError, TimeoutError) as e:
            return f"the database does not answer: {e}"
        return None

    def readiness(self) -> dict[str, Any]:
        """Who sequences, for /readyz: on PostgreSQL this frontend's role, the leader's name
        and the entries pending in the database; nothing more for a log of its own."""
        seq = self.sequencer
        if not isinstance(seq, ClusterSequencer):
            return {}
        return {"role": "leader" if seq.is_leader else "follower", "leader": seq.leader_name,
                "pending": seq.pending_depth}

    def public_key_pem(self) -> bytes:
        return self.public_key.pem()

    def describe(self) -> str:
        return (f"log {self.origin} at {self.config.public_url}: logID {self.log_id_hex}, "
                f"tree size {self.head.state.size}")


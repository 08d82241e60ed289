"""Offline check of a log's data directory (`tlog fsck`): re-derive everything stored from
the entries and say precisely where what is stored differs.

It reads the server's own storage (its SQLite schema, tile chunks and indexes) and rebuilds
the tree with the server's engine, so it lives with the server; tlog.audit checks a log from
outside, over HTTP, with nothing but its pinned key.

The database is opened read-only, in one read transaction (one snapshot, even while a
server appends), and streamed in log order: entries, level-0 tiles, the search indexes
and the checkpoints are read side by side with SQLite cursors, so memory stays bounded
(the in-memory tree holds the nodes at Merkle level ≥ 8, n/128 hashes, as the server does).
Those reads are an `FsckSource`: a log on PostgreSQL (`tlog fsck --database`) gives the
same rows from server-side cursors (tlog.server.fsck_postgres), and the same checks run.

What is checked, and against what:
- entries: contiguous 0..n-1 for the latest checkpoint's size n, none beyond it; every body
  canonical for its kind (tlog.core.entries.read_body: hashedrekord, dsse, intoto) and its
  signatures verifying — for dsse and intoto, whose bodies hold hashes of what was signed,
  with the envelope or payload the log keeps (its `attestations` table, from schema
  version 4; else DATA_DIR/attestations/, where older logs kept them: a note where it is
  absent).
- tiles (C2SP tlog-tiles): level-0 hashes are the entries' RFC 6962 leaf hashes; a hash at
  level L ≥ 1 is a fault only if it matches neither the tree rebuilt from the entries nor
  the stored tile below it, so one wrong hash is reported once, at the tile that holds it;
  chunks contiguous, no hashes beyond the tree.
- tile_nodes (from schema version 5, tlog.server.storage.migrations): exactly one row per
  full level-0 tile, holding its expansion (`TileWrite.expansion`, tlog.core.tilestate:
  its nodes at levels 0–7) byte for byte as the rebuilt tree gives it — the server serves
  the full tile and inclusion proofs from this row, not from `tiles`; no row for a tile
  that is not full. As for the tiles above level 0, a row is a fault only if it matches
  neither the entries' tile nor the stored one.
- checkpoints: every one signed by the log key for the log's origin, its root the root of
  the entries at its size (RFC 9162 §2.1.1), and each consistent with the previous one by
  an RFC 9162 §2.1.4 proof built from the rebuilt tree.
- leaf_index: exactly one row per entry with its leaf hash's prefix, and one with its
  signing-event key's where it has one (a high-s ECDSA signature, NewEntry.event_key) —
  required from schema version 2 on (tlog.server.storage.migrations): a database of
  version 1 gets them when `tlog serve` first opens it, and fsck only notes that;
  search_index: exactly the artifact, public-key and certificate-identity rows of every
  entry, nothing else (tlog.server.storage.sqlite) — identity rows from schema 3 on.
- meta (log_id matches the key, origin, a schema version this code knows) and SQLite's
  own `PRAGMA integrity_check`.

Where the entries and the level-0 tiles disagree, the leaf index (a third copy of each
leaf hash's prefix) says which one changed, and checkpoints are also compared with the
tree of the stored leaf hashes, so that a changed body is reported at that entry and not
again at every checkpoint after it.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tlog.core.checkpoint import Checkpoint, validate_origin, verify_checkpoint
from tlog.core.compact import root_from_leaf_hashes
from tlog.core.entries import body_identities, read_body
from tlog.core.entries.stored import StoredBody
from tlog.core.keys import LogKey, LogPublicKey
from tlog.core.merkle import HASH_SIZE, leaf_hash, verify_consistency
from tlog.core.note import parse_note
from tlog.core.tiles import TILE_HEIGHT, TILE_WIDTH, tile_width_at
from tlog.core.tilestate import EXPANSION_LEVELS, EXPANSION_SIZE, TileWrite, TreeState
from tlog.errors import InvalidInput, TlogError, VerificationError
from tlog.server.attestations import AttestationFiles
from tlog.server.layout import ATTESTATIONS_DIR, DB_FILE, KEY_FILE
from tlog.server.storage.base import StorageError, key_prefix, search_key
from tlog.server.storage.migrations import EVENT_KEYS, IDENTITY_KEYS, TILE_NODES
from tlog.server.storage.sqlite import SCHEMA_VERSION, schema_version
from tlog.server.tree import TileTree

Progress = Callable[[int, int], None]  # (leaves checked, tree size)

# Faults listed per kind; more are counted, not listed.
MAX_LISTED = 50
# Stand-in for a leaf hash nothing records (entry and tile hash both missing).
_UNKNOWN = b"\0" * HASH_SIZE


class FsckError(TlogError):
    """The data directory cannot be checked at all: missing, unreadable, or no log key."""


@dataclass(frozen=True)
class Fault:
    """One thing wrong: its kind, where it is (entry, tile, checkpoint...) and what."""

    kind: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.where}: {self.detail}"


@dataclass
class FsckReport:
    """What `check_data_dir` found. `ok` only if nothing at all is wrong."""

    data_dir: str
    signatures_checked: bool = True
    max_listed: int = MAX_LISTED
    tree_size: int = 0
    root: bytes | None = None  # recomputed from the entries at tree_size (None: unknown)
    entries_checked: int = 0
    tiles_checked: int = 0
    checkpoints_checked: int = 0
    checkpoint_signatures_checked: bool = True
    checkpoints_unchecked: int = 0  # roots that could not be recomputed (leaves missing)
    complete: bool = True  # False if the database could not be read to the end
    faults: list[Fault] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    # What is not a fault but limits the check or asks the operator to act (an old schema).
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, where: str, detail: str) -> None:
        listed = self.counts.get(kind, 0)
        self.counts[kind] = listed + 1
        if listed < self.max_listed:
            self.faults.append(Fault(kind, where, detail))

    @property
    def fault_count(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.fault_count == 0 and self.complete

    def at(self, kind: str, where: str) -> list[Fault]:
        """The listed faults of one kind at one place."""
        return [f for f in self.faults if f.kind == kind and f.where == where]

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "dataDir": self.data_dir, "complete": self.complete,
                "treeSize": self.tree_size, "rootHash": self.root.hex() if self.root else None,
                "entriesChecked": self.entries_checked,
                "signaturesChecked": self.signatures_checked,
                "tilesChecked": self.tiles_checked,
                "checkpointsChecked": self.checkpoints_checked,
                "checkpointSignaturesChecked": self.checkpoint_signatures_checked,
                "checkpointsUnchecked": self.checkpoints_unchecked,
                "faultCount": self.fault_count, "faultCounts": dict(self.counts),
                "faults": [{"kind": f.kind, "where": f.where, "detail": f.detail}
                           for f in self.faults],
                "notes": list(self.notes)}


def check_data_dir(path: Path, *, progress: Progress | None = None,
                   log_key: LogPublicKey | None = None, signatures: bool = True,
                   max_listed: int = MAX_LISTED) -> FsckReport:
    """Check a data directory (DATA_DIR/log.db, DATA_DIR/log.key) without modifying it.

    `log_key` pins the log's public key (else DATA_DIR/log.key's is used); `signatures`
    False skips verifying entry signatures, the slow part. Raises FsckError if there is
    nothing to check (no such directory, no log.db, no key at all); everything else wrong
    is a fault in the report.
    """
    data = Path(path)
    db = data / DB_FILE
    if not data.is_dir():
        raise FsckError(f"{data} is not a directory")
    if not db.is_file():
        raise FsckError(f"{db} does not exist: {data} is not a tlog data directory")
    try:
        with db.open("rb"):
            pass
    except OSError as e:
        raise FsckError(f"cannot read {db}: {e.strerror or e}") from e
    report = FsckReport(str(data), signatures_checked=signatures, max_listed=max_listed)
    pub = _log_key(data / KEY_FILE, log_key, report)
    source = _SqliteSource(_open_read_only(db))
    try:
        _Check(source, report, pub, log_key is not None, signatures, progress,
               AttestationFiles(data / ATTESTATIONS_DIR)).run()
    finally:
        source.close()
    return report


def check_database(dsn: str, *, key_file: Path | None = None, data_dir: Path | None = None,
                   progress: Progress | None = None, log_key: LogPublicKey | None = None,
                   signatures: bool = True, max_listed: int = MAX_LISTED) -> FsckReport:
    """Check a log kept in PostgreSQL (`tlog serve --database DSN`) without modifying it:
    the same checks as `check_data_dir`, on the rows tlog.server.fsck_postgres streams.

    The log key is `log_key` (public) or the one in `key_file` (the `--key` the frontends
    use; checked like DATA_DIR/log.key); `data_dir` is a frontend's data directory, for
    the dsse/intoto attestations a frontend kept there before schema version 4 (since,
    they are in the database). Raises FsckError if there is no key at all or
    the database cannot be reached or holds no log."""
    from tlog.server.fsck_postgres import PostgresSource

    if key_file is None and log_key is None:
        raise FsckError("give the log's key to check the checkpoints' signatures: --key FILE "
                        "(the frontends' key) or --log-key PEM (its public key)")
    source = PostgresSource(dsn)
    try:
        report = FsckReport(source.name, signatures_checked=signatures, max_listed=max_listed)
        pub = log_key if key_file is None else _log_key(key_file, log_key, report)
        # No data directory: no old files, only the database's attestations.
        attestations = AttestationFiles((data_dir or Path(os.devnull)) / ATTESTATIONS_DIR)
        _Check(source, report, pub, log_key is not None, signatures, progress, attestations,
               key_name=KEY_FILE if key_file is None else key_file.name).run()
    finally:
        source.close()
    return report


def _log_key(path: Path, pinned: LogPublicKey | None, report: FsckReport) -> LogPublicKey | None:
    """The key checkpoints are verified with: `pinned`, else the one in the private key
    file `path` (DATA_DIR/log.key, or a frontend's --key), whose faults are reported."""
    if not path.exists():
        if pinned is None:
            raise FsckError(f"{path} does not exist: give the log's public key (--log-key PEM) "
                            "to check the checkpoints' signatures")
        return pinned
    found = None
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            report.add("key", path.name, f"readable by other users (mode {stat.S_IMODE(mode):04o}): "
                       f"the server refuses to start with it; chmod 600 {path}")
        found = LogKey.from_pem(path.read_bytes()).public_key
    except OSError as e:
        report.add("key", path.name, f"cannot be read: {e.strerror or e}")
    except InvalidInput as e:
        report.add("key", path.name, str(e))
    if pinned is not None and found is not None and found != pinned:
        report.add("key", path.name, f"holds the key with logID {found.log_id().hex()}, not the "
                   f"given log key (logID {pinned.log_id().hex()})")
    return pinned or found


def _open_read_only(db: Path) -> sqlite3.Connection:
    # mode=ro: SQLite refuses every write. Without a -wal file nothing but the main file
    # holds committed data, so also immutable=1, which keeps a read-only connection from
    # leaving empty -wal/-shm files behind. With one (a running or crashed server), read
    # through the WAL: the transactions committed there are part of the log.
    uri = db.resolve().as_uri() + "?mode=ro"
    if not db.with_name(db.name + "-wal").exists():
        uri += "&immutable=1"
    try:
        return sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise FsckError(f"cannot open {db}: {e}") from e


class FsckSource(Protocol):
    """All fsck reads of a log's storage, so one set of checks serves every driver: rows
    in one snapshot (`snapshot` first), each kind streamed in log order as (key, value…)
    tuples, so memory stays bounded whatever the log's size. SQLite's is `_SqliteSource`;
    PostgreSQL's is tlog.server.fsck_postgres.PostgresSource."""

    name: str  # where faults of the database itself are reported ("log.db", the DSN)
    errors: tuple[type[Exception], ...]  # what a failed read raises
    current_schema: int  # the schema version this code writes
    event_keys_from: int  # the first schema version with every event key's leaf-index row
    identity_keys_from: int  # the first with every certificate identity's search row
    tile_nodes_from: int  # the first with every full level-0 tile's expansion (`tile_nodes`)

    def snapshot(self) -> None: ...
    def integrity(self) -> Iterable[str]:
        """The engine's own check: one line per problem found."""
        ...
    def meta(self) -> dict[Any, Any]: ...
    def schema_version(self, meta: dict[Any, Any]) -> int | None:
        """The stored schema version (None: none recorded); StorageError if unreadable."""
        ...
    def latest_size(self) -> int | None: ...
    def entries(self) -> Iterable[tuple[Any, ...]]:  # (idx, body) by idx
        ...
    def tiles(self, level: int) -> Iterable[tuple[Any, ...]]:  # (idx, start, hashes) by idx, start
        ...
    def tiles_outside(self, levels: int) -> Iterable[tuple[Any, ...]]:  # (level, idx), distinct
        ...
    def checkpoints(self) -> Iterable[tuple[Any, ...]]:  # (size, root, note) by size
        ...
    def leaf_rows(self) -> Iterable[tuple[Any, ...]]:  # (idx, prefix) by idx, prefix
        ...
    def search_rows(self) -> Iterable[tuple[Any, ...]]:  # (idx, key) by idx, key
        ...
    def attestation(self, name: str) -> bytes | None:
        """The attestation kept under `name` (None: none, or a schema before version 4)."""
        ...
    def tile_nodes(self) -> Iterable[tuple[Any, ...]]:  # (idx, nodes) by idx; none before version 5
        ...
    def close(self) -> None: ...


class _SqliteSource:
    """A data directory's log.db, opened read-only (`_open_read_only`): SQLite cursors."""

    name = DB_FILE
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    current_schema = SCHEMA_VERSION
    event_keys_from = EVENT_KEYS
    identity_keys_from = IDENTITY_KEYS
    tile_nodes_from = TILE_NODES

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def snapshot(self) -> None:
        self.conn.execute("BEGIN")  # one snapshot for every cursor below

    def integrity(self) -> Iterator[str]:
        return (f"integrity_check: {line}" for (line,) in self.conn.execute("PRAGMA integrity_check")
                if line != "ok")

    def meta(self) -> dict[Any, Any]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def schema_version(self, meta: dict[Any, Any]) -> int | None:
        return schema_version({str(k): str(v) for k, v in meta.items()})

    def latest_size(self) -> int | None:
        (latest,) = self.conn.execute("SELECT MAX(size) FROM checkpoints").fetchone()
        return latest if latest is None or isinstance(latest, int) else -1  # -1: no tree size

    def entries(self) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute("SELECT idx, body FROM entries ORDER BY idx")

    def tiles(self, level: int) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT idx, start, hashes FROM tiles WHERE level = ? ORDER BY idx, start", (level,))

    def tiles_outside(self, levels: int) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT DISTINCT level, idx FROM tiles WHERE level < 0 OR level >= ?", (levels,))

    def checkpoints(self) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute("SELECT size, root, note FROM checkpoints ORDER BY size")

    def leaf_rows(self) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute("SELECT idx, prefix FROM leaf_index ORDER BY idx, prefix")

    def search_rows(self) -> Iterable[tuple[Any, ...]]:
        return self.conn.execute("SELECT idx, key FROM search_index ORDER BY idx, key")

    def _newer_table(self, sql: str, *params: object) -> sqlite3.Cursor | None:
        """Run `sql` on a table a later schema version added (attestations: 4, tile_nodes:
        5); None on an older database, which has no such table."""
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return None
            raise

    def attestation(self, name: str) -> bytes | None:
        rows = self._newer_table("SELECT data FROM attestations WHERE name = ?", name)
        row = None if rows is None else rows.fetchone()
        return None if row is None else _as_bytes(row[0])

    def tile_nodes(self) -> Iterable[tuple[Any, ...]]:
        return self._newer_table("SELECT idx, nodes FROM tile_nodes ORDER BY idx") or ()

    def close(self) -> None:
        self.conn.close()


def _span(what: str, start: int, end: int) -> str:
    """"entry 5" or "entries 5..9" for the indexes start..end-1."""
    if end == start + 1:
        return f"{what} {start}"
    plural = what[:-1] + "ies" if what.endswith("y") else what + "s"
    return f"{plural} {start}..{end - 1}"


def _prefix_hex(value: object) -> str:
    """An 8-byte index key (a signed SQLite integer) as the hex of its bytes."""
    if isinstance(value, int):
        return (value & ((1 << 64) - 1)).to_bytes(8, "big").hex()
    return repr(value)


def _as_bytes(value: object) -> bytes:
    """A BLOB column's value; text stored by mistake is hashed as its UTF-8 bytes."""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


class _Runs:
    """Consecutive indexes gathered so one fault says "entries 5..9", not five faults."""

    def __init__(self, emit: Callable[[int, int], None]) -> None:
        self._emit = emit
        self._start: int | None = None
        self._end = 0

    def add(self, start: int, end: int | None = None) -> None:
        end = start + 1 if end is None else end
        if self._start is not None and self._start <= start <= self._end:
            self._end = max(self._end, end)
            return
        self.flush()
        self._start, self._end = start, end

    def flush(self) -> None:
        if self._start is not None:
            self._emit(self._start, self._end)
            self._start = None


class _Rows:
    """A cursor ordered by its first column (an index), read in step with the log:
    `take(i)` returns the rows at index i and hands any rows before it — rows nobody asked
    for — to `stray`. Keys that are not integers sort last in SQLite and stay for `rest`."""

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._it = iter(rows)
        self._next = next(self._it, None)

    def peek(self) -> int | None:
        key = None if self._next is None else self._next[0]
        return key if isinstance(key, int) else None

    def take(self, key: int, stray: Callable[[tuple[Any, ...]], None]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        while (k := self.peek()) is not None and k <= key:
            assert self._next is not None
            (out.append if k == key else stray)(self._next)
            self._next = next(self._it, None)
        return out

    def rest(self) -> Iterator[tuple[Any, ...]]:
        while self._next is not None:
            row, self._next = self._next, next(self._it, None)
            yield row


@dataclass
class _StoredTile:
    """The hashes one stored tile holds at its positions 0..width-1 (None: not stored)."""

    level: int
    index: int
    hashes: list[bytes | None]
    # Every position stored and equal to what the entries give: the hash one level up is
    # then the rebuilt tree's, with no need to fold this tile again.
    clean: bool = True

    def root(self) -> bytes | None:
        """The hash of the node one tile level up that this full tile spells out."""
        if len(self.hashes) != TILE_WIDTH or any(h is None for h in self.hashes):
            return None
        return root_from_leaf_hashes(self.hashes)  # type: ignore[arg-type]


class _TileReader:
    """The stored tiles of one level, in index order, reassembled from their chunks
    (tlog.server.storage.sqlite appends one chunk per batch), with chunk faults reported on the way."""

    def __init__(self, source: FsckSource, level: int, size: int, report: FsckReport) -> None:
        self.level = level
        self.size = size
        self.report = report
        self.current: _StoredTile | None = None
        self._requested = -1
        self._rows = _Rows(source.tiles(level))

    def get(self, index: int) -> _StoredTile:
        if self.current is not None and self.current.index == index:
            return self.current
        self._requested = index
        chunks = self._rows.take(index, self._stray)
        self.current = self._assemble(index, chunks)
        return self.current

    def exhausted(self) -> bool:
        return self._rows.peek() is None

    def _stray(self, row: tuple[Any, ...]) -> None:
        self.report.add("tile", f"tile {self.level}/{row[0]}",
                        f"outside the tree (tree size {self.size}): a chunk at position {row[1]!r}")

    def _assemble(self, index: int, chunks: list[tuple[Any, ...]]) -> _StoredTile:
        width = tile_width_at(self.level, index, self.size)
        where = f"tile {self.level}/{index}"
        hashes: list[bytes | None] = [None] * width
        beyond = _Runs(lambda a, b: self.report.add(
            "tile", where, f"holds hashes beyond the tree at {_span('position', a, b)} "
            f"(at tree size {self.size} it has {width})"))
        for _, start, data in chunks:
            if not (isinstance(start, int) and start >= 0 and isinstance(data, bytes) and data
                    and len(data) % HASH_SIZE == 0):
                self.report.add("tile", f"{where} chunk at {start!r}",
                                f"malformed: not a run of {HASH_SIZE}-byte hashes at a position")
                continue
            def overlaps(a: int, b: int, start: int = start) -> None:
                self.report.add("tile", where,
                                f"chunk at {start} overlaps another at {_span('position', a, b)}")
            overlap = _Runs(overlaps)
            for k in range(len(data) // HASH_SIZE):
                pos = start + k
                if pos >= width:
                    beyond.add(pos)
                elif hashes[pos] is not None:
                    overlap.add(pos)
                else:
                    hashes[pos] = data[k * HASH_SIZE:(k + 1) * HASH_SIZE]
            overlap.flush()
        beyond.flush()
        if not chunks:
            self.report.add("tile", where, f"missing: no chunk holds any of its {width} hashes")
        else:
            gaps = _Runs(lambda a, b: self.report.add(
                "tile", where, f"{_span('position', a, b)} missing: no chunk holds them"))
            for pos, h in enumerate(hashes):
                if h is None:
                    gaps.add(pos)
            gaps.flush()
        self.report.tiles_checked += 1
        return _StoredTile(self.level, index, hashes, clean=None not in hashes)

    def finish(self) -> None:
        """Report stored tiles past the end of the tree (those within it were all read,
        unless the check stopped early for lack of entries and tiles)."""
        seen: set[object] = set()
        for idx, *_ in self._rows.rest():
            in_tree = isinstance(idx, int) and idx > self._requested and \
                tile_width_at(self.level, idx, self.size) > 0
            if not in_tree and idx not in seen:
                seen.add(idx)
                self.report.add("tile", f"tile {self.level}/{idx}",
                                f"outside the tree (tree size {self.size})")


class _Tree:
    """The tree rebuilt from one choice of leaf hashes, and the level-0 leaves a
    consistency proof may still need: RFC 9162 §2.1.4 proofs from the last checkpoint's
    size s need nodes below level 8 only in the tile holding leaf s-1 (the newest tile is
    in the TreeState itself)."""

    def __init__(self, state: TreeState, leaves: dict[int, bytearray], boundary: int) -> None:
        self.state = state
        self.leaves = leaves
        self.boundary = boundary

    @classmethod
    def empty(cls) -> _Tree:
        return cls(TreeState.empty(), {}, -1)

    def clone(self) -> _Tree:
        return _Tree(self.state.detached(), {t: bytearray(b) for t, b in self.leaves.items()}, self.boundary)

    def extend(self, hashes: list[bytes]) -> list[TileWrite]:
        pos = self.state.size
        for h in hashes:
            t = pos >> TILE_HEIGHT
            if t not in self.leaves:
                for old in [k for k in self.leaves if k != self.boundary]:
                    del self.leaves[old]
                self.leaves[t] = bytearray()
            self.leaves[t] += h
            pos += 1
        self.state, writes = self.state.extended(hashes)
        return writes

    def checkpointed(self) -> None:
        """Remember the tile a consistency proof from this size will need."""
        self.boundary = (self.state.size - 1) >> TILE_HEIGHT

    def consistency_proof(self, size1: int) -> list[bytes]:
        tiles = {self.boundary: bytes(self.leaves[self.boundary])} if self.boundary in self.leaves else {}
        return TileTree(self.state, tiles).consistency_proof(size1, self.state.size)


@dataclass
class _Signed:
    """The last checkpoint seen, and the rebuilt tree whose root it is (None: neither)."""

    size: int
    root: bytes
    tree: _Tree | None


class _Check:
    """One fsck run over an open database: state shared by the streaming passes."""

    def __init__(self, source: FsckSource, report: FsckReport, pub: LogPublicKey | None,
                 pinned: bool, signatures: bool, progress: Progress | None,
                 attestations: AttestationFiles, key_name: str = KEY_FILE) -> None:
        """`key_name`: where a key that is not the log's is reported (its file's name)."""
        self.source = source
        self.key_name = key_name
        self.attestations = attestations
        self.unverified = 0  # attestation entries whose kept envelope or payload is absent
        self.report = report
        self.pub = pub
        self.pinned = pinned
        self.signatures = signatures
        self.progress = progress
        self.origin: str | None = None
        self.phase = "opening the database"
        self.size = 0
        # The tree of the entries' leaf hashes, and — once they first disagree with the
        # stored level-0 tiles — the tree of the stored hashes, what the log published.
        self.entries = _Tree.empty()
        self.published: _Tree | None = None
        self.unknown_from: int | None = None  # first leaf neither entry nor tile records
        self.last: _Signed | None = None
        self.foreign: tuple[int, int, int, str] | None = None  # first, last size, count, origin
        # Does the schema version promise every event key's leaf-index row (`meta`), and
        # every certificate identity's search row?
        self.event_keys = True
        self.identity_keys = True
        self.tile_nodes = True  # and every full level-0 tile's expansion (schema 5)

    def run(self) -> None:
        try:
            self.source.snapshot()  # one snapshot for every cursor below
            self.integrity()
            self.meta()
            self.log()
        except self.source.errors as e:
            self.report.complete = False
            self.report.add("database", self.source.name,
                            f"{e} (while {self.phase}); the check stopped here")

    # -- the database and the log's identity ----------------------------------------------
    def integrity(self) -> None:
        """The database engine's own check (SQLite's of every page and index). If it
        cannot even run, the rest still may: a damaged page need not be one the log's
        checks read."""
        self.phase = "running the database's own check"
        try:
            for line in self.source.integrity():
                self.report.add("database", self.source.name, line)
        except self.source.errors as e:
            self.report.add("database", self.source.name, f"its own check cannot run: {e}")

    def meta(self) -> None:
        self.phase = "reading meta"
        meta = self.source.meta()
        self.schema(meta)
        origin = meta.get("origin")
        try:
            validate_origin(origin if isinstance(origin, str) else "")
            self.origin = origin
        except InvalidInput as e:
            self.report.add("meta", "origin", f"found {origin!r}: {e}")
        log_id = meta.get("log_id")
        if log_id is None:
            self.report.add("meta", "log_id", "missing")
        elif self.pub is not None and log_id != self.pub.log_id().hex():
            if self.pinned:
                self.report.add("key", "meta log_id", f"the database belongs to logID {log_id}, "
                                f"the given log key's logID is {self.pub.log_id().hex()}")
            else:
                self.report.add("key", self.key_name, f"not this log's key: its logID is "
                                f"{self.pub.log_id().hex()}, the database's (meta log_id) is {log_id}; "
                                "checkpoint signatures not checked (give the log's public key "
                                "with --log-key)")
                self.pub = None
        if self.pub is None:
            self.report.checkpoint_signatures_checked = False

    def schema(self, meta: dict[Any, Any]) -> None:
        """A schema version this code knows. An older one is a note, not a fault: an older
        tlog wrote it, and `tlog serve` migrates it (tlog.server.storage.migrations); until
        then, rows its version does not promise are not required."""
        try:
            version = self.source.schema_version(meta)
        except StorageError as e:
            self.report.add("meta", "schema", str(e))
            return
        if version is None:
            self.report.add("meta", "schema", "missing")
        elif version > self.source.current_schema:
            self.report.add("meta", "schema", f"version {version} is newer than this tlog "
                            f"knows ({self.source.current_schema}): check it with a newer tlog")
        elif version < self.source.current_schema:
            self.event_keys = version >= self.source.event_keys_from
            self.identity_keys = version >= self.source.identity_keys_from
            self.tile_nodes = version >= self.source.tile_nodes_from
            missing = [what for what, promised in (
                ("the signing-event keys of its older entries are not all in the leaf index",
                 self.event_keys),
                ("the certificate identities of its older entries are not all in the search "
                 "index", self.identity_keys),
                ("the expansions of its full tiles are not stored (proofs rehash them)",
                 self.tile_nodes)) if not promised]
            unchecked = f" (until then {'; '.join(missing)}, and are not checked)" if missing else ""
            self.report.notes.append(f"schema {version}: run `tlog serve` once to migrate it "
                                     f"to schema {self.source.current_schema}{unchecked}")

    # -- the log, in order ------------------------------------------------------------------
    def log(self) -> None:
        self.phase = "reading checkpoints"
        latest = self.source.latest_size()
        if latest is None:
            self.report.add("checkpoint", "checkpoints", "none stored: a log signs a checkpoint "
                            "of the empty tree when it is created")
        self.size = size = max(latest or 0, 0)
        self.report.tree_size = size
        levels = 0
        while tile_width_at(levels, 0, size):
            levels += 1
        self.tiles = [_TileReader(self.source, level, size, self.report) for level in range(levels)]
        self.checkpoints = _Rows(self.source.checkpoints())
        self.rows = _Rows(self.source.entries())
        self.leaf_rows = _Rows(self.source.leaf_rows())
        self.search_rows = _Rows(self.source.search_rows())
        self.missing = _Runs(lambda a, b: self.report.add(
            "entries", _span("entry", a, b), f"missing (the latest checkpoint is at tree size {size})"))
        self.node_rows = _Rows(self.source.tile_nodes() if self.tile_nodes else ())
        self.missing_nodes = _Runs(lambda a, b: self.report.add(
            "tile_nodes", f"tile 0/{a}" if b == a + 1 else f"tiles 0/{a}..0/{b - 1}",
            "missing: no row holds the expansion of " + (
                "this full tile" if b == a + 1 else "these full tiles")))

        self.phase = "reading entries"
        for row in self.checkpoints.take(0, lambda r: self.report.add(
                "checkpoint", f"checkpoint {r[0]}", "negative tree size")):
            self.checkpoint(row)
        for t in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            if self.rows.peek() is None and self.tiles[0].exhausted():
                # Nothing left to read: the rest is missing, in one fault, not n/256 loops.
                self.missing.add(t * TILE_WIDTH, size)
                self.unknown(t * TILE_WIDTH)
                break
            self.level0_tile(t)
            if self.progress is not None:
                self.progress(min(size, (t + 1) * TILE_WIDTH), size)
        self.missing.flush()
        self.missing_nodes.flush()
        for row in self.checkpoints.rest():  # only if the check stopped early above
            self.checkpoint(row)
        self.foreign_origin(-1, None)
        if self.unverified:
            self.report.notes.append(
                f"{self.unverified} dsse/intoto entries' signatures not checked: their envelope "
                f"or payload is not kept (neither in the database nor in {ATTESTATIONS_DIR}/; "
                f"the body holds only its hash)")
        if self.unknown_from is None and self.entries.state.size == size:
            self.report.root = self.entries.state.root()

        self.phase = "reading what lies beyond the tree"
        self.beyond()

    def level0_tile(self, t: int) -> None:
        """One level-0 tile: its entries, index rows and stored hashes, then the trees."""
        first = t * TILE_WIDTH
        stored = self.tiles[0].get(t)
        by_entries: list[bytes | None] = []
        by_tiles: list[bytes | None] = []
        for p, tile_hash in enumerate(stored.hashes):
            h = self.entry(first + p, tile_hash)
            if h is None or tile_hash is None or h != tile_hash:
                stored.clean = False
            by_entries.append(h if h is not None else tile_hash)
            by_tiles.append(tile_hash if tile_hash is not None else h)
        if self.published is None and by_tiles != by_entries:
            self.published = self.entries.clone()
        # Feed both trees, cutting at every checkpointed size inside the tile. The write
        # that completes a full tile carries its expansion, by the entries and (where they
        # differ) by the stored tile: what its `tile_nodes` row may hold.
        pos, end = first, first + len(stored.hashes)
        expansions: list[bytes] = []
        while pos < end:
            nxt = self.checkpoints.peek()
            stop = nxt if nxt is not None and pos < nxt < end else end
            writes = self.entries.extend(self.known(by_entries[pos - first:stop - first], pos))
            expansions += [w.expansion for w in writes if w.expansion]
            if self.published is not None:
                expansions += [w.expansion for w in self.published.extend(
                    self.known(by_tiles[pos - first:stop - first], pos)) if w.expansion]
            self.upper(writes)
            pos = stop
            for row in self.checkpoints.take(pos, lambda r: None):
                self.checkpoint(row)
        self.expansion(t, len(stored.hashes) == TILE_WIDTH, expansions)

    def expansion(self, t: int, full: bool, expected: list[bytes]) -> None:
        """Level-0 tile t's `tile_nodes` row (from schema 5): one for a full tile, equal
        to one of the `expected` expansions (the entries', the stored tile's: if those two
        differ, the tile or the entry was reported), none for a partial one. The server
        reads a full tile and its proofs' nodes from this row alone (tlog.server.log), so
        a wrong byte here is a wrong tile served."""
        if not self.tile_nodes:
            return
        rows = self.node_rows.take(t, self._stray_tile_nodes)
        if not full:
            for row in rows:
                self._stray_tile_nodes(row)
            return
        if not rows:
            self.missing_nodes.add(t)
            return
        self.missing_nodes.flush()
        where, nodes = f"tile 0/{t}", rows[0][1]
        if not isinstance(nodes, bytes) or len(nodes) != EXPANSION_SIZE:
            size = f"{len(nodes)} bytes" if isinstance(nodes, bytes) else f"a {type(nodes).__name__}"
            self.report.add("tile_nodes", where, f"malformed: {size}, not the {EXPANSION_SIZE} "
                            f"bytes of a tile's nodes at levels 0–{TILE_HEIGHT - 1}")
            return
        known = self.unknown_from is None or self.unknown_from >= (t + 1) * TILE_WIDTH
        if not known or not expected or nodes in expected:
            return  # it matches, or the tile's leaves are unknown (reported above)
        want = expected[-1]  # the stored tile's, which the row stands for
        wrong = [at for at in range(0, EXPANSION_SIZE, HASH_SIZE)
                 if nodes[at:at + HASH_SIZE] != want[at:at + HASH_SIZE]]
        at = wrong[0]
        level = max(lv for lv, begin in enumerate(EXPANSION_LEVELS) if begin <= at)
        self.report.add("tile_nodes", where, f"row does not match its tile's hashes: "
                        f"{len(wrong)} of its {EXPANSION_SIZE // HASH_SIZE} hashes differ, the "
                        f"first at level {level} node {(at - EXPANSION_LEVELS[level]) // HASH_SIZE}: "
                        f"it holds {nodes[at:at + HASH_SIZE].hex()}, the tile's leaves give "
                        f"{want[at:at + HASH_SIZE].hex()}")

    def _stray_tile_nodes(self, row: tuple[Any, ...]) -> None:
        idx = row[0]
        if not isinstance(idx, int):
            self.report.add("tile_nodes", f"tile 0/{idx!r}", "row with a tile index that is not an integer")
            return
        self.report.add("tile_nodes", f"tile 0/{idx}", f"a row, but the tile is not full at tree "
                        f"size {self.size}: only a full tile's expansion is stored")

    def known(self, hashes: list[bytes | None], first: int) -> list[bytes]:
        for k, h in enumerate(hashes):
            if h is None:
                self.unknown(first + k)
                break
        return [_UNKNOWN if h is None else h for h in hashes]

    def unknown(self, index: int) -> None:
        """No record of leaf `index`: roots from here on cannot be recomputed."""
        if self.unknown_from is None or index < self.unknown_from:
            self.unknown_from = index

    # -- one entry ----------------------------------------------------------------------------
    def entry(self, index: int, tile_hash: bytes | None) -> bytes | None:
        """Check entry `index` and its index rows; return its leaf hash (None if absent)."""
        rows = self.rows.take(index, lambda r: self.report.add(
            "entries", f"entry {r[0]}", "negative log index"))
        prefixes = [r[1] for r in self.leaf_rows.take(index, self._stray_leaf_row)]
        keys = [r[1] for r in self.search_rows.take(index, self._stray_search_row)]
        if not rows:
            # Reported once as a run; rows of the indexes that point at it are not faults
            # of their own: nothing says what they should be.
            self.missing.add(index)
            return None
        self.missing.flush()
        self.report.entries_checked += 1
        body = _as_bytes(rows[0][1])
        h = leaf_hash(body)
        entry, subjects = self.body(index, body, rows[0][1])
        agrees = tile_hash is None or tile_hash == h
        if not agrees:
            assert tile_hash is not None
            self.leaf_mismatch(index, h, tile_hash, prefixes)
        # The event key of a body that verifies and is the logged one; else it is unknown
        # (what was logged is not there to say), and one more row is not a fault.
        event = entry.event_key() if entry is not None and agrees else None
        self.leaf_index(index, h, tile_hash, prefixes, event, entry is not None and agrees)
        if entry is not None and agrees:
            self.search_index(index, body, entry, subjects, keys)
        return h

    def body(self, index: int, body: bytes,
             stored: object) -> tuple[StoredBody | None, tuple[str, ...] | None]:
        """The parsed entry if its body is canonical for its kind and its signatures verify
        (or cannot be checked: no kept attestation), with the search keys only its kept
        attestation gives (in-toto subjects; None where unknown)."""
        where = f"entry {index}"
        if not isinstance(stored, bytes):
            self.report.add("body", where, f"stored as {type(stored).__name__}, not a blob")
        try:
            entry = read_body(body)
        except InvalidInput as e:
            self.report.add("body", where, str(e))
            return None, None
        if not self.signatures:
            return entry, () if entry.attestation_key is None else None
        kept = None if entry.attestation_key is None else self.attestation(entry.attestation_key)
        try:
            subjects = entry.verify(kept)
        except InvalidInput as e:
            self.report.add("signature", where, str(e))
            return None, None
        if subjects is None:
            self.unverified += 1
        return entry, subjects

    def attestation(self, name: str) -> bytes | None:
        """The attestation kept under `name`: the database's, else an old file's; None if
        neither holds bytes that hash to `name`."""
        kept = self.source.attestation(name)
        if kept is not None and hashlib.sha256(kept).hexdigest() == name:
            return kept
        return self.attestations.read(name)

    def leaf_mismatch(self, index: int, h: bytes, tile_hash: bytes, prefixes: list[object]) -> None:
        """The entry's leaf hash is not the level-0 tile's: the leaf index, a third record
        of the leaf hash, says which of the two changed."""
        t, p = divmod(index, TILE_WIDTH)
        if key_prefix(tile_hash) in prefixes and key_prefix(h) not in prefixes:
            self.report.add("body", f"entry {index}", f"not the body that was logged: its leaf "
                            f"hash is {h.hex()}, tile 0/{t} and the leaf index hold {tile_hash.hex()}")
        else:
            self.report.add("tile", f"tile 0/{t} position {p}",
                            f"holds {tile_hash.hex()}, but entry {index}'s leaf hash is {h.hex()}")

    def leaf_index(self, index: int, h: bytes, tile_hash: bytes | None, prefixes: list[object],
                   event: bytes | None, event_known: bool = True) -> None:
        """Exactly one row with the prefix of the leaf hash (of the entry's, or of the
        stored one where the two differ: that is reported above), and one with the prefix
        of its signing-event key if it has one (`event`, as the sequencer stored it; if
        not `event_known`, any one more row) — optional before schema version 2."""
        accepted = {key_prefix(h)} | ({key_prefix(tile_hash)} if tile_hash is not None else set())
        good = [x for x in prefixes if x in accepted]
        event_prefix = None if event is None else key_prefix(event)
        wrong = [x for x in prefixes if x not in accepted and x != event_prefix]
        if not event_known:
            wrong = wrong[1:]
        leaf_row = f"prefix {_prefix_hex(key_prefix(h))}"
        event_row = None if event_prefix is None else f"event-key prefix {_prefix_hex(event_prefix)}"
        missing = ([] if good else [leaf_row]) + \
            ([event_row] if event_row is not None and event_prefix not in prefixes
             and self.event_keys else [])
        problems = []
        if not prefixes:
            problems.append(f"no row (expected {' and '.join(missing)})")
        elif missing and not wrong:
            problems.append(f"no row with {' and '.join(missing)}")
        if wrong:
            expected = _prefix_hex(key_prefix(h)) + ("" if event_row is None else f" and {event_row}")
            problems.append(f"row with prefix {', '.join(_prefix_hex(x) for x in wrong)}, "
                            f"expected {expected}")
        if len(good) > 1:
            problems.append(f"{len(good)} rows, expected one")
        if problems:
            self.report.add("leaf_index", f"entry {index}", "; ".join(problems))

    def search_index(self, index: int, body: bytes, entry: StoredBody,
                     subjects: tuple[str, ...] | None, keys: list[object]) -> None:
        """Exactly the artifact rows, the public-key rows and, from schema 3 on, the rows of
        the signing certificates' identities (tlog.server.log.Log.admit; before schema 3
        they may be there or not: `tlog serve` writes them when it migrates).

        The artifact rows of a dsse or intoto entry include its in-toto subjects' digests,
        which its body does not hold: with the kept envelope or payload (`subjects`) they
        are re-derived and checked like the rest; without it (absent, or --no-signatures)
        the body's own keys must still have their rows, and any further row is taken for a
        subject's — fsck cannot tell a wrong or missing subject row then."""
        expected = {search_key("a", a.encode()): f"artifact {a}"
                    for a in (*entry.artifact_keys, *(subjects or ()))}
        expected |= {search_key("k", s.fingerprint): f"public key {s.fingerprint.hex()}"
                     for s in entry.signers}
        identities = {search_key("i", i.encode()): f"identity {i}" for i in body_identities(body)}
        found = set(keys)
        if self.identity_keys:
            expected |= identities
        else:
            found -= identities.keys()
        problems = [f"no row for {what} (key {_prefix_hex(k)})"
                    for k, what in expected.items() if k not in found]
        if subjects is not None:
            problems += [f"unexpected row with key {_prefix_hex(k)}" for k in sorted(
                found - expected.keys(), key=str)]
        if problems:
            self.report.add("search_index", f"entry {index}", "; ".join(problems))

    def _stray_leaf_row(self, row: tuple[Any, ...]) -> None:
        self.report.add("leaf_index", f"entry {row[0]}", f"row with prefix {_prefix_hex(row[1])} "
                        "for a negative log index")

    def _stray_search_row(self, row: tuple[Any, ...]) -> None:
        self.report.add("search_index", f"entry {row[0]}", f"row with key {_prefix_hex(row[1])} "
                        "for a negative log index")

    # -- tiles above level 0 ------------------------------------------------------------------
    def upper(self, writes: list[TileWrite]) -> None:
        """Compare the nodes the entries just completed at levels 8, 16… with the stored
        tiles; a stored hash that matches the stored tile below it is not a fault of its
        own (the tile below was reported)."""
        for w in sorted(writes, key=lambda w: (w.level, w.index)):
            if w.level == 0:
                continue
            stored = self.tiles[w.level].get(w.index)
            below_reader = self.tiles[w.level - 1]
            for k in range(len(w.hashes) // HASH_SIZE):
                pos = w.start + k
                node = w.index * TILE_WIDTH + pos
                expected = w.hashes[k * HASH_SIZE:(k + 1) * HASH_SIZE]
                leaves_end = (node + 1) << (TILE_HEIGHT * w.level)
                known = self.unknown_from is None or leaves_end <= self.unknown_from
                found = stored.hashes[pos]
                if found is None:  # reported when the tile was read
                    stored.clean = False
                    continue
                if known and found == expected:
                    continue
                stored.clean = False
                below = below_reader.current
                from_below = None
                if below is not None and below.index == node:
                    from_below = expected if below.clean and known else below.root()
                if found == from_below or (not known and from_below is None):
                    continue
                said = [f"the entries give {expected.hex()}"] if known else []
                if from_below is not None and (not known or from_below != expected):
                    said.append(f"tile {w.level - 1}/{node} gives {from_below.hex()}")
                self.report.add("tile", f"tile {w.level}/{w.index} position {pos}",
                                f"holds {found.hex()}, but " + " and ".join(said))

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint(self, row: tuple[Any, ...]) -> None:
        size, root_column, note = row[0], _as_bytes(row[1]), _as_bytes(row[2])
        where = f"checkpoint {size}"
        self.report.checkpoints_checked += 1
        try:
            cp = Checkpoint.parse(parse_note(note).text.encode("utf-8"))
        except TlogError as e:
            self.report.add("checkpoint", where, f"checkpoint is malformed: {e}")
            self.last = None
            return
        if self.pub is not None:
            try:  # C2SP signed-note: the key name is the checkpoint's own origin
                verify_checkpoint(note, self.pub)
            except VerificationError as e:
                self.report.add("checkpoint", where, str(e))
        self.foreign_origin(size, cp.origin if cp.origin != (self.origin or cp.origin) else None)
        if cp.size != size:
            self.report.add("checkpoint", where, f"stored at size {size}, but the signed "
                            f"checkpoint is for size {cp.size}")
            self.last = None
            return
        if root_column != cp.root_hash:
            self.report.add("checkpoint", where, f"the root column holds {root_column.hex()}, "
                            f"the signed checkpoint says {cp.root_hash.hex()}")
        if (self.unknown_from is not None and self.unknown_from < size) or size > self.entries.state.size:
            self.report.checkpoints_unchecked += 1
            self.last = None
            return
        tree = self.matching(cp.root_hash)
        if tree is None:
            self.report.add("checkpoint", where, f"the entries give root "
                            f"{self.entries.state.root().hex()} at size {size}, the signed "
                            f"checkpoint says {cp.root_hash.hex()}")
        self.consistency(size, cp.root_hash)
        self.last = _Signed(size, cp.root_hash, tree)
        for t in (self.entries, self.published):
            if t is not None:
                t.checkpointed()

    def foreign_origin(self, size: int, origin: str | None) -> None:
        """Checkpoints signed for another log name than meta's, one fault per run of
        them (if meta's origin changed, every checkpoint disagrees with it)."""
        run = self.foreign
        if run is not None and origin == run[3]:
            self.foreign = (run[0], size, run[2] + 1, origin)
            return
        if run is not None:
            first, last, count, found = run
            where = f"checkpoint {first}" if count == 1 else f"checkpoints {first}..{last}"
            self.report.add("checkpoint", where, f"signed for log {found!r} ({count} checkpoints), "
                            f"but the database's origin (meta origin) is {self.origin!r}")
        self.foreign = None if origin is None else (size, size, 1, origin)

    def matching(self, root: bytes) -> _Tree | None:
        """The rebuilt tree whose root this is: the entries', else the stored hashes'."""
        for tree in (self.entries, self.published):
            if tree is not None and tree.state.root() == root:
                return tree
        return None

    def consistency(self, size: int, root: bytes) -> None:
        """RFC 9162 §2.1.4: a proof from the previous checkpoint, built from the tree that
        gave that checkpoint's root, must lead to this one's."""
        last = self.last
        if last is None or last.tree is None or last.size == 0:
            return  # nothing trustworthy to start from (reported already), or the empty tree
        try:
            proof = last.tree.consistency_proof(last.size)
            verify_consistency(last.size, size, proof, last.root, root)
        except VerificationError as e:
            self.report.add("consistency", f"checkpoints {last.size} and {size}",
                            f"cannot both be right: {e}")

    # -- after the tree -------------------------------------------------------------------------
    def beyond(self) -> None:
        """Entries, index rows and tiles past the latest checkpoint's size."""
        size = self.size
        extra = _Runs(lambda a, b: self.report.add(
            "entries", _span("entry", a, b),
            f"beyond the latest checkpoint (tree size {size}): no signed checkpoint covers it"))
        for idx, _ in self.rows.rest():
            if isinstance(idx, int):
                extra.add(idx)
        extra.flush()
        for table, rows in (("leaf_index", self.leaf_rows), ("search_index", self.search_rows)):
            def beyond(a: int, b: int, table: str = table) -> None:
                self.report.add(table, _span("entry", a, b), f"rows beyond the tree (tree size {size})")
            runs = _Runs(beyond)
            for idx, value in rows.rest():
                if isinstance(idx, int):
                    runs.add(idx)
                else:
                    self.report.add(table, f"entry {idx!r}", f"row with a log index that is not "
                                    f"an integer (value {_prefix_hex(value)})")
            runs.flush()
        for reader in self.tiles:
            reader.finish()
        for level, idx in self.source.tiles_outside(len(self.tiles)):
            self.report.add("tile", f"tile {level}/{idx}", f"outside the tree (tree size {size})")
        for row in self.node_rows.rest():
            # A full tile's row left here was not reached: the check stopped early, for
            # lack of entries and tiles (reported), and it cannot be compared.
            if not (isinstance(row[0], int) and 0 <= row[0] < size >> TILE_HEIGHT):
                self._stray_tile_nodes(row)

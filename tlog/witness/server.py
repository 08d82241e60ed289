"""Running a witness: its key file, its SQLite state, and `POST /add-checkpoint` over aiohttp.

The state is one row per log origin — the latest cosigned size, root and checkpoint — in a
SQLite database (WAL, synchronous=FULL). Each update is a compare-and-swap inside a
`BEGIN IMMEDIATE` transaction: read, decide (tlog.witness.cosigner), write, COMMIT (fsync), and only
then answer.

Evidence of a fork — a checkpoint the log signed with another root at the size the witness
cosigned (tlog.witness.cosigner.proven_fork) — is kept in `forks`: once per (origin, size,
root), with only the log's verified signature lines, and at most MAX_FORKS_PER_LOG rows per
log. A row is at most one request (MAX_REQUEST_BYTES), so the table holds at most
MAX_FORKS_PER_LOG × 64 KiB (1 MiB) per witnessed log whatever is sent; refusals that prove
nothing (a bad proof, a stale size) write nothing at all. One contradiction already proves the
log dishonest; the cap only stops a log that forks on purpose from filling the witness's disk.
(Databases made before this kept every refusal in a `refused` table, which is no longer
written; it can be dropped.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import stat
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite
from aiohttp import web

from tlog.core.checkpoint import log_note_verifiers, validate_origin
from tlog.core.cosignature import CosignatureSigner, parse_cosignature_signer_key
from tlog.core.keys import LogPublicKey
from tlog.core.note import Verifier, parse_verifier_key
from tlog.errors import InvalidInput, TlogError
from tlog.files import DirLock, write_private
from tlog.runner import listen, run_app
from tlog.witness.cosigner import MAX_REQUEST_BYTES, Decision, Fork, Witness, Witnessed

log = logging.getLogger("tlog.witness")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS forks (
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    checkpoint BLOB NOT NULL,
    received INTEGER NOT NULL,
    PRIMARY KEY (origin, size, root)
);
"""
# Fork evidence kept per log (see the module's docstring): the first ones, which suffice.
MAX_FORKS_PER_LOG = 16


class WitnessStorageError(TlogError):
    """The witness database could not be read or written."""


class SqliteWitnessStore:
    """tlog.witness.cosigner.WitnessStore on SQLite. One connection; updates are serialized in-process
    by a lock and across processes by `BEGIN IMMEDIATE`."""

    def __init__(self, path: Path, db: aiosqlite.Connection) -> None:
        self.path = path
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteWitnessStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise WitnessStorageError(f"cannot open witness database {path}: {e}") from e
        return cls(path, db)

    async def close(self) -> None:
        await self._db.close()

    async def latest(self, origin: str) -> Witnessed | None:
        rows = list(await self._db.execute_fetchall(
            "SELECT size, root, checkpoint FROM latest WHERE origin = ?", (origin,)))
        return Witnessed(int(rows[0][0]), bytes(rows[0][1]), bytes(rows[0][2])) if rows else None

    async def update(self, origin: str, step: Callable[[Witnessed | None], Decision]) -> Decision:
        async with self._lock:
            db = self._db
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    prev = await self.latest(origin)
                    decision = step(prev)
                    new = decision.new_state
                    if new is not None:
                        await self._swap(origin, prev, new)
                    elif decision.evidence is not None:
                        await self._keep_evidence(origin, decision.evidence)
                    await db.execute("COMMIT")
                except BaseException:
                    await db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise WitnessStorageError(f"witness database {self.path}: {e}") from e
            return decision

    async def _swap(self, origin: str, prev: Witnessed | None, new: Witnessed) -> None:
        now = int(time.time())
        if prev is None:
            cur = await self._db.execute(
                "INSERT INTO latest (origin, size, root, checkpoint, updated) VALUES (?, ?, ?, ?, ?)",
                (origin, new.size, new.root, new.checkpoint, now))
        else:
            # Compare-and-swap: the row must still be the state the decision was made on.
            cur = await self._db.execute(
                "UPDATE latest SET size = ?, root = ?, checkpoint = ?, updated = ? "
                "WHERE origin = ? AND size = ? AND root = ?",
                (new.size, new.root, new.checkpoint, now, origin, prev.size, prev.root))
        if cur.rowcount != 1:
            raise WitnessStorageError(f"compare-and-swap of {origin} lost a race; nothing was cosigned")

    async def _keep_evidence(self, origin: str, fork: Fork) -> None:
        """Record a proven fork: once per (origin, size, root), up to MAX_FORKS_PER_LOG."""
        cur = await self._db.execute(
            "INSERT OR IGNORE INTO forks (origin, size, root, checkpoint, received) "
            "SELECT ?, ?, ?, ?, ? WHERE (SELECT count(*) FROM forks WHERE origin = ?) < ?",
            (origin, fork.size, fork.root, fork.checkpoint, int(time.time()), origin, MAX_FORKS_PER_LOG))
        if cur.rowcount == 1:
            log.critical("%s signed a checkpoint of size %d with a root other than the one "
                         "cosigned: the log forked; evidence kept in %s", origin, fork.size, self.path)

    async def forks(self, origin: str) -> list[bytes]:
        """The log-signed checkpoints that prove `origin` forked, oldest first."""
        rows = await self._db.execute_fetchall(
            "SELECT checkpoint FROM forks WHERE origin = ? ORDER BY rowid", (origin,))
        return [bytes(c) for (c,) in rows]


# -- keys and configuration -------------------------------------------------------------------

def load_witness_key(path: Path) -> CosignatureSigner:
    """The witness's signer key from FILE (`PRIVATE+KEY+…`); refused if others can read it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TlogError(f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}); "
                        f"the witness key must be private: chmod 600 {path}")
    try:
        return parse_cosignature_signer_key(path.read_text().strip())
    except (InvalidInput, UnicodeDecodeError) as e:
        raise TlogError(f"{path}: {e}") from e


def write_witness_key(path: Path, signer: CosignatureSigner, *, force: bool = False) -> None:
    """Write the signer key to a new file, mode 0600; never replace one unless force."""
    try:
        write_private(path, (signer.signer_key() + "\n").encode(), force=force)
    except FileExistsError:
        raise TlogError(f"{path} already exists; pass --force to replace it (the old key is lost)") from None


def parse_log_option(spec: str) -> tuple[str, list[Verifier]]:
    """`ORIGIN=KEY` → (origin, verifiers). KEY is a note verifier key string
    (`name+id+base64`), or the path of a PEM public key (the log's `/api/v1/log/publicKey`),
    whose checkpoints are then checked as the log signs them (tlog.core.checkpoint)."""
    origin, sep, key = spec.partition("=")
    if not sep or not origin or not key:
        raise InvalidInput(f"--log {spec!r}: expected ORIGIN=KEY (a PEM file or a verifier key)")
    validate_origin(origin)
    path = Path(key)
    if "+" in key and not path.exists():
        return origin, [parse_verifier_key(key)]
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"--log {origin}: cannot read {key}: {e.strerror or e}") from e
    if b"PRIVATE KEY" in data:
        raise InvalidInput(f"--log {origin}: {key} is a private key; give the witness the log's "
                           "public key (GET /api/v1/log/publicKey)")
    return origin, log_note_verifiers(origin, LogPublicKey.from_pem(data))


# -- HTTP -------------------------------------------------------------------------------------

WITNESS_KEY = web.AppKey("witness", Witness)


async def add_checkpoint(request: web.Request) -> web.Response:
    answer = await request.app[WITNESS_KEY].add_checkpoint(await request.read())
    ctype, _, charset = answer.content_type.partition("; charset=")
    return web.Response(status=answer.status, body=answer.body, content_type=ctype,
                        charset=charset or None)


async def healthz(request: web.Request) -> web.Response:
    w = request.app[WITNESS_KEY]
    return web.json_response({"status": "ok", "witness": w.name, "logs": list(w.origins)})


def make_witness_app(witness: Witness) -> web.Application:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[WITNESS_KEY] = witness
    app.router.add_post("/add-checkpoint", add_checkpoint)
    app.router.add_get("/healthz", healthz)
    return app


@dataclass
class WitnessConfig:
    key_file: Path
    data_dir: Path
    logs: Sequence[str] = field(default_factory=list)  # ORIGIN=KEY


async def serve_witness(config: WitnessConfig, host: str, port: int, *,
                        ready: asyncio.Event | None = None) -> None:
    """Serve add-checkpoint until SIGTERM/SIGINT."""
    signer = load_witness_key(config.key_file)
    logs: dict[str, list[Verifier]] = {}
    for spec in config.logs:
        origin, verifiers = parse_log_option(spec)
        logs.setdefault(origin, []).extend(verifiers)
    if not logs:
        raise TlogError("a witness needs at least one --log ORIGIN=KEY to witness")

    def started() -> None:
        log.info("witness %s serving on http://%s:%d for %s", signer.verifier().verifier_key(),
                 host, port, ", ".join(logs))
        if ready is not None:
            ready.set()

    # The port first (a taken one creates nothing), then the directory, this process's alone.
    with listen(host, port) as sockets, DirLock.acquire(config.data_dir):
        store = await SqliteWitnessStore.open(config.data_dir / "witness.db")
        try:
            await run_app(make_witness_app(Witness(signer, logs, store)), sockets, started=started)
        finally:
            await store.close()

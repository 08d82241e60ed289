"""`tlog migrate --from DATA_DIR --to postgresql://…` (issue 15, item 5): the way out of the
embedded default. Copies a SQLite log into an empty PostgreSQL database, checkpoint by
checkpoint, and proves the copy.

Each stored checkpoint of the source becomes one batch of the destination: the entries
since the previous checkpoint (with their integratedTime), their index rows exactly as the
source holds them (leaf-index prefixes, event keys included; search keys), the tiles the
tree engine computes for them, and the checkpoint itself — the same signed note. Before a
batch is written, the tree extended by its entries must give the checkpoint's root: the
copy never stores a checkpoint its entries do not prove. Afterwards every entry is read
back from PostgreSQL and compared with the source, and the destination's recovered tree
must give the source's latest root. The kept attestations are copied too: the source's
`attestations` table and the files of DATA_DIR/attestations/ older versions wrote.

The source is read-only (SQLite `mode=ro`); a destination that already holds a log is
refused. The log key stays where it is: point `tlog serve --key` at DATA_DIR/log.key.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tlog.core.merkle import leaf_hash
from tlog.core.tilestate import TreeState
from tlog.errors import StartupError
from tlog.server.attestations import AttestationFiles
from tlog.server.layout import ATTESTATIONS_DIR, DB_FILE
from tlog.server.storage.base import NewEntry, StorageError, StoredCheckpoint, key_prefix
from tlog.server.storage.postgres import PostgresStorage
from tlog.server.storage.sqlite import MIGRATED_TO, SCHEMA_VERSION, schema_version


@dataclass(frozen=True)
class Migrated:
    entries: int
    checkpoints: int
    root: bytes
    digest: str  # SHA-256 over every (index, integratedTime, body), equal on both sides


def _entries_digest(rows: list[tuple[int, int, bytes]], h: hashlib._Hash) -> None:
    for idx, t, body in rows:
        h.update(b"%d:%d:%d:" % (idx, t, len(body)) + body)


async def migrate_sqlite_to_postgres(data_dir: Path, dsn: str,
                                     progress: Callable[[int, int], None] | None = None) -> Migrated:
    """Copy the log of `data_dir` into the database `dsn` and verify it (see the module)."""
    path = data_dir / DB_FILE
    if not path.is_file():
        raise StartupError(f"{data_dir} holds no log ({DB_FILE} is missing)")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dst = await PostgresStorage.open(dsn)
    try:
        if await dst.get_meta() or await dst.latest_checkpoint() is not None:
            raise StartupError("the destination database already holds a log: migrate into an empty one")
        meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
        if (schema_version(meta) or SCHEMA_VERSION) < SCHEMA_VERSION:  # index rows are copied as they are
            raise StartupError(f"{path} has schema version {schema_version(meta)}: run `tlog serve` "
                               "on it once to migrate it (storage.migrations), then copy it")
        meta = {k: v for k, v in meta.items() if k != "schema" and not k.startswith(MIGRATED_TO)}
        checkpoints = [StoredCheckpoint(*row) for row in src.execute(
            "SELECT size, root, note, created FROM checkpoints ORDER BY size")]
        total = checkpoints[-1].size if checkpoints else 0
        state = TreeState.empty()
        src_digest = hashlib.sha256()
        for cp in checkpoints:
            if cp.size < state.size:
                continue
            rows = src.execute("SELECT idx, integrated_time, body FROM entries WHERE idx >= ? AND idx < ? "
                               "ORDER BY idx", (state.size, cp.size)).fetchall()
            if [r[0] for r in rows] != list(range(state.size, cp.size)):
                raise StorageError(f"the source lacks entries below its checkpoint at size {cp.size}")
            _entries_digest(rows, src_digest)
            leaves = [leaf_hash(body) for _, _, body in rows]
            new, writes = state.extended(leaves)
            if new.root() != cp.root:
                raise StorageError(f"the source's entries give root {new.root().hex()} at size {cp.size}, "
                                   f"its checkpoint says {cp.root.hex()}: run `tlog fsck {data_dir}`")
            extra: dict[int, list[int]] = {}  # index → leaf-index prefixes beyond its leaf hash's
            for prefix, idx in src.execute("SELECT prefix, idx FROM leaf_index WHERE idx >= ? AND idx < ?",
                                           (state.size, cp.size)):
                if prefix != key_prefix(leaves[idx - state.size]):
                    extra.setdefault(idx, []).append(prefix)
            keys: dict[int, list[int]] = {}
            for key, idx in src.execute("SELECT key, idx FROM search_index WHERE idx >= ? AND idx < ?",
                                        (state.size, cp.size)):
                keys.setdefault(idx, []).append(key)
            entries = [NewEntry(idx, body, leaves[idx - state.size], tuple(keys.get(idx, ())),
                                # the event key's prefix is all the leaf index keeps, and all it needs
                                extra[idx][0].to_bytes(8, "big", signed=True) if idx in extra else None)
                       for idx, _, body in rows]
            times = {t for _, t, _ in rows}
            if len(times) > 1:  # tlog writes one batch, with one integratedTime, per checkpoint
                raise StorageError(f"the entries below checkpoint {cp.size} have several "
                                   f"integratedTimes: not a batch tlog wrote")
            await dst.append_batch(entries, times.pop() if times else cp.created, writes, cp)
            state = new
            if progress is not None:
                progress(state.size, total)
        # The kept attestations: the source's table, and the files older versions kept.
        for name, data in src.execute("SELECT name, data FROM attestations"):
            if hashlib.sha256(data).hexdigest() == name:
                await dst.put_attestation(name, bytes(data))
        files = AttestationFiles(data_dir / ATTESTATIONS_DIR)
        for file in sorted(files.root.glob("??/*")) if files.root.is_dir() else ():
            if (kept := files.read(file.name)) is not None and file.parent.name == file.name[:2]:
                await dst.put_attestation(file.name, kept)
        await dst.init_meta(meta)
        # Verify: every entry read back equals the source's, and the copy's tree its root.
        dst_digest = hashlib.sha256()
        for start in range(0, state.size, 1024):
            got = await dst.read_entries(list(range(start, min(state.size, start + 1024))))
            _entries_digest([(i, *got[i]) for i in sorted(got)], dst_digest)
        rec = await dst.recover()
        copied = TreeState.restore(rec.size, rec.level8, rec.tail_leaves)
        if dst_digest.digest() != src_digest.digest() or copied.root() != state.root():
            raise StorageError("the copy does not match the source (entries or root differ)")
        return Migrated(state.size, len(checkpoints), state.root(), dst_digest.hexdigest())
    finally:
        src.close()
        await dst.close()

"""The log on PostgreSQL served by several `tlog serve` frontends (issue 15): a real
PostgreSQL server (tests/pg_support.py), real processes on loopback ports.

What the shared contract suite (tests/test_storage.py, "postgres") cannot show: the schema
refuses to rewrite history; frontends share one sequence, one identity and one tree; a
duplicate sent to two at once gets one index; the leader's death loses no acknowledged entry
and another frontend takes over; a restart of them all keeps the tree.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tlog.core.keys import LogKey, LogPublicKey
from tlog.core.tiles import TILE_WIDTH
from tlog.core.tilestate import expand_tile
from tlog.files import write_private
from tlog.server.cluster import ClusterSequencer

from . import pg_support
from .storage_contract import fill
from .support import OpenLog, Signer, check_log_entry
from .test_serve import TLOG, free_port, start, stop, wait_ready

URL = "https://log.example.org"


@pytest.fixture
def dsn() -> str:
    return pg_support.fresh_database()


class Frontends:
    """`tlog serve --database DSN --key KEY` processes of one log, stopped at the end."""

    def __init__(self, tmp: Path, dsn: str) -> None:
        self.tmp = tmp
        self.dsn = dsn
        self.key = tmp / "secret" / "log.key"
        self.procs: dict[int, subprocess.Popen[str]] = {}

    async def start(self, *extra: str, key: Path | None = None, url: str = URL) -> int:
        port = free_port()
        proc = start(self.tmp / f"fe{port}", port, "--database", self.dsn, "--key", str(key or self.key),
                     "--public-url", url, "--no-access-log", *extra)
        self.procs[port] = proc
        await wait_ready(port, proc, timeout=30)
        return port

    def public_key(self) -> LogPublicKey:
        return LogKey.from_pem(self.key.read_bytes()).public_key

    def kill(self, port: int) -> None:
        proc = self.procs.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)

    def stop(self, port: int) -> str:
        return stop(self.procs.pop(port))

    def stop_all(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=20)


@pytest.fixture
def frontends(tmp_path: Path, dsn: str) -> Iterator[Frontends]:
    (tmp_path / "secret").mkdir(mode=0o700)
    fe = Frontends(tmp_path, dsn)
    yield fe
    fe.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


async def submit(http: aiohttp.ClientSession, port: int, proposed: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"http://127.0.0.1:{port}/api/v1/log/entries", json=proposed) as r:
        return r.status, await r.json()


async def json_get(http: aiohttp.ClientSession, port: int, path: str) -> Any:
    """GET a 200 answer; a 404 is asked again for up to 2 s: a frontend follows the leader's
    checkpoints when notified, a few milliseconds after the submitter's 201."""
    for _ in range(100):
        async with http.get(f"http://127.0.0.1:{port}{path}") as r:
            if r.status != 404:
                assert r.status == 200, await r.text()
                return await r.json()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path}: still 404 on port {port}")


async def role(http: aiohttp.ClientSession, port: int) -> str:
    return str((await json_get(http, port, "/readyz"))["role"])


async def test_postgres_schema_refuses_to_rewrite_history(dsn: str) -> None:
    from tlog.server.storage.postgres import PostgresStorage

    st = await PostgresStorage.open(dsn)
    await fill(st, 300)
    await st.init_meta({"log_id": "ab"})
    await st.put_attestation("ab" * 32, b"kept")
    await st.close()
    conn = await asyncpg.connect(dsn)
    try:
        for statement in ["UPDATE entries SET body = '\\x00' WHERE idx = 0", "DELETE FROM entries",
                          "UPDATE tiles SET hashes = '\\x00'", "DELETE FROM checkpoints",
                          "DELETE FROM leaf_index", "DELETE FROM search_index",
                          "UPDATE meta SET value = 'x'", "TRUNCATE entries",
                          "UPDATE attestations SET data = '\\x00'", "DELETE FROM attestations",
                          "TRUNCATE attestations", "UPDATE tile_nodes SET nodes = '\\x00'",
                          "DELETE FROM tile_nodes", "TRUNCATE tile_nodes"]:
            with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT max(version) FROM schema_version") >= 2
    finally:
        await conn.close()


async def test_a_version_4_database_is_expanded_by_the_migration(
        dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 5 stores each full level-0 tile's expansion (issue 16): the migration computes
    those of the tiles a version-4 database holds, MIGRATION_CHUNK tiles at a time, into an
    append-only table; until then, a read-only frontend refuses the older schema."""
    from tlog.server.storage import postgres
    from tlog.server.storage.base import NoStorage
    from tlog.server.storage.postgres import PostgresStorage

    st = await PostgresStorage.open(dsn)
    await fill(st, 3 * TILE_WIDTH + 44)
    expected = await st.read_leaf_tiles(range(3))
    await st.close()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE tile_nodes")  # what version 4 wrote: no such table
        await conn.execute("DELETE FROM schema_version WHERE version = 5")
        with pytest.raises(NoStorage, match="older schema"):
            await PostgresStorage.open(dsn, read_only=True)
        monkeypatch.setattr(postgres, "MIGRATION_CHUNK", 2)
        st = await PostgresStorage.open(dsn)
        try:
            assert await st.read_expanded_tiles(range(5)) == {t: expand_tile(leaves)
                                                              for t, leaves in expected.items()}
        finally:
            await st.close()
        assert await conn.fetchval("SELECT max(version) FROM schema_version") == 5
        with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="append-only"):
            await conn.execute("DELETE FROM tile_nodes")
    finally:
        await conn.close()


async def test_two_frontends_serve_one_log(frontends: Frontends, http: aiohttp.ClientSession,
                                           signer: Signer) -> None:
    a = await frontends.start()
    b = await frontends.start()
    pub = frontends.public_key()
    assert oct(frontends.key.stat().st_mode & 0o777) == "0o600"
    indexes = []
    for port in (a, b, a, b):
        status, entry = await submit(http, port, signer.proposed())
        assert status == 201, entry
        uuid, e = check_log_entry(entry, pub)
        indexes.append(e["logIndex"])
        for other in (a, b):  # each entry is read back, with a valid proof, from both
            got = await json_get(http, other, f"/api/v1/log/entries/{uuid}")
            check_log_entry(got, pub)
    assert sorted(indexes) == [0, 1, 2, 3]
    for port in (a, b):
        ready = await json_get(http, port, "/readyz")
        assert ready["leader"] and ready["treeSize"] == 4
    assert {await role(http, a), await role(http, b)} == {"leader", "follower"}


async def test_a_duplicate_sent_to_two_frontends_at_once_gets_one_index(
        frontends: Frontends, http: aiohttp.ClientSession, signer: Signer) -> None:
    a = await frontends.start()
    b = await frontends.start()
    for _ in range(3):
        proposed = signer.proposed()
        (s1, e1), (s2, e2) = await asyncio.gather(submit(http, a, proposed), submit(http, b, proposed))
        assert sorted([s1, s2]) == [201, 409], (e1, e2)
    size = (await json_get(http, a, "/api/v1/log"))["treeSize"]
    assert size == 3


async def test_a_frontend_with_another_key_or_name_is_refused(frontends: Frontends,
                                                              tmp_path: Path) -> None:
    port = await frontends.start()
    other = tmp_path / "secret" / "other.key"
    for needle in ("the database holds log log.example.org", "is not this log's key"):
        proc = start(tmp_path / "x", free_port(), "--database", frontends.dsn, "--key", str(other),
                     "--public-url", URL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode != 0 and needle in out, out
        write_private(other, LogKey.generate("ed25519").to_pem(), force=True)  # a key, but another
    proc = start(tmp_path / "y", free_port(), "--database", frontends.dsn, "--key", str(frontends.key),
                 "--public-url", "https://other.example.org")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "holds log log.example.org" in out, out
    frontends.stop(port)


async def test_killing_the_leader_under_load_loses_no_acknowledged_entry(
        frontends: Frontends, http: aiohttp.ClientSession) -> None:
    a = await frontends.start()
    b = await frontends.start()
    pub = frontends.public_key()
    leader = a if await role(http, a) == "leader" else b
    survivor = b if leader == a else a
    acked: dict[str, int] = {}
    signers = [Signer() for _ in range(4)]

    async def client(n: int) -> None:
        for i in range(40):  # bounded: 4 clients × 40 submissions, half to each frontend
            port = (a, b)[(n + i) % 2]
            if port not in frontends.procs:
                port = survivor
            try:
                status, entry = await submit(http, port, signers[n].proposed())
            except (aiohttp.ClientError, TimeoutError):
                if port == leader:
                    continue  # the killed frontend's connections: not acknowledged
                raise
            assert status == 201 or port == leader, entry
            if status == 201:
                uuid, e = check_log_entry(entry, pub)
                acked[uuid] = e["logIndex"]

    load = asyncio.gather(*(client(n) for n in range(4)))
    while len(acked) < 30:
        await asyncio.sleep(0.02)
    frontends.kill(leader)
    await load
    assert len(acked) > 60
    # The survivor leads now, and holds every acknowledged entry at its index.
    assert await role(http, survivor) == "leader"
    assert (await submit(http, survivor, signers[0].proposed()))[0] == 201
    for uuid, index in acked.items():
        got = await json_get(http, survivor, f"/api/v1/log/entries/{uuid}")
        assert check_log_entry(got, pub)[1]["logIndex"] == index
    assert len(set(acked.values())) == len(acked)


async def test_restarting_every_frontend_keeps_the_tree(frontends: Frontends,
                                                        http: aiohttp.ClientSession, signer: Signer) -> None:
    ports = [await frontends.start(), await frontends.start()]
    for port in ports * 3:
        assert (await submit(http, port, signer.proposed()))[0] == 201
    before = await json_get(http, ports[0], "/api/v1/log")
    for port in ports:
        frontends.stop(port)
    port = await frontends.start()
    after = await json_get(http, port, "/api/v1/log")
    assert (after["treeSize"], after["rootHash"]) == (before["treeSize"], before["rootHash"]) == (
        6, before["rootHash"])
    assert (await submit(http, port, signer.proposed()))[0] == 201


async def test_migration_from_sqlite_preserves_roots_and_entries(
        tmp_path: Path, dsn: str, open_log: OpenLog, signer: Signer, frontends: Frontends,
        http: aiohttp.ClientSession) -> None:
    data = tmp_path / "sqlite"
    lg, client = await open_log(data_dir=data, batch_ms=0)
    uuids = []
    for _ in range(5):
        r = await client.post("/api/v1/log/entries", json=signer.proposed())
        assert r.status == 201
        uuids.append(next(iter(await r.json())))
    size, root = lg.head.state.size, lg.head.root
    await lg.close()
    out = subprocess.run([*TLOG, "migrate", "--from", str(data), "--to", dsn], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and f"copied {size} entries" in out.stdout and root.hex() in out.stdout, out
    # Served from PostgreSQL with the same key: the same tree, each entry at its index, and a
    # second migration into the same database is refused.
    port = await frontends.start(key=data / "log.key", url=lg.config.public_url)
    info = await json_get(http, port, "/api/v1/log")
    assert (info["treeSize"], info["rootHash"]) == (size, root.hex())
    for i, uuid in enumerate(uuids):
        got = await json_get(http, port, f"/api/v1/log/entries/{uuid}")
        assert check_log_entry(got, lg.public_key)[1]["logIndex"] == i
    async with http.post(f"http://127.0.0.1:{port}/api/v1/index/retrieve", json={"publicKey": {
            "format": "x509", "content": base64.b64encode(signer.pem).decode()}}) as r:
        assert sorted(await r.json()) == sorted(uuids)
    assert (await submit(http, port, signer.proposed()))[0] == 201
    again = subprocess.run([*TLOG, "migrate", "--from", str(data), "--to", dsn], capture_output=True,
                           text=True, timeout=120)
    assert again.returncode != 0 and "already holds a log" in again.stderr + again.stdout


async def _two_logs(open_log: OpenLog, tmp_path: Path, dsn: str) -> list[tuple[Any, Any]]:
    """Two frontends of one log in this process, leader first (each a `Log` and its client)."""
    (tmp_path / "secret").mkdir(mode=0o700, exist_ok=True)
    logs = [await open_log(data_dir=tmp_path / f"fe{n}", database=dsn, public_url=URL,
                           key_file=tmp_path / "secret" / "log.key") for n in range(2)]
    for _ in range(200):
        if any(getattr(lg.sequencer, "is_leader", False) for lg, _ in logs):
            break
        await asyncio.sleep(0.02)
    return sorted(logs, key=lambda pair: not pair[0].sequencer.is_leader)


async def test_a_follower_finds_an_entry_acknowledged_elsewhere_at_once(
        open_log: OpenLog, tmp_path: Path, dsn: str, signer: Signer) -> None:
    """A read on a follower right after another frontend's 201 refreshes the head once
    instead of answering 404 — here with the follower's notifications stopped altogether
    (its outcome loop cancelled), so only that refresh can find the entry."""
    (leader, to_leader), (follower, to_follower) = await _two_logs(open_log, tmp_path, dsn)
    seq = follower.sequencer
    for task in seq._tasks:
        if task.get_name() == "tlog-cluster-outcomes":
            task.cancel()
    for n in range(3):
        r = await to_leader.post("/api/v1/log/entries", json=signer.proposed())
        assert r.status == 201
        uuid = next(iter(await r.json()))
        index = n if n % 2 else None
        path = f"/api/v1/log/entries/{uuid}" if index is None else f"/api/v1/log/entries?logIndex={index}"
        got = await to_follower.get(path)
        assert got.status == 200, await got.text()
        check_log_entry(await got.json(), leader.public_key)
    assert seq.miss_refreshes == 3 and follower.head.state.size == 3
    # A burst of reads that miss for good costs two refreshes at most, not one each; an
    # unknown UUID none at all (not in the database: no head could hold it).
    before = seq.miss_refreshes
    answers = await asyncio.gather(*[to_follower.get("/api/v1/log/entries?logIndex=1000")
                                     for _ in range(40)],
                                   to_follower.get(f"/api/v1/log/entries/{'ab' * 32}"))
    assert {a.status for a in answers} == {404}
    assert 1 <= seq.miss_refreshes - before <= 2


async def test_a_closed_frontend_leaves_no_connection_open(
        open_log: OpenLog, tmp_path: Path, dsn: str, signer: Signer) -> None:
    """The insert and outcome loops open the frontend's pool and listener on first use; run
    at once (here forced: both at the same moment, several times), they opened one each and
    one leaked — an idle backend that outlived the log and blocked CREATE DATABASE … TEMPLATE
    of its database for good. After close, no backend of this log is left."""
    (tmp_path / "secret").mkdir(mode=0o700)
    lg, client = await open_log(data_dir=tmp_path / "fe", database=dsn, public_url=URL,
                                key_file=tmp_path / "secret" / "log.key")
    seq = lg.sequencer
    assert isinstance(seq, ClusterSequencer)
    for _ in range(3):
        await asyncio.gather(*[seq._connections() for _ in range(4)])
    r = await client.post("/api/v1/log/entries", json=signer.proposed())
    assert r.status == 201
    await lg.close()
    name = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg_support.server().dsn())
    try:
        left: int = -1
        for _ in range(100):  # the closed connections' backends take a moment to exit
            left = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name)
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0
    finally:
        await conn.close()


async def test_the_leader_deletes_outcomes_a_dead_frontend_left(
        open_log: OpenLog, tmp_path: Path, dsn: str) -> None:
    """`pending_done` rows nobody collected are deleted once older than the TTL; the
    pending tables carry no append-only trigger (a queue, not history)."""
    from tlog.server.cluster import DONE_TTL, ClusterSequencer
    from tlog.server.storage.postgres import PostgresStorage

    await (await PostgresStorage.open(dsn)).close()  # the schema, before any frontend
    conn = await asyncpg.connect(dsn)
    try:
        now = int(time.time())
        await conn.execute("INSERT INTO pending_done (id, idx, duplicate, done) VALUES "
                           "(900001, 0, false, $1), (900002, 0, false, $2)", now - int(DONE_TTL) - 60, now)
        (leader, _), _ = await _two_logs(open_log, tmp_path, dsn)
        assert isinstance(leader.sequencer, ClusterSequencer) and leader.sequencer.is_leader
        for _ in range(200):
            if await conn.fetchval("SELECT count(*) FROM pending_done WHERE id = 900001") == 0:
                break
            await asyncio.sleep(0.02)
        assert [r["id"] for r in await conn.fetch("SELECT id FROM pending_done")] == [900002]
        assert await conn.fetch("SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                                "WHERE c.relname IN ('pending', 'pending_done', 'leader') "
                                "AND NOT t.tgisinternal") == []
    finally:
        await conn.close()


async def test_an_attestation_admitted_by_one_frontend_is_served_by_the_other(
        open_log: OpenLog, tmp_path: Path, dsn: str) -> None:
    """The kept envelope is in the database, not in the admitting frontend's data directory:
    every frontend serves it, and fsck checks it from the database alone."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tlog.server.fsck import check_database

    from .test_attestation_entries import dsse_request, envelope, statement

    (leader, to_leader), (follower, to_follower) = await _two_logs(open_log, tmp_path, dsn)
    key = ec.generate_private_key(ec.SECP256R1())
    env = envelope(statement(("artifact", b"bytes")), key)
    for admit, read in ((to_follower, to_leader), (to_leader, to_follower)):
        r = await admit.post("/api/v1/log/entries", json=dsse_request(env, key))
        assert r.status in (201, 409), await r.text()
        uuid = r.headers["Location"].rsplit("/", 1)[-1] if r.status == 409 else next(iter(await r.json()))
        got = await read.get(f"/api/v1/log/entries/{uuid}")
        assert got.status == 200, await got.text()
        answer = next(iter((await got.json()).values()))
        kept = base64.b64decode(answer["attestation"]["data"])
        spec = json.loads(base64.b64decode(answer["body"]))["spec"]
        assert hashlib.sha256(kept).hexdigest() == spec["envelopeHash"]["value"]
        assert json.loads(kept)["payload"] == base64.b64encode(env.payload).decode()
    assert not any((tmp_path / f"fe{n}" / "attestations").exists() for n in range(2))
    await follower.close()
    await leader.close()
    rep = await asyncio.to_thread(check_database, dsn, key_file=tmp_path / "secret" / "log.key")
    assert rep.ok and rep.notes == [], (rep.faults, rep.notes)

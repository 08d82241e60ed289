"""The witness (C2SP tlog-witness add-checkpoint): strict parsing, every status the spec names,
and no way to make it cosign two checkpoints that are not consistent."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeAlias, TypeVar

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from tlog.audit.monitor import MonitorOptions, check_witnesses
from tlog.core.checkpoint import Checkpoint, log_note_verifiers, sign_checkpoint
from tlog.core.cosignature import CosignatureSigner, cosigned_by, parse_cosignature_verifier_key
from tlog.core.keys import LogKey
from tlog.core.merkle import leaf_hash
from tlog.core.note import parse_note
from tlog.core.tilestate import TreeState
from tlog.errors import InvalidInput, VerificationError
from tlog.server.tree import TileTree
from tlog.witness.client import WitnessConflict, WitnessError, push_checkpoint, witness_checkpoint
from tlog.witness.cosigner import MAX_PROOF_LINES, Witness, format_add_checkpoint, parse_add_checkpoint
from tlog.witness.server import MAX_FORKS_PER_LOG, SqliteWitnessStore, make_witness_app, parse_log_option

from .support import OpenLog
from .test_monitor import grow
from .test_serve import free_port

ORIGIN = "log.example"
WitnessClient: TypeAlias = "TestClient[web.Request, web.Application]"
StartWitness: TypeAlias = "Callable[[], Awaitable[tuple[WitnessClient, SqliteWitnessStore]]]"
T = TypeVar("T")
TLOG = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parents[1]


class History:
    """One history of a log: its leaves, and its signed checkpoints and proofs at any size."""

    def __init__(self, key: LogKey, tag: str, n: int = 40) -> None:
        self.key = key
        state, _ = TreeState.empty().extended([leaf_hash(f"{tag} {i}".encode()) for i in range(n)])
        self.tree = TileTree(state)

    def checkpoint(self, size: int) -> bytes:
        return sign_checkpoint(Checkpoint(ORIGIN, size, self.tree.root_at(size)), self.key)

    def proof(self, old: int, new: int) -> list[bytes]:
        return self.tree.consistency_proof(old, new) if 0 < old < new else []

    def request(self, old: int, new: int) -> bytes:
        return format_add_checkpoint(old, self.proof(old, new), self.checkpoint(new))


@pytest.fixture
def log_key() -> LogKey:
    return LogKey.generate("ed25519")


@pytest.fixture
def witness_key() -> CosignatureSigner:
    return CosignatureSigner.generate("witness.example/w1")


@pytest.fixture
async def witness(tmp_path: Path, aiohttp_client: AiohttpClient, log_key: LogKey,
                  witness_key: CosignatureSigner) -> AsyncIterator[StartWitness]:
    """A witness for ORIGIN on a real SQLite file, served on loopback."""
    stores: list[SqliteWitnessStore] = []

    async def start() -> tuple[WitnessClient, SqliteWitnessStore]:
        store = await SqliteWitnessStore.open(tmp_path / "witness" / "witness.db")
        stores.append(store)
        w = Witness(witness_key, {ORIGIN: log_note_verifiers(ORIGIN, log_key.public_key)}, store)
        return await aiohttp_client(make_witness_app(w)), store

    yield start
    for s in stores:
        await s.close()


async def post(client: WitnessClient, body: bytes) -> tuple[int, bytes, str]:
    r = await client.post("/add-checkpoint", data=body)
    return r.status, await r.read(), r.content_type


def assert_cosigned(note: bytes, answer: bytes, witness_key: CosignatureSigner) -> None:
    full = parse_note(parse_note(note).text.encode() + b"\n" + answer)
    assert cosigned_by(full, [witness_key.verifier()]) == [witness_key.verifier()]


async def test_cosigns_consistent_checkpoints_and_persists_them(
        witness: StartWitness, log_key: LogKey, witness_key: CosignatureSigner) -> None:
    client, _ = await witness()
    h = History(log_key, "a")
    status, body, _ = await post(client, h.request(0, 3))
    assert status == 200
    assert_cosigned(h.checkpoint(3), body, witness_key)
    status, body, _ = await post(client, h.request(3, 17))
    assert status == 200
    assert_cosigned(h.checkpoint(17), body, witness_key)
    # Same size and root again: cosigned again (a fresh timestamp), with an empty proof.
    assert (await post(client, h.request(17, 17)))[0] == 200


async def test_state_is_durable_before_the_answer_and_survives_restart(witness: StartWitness,
                                                                      log_key: LogKey) -> None:
    h = History(log_key, "a")
    client, store = await witness()
    assert (await post(client, h.request(0, 9)))[0] == 200
    # Committed before the answer: another connection to the database already sees it.
    reopened = await SqliteWitnessStore.open(store.path)
    try:
        latest = await reopened.latest(ORIGIN)
        assert latest is not None and (latest.size, latest.root) == (9, h.tree.root_at(9))
        assert latest.checkpoint == h.checkpoint(9)  # Ed25519 signing is deterministic
    finally:
        await reopened.close()
    client2, _ = await witness()  # a new witness process on the same database
    assert (await post(client2, h.request(0, 12)))[:3:2] == (409, "text/x.tlog.size")


async def test_refuses_every_attempt_to_cosign_a_fork(witness: StartWitness, log_key: LogKey) -> None:
    client, store = await witness()
    a, b = History(log_key, "a"), History(log_key, "b")
    assert (await post(client, a.request(0, 10)))[0] == 200

    # Same size, different root: 409 without a size body.
    status, _, ctype = await post(client, b.request(10, 10))
    assert status == 409 and ctype != "text/x.tlog.size"
    # A longer fork, with its own (valid for it) proof from size 10: 422.
    assert (await post(client, b.request(10, 20)))[0] == 422
    # The fork with a's proof, and with no proof at all: 422.
    assert (await post(client, format_add_checkpoint(10, a.proof(10, 20), b.checkpoint(20))))[0] == 422
    assert (await post(client, format_add_checkpoint(10, [], b.checkpoint(20))))[0] == 422
    # Pretending the witness never saw the log (old 0, the trust-on-first-use path): 409,
    # and the witness says which size it holds.
    assert await post(client, b.request(0, 20)) == (409, b"10\n", "text/x.tlog.size")
    # A smaller tree (old size = the stored one, larger than the checkpoint): 400.
    assert (await post(client, format_add_checkpoint(10, [], a.checkpoint(5))))[0] == 400
    # An old size the witness does not hold, however honest the proof: 409 with its size.
    assert await post(client, a.request(5, 20)) == (409, b"10\n", "text/x.tlog.size")

    latest = await store.latest(ORIGIN)
    assert latest is not None and (latest.size, latest.root) == (10, a.tree.root_at(10))
    # Only the proven fork (two roots signed for size 10) is kept as evidence; the 422s
    # prove nothing by themselves (an honest checkpoint with a bad proof gets one too).
    assert await store.forks(ORIGIN) == [b.checkpoint(10)]
    # The honest history still goes on.
    assert (await post(client, a.request(10, 20)))[0] == 200


def _with_junk_signatures(note: bytes, tag: int, count: int = 95) -> bytes:
    """`note` with `count` extra signature lines from keys no one configured, ~600 bytes each:
    a witness ignores them (signed-note), so they cost the sender nothing."""
    junk = b"".join(b"\xe2\x80\x94 junk%d.example/%d " % (tag, i)
                    + base64.b64encode(os.urandom(4 + 420)) + b"\n" for i in range(count))
    return note + junk


def _db_bytes(path: Path) -> int:
    """The database and its WAL and shared-memory files, as they are on disk."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def test_refused_requests_cannot_fill_the_witness_disk(witness: StartWitness, log_key: LogKey) -> None:
    """Issue 11, item 5: each refusal used to store the submitted note, junk signature lines
    and all (300 requests: 33 KB → 22.5 MB). Now nothing is stored but a proven fork, once,
    with only the log's signatures."""
    client, store = await witness()
    a, b = History(log_key, "a"), History(log_key, "b")
    assert (await post(client, a.request(0, 10)))[0] == 200
    before = _db_bytes(store.path)
    statuses = []
    for i in range(150):
        # The log's honest checkpoint with a bad proof and junk signatures: 422, proves nothing.
        bad_proof = [bytes(32)] * 4
        body = format_add_checkpoint(10, bad_proof, _with_junk_signatures(a.checkpoint(20), i))
        assert len(body) > 50_000
        statuses.append((await post(client, body))[0])
        # A real fork (b's root at the cosigned size), replayed with different junk: 409.
        fork = _with_junk_signatures(b.checkpoint(10), i)
        statuses.append((await post(client, format_add_checkpoint(10, [], fork)))[0])
    after = _db_bytes(store.path)
    print(f"witness database: {before} bytes before, {after} after 300 refused requests")
    assert statuses == [422, 409] * 150
    assert after - before < 64 * 1024, (before, after)
    assert await store.forks(ORIGIN) == [b.checkpoint(10)]  # once, without the junk lines
    # The state is the honest one, and the honest history goes on.
    assert (await post(client, a.request(10, 20)))[0] == 200


async def test_fork_evidence_is_capped_per_log(witness: StartWitness, log_key: LogKey) -> None:
    """A log that forks on purpose, at every size, fills at most MAX_FORKS_PER_LOG rows."""
    client, store = await witness()
    a = History(log_key, "a")
    for size in range(1, MAX_FORKS_PER_LOG + 5):
        assert (await post(client, a.request(size - 1, size)))[0] == 200
        fork = History(log_key, f"fork {size}")
        assert (await post(client, format_add_checkpoint(size, [], fork.checkpoint(size))))[0] == 409
    kept = await store.forks(ORIGIN)
    assert len(kept) == MAX_FORKS_PER_LOG
    assert kept[0] == History(log_key, "fork 1").checkpoint(1)  # the first ones are kept


async def test_racing_updates_cosign_only_one(witness: StartWitness, log_key: LogKey) -> None:
    client, store = await witness()
    a, b = History(log_key, "a"), History(log_key, "b")
    assert (await post(client, a.request(0, 5)))[0] == 200
    # b shares nothing with a, but each request is checked against the state it replaces.
    results = await asyncio.gather(*[post(client, a.request(5, n)) for n in (8, 9, 12)],
                                   post(client, format_add_checkpoint(5, [], b.checkpoint(5))))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) == 1, results
    latest = await store.latest(ORIGIN)
    assert latest is not None and latest.size in (8, 9, 12)
    for status, body, ctype in results:
        if status == 409 and ctype == "text/x.tlog.size":
            assert body == b"%d\n" % latest.size


async def test_unknown_origin_is_404_and_bad_signature_is_403(witness: StartWitness, log_key: LogKey) -> None:
    client, _ = await witness()
    other = History(LogKey.generate("ed25519"), "a")
    # Signed by another key under the same name: no signature from a known key.
    assert (await post(client, other.request(0, 3)))[0] == 403
    # A known key's line that does not verify (tampered size): 403.
    note = History(log_key, "a").checkpoint(3)
    tampered = note.replace(b"\n3\n", b"\n4\n", 1)
    assert (await post(client, format_add_checkpoint(0, [], tampered)))[0] == 403
    unknown = sign_checkpoint(Checkpoint("other.example", 3, bytes(32)), log_key)
    assert (await post(client, format_add_checkpoint(0, [], unknown)))[0] == 404


async def test_size_zero_and_proof_rules(witness: StartWitness, log_key: LogKey) -> None:
    client, _ = await witness()
    h = History(log_key, "a")
    bad_empty = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), log_key)
    assert (await post(client, format_add_checkpoint(0, [], bad_empty)))[0] == 422
    # The proof MUST be empty when the old size is zero.
    assert (await post(client, format_add_checkpoint(0, h.proof(2, 6), h.checkpoint(6))))[0] == 422
    assert (await post(client, h.request(0, 6)))[0] == 200


def _malformed(h: History) -> list[bytes]:
    cp = h.checkpoint(6)
    line = base64.b64encode(bytes(32)) + b"\n"
    return [
        b"",
        b"old 0",
        b"old 0\n",
        b"old 0\n\n",  # no checkpoint
        b"old 01\n\n" + cp,
        b"old -1\n\n" + cp,
        b"old  0\n\n" + cp,
        b"old 0 \n\n" + cp,
        b"OLD 0\n\n" + cp,
        b"old 0\r\n\r\n" + cp,
        b"old 0\n" + cp,  # no empty line: the checkpoint's lines read as proof lines
        b"old 3\n" + base64.b64encode(bytes(31)) + b"\n\n" + cp,
        b"old 3\nnot base64!\n\n" + cp,
        b"old 3\n" + base64.b64encode(bytes(32)).rstrip(b"=") + b"\n\n" + cp,
        b"old 3\n" + line * (MAX_PROOF_LINES + 1) + b"\n" + cp,
        b"old 18446744073709551616\n\n" + cp,
        b"old 7\n\n" + cp,  # old size larger than the checkpoint's
        b"old 0\n\nnot a checkpoint\n",
        b"old 0\n\n" + cp.replace(b"\xe2\x80\x94", b"-"),
    ]


@pytest.mark.parametrize("case", range(19))
async def test_malformed_requests_are_400(witness: StartWitness, log_key: LogKey, case: int) -> None:
    client, store = await witness()
    body = _malformed(History(log_key, "a"))[case]
    status, _, _ = await post(client, body)
    assert status == 400, body
    assert await store.latest(ORIGIN) is None


def test_parser_round_trips_the_spec_example_shape() -> None:
    proof = [bytes([i]) * 32 for i in range(4)]
    cp = (b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
          b"\n\xe2\x80\x94 x y\n")
    req = parse_add_checkpoint(format_add_checkpoint(20852014, proof, cp))
    assert (req.old_size, list(req.proof), req.checkpoint) == (20852014, proof, cp)
    with pytest.raises(InvalidInput):
        parse_add_checkpoint(b"old 0\n\n")


async def test_log_gets_cosigned_through_the_client_and_retries_on_409(
        witness: StartWitness, open_log: OpenLog, witness_key: CosignatureSigner) -> None:
    """A real log's checkpoints, pushed the way `tlog serve` will: stale sizes are corrected."""
    lg, _ = await open_log(batch_ms=0)
    store = await SqliteWitnessStore.open(lg.config.data_dir.parent / "w2.db")
    w = Witness(witness_key, {lg.origin: log_note_verifiers(lg.origin, lg.public_key)}, store)
    async with TestClient(TestServer(make_witness_app(w))) as wc:
        url = str(wc.make_url(""))

        async def prove(old: int, new: int) -> list[bytes]:
            return (await lg.consistency(old, new))[1]

        vkey = parse_cosignature_verifier_key(witness_key.verifier().verifier_key())
        async with aiohttp.ClientSession() as s:
            await grow(lg, 300)
            note = lg.head.note
            lines, held = await witness_checkpoint(s, url, vkey, note, 0, prove)
            assert held == 300
            cosigned = note + lines
            quorum = MonitorOptions(witnesses=(vkey,), min_witnesses=1)
            assert check_witnesses(cosigned, quorum) == [vkey.name]

            await grow(lg, 40)
            # The log believes the witness holds nothing: it answers 409 "300", the client
            # proves from 300 and gets the cosignature.
            with pytest.raises(WitnessConflict) as c:
                await push_checkpoint(s, url, vkey, 0, [], lg.head.note)
            assert c.value.size == 300
            lines, held = await witness_checkpoint(s, url, vkey, lg.head.note, 0, prove)
            assert held == 340 and lines.startswith("\u2014 witness.example/w1 ".encode())

            # A cosignature from someone else's key is not accepted as this witness's.
            impostor = CosignatureSigner.generate("witness.example/w1").verifier()
            with pytest.raises(VerificationError):
                await push_checkpoint(s, url, impostor, 340, [], lg.head.note)
            with pytest.raises(WitnessError):
                await push_checkpoint(s, "http://127.0.0.1:9", vkey, 340, [], lg.head.note, timeout=2)
    await store.close()


def test_parse_log_option_accepts_pem_and_vkey_and_refuses_private_keys(tmp_path: Path,
                                                                        log_key: LogKey) -> None:
    pem = tmp_path / "log.pub"
    pem.write_bytes(log_key.public_key.pem())
    origin, verifiers = parse_log_option(f"{ORIGIN}={pem}")
    assert origin == ORIGIN and len(verifiers) == 2  # the SPKI line and the C2SP Ed25519 line
    ed = verifiers[1]
    origin, (v,) = parse_log_option(f"{ORIGIN}={ed.verifier_key()}")  # type: ignore[attr-defined]
    assert v.key_id == ed.key_id
    private = tmp_path / "log.key"
    private.write_bytes(log_key.to_pem())
    for bad in (f"{ORIGIN}={private}", "nokey", f"{ORIGIN}=", f"bad origin={pem}"):
        with pytest.raises(InvalidInput):
            parse_log_option(bad)


async def test_keygen_and_serve_as_processes(tmp_path: Path, log_key: LogKey) -> None:
    key = tmp_path / "witness.key"
    r = subprocess.run([*TLOG, "witness", "keygen", "--name", "w.example/1", "--out", str(key)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    vkey = parse_cosignature_verifier_key(r.stdout.strip())
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    r = subprocess.run([*TLOG, "witness", "keygen", "--name", "w.example/1", "--out", str(key)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "--force" in r.stderr and key.read_bytes() == before

    pub = tmp_path / "log.pub"
    pub.write_bytes(log_key.public_key.pem())
    port = free_port()
    proc = subprocess.Popen([*TLOG, "witness", "serve", "--key", str(key), "--data-dir",
                             str(tmp_path / "wdata"), "--port", str(port), "--log", f"{ORIGIN}={pub}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        h = History(log_key, "a")
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                try:
                    async with s.get(f"{url}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            lines = await push_checkpoint(s, url, vkey, 0, [], h.checkpoint(4))
            lines2, held = await witness_checkpoint(
                s, url, vkey, h.checkpoint(9), 0, lambda a, b: _async(h.proof(a, b)))
            assert held == 9 and lines and lines2
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "cosigned log.example at size 9" in out

    os.chmod(key, 0o644)
    r = subprocess.run([*TLOG, "witness", "serve", "--key", str(key), "--log", f"{ORIGIN}={pub}",
                        "--port", str(free_port())], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "chmod 600" in r.stderr


async def _async(value: T) -> T:
    return value

"""The log pushes checkpoints to witnesses and serves their cosignatures (issue 4 §6)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp.test_utils import TestServer

from tlog.core.checkpoint import log_note_verifiers, verify_checkpoint
from tlog.core.cosignature import CosignatureSigner, CosignatureVerifier, cosigned_by
from tlog.core.keys import LogPublicKey
from tlog.core.note import parse_note
from tlog.server.log import Log
from tlog.server.witnessing import WitnessSpec, parse_witness_option
from tlog.witness.cosigner import Witness
from tlog.witness.server import SqliteWitnessStore, make_witness_app

from .support import ApiClient, OpenLog, Signer
from .test_serve import free_port


async def _witness(tmp_path: Path, name: str, origin: str,
                   pub: LogPublicKey) -> tuple[TestServer, CosignatureSigner, SqliteWitnessStore]:
    signer = CosignatureSigner.generate(name)
    store = await SqliteWitnessStore.open(tmp_path / name / "witness.db")
    server = TestServer(make_witness_app(Witness(signer, {origin: log_note_verifiers(origin, pub)}, store)),
                        host="127.0.0.1")
    await server.start_server()
    return server, signer, store


async def _cosigners(client: ApiClient, verifiers: list[CosignatureVerifier], want: int,
                     timeout: float = 10) -> tuple[bytes, list[CosignatureVerifier]]:
    deadline = time.monotonic() + timeout
    while True:
        note = await (await client.get("/checkpoint")).read()
        got = cosigned_by(parse_note(note), verifiers)
        if len(got) >= want or time.monotonic() > deadline:
            return note, got
        await asyncio.sleep(0.05)


async def _until_size(client: ApiClient, lg: Log, verifiers: list[CosignatureVerifier], size: int,
                      timeout: float = 10) -> tuple[bytes, list[CosignatureVerifier]]:
    """Wait until /checkpoint serves `size` cosigned by the two live witnesses."""
    deadline = time.monotonic() + timeout
    while True:
        note, got = await _cosigners(client, verifiers, 2)
        if verify_checkpoint(note, lg.public_key).size == size and len(got) == 2:
            return note, got
        if time.monotonic() > deadline:
            return note, got
        await asyncio.sleep(0.05)


async def _held(store: SqliteWitnessStore, origin: str) -> int | None:
    """The tree size a witness holds for the log, if any."""
    latest = await store.latest(origin)
    return None if latest is None else latest.size


async def test_log_gets_cosigned_by_live_witnesses_and_ignores_a_dead_one(tmp_path: Path,
                                                                          open_log: OpenLog) -> None:
    from tlog.core.keys import LogKey

    # The log's key and name are fixed first, so the witnesses can pin them.
    data = tmp_path / "log"
    data.mkdir()
    key = LogKey.generate("ed25519")
    (data / "log.key").write_bytes(key.to_pem())
    (data / "log.key").chmod(0o600)
    origin = "127.0.0.1:3000"
    w1, s1, st1 = await _witness(tmp_path, "w1.example", origin, key.public_key)
    w2, s2, st2 = await _witness(tmp_path, "w2.example", origin, key.public_key)
    dead = WitnessSpec(f"http://127.0.0.1:{free_port()}",
                       CosignatureSigner.generate("dead.example").verifier())
    specs = (parse_witness_option(f"{w1.make_url('')}={s1.verifier().verifier_key()}"),
             WitnessSpec(str(w2.make_url("")), s2.verifier()), dead)
    verifiers = [s1.verifier(), s2.verifier(), dead.verifier]
    try:
        lg, client = await open_log(data_dir=data, witnesses=specs, batch_ms=0)
        signer = Signer()
        t0 = time.monotonic()
        for _ in range(5):
            assert (await client.post("/api/v1/log/entries", json=signer.proposed())).status == 201
        assert time.monotonic() - t0 < 5  # a dead witness does not slow submissions
        note, got = await _until_size(client, lg, verifiers, 5)
        assert set(got) == {s1.verifier(), s2.verifier()}
        cp = verify_checkpoint(note, lg.public_key)  # still the log's checkpoint, cosignatures extra
        assert cp.origin == origin and cp.size == 5
        # Both witnesses persisted what they cosigned.
        assert await _held(st1, origin) == 5 and await _held(st2, origin) == 5
        metrics = await (await client.get("/metrics")).text()
        assert 'tlog_witness_cosignatures_total{outcome="cosigned",witness="w1.example"}' in metrics
        await lg.close()
        # A restarted log does not know what the witnesses hold: they answer 409 with their
        # size and the log proves consistency from there.
        lg2, client2 = await open_log(data_dir=data, witnesses=specs, batch_ms=0)
        for _ in range(3):
            assert (await client2.post("/api/v1/log/entries", json=signer.proposed())).status == 201
        note, got = await _until_size(client2, lg2, verifiers, 8)
        assert verify_checkpoint(note, lg2.public_key).size == 8 and len(got) == 2
        assert await _held(st2, origin) == 8
    finally:
        for server, store in ((w1, st1), (w2, st2)):
            await server.close()
            await store.close()


def test_published_checkpoint_never_goes_back_and_dead_witnesses_do_not_freeze_it() -> None:
    from tlog.server.witnessing import choose_checkpoint

    cos = {100: (b"n100", {"a": b"A100", "b": b"B100"}), 110: (b"n110", {"a": b"A110"})}
    # Most cosignatures wins while nothing larger was served...
    assert choose_checkpoint(cos, 0, 120, b"n120", False)[:2] == (100, b"n100")
    # ...but once 110 was served, 100 never is again, however many cosign it.
    assert choose_checkpoint(cos, 110, 120, b"n120", False)[:2] == (110, b"n110")
    # Nothing cosigned at or above what was served: the head, never smaller.
    assert choose_checkpoint(cos, 115, 120, b"n120", False) == (120, b"n120", {})
    # Witnesses silent for too long: publish the fresh head rather than freeze.
    assert choose_checkpoint(cos, 110, 130, b"n130", True) == (130, b"n130", {})
    # Stale, but the cosigned checkpoint is the head: keep its cosignatures.
    assert choose_checkpoint({130: (b"n130", {"a": b"x"})}, 0, 130, b"n130", True)[2] == {"a": b"x"}
    assert choose_checkpoint({}, 0, 5, b"n5", False) == (5, b"n5", {})

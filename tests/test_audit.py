"""`tlog audit`: rebuilds a real log from its tiles, checks every tile, entry and signature,
resumes where it stopped, and reports precisely what is wrong."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from tlog.audit.rebuild import AuditReport, audit_round, load_audit_state
from tlog.client.trust import save_trust
from tlog.core.entries.hashedrekord import parse_request
from tlog.core.keys import LogKey
from tlog.core.merkle import leaf_hash
from tlog.core.trusted import TrustedLog
from tlog.server.log import Log
from tlog.server.sequencer import Admitted

from .support import OpenLog, Signer
from .test_monitor import grow, pinned, tampering_proxy, write_log_key
from .test_serve import free_port, start, stop, wait_ready

TLOG = [sys.executable, "-m", "cli"]
ROOT = Path(__file__).resolve().parents[1]


async def submit_many(lg: Log, n: int) -> None:
    """n real, signed hashedrekord entries through the log's own admission."""
    signer = Signer()
    await asyncio.gather(*[lg.submit(signer.proposed()) for _ in range(n)])


async def test_audit_rebuilds_the_tree_across_tiles_and_resumes_as_the_log_grows(
        open_log: OpenLog, tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await submit_many(lg, 300)
    state_path = tmp_path / "audit.json"
    progress: list[tuple[int, int]] = []
    rep = await audit_round(pinned(lg, client), state_path, lambda d, t: progress.append((d, t)))
    assert rep.ok and rep.root_matches and rep.failures == []
    assert (rep.size, rep.root, rep.entries_checked, rep.resumed_from) == (300, lg.head.root, 300, 0)
    assert rep.tiles_checked == 2 * 2 + 1  # two entry bundles, two level-0 tiles, one level-1 tile
    assert progress == [(256, 300), (300, 300)]
    state = load_audit_state(state_path)
    assert state is not None and (state.position, state.audited_size) == (256, 300)

    await submit_many(lg, 250)  # 550: the tree now has two full tiles and level-1 nodes
    rep = await audit_round(pinned(lg, client), state_path)
    assert rep.ok and rep.resumed_from == 256 and rep.entries_checked == 294
    state = load_audit_state(state_path)
    assert state is not None and (state.position, state.audited_size) == (512, 550)


async def test_audit_lists_entries_that_are_not_valid_signed_entries(open_log: OpenLog,
                                                                     tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await submit_many(lg, 3)
    junk = (await grow(lg, 1))[0]
    # A well-formed hashedrekord whose signature is not over its digest (the log's admission
    # would refuse it; appended behind its back).
    entry = parse_request(Signer().proposed(b"x"))
    forged = entry.__class__(entry.algorithm, bytes(32), entry.signature, entry.public_key_pem,
                             entry.is_certificate).canonical_body()
    await lg.sequencer.submit(Admitted(forged, leaf_hash(forged), ()))
    await submit_many(lg, 2)
    state_path = tmp_path / "audit.json"
    rep = await audit_round(pinned(lg, client), state_path)
    assert rep.root_matches and not rep.ok and rep.failure_count == 2
    (body, sig) = rep.failures
    assert (body.kind, body.index) == ("body", 3) and leaf_hash(junk).hex() in body.detail
    assert (sig.kind, sig.index) == ("signature", 4)
    # The failures stay on record: the next run (nothing new) still reports them, once.
    rep = await audit_round(pinned(lg, client), state_path)
    assert not rep.ok and rep.failure_count == 2


async def test_audit_finds_tiles_that_do_not_match_the_entries(open_log: OpenLog,
                                                               aiohttp_client: AiohttpClient,
                                                               tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0)
    await submit_many(lg, 260)

    def tamper(path: str, body: bytes) -> bytes:
        if path == "/tile/0/000":  # leaf 7's hash
            return body[:7 * 32] + bytes(32) + body[8 * 32:]
        if path.startswith("/tile/1/000"):  # the root of leaves 0..255
            return bytes(32) + body[32:]
        return body

    evil = await tampering_proxy(aiohttp_client, client, tamper)
    log = TrustedLog(str(evil.make_url("")).rstrip("/"), lg.origin, lg.public_key)
    rep = await audit_round(log, tmp_path / "audit.json")
    assert rep.root_matches and not rep.ok  # the entries are right, two tiles are not
    assert [(f.kind, f.index) for f in rep.failures] == [("tile", 7), ("tile", None)]
    assert "tile/1 index 0 position 0 (leaves 0..255)" in rep.failures[1].detail


async def test_audit_interrupted_keeps_its_progress(open_log: OpenLog, tmp_path: Path) -> None:
    lg, client = await open_log(batch_ms=0, batch_size=4096)
    await submit_many(lg, 1100)
    state_path = tmp_path / "audit.json"
    task: asyncio.Task[AuditReport] | None = None

    def interrupt(done: int, total: int) -> None:
        if done >= 512 and task is not None:
            task.cancel()

    task = asyncio.ensure_future(audit_round(pinned(lg, client), state_path, interrupt))
    with pytest.raises(asyncio.CancelledError):
        await task
    state = load_audit_state(state_path)
    assert state is not None and state.position >= 512 and state.audited_size == 0
    rep = await audit_round(pinned(lg, client), state_path)
    assert rep.ok and rep.resumed_from == state.position
    assert rep.entries_checked == 1100 - state.position


async def test_audit_of_another_history_under_the_same_key_fails(open_log: OpenLog, tmp_path: Path) -> None:
    key = LogKey.generate("ed25519")
    logs = []
    for name in ("a", "b"):
        write_log_key(tmp_path / name, key)
        logs.append(await open_log(data_dir=tmp_path / name, batch_ms=0))
    for lg, _ in logs:
        await submit_many(lg, 260)
    state_path = tmp_path / "audit.json"
    assert (await audit_round(pinned(*logs[0]), state_path)).ok
    saved = state_path.read_bytes()
    rep = await audit_round(pinned(*logs[1]), state_path)
    assert not rep.ok and [f.kind for f in rep.failures] == ["fork"]
    assert state_path.read_bytes() == saved  # a failed run does not overwrite what was audited
    # A checkpoint that does not verify with the pinned key is a failure too.
    impostor = TrustedLog(pinned(*logs[0]).url, logs[0][0].origin, LogKey.generate("ed25519").public_key)
    rep = await audit_round(impostor, tmp_path / "other.json")
    assert not rep.ok and [f.kind for f in rep.failures] == ["checkpoint"]


async def test_cli_audit_report_and_exit_status(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path / "data", port)
    try:
        await wait_ready(port, proc)
        url = f"http://127.0.0.1:{port}"
        signer = Signer()
        async with aiohttp.ClientSession() as s:
            for i in range(3):
                async with s.post(f"{url}/api/v1/log/entries", json=signer.proposed(b"%d" % i)) as r:
                    assert r.status == 201
            async with s.get(f"{url}/api/v1/log/publicKey") as r:
                pub = await r.read()
        from tlog.core.keys import LogPublicKey

        trust = tmp_path / "trust.json"
        save_trust(trust, [TrustedLog(url, f"127.0.0.1:{port}", LogPublicKey.from_pem(pub))])
        state = tmp_path / "audit.json"
        args = [*TLOG, "audit", "--trust", str(trust), "--state", str(state)]
        done = subprocess.run([*args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["ok"] and report["entriesChecked"] == 3 and report["rootMatches"]

        # Make the saved state disagree with the log: the audit says so, and exits 3.
        doc = json.loads(state.read_text())
        doc["auditedRoot"] = base64.b64encode(bytes(32)).decode()
        state.write_text(json.dumps(doc))
        done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 3, (done.stdout, done.stderr)
        assert "[fork]" in done.stdout and "result: FAILED" in done.stdout
    finally:
        stop(proc)

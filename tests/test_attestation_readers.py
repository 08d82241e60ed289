"""Every reader of stored bodies understands every kind (issue 13): against one real log
holding hashedrekord, dsse and intoto entries, `tlog fsck` is clean and finds a corrupted
dsse body or kept envelope, `tlog audit` is clean, `tlog monitor` reports attestations by
signer and payload hash, `tlog get` prints them; and an ECDSA twin (r, n - s) of a dsse or
intoto signature is a 409 like a hashedrekord's."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.audit.monitor import Watchlist
from tlog.audit.rebuild import audit_round
from tlog.client.trust import save_trust
from tlog.core import entries
from tlog.core.dsse import Envelope
from tlog.server.fsck import check_data_dir

from .cli_support import tlog
from .support import OpenLog, Signer
from .test_attestation_entries import dsse_request, envelope, intoto_request, pem_of, statement
from .test_monitor import pinned

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def twin(signature: bytes) -> bytes:
    """The other valid ECDSA P-256 signature: (r, n - s)."""
    r, s = utils.decode_dss_signature(signature)
    return utils.encode_dss_signature(r, P256_ORDER - s)


async def build(open_log: OpenLog, data: Path) -> tuple[Any, Any, ec.EllipticCurvePrivateKey,
                                                         Envelope, list[bytes]]:
    """A log with one entry of each kind (hashedrekord 0, dsse 1, intoto 2); their bodies."""
    lg, client = await open_log(data_dir=data, key_type="ecdsa-p256")
    key = ec.generate_private_key(ec.SECP256R1())
    env = envelope(statement(("app.tar", b"the app")), key)
    bodies = []
    for request in (Signer().proposed(), dsse_request(env, key), intoto_request(env, key)):
        r = await client.post("/api/v1/log/entries", json=request)
        assert r.status == 201, await r.text()
        (entry,) = (await r.json()).values()
        bodies.append(base64.b64decode(entry["body"]))
    return lg, client, key, env, bodies


async def test_readers_of_every_kind(open_log: OpenLog, tmp_path: Path) -> None:
    data = tmp_path / "data"
    lg, client, key, env, bodies = await build(open_log, data)
    assert [entries.read_body(b).kind for b in bodies] == ["hashedrekord", "dsse", "intoto"]

    # audit: every body parsed by its kind; the attestations' signatures need their envelope
    rep = await audit_round(pinned(lg, client), tmp_path / "audit.json")
    assert rep.ok and rep.entries_checked == 3 and rep.signatures_unchecked == 2, rep.failures

    # monitor: by signer key, and by payload hash
    payload = hashlib.sha256(env.payload).hexdigest()
    by_key = Watchlist.build(keys=[("builder.pub", pem_of(key))]).matches("o", 0, bodies)
    assert [(e["index"], e["entryKind"], e["matched"]) for e in by_key] == [
        (1, "dsse", ["key"]), (2, "intoto", ["key"])]
    by_digest = Watchlist.build(sha256=[payload]).matches("o", 0, bodies)
    assert [(e["index"], e["artifact"]) for e in by_digest] == [
        (1, f"sha256:{payload}"), (2, f"sha256:{payload}")]

    # get: kind, hashes and signer, after verifying the entry against the pinned log
    trust = tmp_path / "trust.json"
    save_trust(trust, [pinned(lg, client)])
    out = await asyncio.to_thread(tlog, "get", "--index", "1", "--trust", trust)
    assert out.exit_code == 0, out.output
    assert "dsse 0.0.1" in out.output and f"sha256:{payload}" in out.output
    assert "envelope hash" in out.output and "public key   SHA256:" in out.output
    out = await asyncio.to_thread(tlog, "get", "--index", "2", "--trust", trust, "--json")
    assert out.exit_code == 0 and "attestation" in next(iter(json.loads(out.output).values()))
    await lg.close()

    # fsck: clean, signatures checked with the kept envelope and payload
    rep_f = check_data_dir(data)
    assert rep_f.ok and rep_f.entries_checked == 3 and rep_f.notes == [], rep_f.faults

    # a corrupted dsse body (another payload hash) is found at that entry
    copy = tmp_path / "corrupt"
    shutil.copytree(data, copy)
    spec = json.loads(bodies[1])
    spec["spec"]["payloadHash"]["value"] = "00" * 32
    changed = json.dumps(spec, separators=(",", ":")).encode()
    conn = sqlite3.connect(copy / "log.db", isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE entries SET body = ? WHERE idx = 1", (changed,))
    conn.close()
    rep_f = check_data_dir(copy)
    assert not rep_f.ok
    assert any(f.where == "entry 1" and f.kind in ("body", "signature") for f in rep_f.faults)

    # without the kept envelope the dsse signature is not checked, and fsck says so
    envelope_hash = json.loads(bodies[1])["spec"]["envelopeHash"]["value"]
    conn = sqlite3.connect(data / "log.db", isolation_level=None)
    conn.execute("DROP TRIGGER attestations_no_delete")
    conn.execute("DELETE FROM attestations WHERE name = ?", (envelope_hash,))
    conn.close()
    rep_f = check_data_dir(data)
    assert rep_f.ok and len(rep_f.notes) == 1 and "1 dsse/intoto" in rep_f.notes[0]


async def test_ecdsa_twin_of_an_attestation_is_a_duplicate(open_log: OpenLog) -> None:
    _, client = await open_log()
    key = ec.generate_private_key(ec.SECP256R1())
    env = envelope(statement(("x", b"x")), key)
    high = env.signatures[0]
    if utils.decode_dss_signature(high)[1] <= P256_ORDER // 2:
        high = twin(high)
    low_env = Envelope(env.payload, env.payload_type, (twin(high),))
    high_env = Envelope(env.payload, env.payload_type, (high,))
    for make in (dsse_request, intoto_request):
        first = await client.post("/api/v1/log/entries", json=make(high_env, key))
        assert first.status == 201, await first.text()
        second = await client.post("/api/v1/log/entries", json=make(low_env, key))
        assert second.status == 409, await second.text()
        assert next(iter(await first.json())) in second.headers["Location"]
    # (the intoto submissions above were 201 first: the same signatures as another kind
    # are another entry, as Rekor logs both.) Either s first: the twin is a 409.
    other = ec.generate_private_key(ec.SECP256R1())
    signed = envelope(statement(("y", b"y")), other)
    flipped = Envelope(signed.payload, signed.payload_type, (twin(signed.signatures[0]),))
    r1 = await client.post("/api/v1/log/entries", json=dsse_request(flipped, other))
    assert r1.status == 201
    r2 = await client.post("/api/v1/log/entries", json=dsse_request(signed, other))
    assert r2.status == 409, await r2.text()

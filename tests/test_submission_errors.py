"""Bad submissions get a clear 4xx and leave the log unchanged; overload gets 503."""

from __future__ import annotations

import asyncio
import base64
import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .support import OpenLog, Signer

ENTRIES = "/api/v1/log/entries"


def _mutations(signer: Signer) -> dict[str, tuple[object, int]]:
    good = signer.proposed(b"x")
    def with_(path: list[str], value: object) -> dict[str, Any]:
        d = copy.deepcopy(good)
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        return d
    ed = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    other = Signer().proposed(b"x")["spec"]["signature"]["content"]
    return {
        "array": ([good], 400),
        "wrong kind": (with_(["kind"], "rekord"), 400),
        "wrong apiVersion": (with_(["apiVersion"], "0.0.2"), 400),
        "missing spec": ({"kind": "hashedrekord", "apiVersion": "0.0.1"}, 400),
        "bad base64 signature": (with_(["spec", "signature", "content"], "!!!notb64"), 400),
        "bad base64 key": (with_(["spec", "signature", "publicKey", "content"], "%%%"), 400),
        "bad PEM": (with_(["spec", "signature", "publicKey", "content"], base64.b64encode(
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").decode()), 400),
        "digest length mismatch": (with_(["spec", "data", "hash", "value"], "ab" * 31), 400),
        "unknown algorithm": (with_(["spec", "data", "hash", "algorithm"], "md5"), 400),
        "signature does not verify": (with_(["spec", "signature", "content"], other), 400),
        "ed25519 key": (with_(["spec", "signature", "publicKey", "content"], base64.b64encode(ed).decode()),
                        400),
    }


@pytest.mark.parametrize("case", list(_mutations(Signer())))
async def test_bad_submission_gets_4xx_and_log_is_unchanged(open_log: OpenLog, signer: Signer,
                                                            case: str) -> None:
    lg, client = await open_log()
    await client.post(ENTRIES, json=signer.proposed(b"first"))
    before = (lg.head.state.size, lg.head.root)
    payload, status = _mutations(signer)[case]
    r = await client.post(ENTRIES, json=payload)
    assert r.status == status, await r.text()
    err = await r.json()
    assert err["code"] == status and len(err["message"]) > 10
    if case == "ed25519 key":
        assert "Ed25519" in err["message"]
    assert (lg.head.state.size, lg.head.root) == before


@pytest.mark.parametrize("raw,ctype,status", [
    (b"{not json", "application/json", 400),
    (b"\xff\xfe\x00", "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (b"{}", "text/plain", 415),
    (b"", "application/json", 400),
])
async def test_malformed_request_bodies_get_4xx(open_log: OpenLog, raw: bytes, ctype: str,
                                                status: int) -> None:
    lg, client = await open_log(max_body=1 << 20)
    r = await client.post(ENTRIES, data=raw, headers={"Content-Type": ctype})
    assert r.status == status
    assert (await r.json())["code"] == status
    assert lg.head.state.size == 0


async def test_oversized_body_gets_413(open_log: OpenLog, signer: Signer) -> None:
    lg, client = await open_log()
    big = signer.proposed()
    big["padding"] = "x" * (70 * 1024)
    r = await client.post(ENTRIES, json=big)
    assert r.status == 413
    assert "limit" in (await r.json())["message"]
    assert lg.head.state.size == 0


async def test_queue_beyond_max_pending_gets_503_with_retry_after(open_log: OpenLog) -> None:
    lg, client = await open_log(batch_ms=300, batch_size=1000, max_pending=3)
    signer = Signer()
    responses = await asyncio.gather(*[client.post(ENTRIES, json=signer.proposed()) for _ in range(8)])
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == 3 and statuses.count(503) == 5
    busy = next(r for r in responses if r.status == 503)
    assert busy.headers["Retry-After"] == "1"
    assert lg.head.state.size == 3


async def test_restart_keeps_entries_and_checkpoints_consistent(tmp_path: Path, open_log: OpenLog) -> None:
    from tlog.core.merkle import verify_consistency

    from .support import check_log_entry
    data = tmp_path / "restart"
    lg, client = await open_log(data_dir=data, batch_ms=0)
    signer = Signer()
    first = [await (await client.post(ENTRIES, json=signer.proposed())).json() for _ in range(300)]
    old_root, old_size, log_id = lg.head.root, lg.head.state.size, lg.log_id
    await lg.close()
    lg2, client2 = await open_log(data_dir=data, batch_ms=0)
    assert lg2.log_id == log_id and lg2.head.state.size == old_size and lg2.head.root == old_root
    for e in first[::37]:
        uuid, entry = next(iter(e.items()))
        r = await client2.get(ENTRIES, params={"logIndex": str(entry["logIndex"])})
        again = await r.json()
        assert next(iter(again)) == uuid
        check_log_entry(again, lg2.public_key)
    await client2.post(ENTRIES, json=signer.proposed())
    r = await client2.get("/api/v1/log/proof", params={"firstSize": old_size, "lastSize": old_size + 1})
    proof = await r.json()
    verify_consistency(old_size, old_size + 1, [bytes.fromhex(h) for h in proof["hashes"]],
                       old_root, lg2.head.root)

"""Test helpers: real keys, real signatures, real hashedrekord submissions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.keys import LogPublicKey
from tlog.core.merkle import leaf_hash, verify_inclusion
from tlog.core.timestamp import verify_set

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.test_utils import TestClient

    from tlog.server.log import Log

# pytest-aiohttp's client of one app (the `aiohttp_client` fixture), and the `open_log`
# fixture (conftest.py): it opens a log (LogConfig fields as keywords) and serves it.
ApiClient: TypeAlias = "TestClient[web.Request, web.Application]"
OpenLog: TypeAlias = "Callable[..., Awaitable[tuple[Log, ApiClient]]]"


class Signer:
    """A user's ECDSA P-256 key that signs artifact digests."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def proposed(self, artifact: bytes | None = None) -> dict[str, Any]:
        artifact = os.urandom(16) if artifact is None else artifact
        digest = hashlib.sha256(artifact).digest()
        sig = self.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        return {
            "apiVersion": "0.0.1", "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {"content": base64.b64encode(sig).decode(),
                              "publicKey": {"content": base64.b64encode(self.pem).decode()}},
            },
        }


async def submit_entries(client: ApiClient, signer: Signer, count: int, *, per_batch: int = 50) -> None:
    """Submit `count` fresh entries, `per_batch` at once (so the log commits them in several
    batches), and check each was created."""
    for _ in range(count // per_batch):
        replies = await asyncio.gather(*[
            client.post("/api/v1/log/entries", json=signer.proposed()) for _ in range(per_batch)])
        assert [r.status for r in replies] == [201] * per_batch


def check_log_entry(entry_json: dict[str, Any], pub: LogPublicKey) -> tuple[str, dict[str, Any]]:
    """Verify a Rekor LogEntry with our own verifiers: SET, checkpoint, inclusion proof."""
    ((uuid, e),) = entry_json.items()
    body = base64.b64decode(e["body"])
    assert uuid == leaf_hash(body).hex()
    v = e["verification"]
    verify_set(pub, base64.b64decode(v["signedEntryTimestamp"]), body, e["integratedTime"],
               e["logID"], e["logIndex"])
    p = v["inclusionProof"]
    cp = verify_checkpoint(p["checkpoint"].encode(), pub)
    assert cp.size == p["treeSize"] and cp.root_hash.hex() == p["rootHash"]
    verify_inclusion(p["logIndex"], p["treeSize"], leaf_hash(body),
                     [bytes.fromhex(h) for h in p["hashes"]], bytes.fromhex(p["rootHash"]))
    return uuid, e

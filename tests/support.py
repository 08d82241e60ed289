"""Test helpers: real keys, real signatures, real hashedrekord submissions."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.keys import LogPublicKey
from tlog.core.merkle import leaf_hash, verify_inclusion
from tlog.core.timestamp import verify_set


class Signer:
    """A user's ECDSA P-256 key that signs artifact digests."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def proposed(self, artifact: bytes | None = None) -> dict:
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


def check_log_entry(entry_json: dict, pub: LogPublicKey) -> tuple[str, dict]:
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

"""Rekor v1 wire shapes (Rekor's openapi.yaml: LogEntry, LogInfo, ConsistencyProof, Error).

Pure builders and parsers of the JSON the API speaks, shared by the server and the CLI.
Rekor encodes hashes as lower-case hex and signatures/bodies as standard base64; 64-bit
numbers are JSON integers here (unlike the bundle, where they are strings).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tlog.errors import InvalidInput

API_PREFIX = "/api/v1"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# Sharded Rekor prefixes a 16-hex-digit tree ID to the 64-hex entry UUID.
_HEX80 = re.compile(r"[0-9a-fA-F]{80}")


def entry_path(uuid: str) -> str:
    return f"{API_PREFIX}/log/entries/{uuid}"


def parse_uuid(text: str) -> bytes:
    """An entry UUID (hex leaf hash), also in Rekor's 80-hex "<treeID><uuid>" form."""
    if _HEX80.fullmatch(text):
        text = text[16:]
    if not _HEX64.fullmatch(text):
        raise InvalidInput(
            f"entry UUID must be 64 hex digits (the entry's leaf hash), got {text[:100]!r}")
    return bytes.fromhex(text)


@dataclass(frozen=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: Sequence[bytes]
    checkpoint: bytes


def log_entry(uuid: bytes, body: bytes, integrated_time: int, log_id: bytes, log_index: int,
              set_sig: bytes, proof: InclusionProof) -> dict[str, Any]:
    """Rekor's LogEntry: `{<uuid hex>: {body, integratedTime, logID, logIndex, verification}}`."""
    return {uuid.hex(): {
        "body": base64.b64encode(body).decode(),
        "integratedTime": integrated_time,
        "logID": log_id.hex(),
        "logIndex": log_index,
        "verification": {
            "inclusionProof": {
                "checkpoint": proof.checkpoint.decode(),
                "hashes": [h.hex() for h in proof.hashes],
                "logIndex": proof.log_index,
                "rootHash": proof.root_hash.hex(),
                "treeSize": proof.tree_size,
            },
            "signedEntryTimestamp": base64.b64encode(set_sig).decode(),
        },
    }}


def log_info(root: bytes, size: int, checkpoint: bytes, tree_id: str) -> dict[str, Any]:
    """Rekor's LogInfo (GET /api/v1/log)."""
    return {"rootHash": root.hex(), "treeSize": size, "signedTreeHead": checkpoint.decode(),
            "treeID": tree_id, "inactiveShards": []}


def tree_id_of(log_id: bytes) -> str:
    """A stable int64 tree ID (Rekor exposes Trillian's): derived from the logID."""
    return str(int.from_bytes(log_id[:8], "big") & ((1 << 63) - 1))


def consistency_proof(root: bytes, hashes: Sequence[bytes]) -> dict[str, Any]:
    return {"rootHash": root.hex(), "hashes": [h.hex() for h in hashes]}


def error(code: int, message: str) -> dict[str, Any]:
    """Rekor's Error model."""
    return {"code": code, "message": message}

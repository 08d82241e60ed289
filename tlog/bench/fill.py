"""Build a large log fast (`tlog bench --fill N`), for benchmarks and scale tests.

Entries are real, validly signed hashedrekord bodies made by worker processes (signing is
the slow part), then appended through the real sequencer and storage — the very code path
HTTP submissions take after admission — so the log is byte-for-byte the format a log built
over HTTP has (`tlog fsck` checks it). Only the per-request signature check is skipped:
these entries were signed here, a moment ago.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core.entries import event_key_of_body
from tlog.core.entries.hashedrekord import HashedRekord
from tlog.core.merkle import leaf_hash
from tlog.server.log import Log, LogConfig
from tlog.server.sequencer import Admitted
from tlog.server.storage.base import search_key

CHUNK = 4096


_Made = tuple[bytes, bytes, tuple[int, ...], bytes | None]


def _make_chunk(count: int) -> list[_Made]:
    """`count` signed bodies with their leaf hash, search keys and signing-event key where
    it is not the leaf hash (a high-s signature: what admission gives the sequencer, so the
    leaf index holds it as a served log's does; runs in a worker)."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(4)]
    pems = [k.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo) for k in keys]
    prints = [search_key("k", HashedRekord("sha256", b"", b"", pem, False).public_key_fingerprint())
              for pem in pems]
    out: list[_Made] = []
    for i in range(count):
        digest = hashlib.sha256(os.urandom(32)).digest()
        k = i % len(keys)
        sig = keys[k].sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        entry = HashedRekord("sha256", digest, sig, pems[k], False)
        body = entry.canonical_body()
        leaf, event = leaf_hash(body), event_key_of_body(body)
        out.append((body, leaf, (search_key("a", entry.artifact_key().encode()), prints[k]),
                    None if event == leaf else event))
    return out


async def fill(data_dir: Path, count: int, *, workers: int | None = None,
               progress: Callable[[int], None] | None = None, name: str | None = None) -> int:
    """Append `count` entries to the log in `data_dir` (created if new, named `name`:
    LogConfig's default, 127.0.0.1:3000, otherwise). Returns its size."""
    config = LogConfig(data_dir=data_dir, batch_size=CHUNK, batch_ms=0, max_pending=4 * CHUNK)
    if name:
        config = replace(config, public_url=f"http://{name}")
    lg = await Log.open(config)
    loop = asyncio.get_running_loop()
    try:
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
            sizes = [min(CHUNK, count - i) for i in range(0, count, CHUNK)]
            pending = [loop.run_in_executor(pool, _make_chunk, n) for n in sizes[:4]]
            queued = 4
            while pending:
                chunk = await pending.pop(0)
                if queued < len(sizes):
                    pending.append(loop.run_in_executor(pool, _make_chunk, sizes[queued]))
                    queued += 1
                await asyncio.gather(*[lg.sequencer.submit(Admitted(b, h, k, event_key=e, answer=False))
                                       for b, h, k, e in chunk])
                if progress:
                    progress(len(chunk))
        return lg.head.state.size
    finally:
        await lg.close()


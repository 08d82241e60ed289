"""C2SP tlog-tiles: path encoding, and tiles served across tile boundaries."""

from __future__ import annotations

import asyncio

import pytest

from tlog.core.checkpoint import verify_checkpoint
from tlog.core.compact import root_from_leaf_hashes
from tlog.core.merkle import leaf_hash
from tlog.core.tiles import TileRef, decode_entry_bundle, encode_index, parse_tile_path
from tlog.errors import InvalidInput
from tlog.server.log import Log
from tlog.server.sequencer import Admitted

from .support import ApiClient, OpenLog


@pytest.mark.parametrize("n,path", [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"),
                                    (1234067, "x001/x234/067")])
def test_index_encoding_matches_spec(n: int, path: str) -> None:
    assert encode_index(n) == path
    assert parse_tile_path(f"0/{path}") == TileRef(0, n)


@pytest.mark.parametrize("path,ref", [
    ("1/x001/x234/067.p/8", TileRef(1, 1234067, 8)),
    ("entries/000.p/255", TileRef(None, 0, 255)),
    ("entries/x001/000", TileRef(None, 1000, 256)),
])
def test_partial_and_entry_paths(path: str, ref: TileRef) -> None:
    assert parse_tile_path(path) == ref
    assert ref.path() == f"tile/{path}"


@pytest.mark.parametrize("bad", ["0/1", "0/0001", "0/x000/001", "0/001/002", "0/000.p/0",
                                 "0/000.p/256", "0/000.p/08", "01/000", "99/000", "x/000",
                                 "0/000.p", "0/x1/000", "0/000/", "entries"])
def test_malformed_tile_paths_are_404(bad: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_tile_path(bad)
    assert e.value.status == 404


async def fill(lg: Log, n: int) -> list[bytes]:
    """Append n synthetic bodies through the real sequencer (tiles don't read bodies)."""
    bodies = [f"entry {i}".encode() for i in range(n)]
    for start in range(0, n, 8192):
        chunk = bodies[start:start + 8192]
        await asyncio.gather(*[lg.sequencer.submit(Admitted(b, leaf_hash(b), ())) for b in chunk])
    return bodies


async def _get(client: ApiClient, path: str) -> bytes:
    r = await client.get("/" + path)
    assert r.status == 200, (path, r.status, await r.text())
    return await r.read()


async def _rebuild_root_from_tiles(client: ApiClient, size: int) -> bytes:
    """Independent reference: fetch every level-0 tile, fold with the reference MTH."""
    leaves: list[bytes] = []
    for t in range((size + 255) // 256):
        w = min(256, size - 256 * t)
        data = await _get(client, TileRef(0, t, w).path())
        assert len(data) == 32 * w
        leaves += [data[i:i + 32] for i in range(0, len(data), 32)]
    return root_from_leaf_hashes(leaves)


@pytest.mark.parametrize("size", [1, 255, 256, 257, 65536 + 3])
async def test_tiles_rebuild_the_checkpoint_root(open_log: OpenLog, size: int) -> None:
    lg, client = await open_log(batch_size=4096, batch_ms=0, max_pending=10_000)
    bodies = await fill(lg, size)
    note = await _get(client, "checkpoint")
    cp = verify_checkpoint(note, lg.public_key)
    assert cp.size == size
    assert await _rebuild_root_from_tiles(client, size) == cp.root_hash
    # Level-1 tiles hold the roots of each full 256-leaf group.
    groups = size // 256
    if groups:
        level1 = await _get(client, TileRef(1, 0, min(256, groups)).path())
        for g in (0, groups - 1):
            assert level1[32 * g:32 * g + 32] == root_from_leaf_hashes(
                [leaf_hash(b) for b in bodies[256 * g:256 * g + 256]])
    if size > 65536:
        level2 = await _get(client, "tile/2/000.p/1")
        assert level2 == root_from_leaf_hashes([leaf_hash(b) for b in bodies[:65536]])
    # Entry bundles round-trip to the very bodies, and hash to the level-0 tile.
    last = (size - 1) // 256
    w = size - 256 * last
    bundle = decode_entry_bundle(await _get(client, TileRef(None, last, w).path()))
    assert bundle == bodies[256 * last:size]
    tile0 = await _get(client, TileRef(0, last, w).path())
    assert b"".join(leaf_hash(b) for b in bundle) == tile0


async def test_tile_caching_and_absent_tiles(open_log: OpenLog) -> None:
    lg, client = await open_log(batch_ms=0)
    await fill(lg, 300)
    r = await client.get("/tile/0/000")
    assert r.status == 200 and "immutable" in r.headers["Cache-Control"]
    etag = r.headers["ETag"]
    r = await client.get("/tile/0/000", headers={"If-None-Match": etag})
    assert r.status == 304
    r = await client.get("/tile/0/001.p/44")
    assert r.status == 200 and "immutable" not in r.headers["Cache-Control"]
    for absent in ("/tile/0/001", "/tile/0/001.p/45", "/tile/1/000", "/tile/entries/002.p/1", "/tile/0/01"):
        r = await client.get(absent)
        assert r.status == 404, absent
        assert (await r.json())["code"] == 404
    r = await client.get("/checkpoint")
    assert r.headers["Cache-Control"] == "public, max-age=2"
    assert r.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("bad", ["0/²", "²/000", "0/000.p/²", "0/٣٣٣", "0/" + "9" * 5000,
                                 "0/" + "x000/" * 40 + "000"])
def test_non_ascii_and_overlong_tile_paths_are_404(bad: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_tile_path(bad)
    assert e.value.status == 404

"""Storage: the contract every driver keeps (run against each one in
tests/storage_contract.py's `DRIVERS`), then what only SQLite can show: history that the
schema itself refuses to rewrite."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from pathlib import Path

import pytest

from tlog.core.merkle import leaf_hash, node_hash
from tlog.core.tiles import TILE_WIDTH, TileRef, encode_entry_bundle
from tlog.core.tilestate import TileWrite, TreeState, expand_tile
from tlog.server.layout import DB_FILE
from tlog.server.storage.base import NewEntry, NoStorage, StorageError, StoredCheckpoint
from tlog.server.storage.memory import MemoryDriver
from tlog.server.storage.sqlite import SqliteStorage

from .storage_contract import TIME, Driver, append, body, driver_fixture, fill  # noqa: F401 (fixture)
from .support import OpenLog, Signer, check_log_entry

LEAVES = [leaf_hash(body(i)) for i in range(1000)]


async def test_a_new_storage_is_empty(driver: Driver) -> None:
    st = await driver.open()
    assert await st.get_meta() == {}
    assert await st.latest_checkpoint() is None
    rec = await st.recover()
    assert (rec.size, rec.level8, rec.tail_leaves, rec.checkpoint) == (0, [], [], None)
    assert await st.read_entries([0, 1]) == {} and await st.read_entries([]) == {}
    assert await st.read_entry_range(0, 256) == []
    assert await st.read_tile(0, 0) == b""
    assert await st.read_leaf_tiles([0, 1]) == {} and await st.read_leaf_tiles([]) == {}
    assert await st.find_leaves([LEAVES[0]]) == {} and await st.find_leaves([]) == {}
    assert await st.search([1], before=10, limit=5) == [] and await st.search([], before=10, limit=5) == []
    await st.ping()
    await st.close()


async def test_identity_is_recorded_once(driver: Driver) -> None:
    st = await driver.open()
    await st.init_meta({"log_id": "ab", "origin": "example.org/log"})
    with pytest.raises(StorageError):
        await st.init_meta({"log_id": "cd"})
    with pytest.raises(StorageError):
        await st.init_meta({"other": "x"})
    await st.close()
    st = await driver.open()
    meta = await st.get_meta()
    assert meta["log_id"] == "ab" and meta["origin"] == "example.org/log" and "other" not in meta
    await st.close()


async def test_a_batch_reads_back_entry_by_entry_and_by_range(driver: Driver) -> None:
    st = await driver.open()
    state = await fill(st, 300)
    got = await st.read_entries([0, 299, 300, 7])
    assert got == {0: (TIME, body(0)), 299: (TIME, body(299)), 7: (TIME, body(7))}
    assert await st.read_entry_range(250, 310) == [body(i) for i in range(250, 300)]
    assert await st.read_entry_range(-3, 2) == [body(0), body(1)]
    assert await st.read_entry_range(0, 10**12) == [body(i) for i in range(300)]
    assert await st.read_entry_range(5, 5) == []
    for lo, hi in ((250, 310), (-3, 2), (0, 10**12), (5, 5)):
        assert await st.entry_range_size(lo, hi) == sum(map(len, await st.read_entry_range(lo, hi)))
    cp = await st.latest_checkpoint()
    assert cp == StoredCheckpoint(300, state.root(), b"note", TIME)
    await st.close()


async def test_tiles_join_their_chunks_and_refuse_a_gap(driver: Driver) -> None:
    st = await driver.open()
    await fill(st, 300)  # tile 0/0 is stored in three chunks (0, 100, 200), 0/1 in one
    full = b"".join(LEAVES[:256])
    assert await st.read_tile(0, 0) == full
    assert await st.read_tile(0, 1) == b"".join(LEAVES[256:300])
    pairs = LEAVES[:256]
    while len(pairs) > 1:
        pairs = [node_hash(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    assert await st.read_tile(1, 0) == pairs[0]  # the level-8 node over tile 0/0
    assert await st.read_leaf_tiles([1, 0, 5, 1]) == {0: full, 1: b"".join(LEAVES[256:300])}
    # A chunk that does not continue the tile (a lost write, a bug) is corruption on read.
    cp = await st.latest_checkpoint()
    assert cp is not None
    await st.append_batch([], TIME, [TileWrite(0, 9, 3, LEAVES[0])],
                          StoredCheckpoint(301, cp.root, b"n", TIME))
    with pytest.raises(StorageError, match="tile 0/9 is corrupt"):
        await st.read_tile(0, 9)
    with pytest.raises(StorageError, match="tile 0/9 is corrupt"):
        await st.read_leaf_tiles([0, 9])
    await st.close()


async def test_full_tiles_are_stored_expanded_as_they_complete(driver: Driver) -> None:
    """Each batch's tile writes carry the expansion of every tile it completes
    (`TreeState.extended`): the driver stores it, and `read_expanded_tiles` gives back exactly
    those of full tiles — before and after a reopen, read-only too."""
    st = await driver.open()
    state = TreeState.empty()
    # Sizes 1, 255, 256 (a tile completes exactly), 556, 1156 (two complete in one batch), 1256.
    for count in (1, 254, 1, 300, 600, 100):
        state = await append(st, state, [body(i) for i in range(state.size, state.size + count)])
    leaves = [leaf_hash(body(i)) for i in range(state.size)]
    expected = {t: expand_tile(b"".join(leaves[t * TILE_WIDTH:(t + 1) * TILE_WIDTH])) for t in range(4)}
    level8 = await st.read_tile(1, 0)
    for t, nodes in expected.items():  # its level 0 is the tile, its top pair the level-8 node
        assert nodes[:TILE_WIDTH * 32] == await st.read_tile(0, t)
        assert node_hash(nodes[-64:-32], nodes[-32:]) == level8[32 * t:32 * t + 32]
    assert await st.read_expanded_tiles(range(7)) == expected  # not 4 (partial), 5, 6 (none)
    assert await st.read_expanded_tiles([4, 9, -1]) == {} and await st.read_expanded_tiles([]) == {}
    await st.close()
    st = await driver.open(read_only=True)
    assert await st.read_expanded_tiles([3, 0, 3]) == {0: expected[0], 3: expected[3]}
    await st.close()


async def test_a_tile_expansion_is_stored_once(driver: Driver) -> None:
    """Append-only: a batch that would store a second expansion of a tile stores nothing."""
    st = await driver.open()
    state = await fill(st, 300)
    (stored,) = (await st.read_expanded_tiles([0])).values()
    new, writes = state.extended([leaf_hash(b"x")])
    # A write that adds no chunk (none at position 256 of tile 0 to clash with), only the
    # expansion of tile 0 once more.
    writes = [*writes, TileWrite(0, 0, TILE_WIDTH, b"", expand_tile(b"".join(LEAVES[:TILE_WIDTH])))]
    with pytest.raises(StorageError, match=r"tile expansion|tile_nodes"):
        await st.append_batch([NewEntry(300, b"x", leaf_hash(b"x"), ())], TIME, writes,
                              StoredCheckpoint(301, new.root(), b"n", TIME))
    new.truncate_to(state)
    assert (await st.recover()).size == 300 and await st.read_entries([300]) == {}
    assert await st.read_expanded_tiles([0, 1]) == {0: stored}
    await st.close()


async def test_find_leaves_confirms_prefix_hits_against_the_bodies(driver: Driver) -> None:
    st = await driver.open()
    await fill(st, 10)
    found = await st.find_leaves([LEAVES[7], LEAVES[3], leaf_hash(b"nope")])
    assert found == {LEAVES[7]: 7, LEAVES[3]: 3}
    # An index row whose prefix matches but whose body hashes otherwise (an 8-byte
    # collision) is no hit.
    decoy = leaf_hash(b"decoy")
    await st.append_batch([NewEntry(10, b"not the decoy", decoy, ())], TIME, [],
                          StoredCheckpoint(11, b"r" * 32, b"n", TIME))
    assert await st.find_leaves([decoy]) == {}
    assert await st.find_leaves([decoy], writer=True) == {}
    assert await st.find_leaves([LEAVES[9]], writer=True) == {LEAVES[9]: 9}
    await st.close()


async def test_the_leaf_index_finds_an_entry_by_its_event_key_too(driver: Driver) -> None:
    # The sequencer dedupes by signing event (issue 11, item 7): entries 2 and 5 carry an
    # event key, entry 6 is another body of entry 5's event (logged before the dedupe).
    st = await driver.open()
    event = {2: leaf_hash(b"event-2"), 5: leaf_hash(b"event-5"), 6: leaf_hash(b"event-5")}
    bodies = [body(i) for i in range(8)]
    await append(st, TreeState.empty(), bodies, events=event.get)

    def event_of(b: bytes) -> bytes:
        return event.get(bodies.index(b), leaf_hash(b))

    for reopened in (False, True):
        if reopened:  # what was stored is still there
            await st.close()
            st = await driver.open()
        wanted = [event[2], event[5], LEAVES[3], leaf_hash(b"nope")]
        # The oldest entry of an event is the one found.
        assert await st.find_leaves(wanted, writer=True, key_of=event_of) == {
            event[2]: 2, event[5]: 5, LEAVES[3]: 3}
        # By default a hit is confirmed by leaf hash: an event key is no UUID.
        assert await st.find_leaves([event[2]]) == {}
        assert await st.find_leaves([LEAVES[2], LEAVES[6]]) == {LEAVES[2]: 2, LEAVES[6]: 6}
    await st.close()


async def test_search_gives_distinct_candidates_newest_first_a_page_at_a_time(driver: Driver) -> None:
    st = await driver.open()
    # Entry i has keys i % 3 and 100 (twice: a repeated key is stored once).
    await append(st, TreeState.empty(), [body(i) for i in range(7)], keys=lambda i: (i % 3, 100, 100))
    assert await st.search([1], before=7, limit=10) == [4, 1]
    assert await st.search([2, 1, 2], before=7, limit=10) == [5, 4, 2, 1]
    assert await st.search([100], before=7, limit=10) == list(range(6, -1, -1))
    assert await st.search([5], before=7, limit=10) == []
    # Pages: at most `limit`, below `before`; the union's page is its newest, whichever key.
    assert await st.search([100], before=7, limit=3) == [6, 5, 4]
    assert await st.search([100], before=4, limit=3) == [3, 2, 1]
    assert await st.search([100], before=1, limit=3) == [0]
    assert await st.search([0, 1], before=7, limit=3) == [6, 4, 3]
    assert await st.search([0, 1], before=3, limit=3) == [1, 0]
    # `every`: under all the keys.
    assert await st.search([100, 1], before=7, limit=10, every=True) == [4, 1]
    assert await st.search([1, 100], before=4, limit=10, every=True) == [1]
    assert await st.search([1, 2], before=7, limit=10, every=True) == []
    await st.close()


async def test_search_pages_through_more_candidates_than_sqlite_has_variables(driver: Driver) -> None:
    """Issue 11, item 1: 40,000 entries under one key (SQLite allows 32,766 variables in one
    statement) are read a page at a time, and none is missed."""
    st = await driver.open()
    state = TreeState.empty()
    for start in range(0, 40_000, 10_000):
        state = await append(st, state, [b"e%d" % i for i in range(start, start + 10_000)],
                             keys=lambda i: (7, i % 2))
    seen: list[int] = []
    before = state.size
    while page := await st.search([7], before=before, limit=8192):
        seen += page
        before = page[-1]
    assert seen == list(range(39_999, -1, -1))
    assert len(await st.search([7, 1], before=40_000, limit=40_000, every=True)) == 20_000
    await st.close()


async def test_latest_checkpoint_is_the_largest(driver: Driver) -> None:
    st = await driver.open()
    state = TreeState.empty()
    for n in (1, 5, 2):
        state = await append(st, state, [body(state.size + i) for i in range(n)])
        cp = await st.latest_checkpoint()
        assert cp is not None and (cp.size, cp.root) == (state.size, state.root())
    await st.close()


@pytest.mark.parametrize("statement", [
    "UPDATE entries SET body = x'00' WHERE idx = 0",
    "DELETE FROM entries WHERE idx = 5",
    "UPDATE tiles SET hashes = x'00'",
    "DELETE FROM tiles",
    "DELETE FROM checkpoints",
    "UPDATE checkpoints SET root = x'00'",
    "DELETE FROM leaf_index",
    "DELETE FROM search_index",
    "UPDATE meta SET value = 'x'",
    "UPDATE attestations SET data = x'00'",
    "DELETE FROM attestations",
    "UPDATE tile_nodes SET nodes = x'00'",
    "DELETE FROM tile_nodes",
])
async def test_sqlite_schema_refuses_to_rewrite_history(tmp_path: Path, statement: str) -> None:
    st = await SqliteStorage.open_in(tmp_path)
    await fill(st, 300)
    await st.init_meta({"log_id": "ab"})
    await st.put_attestation("ab" * 32, b"kept")
    await st.close()
    con = sqlite3.connect(tmp_path / DB_FILE)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute(statement)
    con.close()


async def test_recover_after_reopen_rebuilds_the_tree_from_tiles(driver: Driver) -> None:
    st = await driver.open()
    state = await fill(st, 1000)
    await st.close()
    st = await driver.open()
    rec = await st.recover()
    assert rec.size == 1000 and len(rec.level8) == 3 and len(rec.tail_leaves) == 1000 - 768
    assert TreeState.restore(rec.size, rec.level8, rec.tail_leaves).root() == state.root()
    assert rec.checkpoint == await st.latest_checkpoint()
    assert await st.find_leaves([LEAVES[7], leaf_hash(b"nope")]) == {LEAVES[7]: 7}
    await st.close()


async def test_recover_refuses_entries_the_checkpoint_does_not_cover(driver: Driver) -> None:
    st = await driver.open()
    state = await fill(st, 10)
    await st.append_batch([NewEntry(10, b"x", leaf_hash(b"x"), ())], TIME, [],
                          StoredCheckpoint(5, state.root(), b"n", TIME))  # stored, but not covered
    with pytest.raises(StorageError, match="holds 11 entries but its latest checkpoint is at size 10"):
        await st.recover()
    await st.close()


@pytest.mark.parametrize("clash", ["entry index", "entry twice in the batch", "tile chunk",
                                   "checkpoint size"])
async def test_a_batch_that_would_rewrite_history_stores_nothing(driver: Driver, clash: str) -> None:
    st = await driver.open()
    state = await fill(st, 10)
    new, writes = state.extended([leaf_hash(b"x"), leaf_hash(b"y")])
    entries = [NewEntry(10, b"x", leaf_hash(b"x"), (77,)), NewEntry(11, b"y", leaf_hash(b"y"), (77,))]
    checkpoint = StoredCheckpoint(12, new.root(), b"n", 1)
    if clash == "entry index":
        entries[1] = NewEntry(5, b"y", leaf_hash(b"y"), (77,))
    elif clash == "entry twice in the batch":
        entries[1] = NewEntry(10, b"y", leaf_hash(b"y"), (77,))
    elif clash == "tile chunk":
        writes = [*writes, TileWrite(0, 0, 0, LEAVES[0])]
    else:
        checkpoint = StoredCheckpoint(10, new.root(), b"n", 1)
    with pytest.raises(StorageError):
        await st.append_batch(entries, 1, writes, checkpoint)
    new.truncate_to(state)
    # Nothing of the batch is stored: not its entries, index rows, tiles or checkpoint.
    rec = await st.recover()
    assert rec.size == 10 and rec.checkpoint is not None and rec.checkpoint.size == 10
    assert rec.tail_leaves == LEAVES[:10]
    assert await st.read_entries([10, 11]) == {} and await st.search([77], before=20, limit=5) == []
    assert await st.find_leaves([leaf_hash(b"x"), leaf_hash(b"y")]) == {}
    assert await st.read_tile(0, 0) == b"".join(LEAVES[:10])
    await st.close()


async def test_attestations_are_kept_once_by_name_and_survive_a_reopen(driver: Driver) -> None:
    st = await driver.open()
    a, b = hashlib.sha256(b"envelope").hexdigest(), hashlib.sha256(b"payload").hexdigest()
    assert await st.get_attestation(a) is None
    await st.put_attestation(a, b"envelope")
    await st.put_attestation(a, b"envelope")  # idempotent: stored once
    await st.put_attestation(b, b"payload")
    assert await st.get_attestation(a) == b"envelope" and await st.get_attestation(b) == b"payload"
    await st.close()
    st = await driver.open(read_only=True)
    assert await st.get_attestation(a) == b"envelope" and await st.get_attestation("00" * 32) is None
    with pytest.raises(StorageError):
        await st.put_attestation(hashlib.sha256(b"x").hexdigest(), b"x")
    await st.close()
    st = await driver.open()
    assert await st.get_attestation(hashlib.sha256(b"x").hexdigest()) is None
    await st.close()


async def test_read_only_storage_serves_reads_and_refuses_writes(driver: Driver) -> None:
    with pytest.raises(NoStorage):  # nothing to serve yet, and nothing is created
        await driver.open(read_only=True)
    assert not (driver.data_dir / DB_FILE).exists()
    st = await driver.open()
    state = await fill(st, 10)
    await st.init_meta({"log_id": "ab"})
    await st.close()
    st = await driver.open(read_only=True)
    assert await st.read_entries([3]) == {3: (TIME, body(3))}
    assert (await st.recover()).size == 10
    await st.ping()
    new, writes = state.extended([leaf_hash(b"x")])
    with pytest.raises(StorageError):
        await st.append_batch([NewEntry(10, b"x", leaf_hash(b"x"), ())], TIME, writes,
                              StoredCheckpoint(11, new.root(), b"n", TIME))
    with pytest.raises(StorageError):
        await st.init_meta({"origin": "o"})
    assert (await st.recover()).size == 10 and "origin" not in await st.get_meta()
    await st.close()


async def test_a_whole_log_serves_http_on_every_driver(driver: Driver, open_log: OpenLog,
                                                      signer: Signer) -> None:
    """A real Log and HTTP API on each driver: submit, read back, search, tiles, reopen."""
    lg, client = await open_log(data_dir=driver.data_dir, storage_factory=driver.factory, batch_ms=0)
    entries = []
    for _ in range(3):
        r = await client.post("/api/v1/log/entries", json=signer.proposed())
        assert r.status == 201, await r.text()
        entries.append(check_log_entry(await r.json(), lg.public_key))
    uuid, entry = entries[1]
    r = await client.get("/api/v1/log/entries", params={"logIndex": "1"})
    assert check_log_entry(await r.json(), lg.public_key)[0] == uuid
    r = await client.get(f"/api/v1/log/entries/{uuid}")
    assert r.status == 200 and check_log_entry(await r.json(), lg.public_key)[1]["body"] == entry["body"]
    r = await client.post("/api/v1/index/retrieve", json={"publicKey": {
        "format": "x509", "content": base64.b64encode(signer.pem).decode()}})
    assert sorted(await r.json()) == sorted(u for u, _ in entries)
    bundle = await (await client.get(f"/{TileRef(None, 0, 3).path()}")).read()
    assert bundle == encode_entry_bundle([base64.b64decode(e["body"]) for _, e in entries])
    size, root = lg.head.state.size, lg.head.root
    await lg.close()
    lg, client = await open_log(data_dir=driver.data_dir, storage_factory=driver.factory)
    assert (lg.head.state.size, lg.head.root) == (size, root)
    r = await client.get("/api/v1/log/entries", params={"logIndex": "2"})
    assert check_log_entry(await r.json(), lg.public_key)[0] == entries[2][0]
    assert (await client.get("/readyz")).status == 200


async def test_memory_driver_keeps_the_log_across_handles_only(tmp_path: Path) -> None:
    """Each MemoryDriver is its own database: a second one starts empty."""
    first = MemoryDriver()
    st = await first(tmp_path)
    await fill(st, 3)
    await st.close()
    assert (await (await first(tmp_path)).recover()).size == 3
    assert (await (await MemoryDriver()(tmp_path)).recover()).size == 0

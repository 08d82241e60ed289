"""The versions of what a log's storage holds, and how stored data is brought up to date.

Every driver keeps the same data and records its version its own way (SQLite: `meta` rows,
tlog.server.storage.sqlite; PostgreSQL: its `schema_version` table) with its own DDL. The
versions below are SQLite's; PostgreSQL numbers its own steps (tlog.server.storage.postgres
`MIGRATIONS`: 1 the history tables, 2 the frontends' queue tables, 3 the same identity
backfill as here; its logs always held event keys). The versions:

1. entries, tiles, checkpoints, the leaf index (leaf hashes), the search index, meta.
2. the leaf index also holds the signing-event key of every entry that has one
   (`NewEntry.event_key`: a high-s ECDSA hashedrekord signature, issue 11 item 7; an
   attestation's, tlog.core.entries.stored). A database written before that has none for
   its old entries, so the same signature with the other s would be logged again:
   `event_key_rows` derives the missing rows from the stored bodies.
3. the search index also holds the certificate identities of every entry signed with an
   X.509 certificate (SAN emails and URIs, tlog.core.entries.body_identities; search by
   identity, issues 17 and 18): `identity_key_rows` derives them for the entries stored
   before.
4. the `attestations` table: the DSSE envelopes and payloads kept beside attestation
   entries (tlog.server.attestations), which were files in DATA_DIR/attestations/ before
   (still read there as a fallback: nothing is copied, nothing is lost). PostgreSQL's is
   its version 4, too.
5. the `tile_nodes` table: the expansion of every full level-0 tile (its nodes at levels
   0–7, `TileWrite.expansion`), so that an inclusion proof reads one row and rehashes
   nothing (issue 16): the sequencer stores each as its tile completes, and the migration
   computes those of the tiles stored before (tlog.core.tilestate.expand_tile). A database
   opened read-only at an older version serves proofs by expanding tiles as before.
   PostgreSQL's is its version 5.

The rule every driver follows:
- a writable open brings an older database to `CURRENT`: each step, and the record of the
  version it reaches, in one transaction, so a crash in the middle leaves the version
  before it and the next open runs the step again (steps only insert rows, and tolerate
  rows already there: a log served by code that wrote event keys before it recorded
  version 2 has some);
- a read-only open never writes: it serves what is stored, and a checker (`tlog fsck`)
  checks only what the stored version promises;
- a version newer than `CURRENT` is refused: this code does not know what it promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from tlog.core.entries import body_identities, event_key_of_body
from tlog.core.merkle import leaf_hash
from tlog.server.storage.base import key_prefix, search_key

CURRENT: Final = 5
EVENT_KEYS: Final = 2  # the first version whose leaf index holds every event key
IDENTITY_KEYS: Final = 3  # the first version whose search index holds every identity
ATTESTATIONS: Final = 4  # the first version that keeps attestations in the database
TILE_NODES: Final = 5  # the first version that stores every full tile's expansion


def event_key_rows(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """The (prefix, index) leaf-index rows of the signing-event keys of stored (index,
    body) entries: the ones `append_batch` writes for a `NewEntry.event_key` (the rows
    of the migration to version 2), read off the bodies as the dedupe reads them."""
    rows = []
    for index, body in entries:
        key = event_key_of_body(body)
        if key != leaf_hash(body):
            rows.append((key_prefix(key), index))
    return rows


def identity_key_rows(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """The (key, index) search-index rows of the certificate identities of stored (index,
    body) entries: the ones admission writes (tlog.server.log.Log.admit; the rows of the
    migration to version 3), read off the bodies as admission reads them."""
    return [(search_key("i", identity.encode()), index)
            for index, body in entries for identity in body_identities(body)]

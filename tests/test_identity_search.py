"""Search by certificate identity (issues 17 and 18): Rekor's SearchIndex `email` and tlog's
`identity` (a SAN URI, such as a Fulcio GitHub-workflow identity, or an email).

Admission indexes each SAN email lower-cased (Rekor's x509 `PublicKey.Subjects`) and each
SAN URI exactly, for every entry kind whose signer is a certificate; `POST
/api/v1/index/retrieve` finds them, alone or with `hash`/`publicKey` under `operator`,
confirmed against the stored bodies; schema 3 backfills the rows of a log written before
(SQLite and PostgreSQL), and `tlog fsck` checks them once the schema promises them;
`tlog search --email/--identity` asks for them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core.entries import dsse, hashedrekord
from tlog.core.identity import MAX_IDENTITY_LENGTH
from tlog.core.tilestate import TreeState
from tlog.server.fsck import check_data_dir
from tlog.server.log import Log
from tlog.server.storage.base import search_key
from tlog.server.storage.postgres import MIGRATIONS, PostgresStorage
from tlog.server.storage.sqlite import SCHEMA_VERSION, schema_version

from .cli_support import Server, json_out, ok, serve, tlog
from .org_ca import OrgCA
from .pg_support import fresh_database
from .storage_contract import append
from .support import ApiClient, OpenLog, Signer
from .test_attestation_entries import envelope, statement
from .test_migration import EXPANSIONS_UNSTORED, IDENTITIES_UNSTORED, note, sql
from .test_serve import stop

SEARCH = "/api/v1/index/retrieve"
ENTRIES = "/api/v1/log/entries"
EMAIL = "Alice@Example.com"  # as the SAN writes it; indexed and searched lower-cased
WORKFLOW = "https://github.com/Org/Repo/.github/workflows/release.yml@refs/heads/main"
OTHER_WORKFLOW = "https://github.com/org/repo/.github/workflows/nightly.yml@refs/heads/main"


def ident(value: str) -> int:
    return search_key("i", value.encode())


def certified(ca: OrgCA, signer: Signer, artifact: bytes, *, email: str | None = None,
              uri: str | None = None) -> dict[str, Any]:
    """A hashedrekord of `artifact` signed with a certificate naming `email` and/or `uri`."""
    cert = ca.issue(signer.key.public_key(), email=email, uri=uri, sct=False)
    digest = hashlib.sha256(artifact).digest()
    signature = signer.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return hashedrekord.proposed_entry("sha256", digest, signature,
                                       cert.public_bytes(serialization.Encoding.PEM))


def certified_dsse(ca: OrgCA, signer: Signer, email: str) -> dict[str, Any]:
    """A dsse attestation whose one verifier is a certificate naming `email`."""
    env = envelope(statement(("app", b"an app")), signer.key)
    cert = ca.issue(signer.key.public_key(), email=email, sct=False)
    return dsse.proposed_entry(json.dumps(env.to_json()), [cert.public_bytes(serialization.Encoding.PEM)])


@pytest.fixture(scope="module")
def ca() -> OrgCA:
    return OrgCA.create()


@dataclasses.dataclass
class Logged:
    lg: Log
    client: ApiClient
    uuids: list[str]  # by log index: key-signed, email+workflow, email, other workflow, dsse
    key_pem: bytes  # the key of entry 0


@pytest.fixture
async def logged(open_log: OpenLog, ca: OrgCA, tmp_path: Path) -> Logged:
    lg, client = await open_log(data_dir=tmp_path / "data")
    signer, other = Signer(), Signer()
    proposals = [signer.proposed(b"A"), certified(ca, signer, b"B", email=EMAIL, uri=WORKFLOW),
                 certified(ca, other, b"C", email=EMAIL.lower()),
                 certified(ca, other, b"D", uri=OTHER_WORKFLOW), certified_dsse(ca, other, EMAIL)]
    uuids = []
    for p in proposals:
        r = await client.post(ENTRIES, json=p)
        assert r.status == 201, await r.text()
        uuids.append(next(iter(await r.json())))
    return Logged(lg, client, uuids, signer.pem)


async def search(client: ApiClient, query: dict[str, Any], status: int = 200) -> Any:
    r = await client.post(SEARCH, json=query)
    assert r.status == status, await r.text()
    return await r.json()


# -- admission ---------------------------------------------------------------------------------

async def test_admission_indexes_a_certificates_san_emails_lower_cased_and_uris_exactly(
        open_log: OpenLog, ca: OrgCA) -> None:
    lg, _ = await open_log()
    signer = Signer()
    keys = set((await lg.admit(certified(ca, signer, b"x", email=EMAIL, uri=WORKFLOW))).search_keys)
    assert {ident(EMAIL.lower()), ident(WORKFLOW)} <= keys
    assert ident(EMAIL) not in keys and ident(WORKFLOW.lower()) not in keys
    # Artifact, key and the two identities: nothing else.
    assert len(keys) == 4
    # A key-signed entry has no identity.
    plain = (await lg.admit(signer.proposed(b"x"))).search_keys
    assert len(plain) == 2 and ident(EMAIL.lower()) not in plain


async def test_admission_indexes_a_dsse_certificate_verifiers_identity(open_log: OpenLog, ca: OrgCA) -> None:
    lg, _ = await open_log()
    keys = (await lg.admit(certified_dsse(ca, Signer(), EMAIL))).search_keys
    assert ident(EMAIL.lower()) in keys


# -- the API -----------------------------------------------------------------------------------

async def test_search_by_email_and_by_identity(logged: Logged) -> None:
    u = logged.uuids
    for query in ({"email": EMAIL}, {"email": EMAIL.upper()}, {"identity": EMAIL.lower()}):
        assert await search(logged.client, query) == [u[1], u[2], u[4]]
    assert await search(logged.client, {"identity": WORKFLOW}) == [u[1]]
    assert await search(logged.client, {"identity": OTHER_WORKFLOW}) == [u[3]]
    # A URI is compared exactly: its case is the workflow's.
    assert await search(logged.client, {"identity": WORKFLOW.lower()}) == []
    assert await search(logged.client, {"email": "bob@example.com"}) == []


async def test_identity_combines_with_hash_and_public_key_under_the_operator(logged: Logged) -> None:
    u, client = logged.uuids, logged.client
    hash_of = {name: "sha256:" + hashlib.sha256(name).hexdigest() for name in (b"A", b"B", b"C")}
    assert await search(client, {"email": EMAIL, "hash": hash_of[b"C"], "operator": "and"}) == [u[2]]
    assert await search(client, {"email": EMAIL, "hash": hash_of[b"A"], "operator": "and"}) == []
    assert await search(client, {"email": EMAIL, "hash": hash_of[b"A"]}) == [u[0], u[1], u[2], u[4]]
    key = {"format": "x509", "content": logged.key_pem.decode()}
    # Entries 0 and 1 share the key; only 1 is signed with a certificate.
    assert await search(client, {"publicKey": key, "email": EMAIL, "operator": "and"}) == [u[1]]
    assert await search(client, {"publicKey": key, "identity": OTHER_WORKFLOW}) == [u[0], u[1], u[3]]
    assert await search(client, {"email": EMAIL, "identity": WORKFLOW, "operator": "and"}) == [u[1]]


async def test_identity_hits_are_confirmed_against_the_bodies_and_paged(logged: Logged) -> None:
    """An index row that says an identity the body's certificate does not name (an 8-byte
    key collision, here forged) is not a match; a search pages like the others."""
    lg = logged.lg
    admitted = await lg.admit(Signer().proposed(b"E"))
    forged = dataclasses.replace(admitted, search_keys=(*admitted.search_keys, ident(EMAIL.lower())))
    await lg.sequencer.submit(forged)
    u = logged.uuids
    assert await search(logged.client, {"email": EMAIL}) == [u[1], u[2], u[4]]
    first = await lg.search(None, None, identities=[EMAIL.lower()], limit=2)
    assert ([x.hex() for x in first.uuids], first.more_before) == ([u[2], u[4]], 2)
    rest = await lg.search(None, None, identities=[EMAIL.lower()], before=2, limit=2)
    assert ([x.hex() for x in rest.uuids], rest.more_before) == ([u[1]], None)


@pytest.mark.parametrize(("query", "message"), [
    ({"email": "not-an-email"}, "email: 'not-an-email' is not an email address"),
    ({"email": WORKFLOW}, "is not an email address"),
    ({"identity": "alice"}, "not an email address (local@domain) or a URI"),
    ({"identity": "a b@example.com"}, "white space"),
    ({"identity": 7}, "identity must be a non-empty string"),
    ({"email": ""}, "email must be a non-empty string"),
    ({"identity": "https://x/" + "a" * MAX_IDENTITY_LENGTH}, f"at most {MAX_IDENTITY_LENGTH} characters"),
    ({"operator": "and"}, "give hash, publicKey, email and/or identity"),
])
async def test_malformed_identities_are_a_clear_400(logged: Logged, query: dict[str, Any],
                                                    message: str) -> None:
    assert message in (await search(logged.client, query, 400))["message"]


# -- existing logs: the migration to schema 3, and fsck ---------------------------------------------

def identity_rows(data: Path) -> set[tuple[int, int]]:
    keys = {ident(EMAIL.lower()), ident(WORKFLOW), ident(OTHER_WORKFLOW)}
    return {(k, i) for k, i in sql(data, "SELECT key, idx FROM search_index") if k in keys}


def to_schema_2(data: Path, keep: tuple[int, ...] = ()) -> None:
    """What schema 2 wrote: no identity rows (but for entries in `keep`), schema "2". The
    append-only triggers are dropped to do it; the driver's next open makes them again."""
    triggers = sql(data, "SELECT name FROM sqlite_master WHERE type = 'trigger'")
    sql(data, *(f"DROP TRIGGER {name}" for (name,) in triggers),
        *(f"DELETE FROM search_index WHERE key = {k} AND idx = {i}"
          for k, i in identity_rows(data) if i not in keep),
        "DROP TABLE tile_nodes",  # schema 5's
        "UPDATE meta SET value = '2' WHERE key = 'schema'",
        "DELETE FROM meta WHERE key LIKE 'schema_migrated_to_%'")


async def test_a_schema_2_log_is_noted_by_fsck_then_migrated_and_searchable(
        logged: Logged, open_log: OpenLog) -> None:
    data = logged.lg.config.data_dir
    await logged.lg.close()
    rows = identity_rows(data)
    assert {i for _, i in rows} == {1, 2, 3, 4} and len(rows) == 5
    to_schema_2(data, keep=(2,))
    rep = check_data_dir(data)
    assert rep.ok, rep.faults
    assert rep.notes == [note(2, IDENTITIES_UNSTORED, EXPANSIONS_UNSTORED)]
    lg, client = await open_log(data_dir=data)
    meta = await lg.storage.get_meta()
    assert meta["schema"] == "2" and "schema_migrated_to_3" in meta
    assert schema_version(meta) == SCHEMA_VERSION
    u = logged.uuids
    assert await search(client, {"email": EMAIL}) == [u[1], u[2], u[4]]
    assert await search(client, {"identity": OTHER_WORKFLOW}) == [u[3]]
    await lg.close()
    assert identity_rows(data) == rows
    rep = check_data_dir(data)
    assert rep.ok and rep.notes == [], (rep.faults, rep.notes)


async def test_fsck_requires_the_identity_rows_from_schema_3(logged: Logged) -> None:
    data = logged.lg.config.data_dir
    await logged.lg.close()
    assert check_data_dir(data).ok
    sql(data, "DROP TRIGGER search_index_no_delete",
        f"DELETE FROM search_index WHERE idx = 3 AND key = {ident(OTHER_WORKFLOW)}")
    faults = [(f.kind, f.where, f.detail) for f in check_data_dir(data).faults]
    assert len(faults) == 1 and faults[0][:2] == ("search_index", "entry 3")
    assert f"no row for identity {OTHER_WORKFLOW}" in faults[0][2]


async def test_postgresql_migration_3_backfills_the_identity_rows(logged: Logged) -> None:
    """A PostgreSQL log at this driver's version 2 (no identity rows) gets them when a
    frontend opens it: the backfill reads every stored body."""
    data = logged.lg.config.data_dir
    await logged.lg.close()
    bodies = [body for _, body in sql(data, "SELECT idx, body FROM entries ORDER BY idx")]
    dsn = fresh_database()
    st = await PostgresStorage.open(dsn)
    try:
        await st.init_meta({"log_id": "ab", "origin": "example.org/log"})
        await append(st, TreeState.empty(), bodies, keys=lambda i: ())  # written without them
        async with st.writer() as w:
            # back to version 2: the versions from 3 on, and the tables of 4 and 5, undone
            await w.execute("DELETE FROM schema_version WHERE version >= 3")
            await w.execute("DROP TABLE attestations")
            await w.execute("DROP TABLE tile_nodes")
    finally:
        await st.close()
    st = await PostgresStorage.open(dsn)
    try:
        async with st.writer() as w:
            assert await w.fetchval("SELECT max(version) FROM schema_version") == len(MIGRATIONS)
        assert await st.search([ident(EMAIL.lower())], before=10, limit=10) == [4, 2, 1]
        assert await st.search([ident(WORKFLOW)], before=10, limit=10) == [1]
    finally:
        await st.close()


# -- the CLI -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_log(tmp_path_factory: pytest.TempPathFactory, ca: OrgCA) -> Iterator[tuple[Server, Path, list[str]]]:
    """A `tlog serve` with a key-signed entry and two certificate-signed ones, pinned."""
    server = serve(tmp_path_factory.mktemp("log"))
    try:
        signer = Signer()
        uuids = []
        for p in (signer.proposed(b"A"), certified(ca, signer, b"B", email=EMAIL, uri=WORKFLOW),
                  certified(ca, signer, b"C", uri=OTHER_WORKFLOW)):
            request = urllib.request.Request(server.url + ENTRIES, json.dumps(p).encode(),
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as r:
                uuids.append(next(iter(json.load(r))))
        trust = tmp_path_factory.mktemp("cfg") / "trust.json"
        ok(tlog("trust", "add", server.url, "--trust", trust))
        (trust.parent / "me.pub").write_bytes(signer.pem)
        yield server, trust, uuids
    finally:
        stop(server.proc)


def test_cli_search_by_email_and_identity(cli_log: tuple[Server, Path, list[str]]) -> None:
    _, trust, u = cli_log
    pub = trust.parent / "me.pub"
    assert json_out(tlog("search", "--email", EMAIL.upper(), "--json", "--trust", trust)) == [u[1]]
    assert ok(tlog("search", "--identity", OTHER_WORKFLOW, "--trust", trust)).stdout.split() == [u[2]]
    assert json_out(tlog("search", "--identity", WORKFLOW, "--public-key", pub, "--json",
                         "--trust", trust)) == u
    assert json_out(tlog("search", "--identity", WORKFLOW, "--public-key", pub, "--operator", "and",
                         "--json", "--trust", trust)) == [u[1]]
    fails_usage = tlog("search", "--email", WORKFLOW, "--trust", trust)
    assert fails_usage.exit_code == 2 and "--email" in fails_usage.stderr
    assert tlog("search", "--trust", trust).exit_code == 2


def test_cli_search_of_an_unknown_identity_finds_nothing(cli_log: tuple[Server, Path, list[str]]) -> None:
    _, trust, _ = cli_log
    assert json_out(tlog("search", "--email", "bob@example.com", "--json", "--trust", trust)) == []
    assert "No entries found." in ok(tlog("search", "--email", "bob@example.com", "--trust", trust)).stderr

"""GET /api/v1/openapi.json: a valid OpenAPI document, in sync with the router, and true of
a real `tlog serve` (schemathesis fuzzes the live server with it and checks every answer)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate

from tlog.core.digests import DIGESTS
from tlog.core.rekor import API_PREFIX
from tlog.server.api import make_app
from tlog.server.explorer import PAGE_ROUTES
from tlog.server.limits import MAX_RETRIEVE_INDEXES, MAX_RETRIEVE_UUIDS
from tlog.server.log import Log, LogConfig
from tlog.server.openapi import OPENAPI_PATH, openapi_spec

from .support import OpenLog, Signer
from .test_serve import free_port, start, stop, wait_ready

# Generated requests per operation and phase: about 20 s for the whole API in `make test`.
LONG = bool(os.environ.get("TLOG_FUZZ_LONG"))  # `make fuzz`
EXAMPLES = 500 if LONG else 12
SEEDED = 300  # one full level-0 tile and entry bundle, plus partial ones


def test_spec_is_a_valid_openapi_document() -> None:
    spec = openapi_spec("https://log.example.com")
    validate(spec)
    assert spec["servers"] == [{"url": "https://log.example.com"}]
    assert "servers" not in openapi_spec()


def test_spec_states_the_limits_and_digests_the_server_enforces() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    query = schemas["SearchLogQuery"]["properties"]
    assert query["entryUUIDs"]["maxItems"] == MAX_RETRIEVE_UUIDS
    assert query["logIndexes"]["maxItems"] == MAX_RETRIEVE_INDEXES
    hash_ = schemas["ProposedEntry"]["properties"]["spec"]["properties"]["data"]["properties"]["hash"]
    assert hash_["properties"]["algorithm"]["enum"] == sorted(DIGESTS) == ["sha256", "sha384", "sha512"]
    value = re.compile(hash_["properties"]["value"]["pattern"])
    search = re.compile(schemas["SearchIndex"]["properties"]["hash"]["pattern"])
    for d in DIGESTS.values():
        assert value.match("aB" * d.size) and not value.match("a" * (d.hex_length - 1))
        assert search.match(f"{d.name}:" + "0" * d.hex_length) and search.match("0" * d.hex_length)
        assert not search.match(f"{d.name}:" + "0" * (d.hex_length + 2))
    assert not search.match("md5:" + "0" * 32)


async def test_server_enforces_the_retrieve_limits_the_spec_states(open_log: OpenLog) -> None:
    _, client = await open_log()
    retrieve = f"{API_PREFIX}/log/entries/retrieve"
    cases: tuple[tuple[str, int, object], ...] = (
        ("entryUUIDs", MAX_RETRIEVE_UUIDS, "0" * 64), ("logIndexes", MAX_RETRIEVE_INDEXES, 0))
    for field, limit, item in cases:
        r = await client.post(retrieve, json={field: [item] * limit})
        assert r.status == 200, await r.text()
        r = await client.post(retrieve, json={field: [item] * (limit + 1)})
        assert r.status == 422 and (await r.json())["code"] == 422


# -- the spec and the router describe the same routes ------------------------------------------
def _sample_path(template: str, operation: dict[str, Any]) -> str:
    """A concrete path for a templated one, from each path parameter's example."""
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            template = template.replace(f"{{{param['name']}}}", str(param["example"]))
    assert "{" not in template, f"{template}: a path parameter has no example"
    return template


async def test_every_registered_route_is_in_the_spec_and_every_spec_path_is_registered(
        tmp_path: Path) -> None:
    lg = await Log.open(LogConfig(data_dir=tmp_path / "d"))
    try:
        app = make_app(lg)
        spec = openapi_spec()
        covered: set[tuple[str, str]] = set()  # (resource canonical path, method)
        for template, item in spec["paths"].items():
            for method, operation in item.items():
                path = _sample_path(template, operation)
                match = await app.router.resolve(make_mocked_request(method.upper(), path, app=app))
                assert match.http_exception is None, \
                    f"{method.upper()} {template} is in the spec, not the router"
                resource = match.route.resource
                assert resource is not None
                covered.add((resource.canonical, method.upper()))
        registered = {(r.resource.canonical, r.method) for r in app.router.routes()
                      if r.resource is not None
                      and r.resource.canonical not in PAGE_ROUTES  # the explorer's pages: not API
                      and r.method != "HEAD"}  # aiohttp adds HEAD to every GET by itself
        assert registered - covered == set(), "routes the spec does not describe"
        assert covered == registered
        assert (OPENAPI_PATH, "GET") in registered
    finally:
        await lg.close()


# -- schemathesis against a live `tlog serve` ---------------------------------------------------
async def _ready_and_seeded(port: int, proc: subprocess.Popen[str], n: int) -> list[str]:
    await wait_ready(port, proc)
    signers = [Signer() for _ in range(4)]
    async with aiohttp.ClientSession() as s:
        async def submit(i: int) -> str:
            url = f"http://127.0.0.1:{port}/api/v1/log/entries"
            async with s.post(url, json=signers[i % 4].proposed()) as r:
                assert r.status == 201, await r.text()
                uuid: str = next(iter(await r.json()))
                return uuid
        return list(await asyncio.gather(*(submit(i) for i in range(n))))


@pytest.fixture(scope="module")
def live_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A real `tlog serve` on 127.0.0.1 holding SEEDED entries: (base URL, their UUIDs)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path_factory.mktemp("live") / "d", port, "--public-url", base, "--no-access-log")
    try:
        yield base, asyncio.run(_ready_and_seeded(port, proc, SEEDED))
    finally:
        out = stop(proc)
        # aiohttp logs its parser's rejections of malformed requests with a traceback;
        # an error in tlog's own code is logged as "unexpected error".
        assert "unexpected error" not in out, out


def _toml(config: dict[str, Any]) -> str:
    """Just enough TOML for a schemathesis config: top-level scalars, then one table per dict."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)
    scalars = [f"{json.dumps(k)} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "\n".join(f"{json.dumps(kk)} = {value(vv)}" for kk, vv in v.items())
              for k, v in config.items() if isinstance(v, dict)]
    return "\n".join(scalars + tables) + "\n"


def test_live_server_answers_as_its_openapi_document_says(live_log: tuple[str, list[str]],
                                                          tmp_path: Path) -> None:
    """Schemathesis (examples, coverage and fuzzing phases, valid and invalid data) against
    the live server: no 5xx; every status, content type, header and body as the served
    document says; data the document rules out is refused with a 4xx."""
    base, uuids = live_log
    config = {
        "base-url": base,
        **({} if LONG else {"seed": 20240601}),  # `make test` is repeatable, `make fuzz` explores
        "generation": {"max-examples": EXAMPLES, "mode": "all", "database": "none"},
        # The document does not promise that every schema-valid entry is accepted: a random
        # signature does not verify.
        "checks": {"positive_data_acceptance": {"enabled": False}},
        # GET /api/v1/log/entries/retrieve is a lookup of the UUID "retrieve" (400, as in
        # Rekor), so that path also answers GET and lists it in Allow.
        "operations": [{"include-path": "/api/v1/log/entries/retrieve",
                        "checks": {"unsupported_method": {"enabled": False},
                                   "allow_header_conformance": {"enabled": False}}}],
        # Real identifiers are mixed into the generated ones, so reads also hit real data.
        "dictionaries": {
            "uuids": {"values": uuids[:5] + ["0" * 16 + uuids[0]]},
            "indexes": {"values": [0, 1, SEEDED // 2, SEEDED - 1]},
            "sizes": {"values": [1, 2, SEEDED // 2, SEEDED]},
            "tile_indexes": {"values": ["000", "001"]},
            "widths": {"values": ["1", str(SEEDED % 256)]},
        },
        "parameters": {
            "path.entryUUID": {"dictionary": "uuids", "probability": 0.5},
            "query.logIndex": {"dictionary": "indexes", "probability": 0.5},
            "query.firstSize": {"dictionary": "sizes", "probability": 0.5},
            "query.lastSize": {"dictionary": "sizes", "probability": 0.5},
            "path.N": {"dictionary": "tile_indexes", "probability": 0.5},
            "path.W": {"dictionary": "widths", "probability": 0.5},
        },
    }
    (tmp_path / "schemathesis.toml").write_text(_toml(config))
    report = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "-m", "schemathesis.cli",
                        "--config-file", str(tmp_path / "schemathesis.toml"), "run", "--no-color",
                        "--report", "json", "--report-json-path", str(report), f"{base}{OPENAPI_PATH}"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-5000:]
    # Every operation but the document itself (schemathesis skips the URL it loaded).
    summary = json.loads(report.read_text())
    operations = summary["operations"]
    spec_operations = sum(map(len, openapi_spec()["paths"].values()))
    assert operations["tested"] == operations["total"] == spec_operations - 1
    print(f"schemathesis: {summary['test_cases']['generated']} requests over "
          f"{operations['tested']} operations")

"""Hostile input (issue 5 §4): every route and parser fed random, mutated, oversized, malformed
and slow requests. Whatever arrives, the log answers without a 5xx, every error is JSON
`{"code", "message"}` with `code` equal to the status, nothing is appended, memory stays flat.

Hypothesis drives the in-process app from a worker thread (its tests are synchronous; the
server runs on the test's event loop). `TLOG_FUZZ_LONG=1` (`make fuzz`) runs many more
examples and bad submissions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import gc
import gzip
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from yarl import URL

from tlog.server.log import Log
from tlog.server.openapi import openapi_spec

from .support import ApiClient, OpenLog, Signer
from .test_serve import free_port, start, stop, wait_ready

LONG = bool(os.environ.get("TLOG_FUZZ_LONG"))
EXAMPLES = 4000 if LONG else 150
BAD_SUBMISSIONS = 100_000 if LONG else 10_000
RSS_SLACK = 30 << 20  # bytes of resident memory the bad submissions may add

ENTRIES = "/api/v1/log/entries"
RETRIEVE = "/api/v1/log/entries/retrieve"
INDEX = "/api/v1/index/retrieve"
PATHS = openapi_spec()["paths"]  # every route (tests/test_openapi.py keeps it in sync)
GET_ROUTES = [path for path, item in PATHS.items() if "get" in item and "{" not in path]
POST_ROUTES = {path for path, item in PATHS.items() if "post" in item}

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


# -- what every answer must look like ---------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def check_answer(a: Answer, method: str = "GET") -> None:
    """No 5xx; an error is exactly {code, message} in JSON, with code == status."""
    assert a.status < 500, a
    if a.status >= 400 and method != "HEAD":
        assert a.content_type == "application/json", a
        err = json.loads(a.body)
        assert set(err) == {"code", "message"}, a
        assert err["code"] == a.status and isinstance(err["message"], str) and err["message"], a


@pytest.fixture(autouse=True)
def no_unexpected_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A 500 that the error middleware hid is still logged as "unexpected error"."""
    caplog.set_level(logging.ERROR, logger="tlog.api")
    yield
    unexpected = [r.getMessage() for r in caplog.records if r.name == "tlog.api" and r.levelno >= logging.ERROR]
    assert not unexpected, unexpected


class Target:
    """The in-process server, called from hypothesis's thread on the loop that serves it."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self.base = f"http://127.0.0.1:{client.server.port}"
        self.loop = asyncio.get_running_loop()

    def send(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
             headers: dict[str, str] | None = None) -> Answer:
        """`path` is sent as written: percent-encode it first."""
        return asyncio.run_coroutine_threadsafe(
            self._send(method, path, body, content_type, headers or {}), self.loop).result(60)

    async def _send(self, method: str, path: str, body: bytes | None, content_type: str | None,
                    headers: dict[str, str]) -> Answer:
        skip = () if content_type is not None else ("Content-Type",)
        if content_type is not None:
            headers = {**headers, "Content-Type": content_type}
        async with self.client.session.request(method, URL(self.base + path, encoded=True), data=body,
                                               headers=headers, skip_auto_headers=skip) as r:
            return Answer(r.status, r.content_type, await r.read())


async def _submit(client: ApiClient, proposed: dict[str, Any]) -> str:
    r = await client.post(ENTRIES, json=proposed)
    assert r.status == 201, await r.text()
    (uuid,) = await r.json()
    assert isinstance(uuid, str)
    return uuid


@dataclass
class Seeded:
    log: Log
    target: Target
    uuids: list[str]
    # A valid body for each POST route; the submission is already in the log, so a mutation
    # that normalizes back to it gets 409.
    bases: dict[str, Any]


async def _seeded(open_log: OpenLog, entries: int = 3) -> Seeded:
    lg, client = await open_log(batch_ms=1)
    signer = Signer()
    submission = signer.proposed(b"artifact 0")
    uuids = [await _submit(client, submission)]
    uuids += await asyncio.gather(*(_submit(client, signer.proposed(b"artifact %d" % i))
                                    for i in range(1, entries)))
    digest = submission["spec"]["data"]["hash"]["value"]
    bases = {
        ENTRIES: submission,
        RETRIEVE: {"entryUUIDs": uuids[:2], "logIndexes": [0, 1]},
        INDEX: {"hash": f"sha256:{digest}", "operator": "and",
                "publicKey": {"format": "x509", "content": base64.b64encode(signer.pem).decode()}},
    }
    return Seeded(lg, Target(client), uuids, bases)


# -- JSON, including what json.dumps cannot write ----------------------------------------------
class Raw(str):
    """JSON text written verbatim: NaN, 1e400, a deep nest, a truncated one."""


class Pairs(list[tuple[Any, Any]]):
    """An object as (key, value) pairs, so a key can repeat."""


def dumps(v: Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps(x)}" for k, x in v) + "}"
    if isinstance(v, dict):
        return dumps(Pairs(v.items()))
    if isinstance(v, list):
        return "[" + ",".join(map(dumps, v)) + "]"
    return json.dumps(v)


SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=40)
JSON_VALUES = st.recursive(
    SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=12)
LITERALS: st.SearchStrategy[Any] = st.sampled_from([
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400"), Raw("1e-400"),
    Raw("9" * 5000), Raw("-0"), 10**100, -(10**100), 2**63, 2**64, -1, 1.5, True, False, None, "", [], {},
    "\ud800", "\udfff\ud800", "\x00", "\u2028\u2029", "é", "😀" * 20, "%s%n%x", "../" * 20,
    "A" * 60_000, "A" * 70_000, "-----BEGIN PUBLIC KEY-----\n" * 50,
])
DEEP = st.sampled_from([64, 1000, 30_000]).flatmap(lambda d: st.sampled_from([
    Raw("[" * d + "]" * d), Raw('{"a":' * d + "1" + "}" * d), Raw("[" * d)]))
HOSTILE = st.one_of(JSON_VALUES, LITERALS, DEEP)


# Where a node is in a JSON document: object keys and array indexes, from the root.
JsonPath = tuple[str | int, ...]


def _nodes(obj: Any, path: JsonPath = ()) -> Iterator[JsonPath]:
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(obj, list) and not isinstance(obj, Pairs):
        for i, v in enumerate(obj):
            yield from _nodes(v, path + (i,))


def _at(obj: Any, path: JsonPath, fn: Callable[[Any], Any]) -> Any:
    """`obj` with the node at `path` replaced by fn(node); fn may return _DROP."""
    if not path:
        return fn(obj)
    head, rest = path[0], path[1:]
    out = copy.copy(obj)
    new = _at(obj[head], rest, fn)
    if new is _DROP:
        del out[head]
    else:
        out[head] = new
    return out


_DROP = object()


def _put(obj: Any, path: JsonPath, value: Any) -> Any:
    """`obj` with the node at `path` replaced by `value` (or dropped: _DROP)."""
    return _at(obj, path, lambda _: value)


def _at_get(obj: Any, path: JsonPath) -> Any:
    for k in path:
        obj = obj[k]
    return obj


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """`base` with one to three hostile edits anywhere in it."""
    obj = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_nodes(obj))))
        node = _at_get(obj, path)
        ops = ["replace", "wrap"]
        if path:
            ops.append("drop")
        if isinstance(node, dict):
            ops += ["add", "duplicate"]
        if isinstance(node, str):
            ops += ["tweak"] * 3
        op = draw(st.sampled_from(ops))
        if op == "replace":
            obj = _put(obj, path, draw(HOSTILE))
        elif op == "drop":
            obj = _put(obj, path, _DROP)
        elif op == "wrap":
            obj = _at(obj, path, draw(st.sampled_from([lambda v: [v], lambda v: {"value": v}])))
        elif op == "add":
            key, value = draw(st.text(max_size=20)), draw(HOSTILE)
            obj = _put(obj, path, {**node, key: value})
        elif op == "duplicate" and node:
            key, value = draw(st.sampled_from(list(node))), draw(HOSTILE)
            first = draw(st.booleans())
            obj = _put(obj, path, Pairs(([(key, value)] if first else []) + list(node.items())
                                        + ([] if first else [(key, value)])))
            break  # a Pairs node is opaque to further edits
        elif op == "tweak":
            tweak = draw(st.sampled_from([
                str.upper, str.lower, lambda s: s + "=", lambda s: s[:-1], lambda s: s + "\n",
                lambda s: "\x00" + s, lambda s: s * 50, lambda s: s.replace("A", "é"),
                lambda s: " " + s + " ", lambda s: s.replace("+", "-").replace("/", "_"),
                lambda s: s.rstrip("="), lambda s: s[: len(s) // 2]]))
            obj = _at(obj, path, tweak)
    return obj


@st.composite
def encoded(draw: st.DrawFn, obj: Any) -> bytes:
    """JSON text as bytes, sometimes damaged: stray bytes (invalid UTF-8), cut short,
    UTF-16, a byte-order mark, trailing junk."""
    text = dumps(obj)
    data = text.encode("utf-8", "surrogatepass")
    how = draw(st.sampled_from(["plain"] * 5 + ["bytes", "cut", "utf16", "bom", "trailing"]))
    if how == "bytes":
        pos = draw(st.integers(0, len(data)))
        junk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80"]))
        data = data[:pos] + junk + data[pos:]
    elif how == "cut":
        data = data[:draw(st.integers(0, max(0, len(data) - 1)))]
    elif how == "utf16":
        data = text.encode("utf-16", "surrogatepass")
    elif how == "bom":
        data = b"\xef\xbb\xbf" + data
    elif how == "trailing":
        data += draw(st.sampled_from([b" x", b",", b"}", b"\x00", b"]", b"{}"]))
    return data


CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 8 + [
        "application/json; charset=utf-8", "application/json; charset=latin-1", "APPLICATION/JSON",
        "application/json;;", 'application/json; charset="', "", "text/plain", "text/json", "*/*",
        "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp",
        "application/json, text/plain", "x" * 4000]) | st.none()


async def test_mutated_and_random_bodies_on_every_post_route_get_4xx_json(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log)
    assert set(seeded.bases) == POST_ROUTES
    before = (seeded.log.head.state.size, seeded.log.head.root)

    @FUZZ
    @given(st.sampled_from(sorted(seeded.bases)), st.data())
    def posts(route: str, data: st.DataObject) -> None:
        obj = data.draw(st.one_of(mutated(seeded.bases[route]), mutated(seeded.bases[route]), HOSTILE))
        answer = seeded.target.send("POST", route, data.draw(encoded(obj)), data.draw(CONTENT_TYPES))
        check_answer(answer, "POST")
        if route == ENTRIES:
            assert answer.status != 201, answer  # at most the same entry again: 409

    await asyncio.to_thread(posts)
    assert (seeded.log.head.state.size, seeded.log.head.root) == before


async def test_wrong_content_types_and_oversized_bodies_on_every_post_route(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log)
    for route, base in seeded.bases.items():
        body = json.dumps(base).encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                      "application/octet-stream", "application/jsonx"):
            answer = await asyncio.to_thread(seeded.target.send, "POST", route, body, ctype)
            check_answer(answer, "POST")
            assert answer.status == 415, (route, ctype, answer)
        answer = await asyncio.to_thread(seeded.target.send, "POST", route, b" " * (64 << 10) + body,
                                         "application/json")
        check_answer(answer, "POST")
        assert answer.status == 413, (route, answer)
    assert seeded.log.head.state.size == 3


# -- random paths and query strings on every GET route -------------------------------------------
def _percent(data: bytes) -> str:
    return "".join(f"%{b:02X}" for b in data)


NASTY_NUMBERS = ["", "0", "1", "2", "-1", "+1", "01", "1.0", "1e3", "0x10", " 1", "1 ", "²", "٣", "１", "Ⅻ",
                 "9" * 19, "9" * 20, "9" * 5000, "18446744073709551616", "NaN", "null", "[]", "\x00", "1\x00"]
NUMBERS = st.one_of(st.sampled_from(NASTY_NUMBERS), st.integers(-(10**25), 10**25).map(str), st.text(max_size=25))
QUERY_NAMES = st.sampled_from(["logIndex", "firstSize", "lastSize", "treeID", "uuid", ""]) | st.text(max_size=10)


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(QUERY_NAMES, NUMBERS), max_size=4))
    parts = [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs]
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from(["logIndex", "lastSize=%FF", "=", "&&", "logIndex=%", "%zz=1"])))
    return "?" + "&".join(parts) if parts else ""


def _segments(known: list[str]) -> st.SearchStrategy[str]:
    """Already percent-encoded path text."""
    return st.one_of(
        st.sampled_from(known + ["retrieve", "..", ".", "", "%2e%2e", "%2F", "x" * 5000]),
        st.text(max_size=100).map(lambda s: quote(s, safe="")),
        st.binary(max_size=40).map(_percent))


TILE_LEVELS = st.sampled_from(["0", "1", "2", "7", "8", "9", "entries", "00", "-1", "²", "٣", "", "x", "0.p"])
TILE_GROUPS = st.sampled_from(["000", "001", "x000", "x001", "x999", "999", "0000", "1", "x1", "٣٣٣", "x٣٣٣", "",
                               "..", "000.p", "x001.p"])
TILE_WIDTHS = st.sampled_from(["1", "3", "4", "255", "256", "0", "01", "²", "", "-1", "9" * 30])


@st.composite
def tile_paths(draw: st.DrawFn) -> str:
    parts = [draw(TILE_LEVELS), *draw(st.lists(TILE_GROUPS, max_size=4))]
    if draw(st.booleans()):
        parts[-1] += ".p"
        parts.append(draw(TILE_WIDTHS))
    path = "/".join(parts)
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.text(max_size=60))
    return "/tile/" + quote(path, safe="/")


async def test_random_paths_and_query_strings_on_every_get_route_get_4xx_json(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log, entries=260)  # a full tile and entry bundle, and partial ones
    before = seeded.log.head.state.size
    uuids = seeded.uuids[:3] + ["0" * 16 + seeded.uuids[0], seeded.uuids[1].upper()]

    @FUZZ
    @given(st.one_of(
        st.tuples(st.sampled_from(GET_ROUTES), query_strings()).map("".join),
        st.tuples(st.just(f"{ENTRIES}/"), _segments(uuids), query_strings()).map("".join),
        st.tuples(tile_paths(), query_strings()).map("".join),
        st.tuples(st.just("/"), _segments(["api", "tile", "checkpoint"]), st.just("/"), _segments([])).map("".join),
    ), st.sampled_from(["GET"] * 6 + ["HEAD"]))
    def gets(path: str, method: str) -> None:
        assume(len(path) < 8000)  # longer request lines are aiohttp's (see MALFORMED)
        check_answer(seeded.target.send(method, path), method)

    await asyncio.to_thread(gets)
    assert seeded.log.head.state.size == before


def _nasty_reads(uuid: str) -> Iterator[str]:
    """Every read parameter with every nasty number in it, percent-encoded."""
    for v in (quote(n, safe="") for n in NASTY_NUMBERS):
        yield f"{ENTRIES}?logIndex={v}"
        yield f"/api/v1/log/proof?lastSize={v}"
        yield f"/api/v1/log/proof?firstSize={v}&lastSize=1"
        yield f"{ENTRIES}/{v}"
        yield f"{ENTRIES}/{uuid[:-len(v) or None]}{v}"
        for tile in (f"{v}/000", f"0/{v}", f"0/x{v}/000", f"0/000.p/{v}", f"entries/{v}", f"entries/000.p/{v}"):
            yield f"/tile/{tile}"


async def test_every_read_parameter_with_every_nasty_number_gets_4xx_json(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log)
    paths = list(_nasty_reads(seeded.uuids[0]))
    answers = await asyncio.gather(*(asyncio.to_thread(seeded.target.send, "GET", p) for p in paths))
    for path, answer in zip(paths, answers, strict=True):
        assert answer.status < 500, (path, answer)
        check_answer(answer)


async def test_wrong_methods_on_every_route_get_405_json_with_allow(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log)
    paths = GET_ROUTES + [RETRIEVE, INDEX, f"{ENTRIES}/{seeded.uuids[0]}", "/tile/0/000.p/3"]

    @settings(FUZZ, max_examples=min(EXAMPLES, 100))
    @given(st.sampled_from(paths), st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST", "GET"]))
    def methods(path: str, method: str) -> None:
        answer = seeded.target.send(method, path, b"{}", "application/json")
        check_answer(answer, method)

    await asyncio.to_thread(methods)
    r = await seeded.target.client.put(ENTRIES)
    assert r.status == 405 and set(r.headers["Allow"].split(",")) >= {"GET", "POST"}
    assert (await r.json())["code"] == 405


# -- malformed HTTP, huge headers: below the application, from raw sockets --------------------------
async def _raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes, read one response (past any 100 Continue) or until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                data += chunk
                head, sep, body = data.rpartition(b"\r\n\r\n")
                length = re.search(rb"\r\nContent-Length: (\d+)", head, re.IGNORECASE)
                if sep and length and _statuses(head)[-1:] != [100] and len(body) >= int(length.group(1)):
                    break
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return data


def _statuses(response: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"^HTTP/\d\.\d (\d{3}) ", response, re.MULTILINE)]


def _post(headers: bytes, body: bytes = b"{}") -> bytes:
    return (b"POST /api/v1/log/entries HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + headers
            + b"\r\n" + body)


GZIP_BOMB = gzip.compress(b"[" * (32 << 20))  # 32 KB that inflate to 32 MB
MALFORMED = {
    "invalid UTF-8 in the path": b"GET /tile/\xff\xfe/000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "invalid UTF-8 in a UUID": b"GET /api/v1/log/entries/\xff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "invalid UTF-8 in the query": b"GET /api/v1/log/entries?logIndex=\xff HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "percent-encoded NUL": b"GET /tile/%00/000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "asterisk form": b"GET * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "absolute form": b"GET http://elsewhere/readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "HTTP/2.0 text": b"GET /healthz HTTP/2.0\r\nHost: t\r\nConnection: close\r\n\r\n",
    "unknown method": b"FOO /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "CONNECT": b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "TLS handshake": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),
    "negative Content-Length": _post(b"Content-Length: -1\r\n"),
    "huge Content-Length": _post(b"Content-Length: 99999999999999999999999\r\n"),
    # beyond every kind's limit: dsse/intoto requests may be 1 MiB (--max-attestation-body)
    "Content-Length beyond the limit": _post(b"Content-Type: application/json\r\nContent-Length: 2000000\r\n",
                                             b"{" * 100_000),
    "Content-Length and chunked": _post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
    "bad chunk size": _post(b"Transfer-Encoding: chunked\r\n", b"zz\r\n"),
    "chunks beyond the limit": _post(b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
                                     b"".join(b"FFFF\r\n" + b"[" * 0xFFFF + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"),
    "not gzip": _post(b"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n"),
    "not deflate": _post(b"Content-Type: application/json\r\nContent-Encoding: deflate\r\nContent-Length: 2\r\n"),
    "gzip bomb": _post(b"Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n"
                       % len(GZIP_BOMB), GZIP_BOMB),
    "unknown encoding": _post(b"Content-Type: application/json\r\nContent-Encoding: br\r\nContent-Length: 2\r\n"),
    "unknown expectation": _post(b"Content-Type: application/json\r\nExpect: 200-ok\r\nContent-Length: 2\r\n"),
    "100-continue": _post(b"Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"),
    "invalid UTF-8 Content-Type": _post(b"Content-Type: \xff\xfe\r\nContent-Length: 2\r\n"),
    "invalid UTF-8 request ID": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-ID: \xff\r\nConnection: close\r\n\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\nConnection: close\r\n\r\n",
    "header without colon": b"GET /healthz HTTP/1.1\r\nHost: t\r\nnocolon\r\nConnection: close\r\n\r\n",
    "long request line": b"GET /tile/" + b"x000/" * 3000 + b"000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "long header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100_000 + b"\r\nConnection: close\r\n\r\n",
    "a megabyte header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (1 << 20) + b"\r\nConnection: close\r\n\r\n",
    "many headers": b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-H%d: a\r\n" % i for i in range(5000))
                    + b"Connection: close\r\n\r\n",
    "many cookies": b"GET /healthz HTTP/1.1\r\nHost: t\r\nCookie: " + b"; ".join(b"c%d=1" % i for i in range(2000))
                    + b"\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_http_gets_4xx_and_the_server_stays_healthy(open_log: OpenLog, case: str) -> None:
    seeded = await _seeded(open_log, entries=1)
    port = seeded.target.client.server.port
    assert port is not None
    response = await _raw(port, MALFORMED[case])
    statuses = _statuses(response)
    # Errors aiohttp's parser finds never reach the app: they are text/plain 400s, and header
    # limits answer 400 (aiohttp), not 431. The app's own errors are JSON.
    assert statuses and all(s < 500 for s in statuses), response[:500]
    head, _, body = response.rpartition(b"\r\n\r\n") if statuses[-1] != 100 else (b"", b"", b"")
    if b"application/json" in head:
        check_answer(Answer(statuses[-1], "application/json", body))
    healthy = await _raw(port, b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert _statuses(healthy) == [200], healthy
    assert seeded.log.head.state.size == 1


# -- 10,000 distinct bad submissions -----------------------------------------------------------------
def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    rss = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert rss is not None, status
    return int(rss.group(1)) * 1024


def _bad_submissions(n: int, start: int = 0) -> Iterator[bytes]:
    """Well-formed submissions with distinct digests whose signatures do not verify: they
    go all the way to signature verification. Every 100th comes with a new key."""
    signer = Signer()
    for i in range(start, start + n):
        if i % 100 == 0:
            signer = Signer()
        proposed = signer.proposed(b"signed")
        proposed["spec"]["data"]["hash"]["value"] = hashlib.sha256(b"%d" % i).hexdigest()
        yield json.dumps(proposed).encode()


async def test_10000_distinct_bad_submissions_append_nothing_and_memory_stays_flat(open_log: OpenLog) -> None:
    seeded = await _seeded(open_log, entries=1)
    url = seeded.target.base + ENTRIES
    statuses: dict[int, int] = {}

    # A plain session, not the TestClient: that one keeps every response until the test ends.
    async with aiohttp.ClientSession() as session:
        async def send_all(bodies: Iterator[bytes], workers: int = 16) -> None:
            async def worker() -> None:
                for body in bodies:  # one shared iterator: each body is sent once
                    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                        await r.read()
                        statuses[r.status] = statuses.get(r.status, 0) + 1
            await asyncio.gather(*(worker() for _ in range(workers)))

        await send_all(_bad_submissions(1000))  # warm-up: caches, metrics, pools reach their size
        gc.collect()
        rss_before = _rss()
        t0 = time.monotonic()
        await send_all(_bad_submissions(BAD_SUBMISSIONS, start=1000))
        elapsed = time.monotonic() - t0
        gc.collect()
        grown = _rss() - rss_before
    assert statuses == {400: 1000 + BAD_SUBMISSIONS}
    assert seeded.log.head.state.size == 1
    assert grown < RSS_SLACK, f"resident memory grew {grown >> 20} MB over {BAD_SUBMISSIONS} bad submissions"
    print(f"{BAD_SUBMISSIONS} bad submissions in {elapsed:.1f} s, RSS {grown / 2**20:+.1f} MB")


# -- slow clients, against a real `tlog serve` ----------------------------------------------------
async def test_slow_clients_are_timed_out_and_the_server_stays_healthy(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path / "d", port, "--request-timeout", "1", "--max-header-size", "2048", "--no-access-log")
    try:
        await wait_ready(port, proc)
        half_headers = b"GET /readyz HTTP/1.1\r\nHost: t\r\nX-Slow: "
        half_body = (b"POST /api/v1/log/entries HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"kind\": ")
        half_chunked = (b"POST /api/v1/log/entries HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n9\r\n{\"kind\": \r\n")
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(30)]
        t0 = time.monotonic()
        for i, (_, writer) in enumerate(conns):
            writer.write((half_headers, half_body, half_chunked)[i % 3])
            await writer.drain()

        # While they stall, everyone else is served at once.
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                t = time.monotonic()
                async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                    assert r.status == 200
                assert time.monotonic() - t < 0.5
            async with s.get(f"http://127.0.0.1:{port}/healthz", headers={"X-Big": "a" * 4096}) as r:
                assert r.status in (400, 431)

        # Each stalled request is answered 408 (body) or dropped (headers) after the timeout.
        async def outcome(reader: asyncio.StreamReader) -> tuple[float, bytes]:
            async with asyncio.timeout(10):
                head = await reader.read(4096)
            return time.monotonic() - t0, head

        results = await asyncio.gather(*(outcome(reader) for reader, _ in conns))
        for i, (seconds, head) in enumerate(results):
            assert seconds < 5, f"connection {i} held for {seconds:.1f} s"
            if i % 3 == 0:
                assert head == b"" or _statuses(head) == [408], head
            else:
                assert _statuses(head) == [408], head
                err = json.loads(head.split(b"\r\n\r\n", 1)[1])
                assert err["code"] == 408
        for _, writer in conns:
            writer.close()
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/api/v1/log") as r:
            assert r.status == 200 and (await r.json())["treeSize"] == 0
    finally:
        out = stop(proc)
    assert "unexpected error" not in out, out

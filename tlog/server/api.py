"""The HTTP API: Rekor v1 routes (DESIGN §3) over a `LogService` (tlog.server.service), in aiohttp.

A thin shell: parse the request, call the log, shape the answer. Every error leaves as
Rekor's `{"code", "message"}` with a 4xx (or 503 when the log cannot take writes); an
unexpected exception is logged and answered 500 without a stack trace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tlog.core import entries, rekor
from tlog.core.digests import DIGESTS, by_hex_length
from tlog.core.entries import hashedrekord
from tlog.core.identity import identity_query
from tlog.core.tiles import parse_tile_path
from tlog.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    TlogError,
    TooManyItems,
    Unavailable,
    UnsupportedMediaType,
)
from tlog.logs import request_id
from tlog.server.bundles import etag_of
from tlog.server.explorer import add_explorer_routes
from tlog.server.limits import (
    DEFAULT_MAX_ATTESTATION_BODY,
    DEFAULT_MAX_BODY,
    MAX_RETRIEVE_INDEXES,
    MAX_RETRIEVE_UUIDS,
)
from tlog.server.openapi import OPENAPI_PATH, openapi_spec
from tlog.server.ratelimit import TokenBuckets
from tlog.server.sequencer import Duplicate
from tlog.server.service import LogService

log = logging.getLogger("tlog.api")

@dataclass(frozen=True)
class ApiLimits:
    """Limits on what one request or one client may cost (issue 5 §6)."""

    max_body: int = DEFAULT_MAX_BODY  # bytes; 413 beyond
    # bytes in a request for an attestation kind (dsse, intoto); 413 beyond
    max_attestation_body: int = DEFAULT_MAX_ATTESTATION_BODY
    rate: float = 0.0  # submissions per second per client address; 0 = unlimited
    burst: int = 20  # submissions a client may make at once before the rate applies
    body_timeout: float = 30.0  # seconds to send a request body (408 beyond), to take SEND_CHUNK of an answer
    search_rate: float = 0.0  # searches (POST /index/retrieve) per second per client address; 0 = unlimited
    search_burst: int = 20  # searches a client may make at once before search_rate applies
    max_connections: int = 1024  # requests being answered at once, per process; 503 beyond

    @property
    def largest_body(self) -> int:
        """The largest request body any route takes (aiohttp's client_max_size)."""
        return max(self.max_body, self.max_attestation_body)

    def body_limit(self, kind: str) -> int:
        """The request-size limit for a proposed entry of `kind` (tlog.core.entries)."""
        attestation = any(k.attestation for k in entries.KINDS if k.kind == kind)
        return self.max_attestation_body if attestation else self.max_body


LOG_KEY: web.AppKey[LogService] = web.AppKey("log")
LIMITS_KEY: web.AppKey[ApiLimits] = web.AppKey("limits", ApiLimits)
BUCKETS_KEY: web.AppKey[TokenBuckets | None] = web.AppKey("buckets", object)  # type: ignore[arg-type]
SEARCH_BUCKETS_KEY: web.AppKey[TokenBuckets | None] = web.AppKey("search_buckets", object)  # type: ignore[arg-type]
# Bodies larger than this are sent in chunks of it, each awaited: a reader that stops
# reading holds one chunk in the server's buffers, not a copy of the whole body.
SEND_CHUNK = 64 * 1024
_JSON = "application/json"
# Rekor's SearchIndex `hash`: "<algorithm>:<hex>", or bare hex whose length names the algorithm.
_HASH_QUERY = re.compile(rf"(?:({'|'.join(DIGESTS)}):)?([0-9a-fA-F]+)")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type=_JSON, headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(rekor.error(status, message), status, headers)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _new_request_ids() -> Iterator[str]:
    """New request IDs: 32 hex digits, as a UUID's, unique without a uuid4() per request
    (an os.urandom call and a UUID object, ~5% of a small request's CPU, issue 16): 64
    random bits drawn once per process, then a counter."""
    prefix = secrets.token_hex(8)
    return (f"{prefix}{n:016x}" for n in itertools.count())


_request_ids = _new_request_ids()


def _reseed_request_ids() -> None:
    global _request_ids
    _request_ids = _new_request_ids()


os.register_at_fork(after_in_child=_reseed_request_ids)  # a forked worker draws its own
access_log = logging.getLogger("tlog.access")


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ID (the client's X-Request-ID if sane, else a new one), latency by route,
    and one access-log line per request."""
    rid = request.headers.get("X-Request-ID", "")
    if not _REQUEST_ID.fullmatch(rid):
        rid = next(_request_ids)
    token = request_id.set(rid)
    t0 = time.perf_counter()
    status = 500  # what the client sees if the handler itself fails past the error middleware
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = rid
        return response
    finally:
        seconds = time.perf_counter() - t0
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        request.app[LOG_KEY].metrics.request_done(route, request.method, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("%s %s %d %.1fms", request.method, request.path_qs[:200], status, seconds * 1000,
                            extra={"method": request.method, "path": request.path[:200], "status": status,
                                   "duration_ms": round(seconds * 1000, 2), "remote": request.remote})
        request_id.reset(token)


def _error_of(e: TlogError) -> web.Response:
    return _error(e.status, str(e), e.headers() or None)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One handler for every error: a TlogError answers with the status and headers it
    carries (tlog.errors), aiohttp's own HTTP errors with theirs. Status 500 — any other
    exception, or a TlogError that is not the client's fault — is logged, and the client
    gets no details."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[LIMITS_KEY].largest_body
        return _error_of(PayloadTooLarge(f"request body too large: the limit is {limit} bytes"))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return _error(e.status, e.reason or "error", allow)
    except Exception as e:
        if isinstance(e, TlogError) and e.status != 500:
            return _error_of(e)
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal error: the server logged the details")


async def _read_json(request: web.Request, limit: int | None = None) -> Any:
    """The request's JSON body, of at most `limit` bytes (default: ApiLimits.max_body)."""
    limit = request.app[LIMITS_KEY].max_body if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body too large: the limit is {limit} bytes")
    ctype = request.content_type
    if request.headers.get("Content-Type") and ctype != _JSON:
        raise UnsupportedMediaType(f"Content-Type must be {_JSON}, got {ctype!r}")
    try:
        async with asyncio.timeout(request.app[LIMITS_KEY].body_timeout):
            raw = await request.read()
    except TimeoutError:
        raise RequestTimeout("the request body did not arrive in time") from None
    except web.RequestPayloadError as e:  # e.g. a Content-Encoding the body does not decode with
        detail = " ".join(str(e).split()).removeprefix("400, message: ")[:200]
        raise InvalidInput(f"the request body could not be read: {detail}") from None
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body too large: the limit is {limit} bytes")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidInput("request body is not valid UTF-8 JSON") from None
    except ValueError as e:
        raise InvalidInput(f"request body is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise InvalidInput(f"query parameter {name} is required")
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19:  # "²".isdigit() too, int("²") fails
        raise InvalidInput(f"query parameter {name} must be a non-negative integer, got {raw[:40]!r}")
    return int(raw)


def _log(request: web.Request) -> LogService:
    return request.app[LOG_KEY]


def _take_token(request: web.Request, key: web.AppKey[TokenBuckets | None], what: str) -> None:
    """429 with Retry-After once this client has used up its bucket of `key` (ratelimit)."""
    buckets = request.app[key]
    if buckets is not None:
        wait = buckets.take(request.remote or "unknown")
        if wait > 0:
            raise RateLimited(wait, what)


def _connection_limit(limit: int) -> Middleware:
    """A middleware that answers 503 (Overloaded, Retry-After) while `limit` requests are
    being answered: a per-process bound on connections in use, stalled readers included
    (HTTP/1.1 answers one request per connection at a time; idle keep-alive connections are
    closed after the request timeout), so that slow clients cannot pile up without end."""
    active = 0

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal active
        if active >= limit:
            raise Overloaded(f"{limit} connections are being answered")
        active += 1
        try:
            return await handler(request)
        finally:
            active -= 1

    return middleware


# -- routes -------------------------------------------------------------------------------
_OUTCOMES: tuple[tuple[type[Exception], str], ...] = (
    (RateLimited, "rate_limited"), (Duplicate, "duplicate"), (Overloaded, "overloaded"),
    (Unavailable, "unavailable"), (InvalidInput, "invalid"), (Forbidden, "invalid"))


async def _read_entry(request: web.Request) -> Any:
    """A proposed entry, within its kind's size limit (413 beyond): max_attestation_body
    for the kinds that carry DSSE envelopes, max_body for the others."""
    limits = request.app[LIMITS_KEY]
    body = await _read_json(request, limits.largest_body)
    kind = body.get("kind") if isinstance(body, dict) else None
    limit = limits.body_limit(kind if isinstance(kind, str) else "")
    size = len(await request.read())  # already read: aiohttp keeps it
    if size > limit:
        raise PayloadTooLarge(f"request body too large for a {kind} entry: {size} bytes, the "
                              f"limit is {limit} bytes")
    return body


async def create_entry(request: web.Request) -> web.Response:
    counter = _log(request).metrics.submissions
    try:
        _take_token(request, BUCKETS_KEY, "submissions")
        entry = await _log(request).submit(await _read_entry(request))
    except Exception as e:
        counter.labels(next((name for t, name in _OUTCOMES if isinstance(e, t)), "error")).inc()
        raise
    counter.labels("created").inc()
    uuid = next(iter(entry))
    return _json(entry, 201, {"Location": rekor.entry_path(uuid), "ETag": uuid})


async def get_entry_by_index(request: web.Request) -> web.Response:
    index = _int_param(request, "logIndex")
    (entry,) = await _log(request).entries_by_index([index])
    return _json(entry)


async def get_entry_by_uuid(request: web.Request) -> web.Response:
    uuid = rekor.parse_uuid(request.match_info["uuid"])
    found = await _log(request).entries_by_uuid([uuid])
    if not found:
        raise NotFound(f"no entry with UUID {uuid.hex()} in the log")
    return _json(found[0])


def _list_of(obj: dict[str, Any], name: str, limit: int) -> list[Any]:
    value = obj.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput(f"{name} must be a list")
    if len(value) > limit:
        raise TooManyItems(f"{name}: at most {limit} items per request, got {len(value)}")
    return value


async def retrieve_entries(request: web.Request) -> web.Response:
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object {entryUUIDs, logIndexes}")
    uuids = []
    for u in _list_of(body, "entryUUIDs", MAX_RETRIEVE_UUIDS):
        if not isinstance(u, str):
            raise InvalidInput("entryUUIDs items must be strings")
        uuids.append(rekor.parse_uuid(u))
    indexes = _list_of(body, "logIndexes", MAX_RETRIEVE_INDEXES)
    for i in indexes:
        if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise InvalidInput("logIndexes items must be non-negative integers")
    lg = _log(request)
    size = lg.head.state.size
    out = await lg.entries_by_uuid(uuids) if uuids else []
    out += await lg.entries_by_index([i for i in indexes if i < size]) if indexes else []
    return _json(out)


async def search_index(request: web.Request) -> web.Response:
    """Rekor's searchIndex (openapi.yaml: a JSON array of entry UUIDs), capped: the newest
    MAX_SEARCH_RESULTS matches below `?before=` (default: all of the log), in log order.
    When older matches remain, X-Tlog-Truncated says so and X-Tlog-Next-Before is the
    `before` of the next page. Rekor's own spec warns this endpoint's results "may be
    incomplete"; a Rekor client reads the first page as the answer (issue 11, item 1)."""
    _take_token(request, SEARCH_BUCKETS_KEY, "searches")
    before = _int_param(request, "before", _log(request).head.state.size)
    body = await _read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object {hash}, {publicKey}, {email} or {identity}")
    artifact: str | None = None
    fingerprint: bytes | None = None
    if body.get("hash") is not None:
        h = body["hash"]
        m = _HASH_QUERY.fullmatch(h) if isinstance(h, str) else None
        if not m:
            raise InvalidInput("hash must be \"<algorithm>:<hex digest>\", e.g. sha256:<64 hex>")
        prefix, hex_digest = m.group(1), m.group(2)
        digest = DIGESTS[prefix] if prefix else by_hex_length(len(hex_digest))
        if digest is None or digest.hex_length != len(hex_digest):
            raise InvalidInput(f"hash: {len(hex_digest)} hex digits do not fit {prefix or 'any algorithm'}")
        artifact = f"{digest.name}:{hex_digest.lower()}"
    # Rekor's `email` (a certificate's SAN email, compared lower-cased) and tlog's
    # `identity` (a SAN email or URI, e.g. a Fulcio workflow identity): issues 17, 18.
    identities = []
    for name in ("email", "identity"):
        if body.get(name) is not None:
            identities.append(identity_query(body[name], name, email_only=name == "email"))
    if body.get("publicKey") is not None:
        pk = body["publicKey"]
        if not isinstance(pk, dict):
            raise InvalidInput("publicKey must be an object {format, content}")
        fmt = pk.get("format", "x509")
        if fmt != "x509":
            raise InvalidInput(f"publicKey.format {fmt!r} is not supported; this log indexes x509 (PEM) keys")
        if "content" not in pk:
            raise InvalidInput("publicKey.content is required (base64 of a PEM key or certificate)")
        fingerprint = hashedrekord.public_key_fingerprint_of_pem(pk["content"])
    if artifact is None and fingerprint is None and not identities:
        raise InvalidInput("give hash, publicKey, email and/or identity to search for")
    operator = body.get("operator", "or")
    if operator not in ("and", "or"):
        raise InvalidInput("operator must be \"and\" or \"or\"")
    page = await _log(request).search(artifact, fingerprint, operator,
                                      identities=list(dict.fromkeys(identities)), before=before)
    more = page.more_before
    headers = None if more is None else {"X-Tlog-Truncated": "true", "X-Tlog-Next-Before": str(more)}
    return _json([u.hex() for u in page.uuids], headers=headers)


async def log_info(request: web.Request) -> web.Response:
    lg = _log(request)
    head = lg.head
    return _json(rekor.log_info(head.root, head.state.size, head.note, lg.tree_id))


async def log_proof(request: web.Request) -> web.Response:
    first = _int_param(request, "firstSize", 1)
    last = _int_param(request, "lastSize")
    root, hashes = await _log(request).consistency(first, last)
    return _json(rekor.consistency_proof(root, hashes))


async def public_key(request: web.Request) -> web.Response:
    return web.Response(body=_log(request).public_key_pem(), content_type="application/x-pem-file")


async def checkpoint(request: web.Request) -> web.Response:
    """C2SP tlog-tiles: the latest signed checkpoint; clients may cache it for seconds only."""
    return web.Response(body=_log(request).checkpoint_note(), content_type="text/plain", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=2"})


async def tile(request: web.Request) -> web.StreamResponse:
    """A hash tile, or an entry bundle held in the log's bundle memory while it is sent."""
    ref = parse_tile_path(request.match_info["path"])
    # Full tiles never change (tlog-tiles); a partial tile of a given width never changes
    # either, but it goes away once the full tile exists, so it is cached briefly.
    cache = "public, max-age=31536000, immutable" if not ref.is_partial else "public, max-age=60"
    lg = _log(request)
    if ref.level is None:
        async with lg.entry_bundle(ref) as bundle:
            return await _send_tile(request, bundle.data, bundle.etag, cache)
    data = await lg.tile(ref)
    return await _send_tile(request, data, etag_of(data), cache)


async def _send_tile(request: web.Request, data: bytes, etag: str, cache: str) -> web.StreamResponse:
    """Send immutable bytes (304 if the client has them). Past SEND_CHUNK, they go out a
    chunk at a time, as memoryview slices of the one `data` object, each within the request
    timeout: a reader that stops reading is disconnected, having held one chunk of buffer,
    not its own copy of a 16 MB bundle (issue 11, item 2)."""
    headers = {"Cache-Control": cache, "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    if len(data) <= SEND_CHUNK or request.method == "HEAD":
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)
    rid = request_id.get()
    if rid is not None:  # sent before the observing middleware sees the response
        headers["X-Request-ID"] = rid
    response = web.StreamResponse(headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = len(data)
    view = memoryview(data)
    try:
        await response.prepare(request)
        for start in range(0, len(data), SEND_CHUNK):
            async with asyncio.timeout(request.app[LIMITS_KEY].body_timeout):
                await response.write(view[start:start + SEND_CHUNK])
        await response.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()  # drops what the stalled reader left in the buffers
    except ConnectionError:
        pass  # the reader went away
    return response


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_log(request).metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready while the database answers and the sequencer can write (issue 7: /readyz)."""
    lg = _log(request)
    problem = await lg.health_problem()
    if problem:
        return _error(503, f"not ready: {problem}")
    return _json({"status": "ready", "treeSize": lg.head.state.size, **lg.readiness()})


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.0 document of this API (tlog/server/openapi.py)."""
    return _json(openapi_spec(_log(request).public_url))


def make_app(lg: LogService, limits: ApiLimits | None = None, *,
             max_body: int | None = None) -> web.Application:
    limits = limits or ApiLimits()
    if max_body is not None:
        limits = dataclasses.replace(limits, max_body=max_body)
    app = web.Application(middlewares=[observe_middleware, errors_middleware,
                                       _connection_limit(limits.max_connections)],
                          client_max_size=limits.largest_body)
    app[LOG_KEY] = lg
    app[LIMITS_KEY] = limits
    app[BUCKETS_KEY] = TokenBuckets(limits.rate, limits.burst) if limits.rate > 0 else None
    app[SEARCH_BUCKETS_KEY] = (TokenBuckets(limits.search_rate, limits.search_burst)
                               if limits.search_rate > 0 else None)
    p = rekor.API_PREFIX
    app.router.add_post(f"{p}/log/entries", create_entry)
    app.router.add_get(f"{p}/log/entries", get_entry_by_index)
    app.router.add_post(f"{p}/log/entries/retrieve", retrieve_entries)
    app.router.add_get(f"{p}/log/entries/{{uuid}}", get_entry_by_uuid)
    app.router.add_post(f"{p}/index/retrieve", search_index)
    app.router.add_get(f"{p}/log", log_info)
    app.router.add_get(f"{p}/log/proof", log_proof)
    app.router.add_get(f"{p}/log/publicKey", public_key)
    app.router.add_get("/checkpoint", checkpoint)
    app.router.add_get("/tile/{path:.+}", tile)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_get(OPENAPI_PATH, openapi_json)
    add_explorer_routes(app, lg)  # the web explorer at / (issue 17)
    return app

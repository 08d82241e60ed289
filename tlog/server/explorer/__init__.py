"""The web explorer (issue 17): pages a browser reads the log with, served by the log itself.

Three pages — home and search (`/`, `/?q=QUERY`), an entry (`/entry/UUID`), checkpoint history
and consistency (`/checkpoints`) — are static HTML, CSS and ES modules from `static/`, with no
build step and nothing from elsewhere. The pages fetch the log's own API and check what it
says in the browser (static/merkle.js, static/common.js): the server is not trusted to say
"verified". Every page goes out under a strict Content-Security-Policy: scripts, styles and
requests from this origin only, no inline script, no frames. Every kind the log holds is
shown: hashedrekord signatures, and dsse and intoto attestations with the envelope the log
keeps beside them (issue 13), checked in the browser against the hash their body records.

The explorer adds three API routes, in the OpenAPI document like the others: an entry's
Sigstore bundle (a message signature, or a DSSE envelope for an attestation), the history
of signed checkpoints, and a search by key fingerprint. The page
routes are not API routes and are not in it (`PAGE_ROUTES`).
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from typing import Any, Final

from aiohttp import web

from tlog.core import bundle as sigstore_bundle, entries, rekor
from tlog.core.attestation import kept_envelope
from tlog.core.entries import hashedrekord
from tlog.core.entries.stored import StoredBody
from tlog.errors import InvalidInput, NotFound
from tlog.server.limits import MAX_CHECKPOINTS
from tlog.server.service import LogService

# The log the routes serve: the same object as tlog.server.api's LOG_KEY holds.
EXPLORER_LOG_KEY: web.AppKey[LogService] = web.AppKey("explorer_log")

STATIC_PREFIX: Final = "/explorer"
# The page routes (canonical aiohttp paths): served to browsers, not part of the API.
PAGE_ROUTES: Final = frozenset({"/", "/entry/{uuid}", "/checkpoints", f"{STATIC_PREFIX}/{{name}}"})
MAX_QUERY: Final = 19  # digits of a `before` or `limit` (a 63-bit integer)

_STATIC = resources.files(__package__) / "static"
_TYPES: Final = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_FILES: Final = frozenset(f.name for f in _STATIC.iterdir()
                          if f.is_file() and any(f.name.endswith(t) for t in _TYPES))


def _page(title: str, script: str, main: str) -> bytes:
    """A page: static/layout.html (head, header, search box) around static/MAIN."""
    layout = (_STATIC / "layout.html").read_text("utf-8")
    return (layout.replace("{{title}}", title).replace("{{script}}", script)
            .replace("{{main}}", (_STATIC / main).read_text("utf-8")).encode("utf-8"))


# The three pages, assembled once: each names its ES module, never inline script.
_PAGES: Final = {
    "home": _page("tlog explorer", "home.js", "home.html"),
    "entry": _page("Entry · tlog explorer", "entry.js", "entry.html"),
    "checkpoints": _page("Checkpoints · tlog explorer", "checkpoints.js", "checkpoints.html"),
}
_HEX64_LOWER: Final = frozenset("0123456789abcdef")

# What the pages may do: load this origin's scripts, styles and images, fetch this origin's
# API, nothing inline, no plugins, no framing, forms only to this origin.
CSP: Final = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
              "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
              "frame-ancestors 'none'")
_PAGE_HEADERS: Final = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                        "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


def wants_html(request: web.Request) -> bool:
    """Is this a browser asking for a page? Browsers put text/html in Accept for a
    navigation; API clients (curl's */*, aiohttp's, Rekor's) do not."""
    return "text/html" in request.headers.get("Accept", "")


def _html(page: str) -> web.Response:
    return web.Response(body=_PAGES[page], content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)


def _static(name: str) -> web.Response:
    if name not in _FILES:
        raise NotFound(f"the explorer has no file {name[:80]!r}")
    ctype = next(t for ext, t in _TYPES.items() if name.endswith(ext))
    return web.Response(body=(_STATIC / name).read_bytes(), content_type=ctype, charset="utf-8",
                        headers=_PAGE_HEADERS)


async def home(request: web.Request) -> web.Response:
    """`/`: the explorer's home and search page to a browser; to anyone else, the 404 the
    root has always answered (the API lives under /api/v1)."""
    if not wants_html(request):
        raise NotFound(f"nothing here: the API is under {rekor.API_PREFIX} "
                       f"(see {rekor.API_PREFIX}/openapi.json); browsers get the explorer")
    return _html("home")


async def entry_page(request: web.Request) -> web.Response:
    rekor.parse_uuid(request.match_info["uuid"])  # 400 for what cannot be an entry
    return _html("entry")


async def checkpoints_page(request: web.Request) -> web.Response:
    return _html("checkpoints")


async def static_file(request: web.Request) -> web.Response:
    return _static(request.match_info["name"])


def _int_query(request: web.Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_QUERY:
        raise InvalidInput(f"query parameter {name} must be a non-negative integer, got {raw[:40]!r}")
    value = int(raw)
    if maximum is not None and not 1 <= value <= maximum:
        raise InvalidInput(f"query parameter {name} must be between 1 and {maximum}, got {value}")
    return value


def _attestation_bundle(answer: dict[str, Any], body: bytes, stored: StoredBody) -> dict[str, Any]:
    """The v0.3 bundle of a dsse or intoto entry: its DSSE envelope (`dsseEnvelope`), rebuilt
    from what the log keeps beside the entry and checked against the body
    (tlog.core.attestation.kept_envelope), and its one signer, a key by its hint or a
    certificate. `tlog attest` writes the same (tlog.core.bundle.dsse_bundle_to_json)."""
    ((_, e),) = answer.items()
    kept = e.get("attestation", {}).get("data")
    if not isinstance(kept, str):
        raise InvalidInput(f"this {stored.kind} entry's envelope is not kept by the log, and a Sigstore "
                           "bundle carries the envelope (fetch the entry as a LogEntry instead)")
    if len(stored.signers) != 1:
        raise InvalidInput(f"a Sigstore bundle names one signer; this entry records "
                           f"{len(stored.signers)} signatures (fetch it as a LogEntry instead)")
    (signer,) = stored.signers
    envelope = kept_envelope(body, base64.b64decode(kept))
    doc = sigstore_bundle.dsse_bundle_to_json(envelope, signer.material.pem,
                                              sigstore_bundle.tlog_entry_from_rekor(answer))
    if signer.is_certificate:  # protobuf-specs Bundle v0.3: the leaf certificate, no key hint
        material = doc["verificationMaterial"]
        del material["publicKey"]
        material["certificate"] = {"rawBytes": base64.b64encode(signer.material.der).decode("ascii")}
    return doc


async def entry_bundle(request: web.Request) -> web.Response:
    """GET /api/v1/log/entries/{uuid}/bundle: the entry as a Sigstore bundle v0.3
    (tlog.core.bundle), with a fresh inclusion proof, ready for `tlog verify` or cosign —
    `tlog verify-attestation` for a dsse or intoto entry (`_attestation_bundle`)."""
    uuid = rekor.parse_uuid(request.match_info["uuid"])
    found = await request.app[EXPLORER_LOG_KEY].entries_by_uuid([uuid])
    if not found:
        raise NotFound(f"no entry with UUID {uuid.hex()} in the log")
    ((_, e),) = found[0].items()
    body = base64.b64decode(e["body"])
    stored = entries.read_body(body)
    if stored.kind != hashedrekord.KIND:
        data = (json.dumps(_attestation_bundle(found[0], body, stored), indent=2) + "\n").encode("utf-8")
    else:
        entry = hashedrekord.parse_body(body)
        if entry.algorithm != "sha256":
            raise InvalidInput(f"a Sigstore bundle carries a SHA-256 message digest; this entry "
                               f"signs a {entry.algorithm} digest (fetch it as a LogEntry instead)")
        data = sigstore_bundle.encode_bundle(sigstore_bundle.bundle_from_log_entry(
            found[0], entry.digest, entry.signature, entry.public_key_pem))
    name = f"{uuid.hex()}.sigstore.json"
    return web.Response(body=data, content_type=sigstore_bundle.MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def checkpoint_history(request: web.Request) -> web.Response:
    """GET /api/v1/log/checkpoints?before=&limit=: signed checkpoints, newest first."""
    lg = request.app[EXPLORER_LOG_KEY]
    size = lg.head.state.size
    before = _int_query(request, "before", size + 1)
    limit = _int_query(request, "limit", 20, MAX_CHECKPOINTS)
    found = await lg.checkpoints(before, limit)
    out = [{"treeSize": c.size, "rootHash": c.root.hex(), "checkpoint": c.note.decode(),
            "created": c.created} for c in found]
    return web.json_response(out)


async def search_by_fingerprint(request: web.Request) -> web.Response:
    """GET /api/v1/index/fingerprint/{fingerprint}?before=: UUIDs of the entries signed with
    the key whose DER SubjectPublicKeyInfo has this SHA-256 (a key's or certificate's), paged
    as POST /api/v1/index/retrieve pages."""
    raw = request.match_info["fingerprint"]
    if len(raw) != 64 or not _HEX64_LOWER.issuperset(raw.lower()):
        raise InvalidInput("a key fingerprint is 64 hex digits: SHA-256 of the DER SubjectPublicKeyInfo")
    lg = request.app[EXPLORER_LOG_KEY]
    before = _int_query(request, "before", lg.head.state.size)
    page = await lg.search(None, bytes.fromhex(raw), before=before)
    more = page.more_before
    headers = None if more is None else {"X-Tlog-Truncated": "true", "X-Tlog-Next-Before": str(more)}
    return web.json_response([u.hex() for u in page.uuids], headers=headers)


def add_explorer_routes(app: web.Application, lg: LogService) -> None:
    """Register the explorer's pages, files and API routes on the log's app."""
    app[EXPLORER_LOG_KEY] = lg
    p = rekor.API_PREFIX
    app.router.add_get("/", home)
    app.router.add_get("/entry/{uuid}", entry_page)
    app.router.add_get("/checkpoints", checkpoints_page)
    app.router.add_get(f"{STATIC_PREFIX}/{{name}}", static_file)
    app.router.add_get(f"{p}/log/entries/{{uuid}}/bundle", entry_bundle)
    app.router.add_get(f"{p}/log/checkpoints", checkpoint_history)
    app.router.add_get(f"{p}/index/fingerprint/{{fingerprint}}", search_by_fingerprint)

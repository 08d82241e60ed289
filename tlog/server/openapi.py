"""The OpenAPI 3.0 description of the HTTP API (DESIGN §3), served at GET /api/v1/openapi.json.

Modelled on Rekor's openapi.yaml (same paths, shapes and status codes), narrowed to what
this log accepts (hashedrekord v0.0.1 only) and widened to what it also serves (C2SP
tiles, health, this document). One source: the server serves this dict; the tests check
it against the router and fuzz a live server with it (tests/test_openapi.py).
"""

from __future__ import annotations

import copy
from importlib import metadata
from typing import Any

from tlog.core.digests import DIGESTS
from tlog.core.entries import hashedrekord
from tlog.core.identity import EMAIL_PATTERN, MAX_IDENTITY_LENGTH, URI_PATTERN
from tlog.core.rekor import API_PREFIX
from tlog.core.tiles import MAX_LEVEL, TILE_WIDTH
from tlog.server.limits import (
    DEFAULT_MAX_BODY,
    MAX_CHECKPOINTS,
    MAX_RETRIEVE_INDEXES,
    MAX_RETRIEVE_UUIDS,
    MAX_SEARCH_RESULTS,
)

OPENAPI_PATH = f"{API_PREFIX}/openapi.json"

_JSON = "application/json"
_HEX64 = "^[0-9a-f]{64}$"  # what the log writes: lower-case hex
_UUID = "^([0-9a-fA-F]{16})?[0-9a-fA-F]{64}$"  # what it reads: also Rekor's 80-hex form
_DIGEST = "^(" + "|".join(d.hex_pattern for d in DIGESTS.values()) + ")$"
_HASH_QUERY = "^(" + "|".join(f"({d.name}:)?{d.hex_pattern}" for d in DIGESTS.values()) + ")$"
# A tile index is split in 3-digit groups, all but the last prefixed "x" (C2SP tlog-tiles):
# 1234067 is "x001/x234/067". Clients percent-encode the "/" in it; the server decodes.
_TILE_INDEX = "^(x[0-9]{3}/)*[0-9]{3}$"
_TILE_WIDTH = "^([1-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _hex(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": _HEX64, "description": description}


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema or {"type": "string"}}


_RETRY_AFTER = _header("Seconds to wait before retrying", {"type": "string", "pattern": "^[0-9]+$"})


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A response carrying Rekor's Error model, `{"code": <status>, "message"}`."""
    out: dict[str, Any] = {"description": description,
                           "content": {_JSON: {"schema": _ref("Error")}}}
    if headers:
        out["headers"] = headers
    return out


def _ok(description: str, schema: dict[str, Any], media: str = _JSON,
        headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {media: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _json_body(schema_name: str, description: str) -> dict[str, Any]:
    return {"required": True, "description": description,
            "content": {_JSON: {"schema": _ref(schema_name)}}}


# Errors shared by every route that reads a JSON request body (api._read_json).
_BODY_ERRORS = {
    "400": _error("The body is not JSON, or not the expected shape"),
    "408": _error("The body did not arrive within the server's request timeout"),
    "413": _error(f"The body is larger than the server's limit ({DEFAULT_MAX_BODY // 1024} KiB by default)"),
    "415": _error("Content-Type is set and is not application/json"),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Rekor's Error model; `code` is the HTTP status",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "integer", "minimum": 400, "maximum": 599},
            "message": {"type": "string"},
        },
    },
    "ProposedEntry": {
        "type": "object",
        "description": (
            "A hashedrekord v0.0.1 entry (Rekor's hashedrekord_v0_0_1_schema.json): a signature "
            "over an artifact digest and the key (PEM, or an X.509 certificate) that verifies it. "
            "The log checks the signature before accepting; unknown fields are dropped. Keys "
            "and digests as in Sigstore's algorithm registry: ECDSA P-256 over sha256, P-384 "
            "over sha384, P-521 over sha512 (ECDSA signatures with a high or a low s); RSA of "
            "2048 to 4096 bits with exponent 65537 over any of the three, PKCS#1 v1.5 or PSS "
            "(MGF1 with the digest's hash, any salt length)."),
        "required": ["kind", "apiVersion", "spec"],
        "properties": {
            "kind": {"type": "string", "enum": [hashedrekord.KIND]},
            "apiVersion": {"type": "string", "enum": [hashedrekord.API_VERSION]},
            "spec": {
                "type": "object",
                "required": ["data", "signature"],
                "properties": {
                    "data": {
                        "type": "object",
                        "required": ["hash"],
                        "properties": {"hash": {
                            "type": "object",
                            "required": ["algorithm", "value"],
                            "properties": {
                                "algorithm": {"type": "string",
                                              "enum": sorted(DIGESTS),
                                              "description": "The signing key's: sha256 for P-256, "
                                              "sha384 for P-384, sha512 for P-521; any for RSA"},
                                "value": {"type": "string", "pattern": _DIGEST,
                                          "description": "Hex digest; its length must fit the algorithm"},
                            },
                        }},
                    },
                    "signature": {
                        "type": "object",
                        "required": ["content", "publicKey"],
                        "properties": {
                            "content": {"type": "string", "format": "byte", "minLength": 4,
                                        "description": "Standard padded base64 of the signature"},
                            "publicKey": {
                                "type": "object",
                                "required": ["content"],
                                "properties": {"content": {
                                    "type": "string", "format": "byte", "minLength": 4,
                                    "description": "Base64 of a PEM public key or certificate"}},
                            },
                        },
                    },
                },
            },
        },
    },
    "InclusionProof": {
        "type": "object",
        "required": ["logIndex", "rootHash", "treeSize", "hashes", "checkpoint"],
        "properties": {
            "logIndex": {"type": "integer", "minimum": 0},
            "rootHash": _hex("Root of the tree the proof is for"),
            "treeSize": {"type": "integer", "minimum": 1},
            "hashes": {"type": "array", "items": _hex("Sibling hash"),
                       "description": "RFC 9162 §2.1.3 audit path, leaf to root"},
            "checkpoint": {"type": "string",
                           "description": "Signed checkpoint (C2SP signed note) of that tree"},
        },
    },
    "LogEntry": {
        "type": "object",
        "description": "One entry, keyed by its UUID (hex of its RFC 6962 leaf hash)",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": {
            "type": "object",
            "required": ["body", "integratedTime", "logID", "logIndex", "verification"],
            "properties": {
                "body": {"type": "string", "format": "byte",
                         "description": "Base64 of the canonical body (RFC 8785 JSON)"},
                "integratedTime": {"type": "integer", "minimum": 0},
                "logID": _hex("SHA-256 of the log key's DER SubjectPublicKeyInfo"),
                "logIndex": {"type": "integer", "minimum": 0},
                "verification": {
                    "type": "object",
                    "required": ["inclusionProof", "signedEntryTimestamp"],
                    "properties": {
                        "inclusionProof": _ref("InclusionProof"),
                        "signedEntryTimestamp": {"type": "string", "format": "byte"},
                    },
                },
            },
        },
    },
    "SearchLogQuery": {
        "type": "object",
        "description": "Entries by UUID and/or by index; indexes beyond the tree are skipped",
        "properties": {
            "entryUUIDs": {"type": "array", "nullable": True, "maxItems": MAX_RETRIEVE_UUIDS,
                           "items": {"type": "string", "pattern": _UUID}},
            "logIndexes": {"type": "array", "nullable": True, "maxItems": MAX_RETRIEVE_INDEXES,
                           "items": {"type": "integer", "minimum": 0}},
        },
    },
    "SearchIndex": {
        "type": "object",
        "description": "Entries for an artifact digest, a public key and/or a certificate "
                       "identity, all of them (operator \"and\") or any (\"or\")",
        "properties": {
            "hash": {"type": "string", "nullable": True, "pattern": _HASH_QUERY,
                     "description": "\"<algorithm>:<hex>\"; "
                                    "without a prefix, the length picks the algorithm"},
            "publicKey": {
                "type": "object",
                "nullable": True,
                "required": ["content"],
                "properties": {
                    "format": {"type": "string", "enum": ["x509"]},
                    "content": {"type": "string",
                                "description": "A PEM public key or certificate, or base64 of one"},
                },
            },
            "email": {"type": "string", "nullable": True, "minLength": 1,
                      "maxLength": MAX_IDENTITY_LENGTH, "pattern": f"^{EMAIL_PATTERN}$",
                      "description": "Rekor's: entries signed with a certificate whose SAN "
                                     "holds this email (compared lower-cased)"},
            "identity": {"type": "string", "nullable": True, "minLength": 1,
                         "maxLength": MAX_IDENTITY_LENGTH, "pattern": f"^({URI_PATTERN}|{EMAIL_PATTERN})$",
                         "description": "tlog's: entries signed with a certificate whose SAN "
                                        "holds this URI (exactly, e.g. a Fulcio workflow "
                                        "identity) or email (lower-cased)"},
            "operator": {"type": "string", "enum": ["and", "or"], "default": "or"},
        },
        # At least one of hash, publicKey, email and identity, not null.
        "anyOf": [
            {"required": ["hash"], "properties": {"hash": {"type": "string"}}},
            {"required": ["publicKey"], "properties": {"publicKey": {"type": "object"}}},
            {"required": ["email"], "properties": {"email": {"type": "string"}}},
            {"required": ["identity"], "properties": {"identity": {"type": "string"}}},
        ],
    },
    "LogInfo": {
        "type": "object",
        "required": ["rootHash", "treeSize", "signedTreeHead", "treeID"],
        "properties": {
            "rootHash": _hex("Root hash of the current tree"),
            "treeSize": {"type": "integer", "minimum": 0},
            "signedTreeHead": {"type": "string", "description": "The latest signed checkpoint"},
            "treeID": {"type": "string", "pattern": "^[0-9]+$"},
            "inactiveShards": {"type": "array", "items": {"type": "object"}},
        },
    },
    "StoredCheckpoint": {
        "type": "object",
        "required": ["treeSize", "rootHash", "checkpoint", "created"],
        "properties": {
            "treeSize": {"type": "integer", "minimum": 0},
            "rootHash": _hex("Root hash of the tree at this size"),
            "checkpoint": {"type": "string", "description": "The signed checkpoint (C2SP signed note)"},
            "created": {"type": "integer", "description": "When it was signed, Unix seconds"},
        },
    },
    "ConsistencyProof": {
        "type": "object",
        "required": ["rootHash", "hashes"],
        "properties": {
            "rootHash": _hex("Root hash of the tree at lastSize"),
            "hashes": {"type": "array", "items": _hex("Proof hash"),
                       "description": "RFC 9162 §2.1.4 consistency proof"},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "treeSize": {"type": "integer", "minimum": 0}},
    },
}


def _tile_params(*, level: bool, partial: bool) -> list[dict[str, Any]]:
    params = []
    if level:
        params.append({"name": "L", "in": "path", "required": True,
                       "description": "Tile level: hashes of Merkle level 8·L",
                       "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LEVEL}, "example": 0})
    params.append({"name": "N", "in": "path", "required": True,
                   "description": "Tile index in 3-digit groups, all but the last prefixed x",
                   "schema": {"type": "string", "pattern": _TILE_INDEX}, "example": "000"})
    if partial:
        params.append({"name": "W", "in": "path", "required": True,
                       "description": f"Width of a partial tile, 1 to {TILE_WIDTH - 1}",
                       "schema": {"type": "string", "pattern": _TILE_WIDTH}, "example": "1"})
    params.append({"name": "If-None-Match", "in": "header", "required": False,
                   "schema": {"type": "string"}})
    return params


def _tile(summary: str, media_description: str, *, level: bool, partial: bool) -> dict[str, Any]:
    cache = _header("Full tiles are immutable; partial tiles are cached briefly")
    etag = _header("Quoted hash of the tile's bytes")
    return {"get": {
        "summary": summary,
        "operationId": ("getTile" if level else "getEntryBundle") + ("Partial" if partial else ""),
        "tags": ["tiles"],
        "parameters": _tile_params(level=level, partial=partial),
        "responses": {
            "200": _ok(media_description, {"type": "string", "format": "binary"},
                       "application/octet-stream", {"Cache-Control": cache, "ETag": etag}),
            "304": {"description": "Not modified (If-None-Match matched the ETag)",
                    "headers": {"ETag": etag}},
            "404": _error("No such tile at the current tree size, or not a tile path"),
            **({} if level else {"503": _error(
                "Entry bundles still being sent to slow readers hold all the memory kept for "
                "them (tlog serve --bundle-memory)", {"Retry-After": _RETRY_AFTER})}),
        },
    }}


# The paging headers of a search answer (api.search_index, explorer.search_by_fingerprint).
_SEARCH_PAGE_HEADERS = {
    "X-Tlog-Truncated": {
        "description": "\"true\" when older matches were left out",
        "required": False, "schema": {"type": "string", "enum": ["true"]}},
    "X-Tlog-Next-Before": {
        "description": "The `before` that asks for the next (older) page",
        "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"}},
}


def _paths() -> dict[str, Any]:
    p = API_PREFIX
    entry_headers = {
        "Location": _header("Path of the entry",
                            {"type": "string", "pattern": f"^{p}/log/entries/[0-9a-f]{{64}}$"}),
        "ETag": _header("UUID of the entry", {"type": "string", "pattern": _HEX64}),
    }
    return {
        f"{p}/log/entries": {
            "post": {
                "summary": "Submit a hashedrekord entry; answered once it is durable",
                "operationId": "createLogEntry",
                "tags": ["entries"],
                "requestBody": _json_body("ProposedEntry", "The proposed entry"),
                "responses": {
                    "201": _ok("The new entry, with its SET, inclusion proof and checkpoint",
                               _ref("LogEntry"), headers=entry_headers),
                    **_BODY_ERRORS,
                    "400": _error("Malformed entry, unsupported key, a digest algorithm the key does not "
                                  "sign with, or a signature that does not verify"),
                    "403": _error("This log is frozen (tlog serve --read-only): it takes no new entries"),
                    "409": _error("The log already holds this entry, or this signing event: the same "
                                  "ECDSA signature with the other s (n - s). Location: that entry",
                                  {"Location": entry_headers["Location"]}),
                    "413": _error("The body, or the entry's canonical body, is too large"),
                    "429": _error("This client is submitting too fast", {"Retry-After": _RETRY_AFTER}),
                    "503": _error("Submission queue full, storage unavailable or shutting down",
                                  {"Retry-After": _RETRY_AFTER}),
                },
            },
            "get": {
                "summary": "One entry by log index, with a fresh inclusion proof",
                "operationId": "getLogEntryByIndex",
                "tags": ["entries"],
                "parameters": [{"name": "logIndex", "in": "query", "required": True,
                                "schema": {"type": "integer", "minimum": 0}, "example": 0}],
                "responses": {
                    "200": _ok("The entry", _ref("LogEntry")),
                    "400": _error("logIndex missing or not a non-negative integer"),
                    "404": _error("No entry at this index"),
                },
            },
        },
        f"{p}/log/entries/{{entryUUID}}": {"get": {
            "summary": "One entry by UUID, with a fresh inclusion proof",
            "operationId": "getLogEntryByUUID",
            "tags": ["entries"],
            "parameters": [{"name": "entryUUID", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": _UUID},
                            "example": "0" * 64}],
            "responses": {
                "200": _ok("The entry", _ref("LogEntry")),
                "400": _error("Not an entry UUID (64 hex digits, or Rekor's 80)"),
                "404": _error("No entry with this UUID"),
            },
        }},
        f"{p}/log/entries/retrieve": {"post": {
            "summary": (f"Entries by UUID and/or index (at most {MAX_RETRIEVE_UUIDS} UUIDs and "
                        f"{MAX_RETRIEVE_INDEXES} indexes)"),
            "operationId": "searchLogQuery",
            "tags": ["entries"],
            "requestBody": _json_body("SearchLogQuery", "UUIDs and indexes to fetch"),
            "responses": {
                "200": _ok("The entries found, UUIDs first", {"type": "array", "items": _ref("LogEntry")}),
                **_BODY_ERRORS,
                "422": _error(f"More than {MAX_RETRIEVE_UUIDS} UUIDs or {MAX_RETRIEVE_INDEXES} indexes"),
            },
        }},
        f"{p}/index/retrieve": {"post": {
            "summary": (f"UUIDs of the entries for an artifact digest and/or a public key: the "
                        f"newest {MAX_SEARCH_RESULTS}, then older pages with ?before="),
            "description": (
                "Rekor's searchIndex, whose results Rekor's own spec says \"may be incomplete\". "
                f"At most {MAX_SEARCH_RESULTS} UUIDs, those of the newest matching entries below "
                "log index `before` (default: the whole log), listed in log order. When older "
                "matches remain, X-Tlog-Truncated is \"true\" and X-Tlog-Next-Before is the "
                "`before` of the next page; a client that ignores them reads the newest page."),
            "operationId": "searchIndex",
            "tags": ["index"],
            "parameters": [{"name": "before", "in": "query", "required": False,
                            "description": "Only entries below this log index (X-Tlog-Next-Before "
                                           "of the previous page)",
                            "schema": {"type": "integer", "minimum": 0}}],
            "requestBody": _json_body("SearchIndex", "What to search for"),
            "responses": {
                "200": _ok(f"UUIDs, in log order: at most {MAX_SEARCH_RESULTS}",
                           {"type": "array", "maxItems": MAX_SEARCH_RESULTS, "items": _hex("Entry UUID")},
                           headers=_SEARCH_PAGE_HEADERS),
                **_BODY_ERRORS,
                "400": _error("Not a search (see SearchIndex), or `before` is not a non-negative integer"),
                "429": _error("This client is searching too fast (tlog serve --search-rate-limit)",
                              {"Retry-After": _RETRY_AFTER}),
            },
        }},
        f"{p}/log": {"get": {
            "summary": "The current tree head",
            "operationId": "getLogInfo",
            "tags": ["tlog"],
            "responses": {"200": _ok("Root hash, size and signed checkpoint", _ref("LogInfo"))},
        }},
        f"{p}/log/proof": {"get": {
            "summary": "RFC 9162 consistency proof between two tree sizes",
            "operationId": "getLogProof",
            "tags": ["tlog"],
            "parameters": [
                {"name": "firstSize", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {"name": "lastSize", "in": "query", "required": True,
                 "schema": {"type": "integer", "minimum": 1}, "example": 1},
            ],
            "responses": {
                "200": _ok("The proof and the root at lastSize", _ref("ConsistencyProof")),
                "400": _error("Sizes missing, malformed, or not 1 ≤ firstSize ≤ lastSize ≤ tree size"),
            },
        }},
        f"{p}/log/publicKey": {"get": {
            "summary": "The log's public key",
            "operationId": "getPublicKey",
            "tags": ["pubkey"],
            "responses": {"200": _ok("PEM SubjectPublicKeyInfo", {"type": "string"},
                                     "application/x-pem-file")},
        }},
        # The explorer's API (tlog.server.explorer): bundles, checkpoint history, key search.
        f"{p}/log/entries/{{entryUUID}}/bundle": {"get": {
            "summary": "An entry as a Sigstore bundle v0.3, with a fresh inclusion proof",
            "operationId": "getLogEntryBundle",
            "tags": ["entries"],
            "parameters": [{"name": "entryUUID", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": _UUID}, "example": "0" * 64}],
            "responses": {
                "200": _ok("The bundle (a download: Content-Disposition attachment)", {"type": "object"},
                           "application/vnd.dev.sigstore.bundle.v0.3+json"),
                "400": _error("Not an entry UUID, an entry whose digest is not SHA-256, or an "
                              "attestation with no kept envelope or with several signers"),
                "404": _error("No entry with this UUID"),
            },
        }},
        f"{p}/log/checkpoints": {"get": {
            "summary": "The signed checkpoints the log published, newest first",
            "operationId": "getCheckpoints",
            "tags": ["tlog"],
            "parameters": [
                {"name": "before", "in": "query", "required": False,
                 "description": "Only checkpoints of tree sizes below this one",
                 "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": MAX_CHECKPOINTS, "default": 20}},
            ],
            "responses": {
                "200": _ok("Checkpoints, largest tree size first",
                           {"type": "array", "maxItems": MAX_CHECKPOINTS, "items": _ref("StoredCheckpoint")}),
                "400": _error("`before` or `limit` is not an integer in range"),
            },
        }},
        f"{p}/index/fingerprint/{{fingerprint}}": {"get": {
            "summary": (f"UUIDs of the entries signed with a key, by its fingerprint: the newest "
                        f"{MAX_SEARCH_RESULTS}, then older pages with ?before="),
            "description": ("The fingerprint is the hex SHA-256 of the key's DER SubjectPublicKeyInfo "
                            "(a certificate's key's for an entry signed with a certificate). Paged as "
                            "POST /api/v1/index/retrieve."),
            "operationId": "searchIndexByFingerprint",
            "tags": ["index"],
            "parameters": [
                {"name": "fingerprint", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}, "example": "0" * 64},
                {"name": "before", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 0}},
            ],
            "responses": {
                "200": _ok(f"UUIDs, in log order: at most {MAX_SEARCH_RESULTS}",
                           {"type": "array", "maxItems": MAX_SEARCH_RESULTS, "items": _hex("Entry UUID")},
                           headers=_SEARCH_PAGE_HEADERS),
                "400": _error("Not a fingerprint (64 hex digits), or `before` is not a non-negative integer"),
            },
        }},
        OPENAPI_PATH: {"get": {
            "summary": "This document",
            "operationId": "getOpenAPI",
            "tags": ["server"],
            "responses": {"200": _ok("OpenAPI 3.0 document", {"type": "object"})},
        }},
        "/checkpoint": {"get": {
            "summary": "The latest signed checkpoint (C2SP tlog-checkpoint, signed note)",
            "operationId": "getCheckpoint",
            "tags": ["tiles"],
            "responses": {"200": _ok("origin, size, base64 root, blank line, signature lines",
                                     {"type": "string"}, "text/plain",
                                     {"Cache-Control": _header("Cached for seconds only")})},
        }},
        "/tile/{L}/{N}": _tile("A full hash tile (C2SP tlog-tiles)", "256 hashes of 32 bytes",
                               level=True, partial=False),
        "/tile/{L}/{N}.p/{W}": _tile("A partial hash tile", "W hashes of 32 bytes",
                                     level=True, partial=True),
        "/tile/entries/{N}": _tile("A full entry bundle", "256 uint16-length-prefixed bodies",
                                   level=False, partial=False),
        "/tile/entries/{N}.p/{W}": _tile("A partial entry bundle", "W uint16-length-prefixed bodies",
                                         level=False, partial=True),
        "/healthz": {"get": {
            "summary": "Liveness",
            "operationId": "getHealth",
            "tags": ["server"],
            "responses": {"200": _ok("The process is serving", _ref("Health"))},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics",
            "operationId": "getMetrics",
            "tags": ["server"],
            "responses": {"200": _ok("Prometheus text exposition format", {"type": "string"},
                                     "text/plain")},
        }},
        "/readyz": {"get": {
            "summary": "Readiness",
            "operationId": "getReady",
            "tags": ["server"],
            "responses": {
                "200": _ok("Ready to serve reads and take submissions", _ref("Health")),
                "503": _error("Not ready (storage unavailable or the sequencer stuck)"),
            },
        }},
    }


def _version() -> str:
    try:
        return metadata.version("tlog")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def openapi_spec(public_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the log's HTTP API; `servers` is `public_url` if given."""
    paths = _paths()
    for item in paths.values():
        for operation in item.values():
            operation["responses"] = dict(sorted(operation["responses"].items()))
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {
            "title": "tlog",
            "version": _version(),
            "description": (
                "A transparency log for software signatures, compatible with Sigstore Rekor's v1 "
                "API (hashedrekord entries), with C2SP checkpoints and tiles. Errors are always "
                "JSON {code, message} with code equal to the HTTP status; a method a path does "
                "not have gets 405 with Allow."),
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if public_url:
        spec["servers"] = [{"url": public_url.rstrip("/")}]
    return copy.deepcopy(spec)  # the caller's to change: it shares nothing with the next one

"""What one request may ask of the API, in one place: the routes (tlog.server.api) enforce
these and the OpenAPI document (tlog.server.openapi) states them, so the two cannot disagree.

The retrieve limits are Rekor's (openapi.yaml `SearchLogQuery`: `entryUUIDs` and `logIndexes`
have maxItems 10, and Rekor answers 422 beyond); the body limit is this log's (DESIGN §3).
"""

from __future__ import annotations

from typing import Final

MAX_RETRIEVE_UUIDS: Final = 10  # entry UUIDs in one POST /api/v1/log/entries/retrieve
MAX_RETRIEVE_INDEXES: Final = 10  # log indexes in one POST /api/v1/log/entries/retrieve
DEFAULT_MAX_BODY: Final = 64 * 1024  # bytes in a request body, unless configured; 413 beyond
# Bytes in a request for an attestation kind (dsse, intoto: tlog.core.entries.Kind.attestation),
# whose DSSE envelopes (SLSA provenance, SBOMs) are larger than a signature; 413 beyond.
DEFAULT_MAX_ATTESTATION_BODY: Final = 1024 * 1024
# UUIDs in one POST /api/v1/index/retrieve answer: the newest matches, then pages of older
# ones (`?before=`). Rekor's openapi.yaml says of this route "the results returned from this
# endpoint may be incomplete"; a cap keeps what one search costs the log bounded (issue 11).
MAX_SEARCH_RESULTS: Final = 500
MAX_CHECKPOINTS: Final = 100  # signed checkpoints in one GET /api/v1/log/checkpoints answer

"""Sigstore trusted roots (`application/vnd.dev.sigstore.trustedroot+json;version=0.1`).

The document Sigstore clients load to know which transparency logs to trust (protobuf-specs
`dev.sigstore.trustroot.v1.TrustedRoot`, DESIGN §2). tlog writes one holding the logs a user
pinned, so sigstore-python, sigstore-go or cosign can check bundles from those logs with
the same keys `tlog verify` uses. No certificate authorities: tlog bundles are key-signed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tlog.core.trusted import TrustedLog

MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

# The pinned key says nothing about when the log started; the Unix epoch puts no lower
# bound on the entries it is trusted for.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def trusted_root(logs: Sequence[TrustedLog], valid_from: datetime = EPOCH) -> dict[str, Any]:
    """A trusted root naming `logs`, each trusted for entries since `valid_from`."""
    start = valid_from.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "mediaType": MEDIA_TYPE,
        "tlogs": [
            {
                "baseUrl": lg.url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(lg.public_key.spki_der()).decode("ascii"),
                    "keyDetails": lg.public_key.key_details,
                    "validFor": {"start": start},
                },
                "logId": {"keyId": base64.b64encode(lg.public_key.log_id()).decode("ascii")},
            }
            for lg in logs
        ],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": [],
    }

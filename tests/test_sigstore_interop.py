"""Entries submitted over HTTP verify with the `sigstore` package's own code (4.5.1).

`TransparencyLogEntry._from_v1_response` + `._verify(keyring)` check the inclusion proof,
the checkpoint signature and the SET — the same path sigstore-python takes for Rekor v1.
These are private APIs, which is why sigstore is pinned in the test dependencies.
"""

from __future__ import annotations

import asyncio
import base64
import copy

import pytest
from sigstore._internal.trust import Keyring, RekorKeyring
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import TransparencyLogEntry
from sigstore_models.common import v1 as common_v1

from tlog.core.keys import LogPublicKey

from .support import OpenLog, Signer


def keyring_for(pub: LogPublicKey) -> RekorKeyring:
    details = getattr(common_v1.PublicKeyDetails, pub.key_details)
    key = common_v1.PublicKey(raw_bytes=base64.b64encode(pub.spki_der()), key_details=details)
    return RekorKeyring(Keyring([key]))


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa-p256"])
async def test_sigstore_verifies_our_entries(open_log: OpenLog, key_type: str) -> None:
    lg, client = await open_log(key_type=key_type, batch_ms=10)
    signer = Signer()
    keyring = keyring_for(lg.public_key)
    responses = await asyncio.gather(*[client.post("/api/v1/log/entries", json=signer.proposed())
                                       for _ in range(9)])
    bodies = [await r.json() for r in responses]
    assert all(r.status == 201 for r in responses)
    for body in bodies:
        TransparencyLogEntry._from_v1_response(body)._verify(keyring)
    # And entries fetched later carry fresh proofs against the newer checkpoint.
    r = await client.get("/api/v1/log/entries", params={"logIndex": "3"})
    TransparencyLogEntry._from_v1_response(await r.json())._verify(keyring)


@pytest.mark.parametrize("field", ["set", "checkpoint", "hash", "index"])
async def test_sigstore_rejects_tampered_entries(open_log: OpenLog, field: str) -> None:
    lg, client = await open_log()
    signer = Signer()
    for _ in range(3):
        r = await client.post("/api/v1/log/entries", json=signer.proposed())
    good = await r.json()
    keyring = keyring_for(lg.public_key)
    TransparencyLogEntry._from_v1_response(good)._verify(keyring)
    bad = copy.deepcopy(good)
    e = next(iter(bad.values()))
    v = e["verification"]
    if field == "set":
        sig = bytearray(base64.b64decode(v["signedEntryTimestamp"]))
        sig[-1] ^= 1
        v["signedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    elif field == "checkpoint":
        v["inclusionProof"]["checkpoint"] = v["inclusionProof"]["checkpoint"].replace("\n3\n", "\n4\n", 1)
    elif field == "hash":
        h = v["inclusionProof"]["hashes"][0]
        v["inclusionProof"]["hashes"][0] = ("0" if h[0] != "0" else "1") + h[1:]
    elif field == "index":
        e["logIndex"] = 1
        v["inclusionProof"]["logIndex"] = 1
    with pytest.raises((SigstoreVerificationError, ValueError)):
        TransparencyLogEntry._from_v1_response(bad)._verify(keyring)
    # A keyring holding another key trusts nothing from this log.
    other = keyring_for(type(lg.key).generate("ecdsa-p256").public_key)
    with pytest.raises(SigstoreVerificationError):
        TransparencyLogEntry._from_v1_response(good)._verify(other)

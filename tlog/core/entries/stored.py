"""A stored body read back, whatever its kind: what every reader of the log's entries —
`tlog fsck`, `tlog audit`, `tlog monitor`, `tlog get`, the explorer, the sequencer's dedupe —
needs from it, so that none of them holds per-kind code (tlog.core.entries.read_body
dispatches to the kind's reader).

The body alone says what the log signed; for the attestation kinds it does not hold what
the signatures are over (a dsse body records the envelope's hash, an intoto body the
payload's), so `verify` takes the attestation the log keeps beside the entry
(tlog.server.attestations) and says when it could not check without it.

Signing events (issue 13, item 2). An ECDSA signature (r, s) has a twin (r, n - s) that
verifies as well; for hashedrekord the log dedupes the twin by the leaf hash of the low-s
body (`hashedrekord.event_key_of_body`). A dsse body cannot be rebuilt with the other s —
its `envelopeHash` covers the envelope's text, which the twin's submitter writes as they
like — so for the attestation kinds the event key is a hash of what the signatures commit
to and nothing else (`attestation_event_key`): the payload hash, the signers' keys and the
signatures with s normalized low. Every dsse and intoto entry has one; two envelopes that
differ only in layout or keyids are then one signing event too, which is what they are.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, utils

from tlog.core.entries import hashedrekord


@dataclass(frozen=True)
class StoredSigner:
    """One signature a body records, with the key or certificate it names (normalized PEM)."""

    signature: bytes
    material: hashedrekord._KeyMaterial

    @property
    def is_certificate(self) -> bool:
        return self.material.label == "CERTIFICATE"

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 of the signer's DER SubjectPublicKeyInfo (the search index's key)."""
        return self.material.fingerprint


@dataclass(frozen=True)
class StoredBody:
    """A canonical body of a kind the log knows, parsed; nothing verified yet."""

    kind: str
    api_version: str
    # The search keys (`<algorithm>:<hex>`) the body itself records. The attestation kinds
    # are also indexed by in-toto subject digests, which only the kept attestation holds.
    artifact_keys: tuple[str, ...]
    signers: tuple[StoredSigner, ...]
    # What a reader shows besides kind, artifact keys and signers: (label, value).
    details: tuple[tuple[str, str], ...]
    # The hex SHA-256 naming the attestation kept beside the entry, None for none.
    attestation_key: str | None
    # `verify`'s work: kept attestation in, subject keys out (see `verify`).
    _check: Callable[[bytes | None], tuple[str, ...] | None]
    _event: Callable[[], bytes | None]

    def verify(self, kept: bytes | None = None) -> tuple[str, ...] | None:
        """Check every signature as admission did (InvalidInput if one fails). Returns the
        search keys only the kept attestation gives (in-toto subject digests; () for a
        hashedrekord), or None if the signatures could not be checked because the kind
        needs its kept attestation and `kept` is None."""
        return self._check(kept)

    def event_key(self) -> bytes | None:
        """The signing event's key where it is not the leaf hash (NewEntry.event_key)."""
        return self._event()


def low_s(signature: bytes, orders: Iterable[int]) -> bytes:
    """An ECDSA DER signature with s replaced by n - s if that is lower, for the first
    curve order it fits; anything else (Ed25519, RSA, not DER) as is."""
    try:
        r, s = utils.decode_dss_signature(signature)
    except ValueError:
        return signature
    for n in orders:
        if 0 < r < n and 0 < s < n:
            return signature if s <= n // 2 else utils.encode_dss_signature(r, n - s)
    return signature


def attestation_event_key(kind: str, payload_hash: bytes,
                          materials: Iterable[hashedrekord._KeyMaterial],
                          signatures: Iterable[bytes]) -> bytes:
    """The signing-event key of a dsse or intoto entry (see the module doc): SHA-256 over
    the kind, the payload hash, the sorted signer fingerprints and the sorted low-s
    signatures, each length-prefixed. The same from a submission (before its signatures
    are paired with keys) and from its stored body, since both give the same keys."""
    keys = {m.fingerprint: m.key for m in materials}
    orders = sorted({hashedrekord._CURVES[k.curve.name].order for k in keys.values()
                     if isinstance(k, ec.EllipticCurvePublicKey) and k.curve.name in hashedrekord._CURVES})
    parts = [b"tlog signing event v1", kind.encode(), payload_hash, *sorted(keys),
             *sorted(low_s(s, orders) for s in signatures)]
    return hashlib.sha256(b"".join(len(p).to_bytes(4, "big") + p for p in parts)).digest()

"""The entry kinds the log accepts, by Rekor `kind` and `apiVersion` (Rekor's ProposedEntry
discriminator, then its VersionMap): admission dispatches here, and so does every reader
that must understand a stored body whatever its kind (search confirmation, dedupe).

- `hashedrekord` 0.0.1 — a signature over a digest (tlog.core.entries.hashedrekord);
- `dsse` 0.0.1 — a DSSE envelope and its verifiers (tlog.core.entries.dsse);
- `intoto` 0.0.2 — a DSSE envelope, field by field, double base64 (tlog.core.entries.intoto).

Each kind gives, for a request: a submission with `costly` and `verify()` (the signature
checks, perhaps on a thread) and `event_key()`; the verified entry's canonical body, its
artifact keys (`<algorithm>:<hex>`) and signer key fingerprints, which the search index
stores with the certificate identities its body names (`body_identities`). For a stored
body: the values a search confirms candidates with (`indexed_values`), and everything
else a reader needs (`read_body`: tlog.core.entries.stored.StoredBody — signers,
signature checks, the signing-event key), so readers hold no per-kind code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from tlog.core.entries import dsse, hashedrekord, intoto
from tlog.core.entries.stored import StoredBody, StoredSigner
from tlog.core.identity import certificate_identities
from tlog.core.merkle import leaf_hash
from tlog.errors import InvalidInput


class Entry(Protocol):
    """A verified entry, of any kind: what the log stores and indexes."""

    def canonical_body(self) -> bytes: ...
    def artifact_keys(self) -> tuple[str, ...]: ...
    def key_fingerprints(self) -> tuple[bytes, ...]: ...
    def attestation(self) -> tuple[str, bytes] | None: ...


class Submission(Protocol):
    """A well-formed proposal whose signatures `verify` checks (InvalidInput if not)."""

    @property
    def costly(self) -> bool: ...
    def verify(self) -> Entry: ...
    def event_key(self) -> bytes | None: ...


@dataclass(frozen=True)
class _HashedRekordEntry:
    entry: hashedrekord.HashedRekord

    def canonical_body(self) -> bytes:
        return self.entry.canonical_body()

    def artifact_keys(self) -> tuple[str, ...]:
        return (self.entry.artifact_key(),)

    def key_fingerprints(self) -> tuple[bytes, ...]:
        return (self.entry.public_key_fingerprint(),)

    def attestation(self) -> None:
        return None


@dataclass(frozen=True)
class _HashedRekordSubmission:
    submission: hashedrekord.Submission

    @property
    def costly(self) -> bool:
        return self.submission.costly

    def verify(self) -> Entry:
        return _HashedRekordEntry(self.submission.verify())

    def event_key(self) -> bytes | None:
        return self.submission.event_key()


def _hashedrekord_values(body: bytes) -> tuple[tuple[str, ...], tuple[bytes, ...]] | None:
    values = hashedrekord.indexed_values(body)
    return None if values is None else ((values[0],), (values[1],))


def _hashedrekord_read(body: bytes) -> StoredBody:
    """A stored hashedrekord body (`hashedrekord.parse_body`): everything is in the body,
    so `verify` needs no kept attestation."""
    entry, material = hashedrekord._parse_body(body)

    def check(kept: bytes | None) -> tuple[str, ...]:
        hashedrekord.verify_signature(entry)
        return ()

    return StoredBody(hashedrekord.KIND, hashedrekord.API_VERSION, (entry.artifact_key(),),
                      (StoredSigner(entry.signature, material),), (), None, check,
                      lambda: hashedrekord._event_key(entry, material.key))


@dataclass(frozen=True)
class Kind:
    """One entry kind of the registry."""

    kind: str
    api_version: str
    check_request: Callable[[object], Submission]
    # Artifact keys and base64 PEM keys a stored body records, None if it is not one.
    indexed_values: Callable[[bytes], tuple[tuple[str, ...], tuple[bytes, ...]] | None]
    # Some artifact keys (in-toto subjects) are not in the body: the index is trusted.
    confirms_every_artifact: bool
    attestation: bool  # its requests carry envelopes: the larger request-size limit
    # The hex SHA-256 naming what the log keeps beside a stored body (`Entry.attestation`).
    attestation_key: Callable[[bytes], str | None]
    # A stored body, strictly parsed (InvalidInput if it is not canonical).
    read_body: Callable[[bytes], StoredBody]


KINDS: Final[tuple[Kind, ...]] = (
    Kind(hashedrekord.KIND, hashedrekord.API_VERSION,
         lambda obj: _HashedRekordSubmission(hashedrekord.check_request(obj)),
         _hashedrekord_values, True, False, lambda body: None, _hashedrekord_read),
    Kind(dsse.KIND, dsse.API_VERSION, dsse.check_request, dsse.indexed_values, False, True,
         dsse.attestation_key, dsse.read_body),
    Kind(intoto.KIND, intoto.API_VERSION, intoto.check_request, intoto.indexed_values,
         False, True, intoto.attestation_key, intoto.read_body),
)
_BY_NAME: Final = {(k.kind, k.api_version): k for k in KINDS}
SUPPORTED: Final = ", ".join(f"{k.kind} {k.api_version}" for k in KINDS)


def kind_of(obj: object) -> Kind:
    """The registry's kind for a proposed entry, by `kind` then `apiVersion`; InvalidInput
    (400) naming the supported ones otherwise."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"request: expected a JSON object (a Rekor ProposedEntry), got "
                           f"{hashedrekord._json_type(obj)}")
    kind = hashedrekord._string(obj, "kind", "kind")
    version = hashedrekord._string(obj, "apiVersion", "apiVersion")
    found = _BY_NAME.get((kind, version))
    if found is not None:
        return found
    if any(k.kind == kind for k in KINDS):
        versions = ", ".join(json.dumps(k.api_version) for k in KINDS if k.kind == kind)
        raise InvalidInput(f"apiVersion: {kind} version {hashedrekord._quote(version)} is not "
                           f"supported; supported: {versions}")
    raise InvalidInput(f"kind: {hashedrekord._quote(kind)} is not supported; supported kinds: "
                       f"{SUPPORTED}")


def check_request(obj: object) -> Submission:
    """Dispatch a proposed entry to its kind's `check_request`."""
    return kind_of(obj).check_request(obj)


def stored_kind(body: bytes) -> Kind | None:
    """The kind of a stored canonical body, read off its first bytes (RFC 8785 puts
    `apiVersion` then `kind` first), None for none the registry knows."""
    head = body[:64]
    for k in KINDS:
        if head.startswith(b'{"apiVersion":"%s","kind":"%s",' % (k.api_version.encode(),
                                                                   k.kind.encode())):
            return k
    return None


def indexed_values(body: bytes) -> tuple[tuple[str, ...], tuple[bytes, ...], bool] | None:
    """For confirming search candidates, whatever the body's kind: the artifact keys and
    base64 PEM keys it records, and whether those artifact keys are all it is indexed by
    (False for kinds indexed by in-toto subjects, which the body does not hold); None for a
    body no kind reads."""
    kind = stored_kind(body)
    if kind is None:
        return None
    values = kind.indexed_values(body)
    return None if values is None else (*values, kind.confirms_every_artifact)


def key_identities(key_content: bytes) -> tuple[str, ...]:
    """The certificate identities one stored signer is searched by (a base64 PEM, as
    `indexed_values` gives it): its SAN emails and URIs (tlog.core.identity.
    searchable_identities), none for a public key."""
    der = hashedrekord.stored_certificate(key_content)
    return () if der is None else certificate_identities(der)


def body_identities(body: bytes) -> tuple[str, ...]:
    """The certificate identities a stored body of any kind is indexed by (issues 17, 18):
    those of each signer that is an X.509 certificate — a hashedrekord's key, a dsse
    verifier, an intoto signature's key — as Rekor's `IndexKeys` adds each verifier's
    `Subjects()`. Read off the body's bytes (`indexed_values`), so admission, the schema
    migration and `tlog fsck` derive the same keys from the same bytes."""
    values = indexed_values(body)
    if values is None:
        return ()
    return tuple(dict.fromkeys(i for key in values[1] for i in key_identities(key)))


def read_body(body: bytes) -> StoredBody:
    """A stored body of any kind the log knows, strictly parsed (`Kind.read_body`);
    InvalidInput naming what is wrong, or that no kind reads it."""
    kind = stored_kind(body)
    if kind is None:  # not laid out canonically: say so if it still names a known kind
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidInput("body: not valid JSON") from None
        if isinstance(doc, dict):
            kind = _BY_NAME.get((doc.get("kind"), doc.get("apiVersion")))  # type: ignore[arg-type]
        if kind is None:
            raise InvalidInput(f"body: not an entry of a kind this log accepts ({SUPPORTED})")
    return kind.read_body(body)


def event_key_of_body(body: bytes) -> bytes:
    """The signing-event key a stored body records, whatever its kind (the sequencer's
    dedupe; `StoredBody.event_key`): its leaf hash where it has none or does not parse."""
    kind = stored_kind(body)
    if kind is None:
        return leaf_hash(body)
    # Off the hot path: the sequencer asks only for stored bodies a submission's own event
    # does not explain (an ECDSA twin, or an 8-byte index prefix collision).
    try:
        return kind.read_body(body).event_key() or leaf_hash(body)
    except InvalidInput:
        return leaf_hash(body)

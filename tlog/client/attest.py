"""Attestations against a pinned log (issue 13): `tlog attest` signs an in-toto statement
in a DSSE envelope, logs it as a Rekor `dsse` v0.0.1 entry and bundles it (Sigstore bundle
v0.3 with `dsseEnvelope`); `tlog verify-attestation` finds the attestations about an
artifact in the log and verifies each.

Nothing the log answers is taken on its word: a bundle is verified as any Sigstore bundle
is (tlog.core.sigstore_verify: the signature over the DSSE PAE, the artifact among the
statement's subjects, the entry's body against the envelope, SET, inclusion proof and
checkpoint), against a trusted root that holds the pinned log alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from tlog.client.http import LogClient
from tlog.core.attestation import envelope_json, kept_envelope, parse_statement
from tlog.core.bundle import dsse_bundle_to_json, tlog_entry_from_rekor
from tlog.core.checks import CheckFailed
from tlog.core.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae
from tlog.core.entries import check_request, dsse
from tlog.core.entries.hashedrekord import digest_for_key
from tlog.core.sigstore_bundle import SigstoreBundle, parse_sigstore_bundle
from tlog.core.sigstore_root import LogInstance, PublicKey, TrustedRoot, ValidFor, load_public_key
from tlog.core.sigstore_verify import verify_sigstore_bundle
from tlog.core.trusted import TrustedLog
from tlog.core.userkeys import SigningKey
from tlog.errors import InvalidInput


def sign_envelope(key: SigningKey, payload: bytes,
                  payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    """A DSSE envelope with one signature over PAE(type, payload), by `key`: ECDSA over the
    curve's digest (SHA-256 for P-256), RSA PKCS#1 v1.5 over SHA-256."""
    public = serialization.load_pem_public_key(key.public_pem())
    algorithm = digest_for_key(public)
    digest = hashlib.new(algorithm, pae(payload_type, payload)).digest()
    return Envelope(payload, payload_type, (key.sign_digest(digest, algorithm),))


def pinned_root(log: TrustedLog) -> TrustedRoot:
    """A trusted root that trusts the pinned log alone (for key-signed bundles)."""
    instance = LogInstance(log.url, log.public_key.log_id(),
                           load_public_key(log.public_key.spki_der()),
                           ValidFor(datetime(1970, 1, 1, tzinfo=UTC), None))
    return TrustedRoot((instance,), (), (), ())


def verifier_key(public_key_pem: bytes) -> PublicKey:
    try:
        return serialization.load_pem_public_key(public_key_pem)  # type: ignore[return-value]
    except ValueError as e:
        raise InvalidInput(f"not a PEM public key: {e}") from None


@dataclass(frozen=True)
class LoggedAttestation:
    bundle_json: dict[str, Any]
    bundle: SigstoreBundle
    created: bool


async def submit_attestation(client: LogClient, log: TrustedLog, envelope: Envelope,
                             public_key_pem: bytes, subject_digest: bytes) -> LoggedAttestation:
    """Log `envelope` as a dsse entry, bundle the answer and verify the bundle for
    `subject_digest` against the pinned `log`. A duplicate (409) is fetched and bundled."""
    proposed = dsse.proposed_entry(envelope_json(envelope), [public_key_pem])
    try:
        check_request(proposed).verify()
    except InvalidInput as e:
        raise InvalidInput(f"the log would refuse this attestation: {e}") from None
    answer, created = await client.submit(proposed)
    try:
        doc = dsse_bundle_to_json(envelope, public_key_pem, tlog_entry_from_rekor(answer))
    except InvalidInput as e:
        raise CheckFailed("entry", f"the log's answer is malformed: {e}") from None
    bundle = parse_sigstore_bundle(json.dumps(doc).encode())
    verify_sigstore_bundle(bundle, pinned_root(log), subject_digest,
                           key=verifier_key(public_key_pem))
    return LoggedAttestation(doc, bundle, created)


@dataclass(frozen=True)
class FoundAttestation:
    """One attestation the log holds about an artifact, and what verifying it showed."""

    uuid: str
    log_index: int
    kind: str
    predicate_type: str | None
    statement: dict[str, Any] | None
    failure: str | None  # None: verified (signature, subject, entry, proofs)


async def find_attestations(client: LogClient, log: TrustedLog, digest: bytes,
                            public_key_pem: bytes) -> list[FoundAttestation]:
    """Every dsse/intoto entry the log indexes under the SHA-256 `digest`, each verified
    with `public_key_pem` for that digest against the pinned `log`."""
    key = verifier_key(public_key_pem)
    root = pinned_root(log)
    found = []
    for uuid in await client.search(sha256=digest.hex()):
        answer = await client.entry_by_uuid(uuid)
        try:
            entry = tlog_entry_from_rekor({k: {m: v for m, v in e.items() if m != "attestation"}
                                           for k, e in answer.items()})
        except InvalidInput as e:
            raise CheckFailed("entry", f"the log's answer for {uuid} is malformed: {e}") from None
        if entry.kind not in ("dsse", "intoto"):
            continue
        failure = None
        stmt = None
        try:
            kept = next(iter(answer.values())).get("attestation", {}).get("data")
            if not isinstance(kept, str):
                raise CheckFailed("attestation", "the log keeps no envelope for this entry")
            envelope = kept_envelope(entry.body, base64.b64decode(kept))
            doc = dsse_bundle_to_json(envelope, public_key_pem, entry)
            if entry.kind == "intoto":
                doc["verificationMaterial"]["tlogEntries"][0]["kindVersion"] = {
                    "kind": "intoto", "version": entry.version}
            verify_sigstore_bundle(parse_sigstore_bundle(json.dumps(doc).encode()), root,
                                   digest, key=key)
            stmt = parse_statement(envelope)
        except CheckFailed as e:
            failure = f"{e.check}: {e.reason}"
        except InvalidInput as e:
            failure = str(e)
        found.append(FoundAttestation(uuid, entry.log_index, entry.kind,
                                      None if stmt is None else stmt.get("predicateType"),
                                      stmt, failure))
    return found

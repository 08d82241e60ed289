"""Verifying any Sigstore bundle against a trusted root, offline (DESIGN §1 "Verifier").

The steps and their order follow Sigstore's client specification (sigstore/architecture-docs
`client-spec.md` §4 "Verification") as sigstore-go and sigstore-python implement it:

1. the log entry is from a transparency log of the trusted root, and the log vouches for
   it: the SET (Rekor v1: RFC 8785 JSON of body, integratedTime, logID, logIndex, signed by
   the log key), the RFC 9162 §2.1.3.2 inclusion proof, and the checkpoint
   (C2SP tlog-checkpoint) signed by the log under its origin's name and key ID (the
   first four bytes of the log ID: SHA-256 of the SPKI for Rekor v1, the C2SP signed-note
   key ID for Rekor v2). Other signatures on the checkpoint (witness cosignatures) are
   ignored;
2. the signing time: the SET's integratedTime and every RFC 3161 timestamp (tlog.core.rfc3161),
   at least one, each inside the log key's `validFor`;
3. for a certificate: no root in the bundle, a chain to a CA trusted at every signing time,
   the leaf valid at each of them, the code-signing profile, an SCT from a trusted CT log,
   and the identity policy; for a key: the key given by the verifier;
4. the signature over the artifact digest (message signature) or over the DSSE PAE, and
   for an in-toto statement the artifact digest among its subjects;
5. the log entry's body records this signature, certificate or key, and content.

Every failure is `CheckFailed(check, reason)`, the check one of: bundle, log, SET,
inclusion, checkpoint, time, timestamp, trust-root validity, chain, SCT, identity, issuer,
digest, signature, entry.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlog.core.certs import check_bundle_chain, check_code_signing_leaf, verify_chain
from tlog.core.checkpoint import Checkpoint
from tlog.core.checks import CheckFailed
from tlog.core.identity import IdentityPolicy, check_identity, oidc_issuer, san_identities
from tlog.core.merkle import leaf_hash, verify_inclusion
from tlog.core.note import parse_note
from tlog.core.rekor_entries import check_entry_body
from tlog.core.rfc3161 import verify_timestamps
from tlog.core.sct import verify_scts
from tlog.core.sigstore_bundle import Envelope, LogEntry, SigstoreBundle
from tlog.core.sigstore_root import LogInstance, PublicKey, TrustedRoot, verify_signature
from tlog.core.timestamp import set_payload
from tlog.errors import InvalidInput, VerificationError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


@dataclass(frozen=True)
class SigstoreVerified:
    """What a successful verification established."""

    log: LogInstance
    entry: LogEntry
    times: tuple[datetime, ...]  # every verified signing time
    identity: str | None  # the certificate's SAN (keyless), None for a key
    issuer: str | None


def verify_log_entry(entry: LogEntry, log: LogInstance) -> datetime | None:
    """SET, inclusion proof and checkpoint of `entry` against `log`; the SET's time if any."""
    when = None
    if entry.set_signature is not None:
        try:
            payload = set_payload(entry.body, entry.integrated_time, entry.log_id.hex(), entry.log_index)
        except InvalidInput as e:
            raise CheckFailed("SET", f"the SET payload is malformed: {e}") from None
        if not verify_signature(log.key, entry.set_signature, payload):
            raise CheckFailed("SET", "the signed entry timestamp does not verify with the log key")
        when = datetime.fromtimestamp(entry.integrated_time, UTC)
    proof = entry.proof
    if proof is None:
        if when is None:
            raise CheckFailed("inclusion", "the log entry has neither inclusion proof nor SET")
        return when
    try:
        verify_inclusion(proof.log_index, proof.tree_size, leaf_hash(entry.body), list(proof.hashes),
                         proof.root_hash)
    except (VerificationError, InvalidInput) as e:
        raise CheckFailed("inclusion", str(e)) from None
    if proof.checkpoint is None:  # a v0.1 bundle: the SET vouches for the entry
        return when
    checkpoint = verify_entry_checkpoint(proof.checkpoint.encode("utf-8"), log)
    if checkpoint.size != proof.tree_size or not hmac.compare_digest(checkpoint.root_hash,
                                                                     proof.root_hash):
        raise CheckFailed("checkpoint", "the checkpoint is not the tree head the inclusion proof "
                                        "leads to")
    return when


def verify_entry_checkpoint(note: bytes, log: LogInstance) -> Checkpoint:
    """A checkpoint signed by `log`: a signature line named after the checkpoint's origin
    (Rekor v2) or the log's host name (Rekor v1 names its lines `rekor.sigstore.dev` under
    the origin `rekor.sigstore.dev - <tree ID>`), with the log ID's first four bytes as key
    ID, verifying with the log key. Lines from other keys (witnesses, a second log key) are
    ignored."""
    try:
        parsed = parse_note(note)
        checkpoint = Checkpoint.parse(parsed.text.encode("utf-8"))
    except InvalidInput as e:
        raise CheckFailed("checkpoint", str(e)) from None
    names = {checkpoint.origin, urlsplit(log.base_url).netloc}
    ours = [s for s in parsed.signatures
            if s.name in names and s.key_id == log.log_id[:4]]
    if not ours:
        raise CheckFailed("checkpoint", f"no signature by the log ({checkpoint.origin}, key ID "
                                        f"{log.log_id[:4].hex()}) on the checkpoint")
    for sig in ours:
        if not verify_signature(log.key, sig.signature, parsed.text.encode("utf-8")):
            raise CheckFailed("checkpoint", "the log's checkpoint signature does not verify")
    return checkpoint


def in_toto_subject_digests(envelope: Envelope) -> list[bytes]:
    """The SHA-256 digests of an in-toto statement's subjects (in-toto Statement v1)."""
    try:
        statement = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError):
        raise CheckFailed("digest", "the DSSE payload is not an in-toto statement") from None
    subjects = statement.get("subject") if isinstance(statement, dict) else None
    if not isinstance(subjects, list):
        raise CheckFailed("digest", "the in-toto statement has no subjects")
    out = []
    for s in subjects:
        value = s.get("digest", {}).get("sha256") if isinstance(s, dict) else None
        if isinstance(value, str):
            try:
                out.append(bytes.fromhex(value))
            except ValueError:
                continue
    return out


def _establish_times(bundle: SigstoreBundle, root: TrustedRoot, log: LogInstance,
                     set_time: datetime | None) -> list[datetime]:
    times = [] if set_time is None else [set_time]
    times += verify_timestamps(bundle.timestamps, bundle.signature, root.timestamp_authorities)
    if not times:
        raise CheckFailed("time", "no verified signing time: the bundle has neither a SET nor an "
                                  "RFC 3161 timestamp")
    for when in times:
        if not log.valid_for.contains(when):
            raise CheckFailed("trust-root validity", f"the log key of {log.base_url} is not valid "
                                                     f"at {when:%Y-%m-%dT%H:%M:%SZ}")
    return times


def _check_certificate(certs: tuple[x509.Certificate, ...], root: TrustedRoot,
                       times: list[datetime], policy: IdentityPolicy) -> x509.Certificate:
    check_bundle_chain(certs)
    leaf = certs[0]
    for when in times:
        if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
            raise CheckFailed("time", f"the signing certificate (valid "
                                      f"{leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} to "
                                      f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}) was not "
                                      f"valid at {when:%Y-%m-%dT%H:%M:%SZ}")
    chain: list[x509.Certificate] = []
    for when in times:
        chain = verify_chain(leaf, root.certificate_authorities, when)
    check_code_signing_leaf(leaf)
    verify_scts(leaf, chain[0], root.ctlogs)
    check_identity(leaf, policy)
    return leaf


def verify_sigstore_bundle(bundle: SigstoreBundle, root: TrustedRoot, digest: bytes, *,
                           policy: IdentityPolicy | None = None,
                           key: PublicKey | None = None) -> SigstoreVerified:
    """Verify `bundle` for an artifact (or in-toto subject) with SHA-256 `digest`, signed
    either by a certificate matching `policy` or by `key`, against `root`."""
    if (policy is None) == (key is None):
        raise ValueError("verify with exactly one of an identity policy and a key")
    if key is None and not bundle.certificates:
        raise CheckFailed("chain", "the bundle is signed with a key, not a certificate: verify "
                                   "it with --key")
    if key is not None and bundle.certificates:
        raise CheckFailed("signature", "the bundle is signed with a certificate, not a key: "
                                       "verify it with --certificate-identity")
    entry = bundle.entry
    log = root.tlog(entry.log_id)
    if log is None:
        raise CheckFailed("log", f"the entry is from log {entry.log_id.hex()}, which the trusted "
                                 "root does not list")
    set_time = verify_log_entry(entry, log)
    times = _establish_times(bundle, root, log, set_time)
    leaf = None
    if policy is not None:
        leaf = _check_certificate(bundle.certificates, root, times, policy)
        signer: PublicKey = leaf.public_key()  # type: ignore[assignment]
        material = leaf.public_bytes(serialization.Encoding.DER)
    else:
        assert key is not None
        signer = key
        material = key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    env = bundle.envelope
    if env is None:
        if bundle.message_digest is not None and not hmac.compare_digest(bundle.message_digest, digest):
            raise CheckFailed("digest", f"the bundle signs sha256:{bundle.message_digest.hex()}, not "
                                        f"sha256:{digest.hex()}")
        if not verify_signature(signer, bundle.signature, digest, prehashed=True):
            raise CheckFailed("signature", "the signature does not verify over the artifact's digest")
        check_entry_body(entry, bundle, material, digest)
    else:
        if not verify_signature(signer, env.signatures[0], env.pae()):
            raise CheckFailed("signature", "the DSSE envelope's signature does not verify")
        if env.payload_type != IN_TOTO_PAYLOAD_TYPE:
            raise CheckFailed("digest", f"the DSSE payload is {env.payload_type}, not an in-toto "
                                        "statement")
        if not any(hmac.compare_digest(d, digest) for d in in_toto_subject_digests(env)):
            raise CheckFailed("digest", f"sha256:{digest.hex()} is not a subject of the in-toto "
                                        "statement")
        check_entry_body(entry, bundle, material, None)
    names = san_identities(leaf) if leaf is not None else []
    return SigstoreVerified(log, entry, tuple(times), names[0] if names else None,
                            oidc_issuer(leaf) if leaf is not None else None)

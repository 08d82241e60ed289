"""Verifying signatures and their log entries against a pinned log (DESIGN §1 "Verifier").

Pure: every check takes values (a parsed bundle, a digest, a public key, a TrustedLog from
the trust file) and raises CheckFailed naming the check that failed:

- `artifact`: the bundle signs this artifact's (or image payload's) SHA-256;
- `signature`: the signature verifies over that digest with the signer's public key;
- `body`: the logged entry records exactly that digest, signature and key;
- `log`: the entry is from the pinned log (logID = SHA-256 of the pinned key);
- `checkpoint`: the checkpoint is signed by the pinned key, for the pinned log's name,
  and is the tree head the inclusion proof leads to;
- `inclusion proof`: RFC 9162 §2.1.3.2, the entry is a leaf of that tree;
- `SET`: the log's signed promise over body, integratedTime, logID and logIndex;
- `consistency`: (online) the log's current tree extends the bundle's (RFC 9162 §2.1.4.2).

Fetching what the online check needs is the caller's job (plan, fetch, compute).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tlog.core.bundle import Bundle, TlogEntry, tlog_entry_from_rekor
from tlog.core.checkpoint import Checkpoint, verify_checkpoint
from tlog.core.checks import CheckFailed as CheckFailed  # re-exported: callers import it here
from tlog.core.cosignature import CosignatureVerifier, cosigned_by
from tlog.core.entries import read_body
from tlog.core.entries.hashedrekord import (
    API_VERSION,
    KIND,
    HashedRekord,
    UnboundDigest,
    parse_body,
    public_key_fingerprint_of_pem,
    verify_signature,
)
from tlog.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from tlog.core.note import parse_note
from tlog.core.timestamp import verify_set
from tlog.core.trusted import TrustedLog, normalize_url
from tlog.errors import InvalidInput, TlogError, VerificationError


@dataclass(frozen=True)
class VerifiedEntry:
    """What a successful verification established."""

    log: TrustedLog
    entry: TlogEntry
    checkpoint: Checkpoint  # the signed tree head the entry was proven against


def log_for_entry(logs: Sequence[TrustedLog], log_id: bytes, url: str | None) -> TrustedLog:
    """The pinned log to check an entry against: the one named by `url` if given (the
    entry must then be from it), else the pinned log whose logID the entry carries."""
    if url:
        want = normalize_url(url)
        for lg in logs:
            if lg.url == want:
                return lg
        raise TlogError(f"log {want} is not pinned in the trust file; "
                        f"run `tlog trust add {want}` first")
    for lg in logs:
        if lg.public_key.log_id() == log_id:
            return lg
    if not logs:
        raise TlogError("no log is pinned yet; run `tlog trust add URL` first")
    raise CheckFailed("log", f"the entry is from log {log_id.hex()}, which is not pinned in "
                             "the trust file (pinned: "
                      + ", ".join(f"{lg.url} {lg.log_id_hex}" for lg in logs) + ")")


def verify_bundle(bundle: Bundle, digest: bytes, public_key_pem: bytes, log: TrustedLog,
                  *, subject: str = "artifact") -> VerifiedEntry:
    """Check a bundle for a message whose digest with the bundle's algorithm
    (`bundle.algorithm`: the signing key's, sha384 for a P-384 key) is `digest`, signed
    with `public_key_pem`, logged in the pinned `log`. `subject` names the message in
    errors ("artifact", "image"). The signature is checked as the log checks it at
    admission, the key's digest algorithm included (Sigstore's algorithm registry)."""
    try:
        key_fingerprint = public_key_fingerprint_of_pem(public_key_pem)
    except InvalidInput as e:
        raise InvalidInput(f"public key: {str(e).removeprefix('publicKey.content: ')}") from None
    algorithm = bundle.algorithm
    if not hmac.compare_digest(bundle.digest, digest):
        signed_bytes = "image's signing payload" if subject == "image" else subject
        raise CheckFailed(subject, f"the bundle signs {algorithm}:{bundle.digest.hex()}, but the "
                                   f"{signed_bytes} has {algorithm}:{digest.hex()}")
    is_certificate = public_key_pem.lstrip().startswith(b"-----BEGIN CERTIFICATE")
    signed = HashedRekord(algorithm, digest, bundle.signature, public_key_pem, is_certificate)
    try:
        verify_signature(signed)
    except UnboundDigest as e:
        raise CheckFailed("signature", e.reason) from None
    except InvalidInput:
        raise CheckFailed("signature", f"does not verify over the {subject}'s digest with "
                                       "the given public key") from None
    record = _check_body(bundle.entry)
    if record.algorithm != algorithm or not hmac.compare_digest(record.digest, digest):
        raise CheckFailed("body", f"the log entry records {record.artifact_key()}, not the "
                                  f"{subject}'s {algorithm}:{digest.hex()}")
    if not hmac.compare_digest(record.signature, bundle.signature):
        raise CheckFailed("body", "the log entry records another signature than the bundle's")
    if not hmac.compare_digest(record.public_key_fingerprint(), key_fingerprint):
        raise CheckFailed("body", "the log entry was signed with another public key")
    return VerifiedEntry(log, bundle.entry, verify_tlog_entry(bundle.entry, log))


def verify_log_entry(log_entry: object, log: TrustedLog) -> VerifiedEntry:
    """Check a Rekor v1 LogEntry answer (`{uuid: LogEntry}`) against the pinned log."""
    try:
        entry = tlog_entry_from_rekor(log_entry)
    except InvalidInput as e:
        raise CheckFailed("entry", f"the log's answer is malformed: {e}") from None
    try:  # any kind the log accepts (tlog.core.entries), matching its kindVersion
        stored = read_body(entry.body)
    except InvalidInput as e:
        raise CheckFailed("body", str(e).removeprefix("body: ")) from None
    if (stored.kind, stored.api_version) != (entry.kind, entry.version):
        raise CheckFailed("body", f"the body is a {stored.kind} {stored.api_version} entry, the "
                                  f"answer says {entry.kind} {entry.version}")
    return VerifiedEntry(log, entry, verify_tlog_entry(entry, log))


def verify_tlog_entry(entry: TlogEntry, log: TrustedLog) -> Checkpoint:
    """Log, checkpoint, inclusion proof and SET of one entry, against the pinned log.
    Returns the verified checkpoint the entry is included in."""
    pub = log.public_key
    if entry.log_id != pub.log_id():
        raise CheckFailed("log", f"the entry is from log {entry.log_id.hex()}, not the pinned "
                                 f"log {log.url} ({log.log_id_hex})")
    proof = entry.proof
    cp = verify_log_checkpoint(proof.checkpoint, log)
    if cp.size != proof.tree_size or not hmac.compare_digest(cp.root_hash, proof.root_hash):
        raise CheckFailed("checkpoint", f"it signs tree size {cp.size} with root "
                                        f"{cp.root_hash.hex()}, but the inclusion proof is for "
                                        f"size {proof.tree_size} with root {proof.root_hash.hex()}")
    if proof.log_index != entry.log_index:
        raise CheckFailed("inclusion proof", f"it is for index {proof.log_index}, but the "
                                             f"entry's index is {entry.log_index}")
    try:
        verify_inclusion(entry.log_index, cp.size, leaf_hash(entry.body), proof.hashes,
                         cp.root_hash)
    except VerificationError as e:
        raise CheckFailed("inclusion proof", str(e).removeprefix("inclusion proof: ")) from None
    try:
        verify_set(pub, entry.signed_entry_timestamp, entry.body, entry.integrated_time,
                   entry.log_id.hex(), entry.log_index)
    except VerificationError as e:
        raise CheckFailed("SET", str(e)) from None
    return cp


def verify_log_checkpoint(note: bytes, log: TrustedLog, *, check: str = "checkpoint") -> Checkpoint:
    """A signed checkpoint of the pinned log: its key, and its name as the origin."""
    try:
        return verify_checkpoint(note, log.public_key, origin=log.name)
    except VerificationError as e:
        raise CheckFailed(check, str(e).removeprefix("checkpoint ")) from None


def verify_log_info(info: object, log: TrustedLog, *, check: str = "checkpoint") -> Checkpoint:
    """Rekor's LogInfo (`GET /api/v1/log`): its signedTreeHead signed by the pinned key,
    and its treeSize and rootHash those the checkpoint signs."""
    if not isinstance(info, Mapping) or not isinstance(info.get("signedTreeHead"), str):
        raise CheckFailed(check, "the log's tree head has no signed checkpoint")
    cp = verify_log_checkpoint(info["signedTreeHead"].encode("utf-8"), log, check=check)
    if info.get("treeSize") != cp.size or info.get("rootHash") != cp.root_hash.hex():
        raise CheckFailed(check, "the log's treeSize and rootHash are not those its "
                                 "signed checkpoint signs")
    return cp


def consistency_proof_hashes(answer: object) -> list[bytes]:
    """The hashes of a `GET /api/v1/log/proof` answer (Rekor's ConsistencyProof, hex)."""
    hashes = answer.get("hashes") if isinstance(answer, Mapping) else None
    try:
        if not isinstance(hashes, list):
            raise ValueError
        return [bytes.fromhex(h) for h in hashes]
    except (TypeError, ValueError):
        raise CheckFailed("consistency", "the log's consistency proof is malformed") from None


def verify_extends(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """The newer tree head extends the older one (RFC 9162 §2.1.4.2): the log did not
    rewrite the history the bundle's entry is part of."""
    if new.size < old.size:
        raise CheckFailed("consistency", f"the log's current tree (size {new.size}) is smaller "
                                         f"than the bundle's (size {old.size}): the log is "
                                         "stale or shows different histories")
    try:
        verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)
    except VerificationError as e:
        raise CheckFailed("consistency", f"from tree size {old.size} to {new.size}: "
                          + str(e).removeprefix("consistency proof: ")) from None


def verify_witnessed(note: bytes, log: TrustedLog, witnesses: Sequence[CosignatureVerifier],
                     min_witnesses: int, entry_index: int) -> Checkpoint:
    """The log's published checkpoint carries at least `min_witnesses` valid cosignatures
    from the pinned witness keys (C2SP tlog-cosignature) and covers the entry. The caller
    then proves the bundle's tree consistent with it (`verify_extends`, either direction):
    the entry is then in a history the witnesses have seen, not a private fork."""
    cp = verify_log_checkpoint(note, log, check="witnesses")
    valid = cosigned_by(parse_note(note), witnesses)
    if len(valid) < min_witnesses:
        raise CheckFailed("witnesses", f"the log's checkpoint (size {cp.size}) carries {len(valid)} "
                                       f"valid cosignature(s) from the given witnesses; "
                                       f"{min_witnesses} required")
    if cp.size <= entry_index:
        raise CheckFailed("witnesses", f"entry {entry_index} is not yet in a witnessed checkpoint "
                                       f"(witnessed tree size {cp.size}); retry shortly")
    return cp


def _check_body(entry: TlogEntry) -> HashedRekord:
    """The entry's body: a canonical hashedrekord v0.0.1, matching its kindVersion."""
    if (entry.kind, entry.version) != (KIND, API_VERSION):
        raise CheckFailed("body", f"entry kind {entry.kind} {entry.version} is not supported; "
                                  f"expected {KIND} {API_VERSION}")
    try:
        return parse_body(entry.body)
    except InvalidInput as e:
        raise CheckFailed("body", str(e).removeprefix("body: ")) from None

"""Online checks against a pinned log, each proven back to a checkpoint signed by the pinned
key (rekor-cli's `logproof` and `verify`, with the verification rekor-cli leaves to the user).

- `prove_extends`: the log's current checkpoint extends an older one (RFC 9162 §2.1.4.2);
- `log_proof`: a consistency proof between two sizes, both roots authenticated: the larger
  one by a proof to the current signed checkpoint, the smaller one by the proof itself;
- `find_entry`: the entry that logs a given signature over a given digest (a search by
  digest, then the bodies compared), for verifying without a bundle;
- `verify_signature_online`: cosign's `verify-blob` without a bundle: that entry, the
  signature checked with the key as a bundle's would be, and the log proven to extend it;
- `SeenCheckpoints`: the last checkpoint this client verified, per log, so that each online
  check also proves the log did not rewrite what this client saw before (a split view).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from tlog.client.http import LogClient
from tlog.core.bundle import Bundle, key_hint, tlog_entry_from_rekor
from tlog.core.checkpoint import Checkpoint
from tlog.core.entries.hashedrekord import KIND, parse_body, public_key_fingerprint_of_pem
from tlog.core.trusted import TrustedLog
from tlog.core.verify import (
    CheckFailed,
    VerifiedEntry,
    consistency_proof_hashes,
    verify_bundle,
    verify_extends,
    verify_log_checkpoint,
    verify_log_entry,
    verify_log_info,
)
from tlog.errors import InvalidInput, TlogError
from tlog.files import write_atomically


async def current_checkpoint(client: LogClient, log: TrustedLog) -> Checkpoint:
    """The log's current tree head, signed by the pinned key."""
    return verify_log_info(await client.log_info(), log, check="consistency")


async def prove_extends(client: LogClient, log: TrustedLog, old: Checkpoint,
                        current: Checkpoint | None = None) -> Checkpoint:
    """Fetch the log's current checkpoint (unless given) and a consistency proof to it from
    `old`; check both against the pinned key. Returns the current checkpoint."""
    current = current or await current_checkpoint(client, log)
    proof: list[bytes] = []
    if current.size > old.size:
        proof = consistency_proof_hashes(await client.consistency(old.size, current.size))
    verify_extends(old, current, proof)
    return current


@dataclass(frozen=True)
class LogProof:
    """A verified consistency proof from `first_size` to `last_size`."""

    first_size: int
    last_size: int
    first_root: bytes
    last_root: bytes
    hashes: list[bytes]
    current: Checkpoint  # the signed checkpoint both roots were proven against


def _root_of(answer: object) -> bytes:
    root = answer.get("rootHash") if isinstance(answer, dict) else None
    try:
        if not isinstance(root, str) or len(root) != 64:
            raise ValueError
        return bytes.fromhex(root)
    except ValueError:
        raise CheckFailed("consistency", "the log's consistency proof has no valid rootHash") from None


async def log_proof(client: LogClient, log: TrustedLog, first: int, last: int) -> LogProof:
    """The consistency proof from tree size `first` to `last`, verified: the root at `last`
    is proven consistent with the log's current signed checkpoint, and the proof leads from
    the root at `first` (as the log states it) to that one, so neither root is taken on the
    log's word."""
    if not 1 <= first <= last:
        raise InvalidInput(f"need 1 ≤ first size ≤ last size, got {first} and {last}")
    current = await current_checkpoint(client, log)
    if last > current.size:
        raise InvalidInput(f"the log's tree has {current.size} entries, fewer than {last}")
    answer = await client.consistency(first, last)
    hashes = consistency_proof_hashes(answer)
    last_cp = Checkpoint(log.name, last, _root_of(answer))
    await prove_extends(client, log, last_cp, current)
    first_cp = Checkpoint(log.name, first, _root_of(await client.consistency(first, first)))
    verify_extends(first_cp, last_cp, hashes)
    return LogProof(first, last, first_cp.root_hash, last_cp.root_hash, hashes, current)


async def find_entry(client: LogClient, log: TrustedLog, digest: bytes, signature: bytes,
                     public_key_pem: bytes | None) -> VerifiedEntry:
    """The pinned log's entry for `signature` over the SHA-256 `digest` (made with
    `public_key_pem`, when given), each candidate verified (SET, inclusion proof, checkpoint)
    before its body is compared."""
    fingerprint = public_key_fingerprint_of_pem(public_key_pem) if public_key_pem else None
    uuids = await client.search(sha256=digest.hex())
    for uuid in reversed(uuids):  # the newest first: a re-logged signature is the same one
        answer = await client.entry_by_uuid(uuid)
        if _kind_of(answer) not in (KIND, None):
            continue  # an attestation (dsse, intoto) about the same artifact: not a signature
        verified = verify_log_entry(answer, log)
        record = parse_body(verified.entry.body)
        if not hmac.compare_digest(record.signature, signature):
            continue
        if fingerprint is not None and not hmac.compare_digest(
                record.public_key_fingerprint(), fingerprint):
            continue
        return verified
    what = f"{len(uuids)} entries for sha256:{digest.hex()}" if uuids else \
        f"no entry for sha256:{digest.hex()}"
    raise CheckFailed("entry", f"the log holds {what}, none with this signature"
                      + (" and key" if fingerprint else ""))



def _kind_of(answer: object) -> str | None:
    """The kind of the entry a LogEntry answer carries; None when it cannot be read (the
    caller's verification then says what is wrong with it)."""
    try:
        return tlog_entry_from_rekor(answer).kind
    except InvalidInput:
        return None


async def verify_signature_online(client: LogClient, log: TrustedLog, digest: bytes,
                                  signature: bytes, public_key_pem: bytes,
                                  ) -> tuple[VerifiedEntry, Checkpoint]:
    """`cosign verify-blob --signature` without a bundle: the pinned log's entry for this
    signature over the SHA-256 `digest` (find_entry), checked exactly as a bundle holding it
    would be (the signature with `public_key_pem`, a key or a certificate; the body; SET;
    inclusion proof; checkpoint), then the log's current checkpoint proven to extend the one
    the entry was proven against. Returns the verified entry and that current checkpoint."""
    found = await find_entry(client, log, digest, signature, public_key_pem)
    bundle = Bundle(digest, signature, key_hint(public_key_pem), found.entry)
    verified = verify_bundle(bundle, digest, public_key_pem, log)
    return verified, await prove_extends(client, log, verified.checkpoint)

class SeenCheckpoints:
    """The last checkpoint of a log this client verified, kept as its signed note in a
    state file so it is re-verified with the pinned key when read back."""

    def __init__(self, path: Path, log: TrustedLog) -> None:
        self.path = path
        self.log = log

    def load(self) -> Checkpoint | None:
        try:
            doc = json.loads(self.path.read_text())
            note = doc["checkpoint"].encode("utf-8")
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise TlogError(f"state file {self.path} is malformed ({e}); remove it") from e
        return verify_log_checkpoint(note, self.log)

    async def advance(self, client: LogClient, current: Checkpoint, note: str) -> Checkpoint | None:
        """Prove `current` (whose signed `note` is kept) extends the last checkpoint seen,
        then keep it if it is larger. Returns the one seen before, if any."""
        seen = self.load()
        if seen is not None:
            if current.size < seen.size:
                await prove_extends(client, self.log, current, seen)
            else:
                await prove_extends(client, self.log, seen, current)
        if seen is None or current.size > seen.size:
            write_atomically(self.path, json.dumps({"checkpoint": note}).encode() + b"\n")
        return seen


async def fresh_checkpoint(client: LogClient, log: TrustedLog) -> tuple[Checkpoint, str]:
    """The log's current checkpoint, verified, with its signed note."""
    info = await client.log_info()
    return verify_log_info(info, log), str(info["signedTreeHead"])

"""Logging a signature (DESIGN §1 "Signer"): submit it to a log, check the log's answer
against the pinned log, and bundle it.

What `tlog sign` and `tlog upload` do once they hold a digest, a signature and a public key
(or, for `upload --entry`, a proposed entry of any kind); the CLI only reads files and
prints. Nothing the log answers is taken on its word: the bundle is built from the answer
and then verified like any other bundle (tlog.core.verify: SET, inclusion proof, checkpoint,
all against the pinned key), so a signer never keeps a bundle a verifier would refuse.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from tlog.client.http import LogClient
from tlog.core.bundle import Bundle, bundle_from_log_entry, tlog_entry_from_rekor
from tlog.core.entries.hashedrekord import parse_request, proposed_entry
from tlog.core.trusted import TrustedLog
from tlog.core.verify import CheckFailed, VerifiedEntry, verify_bundle, verify_tlog_entry
from tlog.errors import InvalidInput

_BASE64 = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


@dataclass(frozen=True)
class LoggedSignature:
    """A signature the pinned log holds, checked: its bundle and what verifying it showed."""

    bundle: Bundle
    verified: VerifiedEntry
    created: bool  # False: the log already held this entry (409); it was fetched instead


async def submit_signature(client: LogClient, log: TrustedLog, digest: bytes, signature: bytes,
                           public_key_pem: bytes, *, subject: str = "artifact",
                           algorithm: str = "sha256") -> LoggedSignature:
    """Log `signature` over `digest` (an `algorithm` digest: the key's, see
    SigningKey.digest_algorithm) with `client` (talking to `log`), verify the answer
    against the pinned `log`, and return its Sigstore bundle.

    The entry is checked locally first (the log would refuse it anyway, less clearly). A
    duplicate (409) is fetched and bundled like a new entry: it is in the log either way.
    `subject` names the signed message in errors ("artifact", "image"), as verify_bundle does.
    `public_key_pem` may be a certificate for the signing key (tlog.core.signingcert): it is
    logged as is and the bundle carries it.
    Raises InvalidInput for a signature the log would refuse, CheckFailed for an answer that
    does not verify, and the client's errors for a log that cannot be reached or says no.
    """
    proposed = proposed_entry(algorithm, digest, signature, public_key_pem)
    try:
        parse_request(proposed)
    except InvalidInput as e:
        raise InvalidInput(f"the log would refuse this signature: {e}") from None
    answer, created = await client.submit(proposed)
    try:
        bundle = bundle_from_log_entry(answer, digest, signature, public_key_pem, algorithm)
    except InvalidInput as e:
        raise CheckFailed("entry", f"the log's answer is malformed: {e}") from None
    verified = verify_bundle(bundle, digest, public_key_pem, log, subject=subject)
    return LoggedSignature(bundle, verified, created)



@dataclass(frozen=True)
class LoggedEntry:
    """Any entry the pinned log holds (`tlog upload --entry`), its answer checked."""

    verified: VerifiedEntry
    created: bool  # False: the log already held this entry (409); it was fetched instead


async def submit_entry(client: LogClient, log: TrustedLog, proposed: dict[str, object]) -> LoggedEntry:
    """Post a proposed entry of any kind the log supports (rekor-cli's `upload --entry`),
    passed through as given: the log, not this client, judges the kinds it accepts. Its
    answer is checked against the pinned `log` like a signature's (SET, inclusion proof,
    checkpoint), and must record the kind and version proposed."""
    answer, created = await client.submit(proposed)
    try:
        entry = tlog_entry_from_rekor(answer)
    except InvalidInput as e:
        raise CheckFailed("entry", f"the log's answer is malformed: {e}") from None
    asked = (proposed.get("kind"), proposed.get("apiVersion"))
    if (entry.kind, entry.version) != asked:
        raise CheckFailed("body", f"the log recorded a {entry.kind} {entry.version} entry, "
                                  f"not the {asked[0]} {asked[1]} proposed")
    return LoggedEntry(VerifiedEntry(log, entry, verify_tlog_entry(entry, log)), created)

def decode_signature(data: bytes) -> bytes:
    """A signature file's bytes: base64 text (cosign sign-blob) or raw (openssl dgst -sign).

    Text that is valid padded base64 is decoded; anything else is taken as the raw signature
    (a raw ECDSA signature never passes for base64: its DER INTEGER tags are 0x02 bytes).
    """
    text = data.strip()
    if text and _BASE64.fullmatch(text) and len(text) % 4 == 0:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            pass
    if not data:
        raise InvalidInput("the signature file is empty")
    return data

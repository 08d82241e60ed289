"""Interop: our checkpoints and SETs verify with sigstore-python 4.5.1's own code.

sigstore-python checks a Rekor v1 entry in `TransparencyLogEntry._verify`: the RFC 6962
inclusion proof (`_internal/merkle.py`), the signed checkpoint (`_internal/rekor/
checkpoint.py`) and the SET (`models.py: _verify_set`), against a `RekorKeyring` built
from a trusted root. We build real entries with an independent RFC 6962 reference below and
feed them to that code, for both log key types, then tamper with them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore._internal.trust import Keyring, KeyringPurpose, RekorKeyring
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import TransparencyLogEntry, TrustedRoot
from sigstore_models.common import v1 as common_v1
from sigstore_models.rekor.v1 import TransparencyLogEntry as _TransparencyLogEntry
from sigstore_models.trustroot import v1 as trustroot_v1

from tlog.core.checkpoint import Checkpoint, log_note_signers, sign_checkpoint, verify_checkpoint
from tlog.core.keys import KEY_TYPES, KeyType, LogKey, LogPublicKey
from tlog.core.note import Ed25519NoteSigner, SpkiNoteSigner, sign_note
from tlog.core.timestamp import set_payload, sign_set, verify_set
from tlog.errors import VerificationError

ORIGIN = "log.example.com"
INTEGRATED_TIME = 1_700_000_000

# --- an independent RFC 6962 reference (RFC 6962 §2.1, §2.1.1) -----------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    # The largest power of two smaller than n.
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), leaf to root."""
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return inclusion_path(m, leaves[:k]) + [mth(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def test_reference_matches_rfc6962_shapes() -> None:
    # Sanity-check the reference itself, so a bug there cannot make both sides agree.
    a, b, c = b"a", b"b", b"c"
    assert mth([a, b, c]) == node_hash(node_hash(leaf_hash(a), leaf_hash(b)), leaf_hash(c))
    assert inclusion_path(2, [a, b, c]) == [node_hash(leaf_hash(a), leaf_hash(b))]
    assert inclusion_path(0, [a, b, c]) == [leaf_hash(b), leaf_hash(c)]


# --- entries -------------------------------------------------------------------------------

USER_KEY = ec.generate_private_key(ec.SECP256R1())
USER_PEM = USER_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def hashedrekord_body(artifact: bytes) -> bytes:
    """A canonical hashedrekord v0.0.1 body with a real ECDSA P-256 signature (DESIGN §2)."""
    sig = USER_KEY.sign(artifact, ec.ECDSA(hashes.SHA256()))
    return rfc8785.dumps(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}
                },
                "signature": {
                    "content": base64.b64encode(sig).decode(),
                    "publicKey": {"content": base64.b64encode(USER_PEM).decode()},
                },
            },
        }
    )


BODIES = [hashedrekord_body(f"artifact {i}\n".encode()) for i in range(7)]


def v1_log_entry(
    key: LogKey,
    leaves: list[bytes],
    index: int,
    *,
    checkpoint: str | None = None,
    set_sig: bytes | None = None,
) -> dict[str, Any]:
    """A Rekor v1 `{uuid: LogEntry}` response (DESIGN §3) for leaves[index]."""
    pub = key.public_key
    log_id = pub.log_id().hex()
    root = mth(leaves)
    body = leaves[index]
    if checkpoint is None:
        checkpoint = sign_checkpoint(Checkpoint(ORIGIN, len(leaves), root), key).decode()
    if set_sig is None:
        set_sig = sign_set(key, body, INTEGRATED_TIME, log_id, index)
    return {
        leaf_hash(body).hex(): {
            "body": base64.b64encode(body).decode(),
            "integratedTime": INTEGRATED_TIME,
            "logID": log_id,
            "logIndex": index,
            "verification": {
                "signedEntryTimestamp": base64.b64encode(set_sig).decode(),
                "inclusionProof": {
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": len(leaves),
                    "hashes": [h.hex() for h in inclusion_path(index, leaves)],
                    "checkpoint": checkpoint,
                },
            },
        }
    }


def trusted_root_keyring(pub: LogPublicKey) -> RekorKeyring:
    """The keyring sigstore builds from a trusted root holding our log (DESIGN §2 format)."""
    # from_json, as sigstore loads trusted_root.json (strict pydantic: JSON strings only).
    root = trustroot_v1.TrustedRoot.from_json(
        json.dumps({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": f"https://{ORIGIN}",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": base64.b64encode(pub.spki_der()).decode(),
                        "keyDetails": pub.key_details,
                        "validFor": {"start": "2024-01-01T00:00:00Z"},
                    },
                    "logId": {"keyId": base64.b64encode(pub.log_id()).decode()},
                }
            ],
            "certificateAuthorities": [],
            "ctlogs": [],
        })
    )
    return TrustedRoot(root).rekor_keyring(KeyringPurpose.VERIFY)


def direct_keyring(pub: LogPublicKey) -> RekorKeyring:
    return RekorKeyring(
        Keyring(
            [
                common_v1.PublicKey(
                    # ProtoBytes fields take base64 (protobuf JSON) even when given bytes.
                    raw_bytes=base64.b64encode(pub.spki_der()),
                    key_details=common_v1.PublicKeyDetails[pub.key_details],
                    valid_for=common_v1.TimeRange(start=datetime(2024, 1, 1, tzinfo=UTC)),
                )
            ]
        )
    )


def sigstore_verify(entry: dict[str, Any], pub: LogPublicKey) -> None:
    TransparencyLogEntry._from_v1_response(entry)._verify(direct_keyring(pub))


@pytest.fixture(params=KEY_TYPES)
def key(request: pytest.FixtureRequest) -> LogKey:
    return LogKey.generate(request.param)


# --- it verifies ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 8))
def test_sigstore_verifies_every_entry_of_small_trees(key: LogKey, size: int) -> None:
    leaves = BODIES[:size]
    for index in range(size):
        sigstore_verify(v1_log_entry(key, leaves, index), key.public_key)


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_keyring_from_a_trusted_root_verifies(key_type: KeyType) -> None:
    key = LogKey.generate(key_type)
    entry = TransparencyLogEntry._from_v1_response(v1_log_entry(key, BODIES[:5], 3))
    entry._verify(trusted_root_keyring(key.public_key))


def test_our_verifiers_accept_what_we_hand_sigstore(key: LogKey) -> None:
    (entry,) = v1_log_entry(key, BODIES[:6], 4).values()
    proof = entry["verification"]["inclusionProof"]
    cp = verify_checkpoint(proof["checkpoint"].encode(), key.public_key, origin=ORIGIN)
    assert cp.root_hash.hex() == proof["rootHash"] and cp.size == 6
    verify_set(
        key.public_key,
        base64.b64decode(entry["verification"]["signedEntryTimestamp"]),
        base64.b64decode(entry["body"]),
        entry["integratedTime"],
        entry["logID"],
        entry["logIndex"],
    )


def test_set_payload_is_byte_identical_to_sigstores(key: LogKey) -> None:
    d = v1_log_entry(key, BODIES[:3], 2)
    ours = set_payload(BODIES[2], INTEGRATED_TIME, key.public_key.log_id().hex(), 2)
    assert TransparencyLogEntry._from_v1_response(d)._encode_canonical() == ours


def test_origin_without_tree_id_and_extension_lines_are_accepted(key: LogKey) -> None:
    # Rekor v1 origins are "<host> - <treeID>"; sigstore-python does not look at the origin,
    # and keeps extension lines as opaque `other_content`.
    leaves = BODIES[:4]
    cp = Checkpoint(ORIGIN, 4, mth(leaves), ("Timestamp: 1700000000000000000",))
    entry = v1_log_entry(key, leaves, 1, checkpoint=sign_checkpoint(cp, key).decode())
    sigstore_verify(entry, key.public_key)


def test_sigstore_ignores_the_key_name_and_matches_on_the_log_id_hint(key: LogKey) -> None:
    # Documenting sigstore-python 4.5.1: only the 4-byte key ID must equal logID[:4].
    leaves = BODIES[:3]
    body = Checkpoint(ORIGIN, 3, mth(leaves)).body().decode()
    text = sign_note(body, [SpkiNoteSigner("some-other-name", key)])
    sigstore_verify(v1_log_entry(key, leaves, 0, checkpoint=text.decode()), key.public_key)


def test_sigstore_bundle_encoding_of_the_same_entry_verifies(key: LogKey) -> None:
    # DESIGN §2 bundle `tlogEntries[]` shape: 64-bit integers as strings, bytes as base64.
    leaves = BODIES[:5]
    (entry,) = v1_log_entry(key, leaves, 2).values()
    proof = entry["verification"]["inclusionProof"]
    tlog_entry = _TransparencyLogEntry.from_json(
        json.dumps({
            "logIndex": str(entry["logIndex"]),
            "logId": {"keyId": base64.b64encode(key.public_key.log_id()).decode()},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": str(entry["integratedTime"]),
            "inclusionPromise": {
                "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]
            },
            "inclusionProof": {
                "logIndex": str(proof["logIndex"]),
                "rootHash": base64.b64encode(bytes.fromhex(proof["rootHash"])).decode(),
                "treeSize": str(proof["treeSize"]),
                "hashes": [base64.b64encode(bytes.fromhex(h)).decode() for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": entry["body"],
        })
    )
    TransparencyLogEntry(tlog_entry)._verify(direct_keyring(key.public_key))


# --- it fails when it should -------------------------------------------------------------


def _flip_last_byte(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 0x01])


def test_tampered_set_fails(key: LogKey) -> None:
    leaves = BODIES[:5]
    good = sign_set(key, leaves[3], INTEGRATED_TIME, key.public_key.log_id().hex(), 3)
    entry = v1_log_entry(key, leaves, 3, set_sig=_flip_last_byte(good))
    with pytest.raises(SigstoreVerificationError, match="SET"):
        sigstore_verify(entry, key.public_key)


def test_set_for_another_index_fails(key: LogKey) -> None:
    leaves = BODIES[:5]
    wrong = sign_set(key, leaves[3], INTEGRATED_TIME, key.public_key.log_id().hex(), 4)
    with pytest.raises(SigstoreVerificationError, match="SET"):
        sigstore_verify(v1_log_entry(key, leaves, 3, set_sig=wrong), key.public_key)


def test_checkpoint_signed_by_another_key_fails(key: LogKey) -> None:
    leaves = BODIES[:5]
    impostor = LogKey.generate(key.key_type)
    cp = Checkpoint(ORIGIN, 5, mth(leaves))
    # The impostor even claims our key ID (hint = our logID[:4]) and name.
    body = cp.body().decode()

    class Claiming(SpkiNoteSigner):
        def __init__(self) -> None:
            super().__init__(ORIGIN, impostor)
            self.key_id = key.public_key.log_id()[:4]

    forged = sign_note(body, [Claiming()]).decode()
    with pytest.raises(SigstoreVerificationError, match="checkpoint: invalid signature"):
        sigstore_verify(v1_log_entry(key, leaves, 1, checkpoint=forged), key.public_key)
    # Under its own key ID, sigstore finds no signature for our log.
    honest = sign_checkpoint(cp, impostor).decode()
    with pytest.raises(SigstoreVerificationError, match="Signature not found"):
        sigstore_verify(v1_log_entry(key, leaves, 1, checkpoint=honest), key.public_key)


def test_tampered_checkpoint_signature_fails(key: LogKey) -> None:
    leaves = BODIES[:5]
    text = sign_checkpoint(Checkpoint(ORIGIN, 5, mth(leaves)), key).decode()
    head, _, rest = text.partition("\n\n\u2014 ")
    name, b64_and_more = rest.split(" ", 1)
    b64, tail = b64_and_more.split("\n", 1)
    raw = base64.b64decode(b64)
    bad = f"{head}\n\n\u2014 {name} {base64.b64encode(_flip_last_byte(raw)).decode()}\n{tail}"
    with pytest.raises(SigstoreVerificationError, match="checkpoint"):
        sigstore_verify(v1_log_entry(key, leaves, 2, checkpoint=bad), key.public_key)


def test_checkpoint_for_another_root_fails(key: LogKey) -> None:
    leaves = BODIES[:5]
    other_root = mth(BODIES[1:6])
    text = sign_checkpoint(Checkpoint(ORIGIN, 5, other_root), key).decode()
    with pytest.raises(SigstoreVerificationError, match="root hash"):
        sigstore_verify(v1_log_entry(key, leaves, 2, checkpoint=text), key.public_key)


def test_wrong_body_fails_the_inclusion_proof(key: LogKey) -> None:
    leaves = BODIES[:5]
    (uuid, entry), = v1_log_entry(key, leaves, 2).items()
    entry["body"] = base64.b64encode(BODIES[6]).decode()
    with pytest.raises(SigstoreVerificationError, match="inclusion proof"):
        sigstore_verify({uuid: entry}, key.public_key)


def test_ed25519_needs_the_spki_line_for_sigstore() -> None:
    # Why every checkpoint carries the SPKI line: a C2SP-only Ed25519 checkpoint has no
    # line whose key ID is the logID prefix, so sigstore-python cannot find a signature.
    key = LogKey.generate("ed25519")
    leaves = BODIES[:3]
    body = Checkpoint(ORIGIN, 3, mth(leaves)).body().decode()
    c2sp_only = sign_note(body, [Ed25519NoteSigner.from_log_key(ORIGIN, key)]).decode()
    with pytest.raises(SigstoreVerificationError, match="Signature not found"):
        sigstore_verify(v1_log_entry(key, leaves, 0, checkpoint=c2sp_only), key.public_key)
    # With both lines (what sign_checkpoint emits), it verifies.
    both = sign_note(body, log_note_signers(ORIGIN, key)).decode()
    sigstore_verify(v1_log_entry(key, leaves, 0, checkpoint=both), key.public_key)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t.replace("\n", "\n\n", 1), id="empty-line-in-text"),
        pytest.param(lambda t: t.replace("\u2014 ", "- ", 1), id="hyphen"),
    ],
)
def test_sigstore_rejects_malformed_notes_we_also_reject(
    key: LogKey, mangle: Callable[[str], str]
) -> None:
    leaves = BODIES[:3]
    text = mangle(sign_checkpoint(Checkpoint(ORIGIN, 3, mth(leaves)), key).decode())
    with pytest.raises(SigstoreVerificationError):
        sigstore_verify(v1_log_entry(key, leaves, 0, checkpoint=text), key.public_key)
    with pytest.raises(VerificationError):
        verify_checkpoint(text.encode(), key.public_key)

"""Each check of tlog.core.sigstore_verify fails under its own name, on the conformance
suite's real bundles with one thing changed (tests/data/sigstore-conformance)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.test_conformance_bundles import CASES, IDENTITY, ISSUER
from tlog.client.sigstore_tuf import sigstore_trusted_root
from tlog.core.checks import CheckFailed
from tlog.core.identity import IdentityPolicy
from tlog.core.sigstore_bundle import parse_sigstore_bundle
from tlog.core.sigstore_root import parse_trusted_root
from tlog.core.sigstore_verify import SigstoreVerified, verify_sigstore_bundle

DIGEST = hashlib.sha256((CASES / "a.txt").read_bytes()).digest()
POLICY = IdentityPolicy(identity=IDENTITY, issuer=ISSUER)
Doc = dict[str, Any]


def _load(case: str) -> tuple[Doc, Doc]:
    root_file = CASES / case / "trusted_root.json"
    root = root_file.read_bytes() if root_file.exists() else sigstore_trusted_root()
    return json.loads((CASES / case / "bundle.sigstore.json").read_bytes()), json.loads(root)


def run(case: str, change: Callable[[Doc, Doc], object] = lambda b, r: None, *,
        digest: bytes = DIGEST, policy: IdentityPolicy = POLICY) -> SigstoreVerified:
    bundle, root = _load(case)
    change(bundle, root)
    return verify_sigstore_bundle(parse_sigstore_bundle(json.dumps(bundle).encode()),
                                  parse_trusted_root(json.dumps(root).encode()), digest, policy=policy)


def entry(b: Doc) -> Doc:
    e: Doc = b["verificationMaterial"]["tlogEntries"][0]
    return e


def flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _set(obj: Doc, **kv: object) -> Doc:
    obj.update(kv)
    return obj


CHANGES: list[tuple[str, str, Callable[[Doc, Doc], object], str]] = [
    ("media type", "happy-path-v0.3", lambda b, r: _set(b, mediaType="application/json"), "bundle"),
    ("log not in root", "happy-path-v0.3", lambda b, r: _set(r, tlogs=[]), "log"),
    ("SET", "happy-path-v0.3", lambda b, r: _set(entry(b)["inclusionPromise"], signedEntryTimestamp=flip(
        entry(b)["inclusionPromise"]["signedEntryTimestamp"])), "SET"),
    ("proof hash", "rekor2-happy-path", lambda b, r: entry(b)["inclusionProof"]["hashes"].__setitem__(
        0, flip(entry(b)["inclusionProof"]["hashes"][0])), "inclusion"),
    ("checkpoint", "rekor2-happy-path", lambda b, r: _set(entry(b)["inclusionProof"]["checkpoint"],
                                                          envelope="x\n1\nAAAA\n\n— x AAAAAAA=\n"),
     "checkpoint"),
    ("no time", "rekor2-happy-path", lambda b, r: b["verificationMaterial"].pop("timestampVerificationData"),
     "time"),
    ("timestamp", "rekor2-happy-path", lambda b, r: _set(
        b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0],
        signedTimestamp=base64.b64encode(b"junk").decode()), "timestamp"),
    ("no CA", "happy-path-v0.3", lambda b, r: _set(r, certificateAuthorities=[]), "chain"),
    ("no CT log", "happy-path-v0.3", lambda b, r: _set(r, ctlogs=[]), "SCT"),
    ("tlog validity", "happy-path-v0.3", lambda b, r: [
        _set(t["publicKey"]["validFor"], end="2000-01-01T00:00:00Z") for t in r["tlogs"]],
     "trust-root validity"),
    ("tlog missing start", "happy-path-v0.3",
     lambda b, r: r["tlogs"][0]["publicKey"]["validFor"].pop("start"), "trust-root validity"),
    ("message digest", "happy-path-v0.3", lambda b, r: _set(
        b["messageSignature"]["messageDigest"],
        digest=flip(b["messageSignature"]["messageDigest"]["digest"])), "digest"),
    ("signature", "happy-path-v0.3", lambda b, r: _set(
        b["messageSignature"], signature=flip(b["messageSignature"]["signature"])), "signature"),
]


@pytest.mark.parametrize(("case", "change", "check"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_each_failure_names_its_check(case: str, change: Callable[[Doc, Doc], object], check: str) -> None:
    run(case)  # unchanged, it verifies
    with pytest.raises(CheckFailed) as e:
        run(case, change)
    assert e.value.check == check, e.value


def test_identity_and_issuer() -> None:
    with pytest.raises(CheckFailed, match=r"^identity: ") as e:
        run("happy-path-v0.3", policy=IdentityPolicy(identity="someone@example.com", issuer=ISSUER))
    assert e.value.check == "identity"
    with pytest.raises(CheckFailed) as e:
        run("happy-path-v0.3", policy=IdentityPolicy(identity=IDENTITY, issuer="https://accounts.google.com"))
    assert e.value.check == "issuer"
    run("happy-path-v0.3", policy=IdentityPolicy(
        identity_regexp=r"^https://github\.com/sigstore-conformance/", issuer_regexp=r"githubusercontent"))
    with pytest.raises(CheckFailed) as e:
        run("happy-path-v0.3", policy=IdentityPolicy(identity_regexp=r"^https://gitlab\.com/", issuer=ISSUER))
    assert e.value.check == "identity"


def test_github_workflow_extensions() -> None:
    repo = "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
    run("happy-path-v0.3", policy=IdentityPolicy(identity=IDENTITY, issuer=ISSUER,
                                                 github_workflow={"repository": repo}))
    with pytest.raises(CheckFailed, match=r"GitHub workflow repository") as e:
        run("happy-path-v0.3", policy=IdentityPolicy(identity=IDENTITY, issuer=ISSUER,
                                                     github_workflow={"repository": "evil/repo"}))
    assert e.value.check == "identity"


def test_entry_must_match_the_bundle() -> None:
    with pytest.raises(CheckFailed) as e:
        run("wrong-hashedrekord-entry_fail")
    assert e.value.check == "entry"


def test_in_toto_subject_is_the_input() -> None:
    subject = hashlib.sha256((CASES / "intoto-with-custom-trust-root" / "artifact").read_bytes()).digest()
    run("intoto-with-custom-trust-root", digest=subject)
    with pytest.raises(CheckFailed) as e:
        run("intoto-with-custom-trust-root", digest=DIGEST)
    assert e.value.check == "digest"


def test_tlog_validity_end_is_inclusive() -> None:
    bundle, _ = _load("happy-path-v0.3")
    when = datetime.fromtimestamp(int(entry(bundle)["integratedTime"]), UTC)

    def end_at(t: datetime) -> Callable[[Doc, Doc], object]:
        return lambda b, r: [_set(lg["publicKey"]["validFor"], end=t.strftime("%Y-%m-%dT%H:%M:%SZ"))
                             for lg in r["tlogs"]]

    run("happy-path-v0.3", end_at(when))
    with pytest.raises(CheckFailed) as e:
        run("happy-path-v0.3", end_at(when - timedelta(seconds=1)))
    assert e.value.check == "trust-root validity"


def test_key_and_certificate_are_not_interchangeable() -> None:
    with pytest.raises(CheckFailed) as e:
        run("managed-key-happy-path")
    assert e.value.check == "chain"

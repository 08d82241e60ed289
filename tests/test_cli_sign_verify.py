"""`tlog keygen / trust / sign / upload / verify / get / search / info` against a real log."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sigstore._internal.trust import KeyringPurpose
from sigstore.models import Bundle as SigstoreBundleWrapper, InvalidBundle, TransparencyLogEntry, TrustedRoot
from sigstore_models.bundle.v1 import Bundle as SigstoreBundle

from .cli_support import Server, fails, json_out, ok, serve, server_fixture, tlog  # noqa: F401
from .test_serve import stop

IMAGE = "registry.example.com/team/app@sha256:" + "5e" * 32
OTHER_IMAGE = "registry.example.com/team/app@sha256:" + "6f" * 32
PASSWORD = {"TLOG_PASSWORD": "correct horse"}


@dataclass
class Workspace:
    dir: Path
    trust: Path
    server: Server

    def run(self, *args: str | Path, env: dict[str, str] | None = None,
            input: str | None = None) -> Any:
        return tlog(*args, "--trust", self.trust, env={**PASSWORD, **(env or {})}, input=input,
                    cwd=self.dir)

    def bundle(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.dir / name).read_text())
        return doc


@pytest.fixture(scope="module")
def ws(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A signer's directory: a key pair, the log pinned, a file and an image signed."""
    w = Workspace(tmp_path_factory.mktemp("ws"), tmp_path_factory.mktemp("cfg") / "trust.json", server)
    ok(tlog("keygen", "--out", w.dir / "me", env=PASSWORD))
    ok(w.run("trust", "add", server.url))
    (w.dir / "release.tar.gz").write_bytes(b"release contents\n")
    # The image first, so that the file's inclusion proof has a hash to tamper with.
    ok(w.run("sign", "--key", "me.key", "--image", IMAGE, "--bundle", "image.bundle.json"))
    ok(w.run("sign", "--key", "me.key", "release.tar.gz"))
    return w


def test_sign_writes_a_bundle_that_verifies_online_and_offline(ws: Workspace) -> None:
    doc = ws.bundle("release.tar.gz.bundle.json")
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    out = ok(ws.run("verify", "--key", "me.pub", "release.tar.gz")).stdout
    assert out.startswith("Verified OK: release.tar.gz — entry ") and "log consistent up to" in out
    assert out.count("\n") == 1
    out = ok(ws.run("verify", "--offline", "--key", "me.pub", "--bundle",
                    "release.tar.gz.bundle.json", "release.tar.gz")).stdout
    assert out.startswith("Verified OK: ") and "offline" in out
    result = json_out(ws.run("verify", "--json", "--key", "me.pub", "release.tar.gz"))
    assert result["verified"] is True and result["artifact"] == "release.tar.gz"
    assert result["logIndex"] == int(doc["verificationMaterial"]["tlogEntries"][0]["logIndex"])
    assert result["consistentWith"]["treeSize"] >= result["checkpoint"]["treeSize"]


def test_sign_image_by_digest_then_verify(ws: Workspace) -> None:
    out = ok(ws.run("verify", "--key", "me.pub", "--image", IMAGE, "--bundle", "image.bundle.json")).stdout
    assert out.startswith(f"Verified OK: {IMAGE} — entry ")
    # Without --bundle, --image works in the image's registry (tests/test_registry.py): this
    # one does not exist, and the one-line error names it.
    fails(ws.run("sign", "--key", "me.key", "--image", OTHER_IMAGE),
          "cannot reach the registry registry.example.com")
    assert not (ws.dir / f"sha256-{'6f' * 32}.bundle.json").exists()


def test_sign_json_reports_the_entry(ws: Workspace) -> None:
    (ws.dir / "notes.txt").write_text("notes\n")
    out = json_out(ws.run("sign", "--json", "--key", "me.key", "notes.txt"))
    assert out["created"] is True and out["bundle"] == "notes.txt.bundle.json"
    assert out["log"] == ws.server.url and len(out["uuid"]) == 64


def test_verify_sees_the_log_grow_consistently(ws: Workspace) -> None:
    before = json_out(ws.run("verify", "--json", "--key", "me.pub", "release.tar.gz"))
    (ws.dir / "later.txt").write_text("later\n")
    ok(ws.run("sign", "--key", "me.key", "later.txt"))
    after = json_out(ws.run("verify", "--json", "--key", "me.pub", "release.tar.gz"))
    assert after["consistentWith"]["treeSize"] > before["consistentWith"]["treeSize"]
    assert after["checkpoint"] == before["checkpoint"]


# --- tampering and wrong inputs: exit 1, naming the failed check --------------------------


def _entry(d: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = d["verificationMaterial"]["tlogEntries"][0]
    return entry


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _tamper_proof_hash(d: dict[str, Any]) -> None:
    hashes = _entry(d)["inclusionProof"]["hashes"]
    hashes[0] = _flip(hashes[0])


def _tamper_checkpoint(d: dict[str, Any]) -> None:
    cp = _entry(d)["inclusionProof"]["checkpoint"]
    origin, size, rest = cp["envelope"].split("\n", 2)
    cp["envelope"] = f"{origin}\n{int(size) + 1}\n{rest}"


def _tamper_index(d: dict[str, Any]) -> None:
    e = _entry(d)
    e["logIndex"] = e["inclusionProof"]["logIndex"] = str(int(e["logIndex"]) - 1)


TAMPERS = {
    "proof hash": (_tamper_proof_hash, "inclusion proof"),
    "SET": (lambda d: _entry(d)["inclusionPromise"].update(
        signedEntryTimestamp=_flip(_entry(d)["inclusionPromise"]["signedEntryTimestamp"])), "SET"),
    "checkpoint": (_tamper_checkpoint, "checkpoint"),
    "body": (lambda d: _entry(d).update(canonicalizedBody=_flip(_entry(d)["canonicalizedBody"])), "body"),
    "signature": (lambda d: d["messageSignature"].update(
        signature=_flip(d["messageSignature"]["signature"])), "signature"),
    "index": (_tamper_index, "inclusion proof"),
    "integratedTime": (lambda d: _entry(d).update(
        integratedTime=str(int(_entry(d)["integratedTime"]) - 60)), "SET"),
}


@pytest.mark.parametrize("part", TAMPERS)
def test_verify_fails_naming_the_check_for_each_tampered_part(ws: Workspace, part: str) -> None:
    mutate, check = TAMPERS[part]
    doc = copy.deepcopy(ws.bundle("release.tar.gz.bundle.json"))
    assert int(_entry(doc)["inclusionProof"]["treeSize"]) >= 2, "needs a proof with hashes"
    mutate(doc)
    (ws.dir / "tampered.json").write_text(json.dumps(doc))
    fails(ws.run("verify", "--key", "me.pub", "--bundle", "tampered.json", "release.tar.gz"),
          f"verification failed: {check}: ")
    result = ws.run("verify", "--json", "--offline", "--key", "me.pub", "--bundle", "tampered.json",
                    "release.tar.gz")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # the failure document (cli/contract.py), and which check
    assert doc == {"ok": False, "error": {"code": "check_failed", "message": doc["error"]["message"]},
                   "verified": False, "check": check, "reason": doc["reason"]}
    assert doc["error"]["message"] == f"verification failed: {check}: {doc['reason']}"


def test_wrong_artifact_fails(ws: Workspace) -> None:
    (ws.dir / "other.tar.gz").write_bytes(b"something else\n")
    fails(ws.run("verify", "--key", "me.pub", "--bundle", "release.tar.gz.bundle.json", "other.tar.gz"),
          "verification failed: artifact: the bundle signs sha256:")


def test_wrong_image_digest_fails(ws: Workspace) -> None:
    fails(ws.run("verify", "--key", "me.pub", "--image", OTHER_IMAGE, "--bundle", "image.bundle.json"),
          "verification failed: image: ")


def test_wrong_image_repository_fails(ws: Workspace) -> None:
    fails(ws.run("verify", "--key", "me.pub", "--image", IMAGE.replace("team/app", "team/other"),
                 "--bundle", "image.bundle.json"), "verification failed: image: ")


def test_wrong_user_key_fails(ws: Workspace) -> None:
    ok(tlog("keygen", "--out", ws.dir / "stranger", env={"TLOG_PASSWORD": ""}))
    fails(ws.run("verify", "--key", "stranger.pub", "release.tar.gz"),
          "verification failed: signature: ")


def test_wrong_log_key_fails(ws: Workspace, tmp_path: Path) -> None:
    # The same URL and name pinned with another key: nothing from the real log verifies.
    from tlog.core.keys import LogKey

    (tmp_path / "other.pem").write_bytes(LogKey.generate("ed25519").public_key.pem())
    trust = tmp_path / "trust.json"
    name = json.loads(ws.trust.read_text())["logs"][0]["name"]
    ok(tlog("trust", "add", ws.server.url, "--log-key", tmp_path / "other.pem", "--name", name,
            "--trust", trust))
    for mode in ((), ("--offline",)):
        fails(tlog("verify", *mode, "--key", "me.pub", "release.tar.gz", "--trust", trust, cwd=ws.dir),
              "verification failed: log: the entry is from log ")


# --- upload, duplicates, queries -----------------------------------------------------------


def test_upload_of_an_openssl_signature_and_its_duplicate(ws: Workspace, tmp_path: Path) -> None:
    d = tmp_path
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", d / "rsa.key"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", d / "rsa.key", "-pubout", "-out", d / "rsa.pub"], check=True)
    (d / "blob").write_bytes(b"built elsewhere\n")
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", d / "rsa.key", "-out", d / "blob.sig",
                    d / "blob"], check=True)
    first = json_out(ws.run("upload", "--json", "--public-key", d / "rsa.pub", "--signature",
                            d / "blob.sig", "--artifact", d / "blob"))
    assert first["created"] is True and first["bundle"] == str(d / "blob") + ".bundle.json"
    # RSA PKCS#1 v1.5 is deterministic: the same signature again is a 409, and a success.
    (d / "blob.sig.b64").write_text(base64.b64encode((d / "blob.sig").read_bytes()).decode() + "\n")
    out = ok(ws.run("upload", "--public-key", d / "rsa.pub", "--signature", d / "blob.sig.b64",
                    "--digest", "sha256:" + hashlib.sha256(b"built elsewhere\n").hexdigest(),
                    "--bundle", d / "dup.json")).stdout
    assert out.startswith("Already logged sha256:") and f"entry {first['logIndex']} " in out
    for bundle in ("blob.bundle.json", "dup.json"):
        ok(ws.run("verify", "--key", d / "rsa.pub", "--bundle", d / bundle, d / "blob"))


def test_upload_refuses_a_signature_that_does_not_verify(ws: Workspace) -> None:
    (ws.dir / "bad.sig").write_bytes(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    fails(ws.run("upload", "--public-key", "me.pub", "--signature", "bad.sig", "--artifact",
                 "release.tar.gz"), "the log would refuse this signature", "does not verify")


def test_get_search_info(ws: Workspace) -> None:
    doc = ws.bundle("release.tar.gz.bundle.json")
    index = _entry(doc)["logIndex"]
    out = ok(ws.run("get", "--index", index)).stdout
    assert out.startswith(f"Entry {index} in log ") and "SET, inclusion proof" in out
    uuid = next(iter(json_out(ws.run("get", "--json", "--index", index))))
    assert ok(ws.run("get", "--uuid", uuid)).stdout == out
    assert uuid in ok(ws.run("search", "--artifact", "release.tar.gz")).stdout.split()
    assert uuid in json_out(ws.run("search", "--json", "--public-key", "me.pub"))
    digest = base64.b64decode(doc["messageSignature"]["messageDigest"]["digest"]).hex()
    assert ok(ws.run("search", "--sha256", digest)).stdout.split() == [uuid]
    none = ws.run("search", "--sha256", "00" * 32)
    assert ok(none).stdout == "" and "No entries found." in none.stderr
    info = json_out(ws.run("info", "--json"))
    assert info["treeSize"] >= 2 and info["url"] == ws.server.url
    assert ok(ws.run("info")).stdout.startswith(f"Log {info['name']} at {ws.server.url}")
    fails(ws.run("get", "--index", "100000"), "404")


# --- Sigstore interop ----------------------------------------------------------------------


def _sigstore_verify(bundle_path: Path, root_path: Path) -> None:
    inner = SigstoreBundle.from_json(bundle_path.read_bytes())
    keyring = TrustedRoot.from_file(str(root_path)).rekor_keyring(KeyringPurpose.VERIFY)
    TransparencyLogEntry(inner.verification_material.tlog_entries[0])._verify(keyring)


def test_sigstore_verifies_our_bundles_with_our_trusted_root(ws: Workspace) -> None:
    root = ws.dir / "trusted_root.json"
    root.write_text(ok(ws.run("trust", "root")).stdout)
    for bundle in ("release.tar.gz.bundle.json", "image.bundle.json"):
        _sigstore_verify(ws.dir / bundle, root)
    # Tampered: sigstore's own checks refuse it too.
    doc = ws.bundle("release.tar.gz.bundle.json")
    _tamper_proof_hash(doc)
    (ws.dir / "tampered-for-sigstore.json").write_text(json.dumps(doc))
    with pytest.raises(Exception, match="inclusion proof"):
        _sigstore_verify(ws.dir / "tampered-for-sigstore.json", root)
    # Documenting sigstore-python 4.5.1: its Bundle wrapper only takes certificate bundles.
    with pytest.raises(InvalidBundle, match="expected certificate"):
        SigstoreBundleWrapper.from_json((ws.dir / "release.tar.gz.bundle.json").read_bytes())


def test_sigstore_verifies_bundles_from_an_ecdsa_log(tmp_path: Path) -> None:
    srv = serve(tmp_path / "log", "--key-type", "ecdsa-p256")
    try:
        trust = tmp_path / "trust.json"

        def run(*a: str | Path) -> Result:
            return tlog(*a, "--trust", trust, env=PASSWORD, cwd=tmp_path)

        ok(tlog("keygen", "--out", tmp_path / "k", "--type", "ecdsa-p384", env=PASSWORD))
        ok(run("trust", "add", srv.url))
        (tmp_path / "a").write_text("a\n")
        ok(run("sign", "--key", "k.key", "a"))
        # A P-384 key signs SHA-384 digests (Sigstore's algorithm registry; the log refuses
        # any other: issue 11, item 6), and the bundle says so.
        digest = json.loads((tmp_path / "a.bundle.json").read_text())["messageSignature"]["messageDigest"]
        assert digest == {"algorithm": "SHA2_384",
                          "digest": base64.b64encode(hashlib.sha384(b"a\n").digest()).decode()}
        ok(run("verify", "--key", "k.pub", "a"))
        root = tmp_path / "root.json"
        root.write_text(ok(run("trust", "root", "--valid-from", "2020-01-01")).stdout)
        details = json.loads(root.read_text())["tlogs"][0]["publicKey"]["keyDetails"]
        assert details == "PKIX_ECDSA_P256_SHA_256"
        _sigstore_verify(tmp_path / "a.bundle.json", root)
    finally:
        stop(srv.proc)


# --- a forked log: online verification catches it ------------------------------------------


def test_online_verify_detects_a_log_that_forked(tmp_path: Path) -> None:
    """Two copies of one log (same key, same name) that went on with different entries: a
    bundle from one fails the consistency check against the other; offline it still passes."""
    first = serve(tmp_path / "a")
    ok(tlog("keygen", "--out", tmp_path / "k", env={"TLOG_PASSWORD": ""}))
    for i in range(3):
        (tmp_path / f"f{i}").write_text(f"{i}\n")
    first_trust, trust_a, trust_b = (tmp_path / f"{n}.json" for n in ("t0", "ta", "tb"))
    ok(tlog("trust", "add", first.url, "--trust", first_trust))
    ok(tlog("sign", "--key", "k.key", "f0", "--trust", first_trust, cwd=tmp_path))
    stop(first.proc)
    (pinned,) = json.loads(first_trust.read_text())["logs"]
    (tmp_path / "log.pub").write_text(pinned["publicKey"])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    a, b = serve(tmp_path / "a"), serve(tmp_path / "b")
    try:
        for srv, trust in ((a, trust_a), (b, trust_b)):
            ok(tlog("trust", "add", srv.url, "--log-key", tmp_path / "log.pub", "--trust", trust))
            assert json.loads(trust.read_text())["logs"][0]["name"] == pinned["name"]
        ok(tlog("sign", "--key", "k.key", "f1", "--trust", trust_a, cwd=tmp_path))
        ok(tlog("sign", "--key", "k.key", "f2", "--trust", trust_b, cwd=tmp_path))
        ok(tlog("sign", "--key", "k.key", "f0", "--bundle", "f0.b.json", "--trust", trust_b, cwd=tmp_path))
        fails(tlog("verify", "--key", "k.pub", "f1", "--trust", trust_b, cwd=tmp_path),
              "verification failed: consistency: from tree size 2 to 3")
        ok(tlog("verify", "--offline", "--key", "k.pub", "f1", "--trust", trust_b, cwd=tmp_path))
        ok(tlog("verify", "--key", "k.pub", "f1", "--trust", trust_a, cwd=tmp_path))
    finally:
        stop(a.proc)
        stop(b.proc)

"""`tlog sign --certificate` and `tlog trust root --ca`: signing with an organisation's CA (issue 12).

A real CA and CT log (tests/org_ca.py) issue a code-signing leaf for the signer's key; `tlog
sign` logs the certificate with a real log server; sigstore-python 4.5.1 (the public
`Verifier` API, offline, with the trusted root `tlog trust root --ca --ct-log-key` prints)
verifies the bundle against an identity policy, and refuses the variants that must fail.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.models import Bundle as SigstoreBundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity

from .cli_support import Server, fails, json_out, ok, server_fixture, tlog  # noqa: F401
from .org_ca import OrgCA

EMAIL = "alice@example.com"
ISSUER = "https://accounts.example.com"
ARTIFACT = b"release contents\n"


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Signed:
    dir: Path
    trust: Path
    ca: OrgCA
    key: ec.EllipticCurvePrivateKey
    leaf: x509.Certificate

    def run(self, *args: str | Path) -> Any:
        return tlog(*args, "--trust", self.trust, cwd=self.dir)

    def bundle(self, name: str = "release.tar.gz.bundle.json") -> dict[str, Any]:
        doc: dict[str, Any] = json.loads((self.dir / name).read_text())
        return doc

    def root(self, *extra: str) -> Path:
        """`tlog trust root` with `extra` options, written to a file."""
        out = self.dir / f"root-{len(extra)}-{abs(hash(extra))}.json"
        out.write_text(ok(self.run("trust", "root", *extra)).stdout)
        return out


@pytest.fixture(scope="module")
def signed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Signed:
    """A signer with a key, a certificate from the org's CA, the log pinned, a file signed."""
    d = tmp_path_factory.mktemp("signer")
    ca = OrgCA.create()
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = ca.issue(key.public_key(), email=EMAIL, issuer=ISSUER)
    s = Signed(d, d / "trust.json", ca, key, leaf)
    (d / "me.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (d / "me.crt").write_bytes(_pem(leaf))
    (d / "ca.pem").write_bytes(ca.pem)
    (d / "ct.pub").write_bytes(ca.ct_public_pem)
    (d / "release.tar.gz").write_bytes(ARTIFACT)
    ok(s.run("trust", "add", server.url))
    ok(s.run("sign", "--key", "me.key", "--certificate", "me.crt", "--certificate-chain", "ca.pem",
             "release.tar.gz"))
    return s


def _sigstore_verify(bundle: dict[str, Any], root: Path, identity: str = EMAIL,
                     issuer: str = ISSUER, artifact: bytes = ARTIFACT) -> None:
    verifier = Verifier(trusted_root=TrustedRoot.from_file(str(root)))
    verifier.verify_artifact(artifact, SigstoreBundle.from_json(json.dumps(bundle)),
                             Identity(identity=identity, issuer=issuer))


def test_bundle_and_entry_carry_the_certificate(signed: Signed) -> None:
    doc = signed.bundle()
    vm = doc["verificationMaterial"]
    assert "publicKey" not in vm
    assert base64.b64decode(vm["certificate"]["rawBytes"]) == signed.leaf.public_bytes(
        serialization.Encoding.DER)
    body = json.loads(base64.b64decode(vm["tlogEntries"][0]["canonicalizedBody"]))
    logged = base64.b64decode(body["spec"]["signature"]["publicKey"]["content"])
    assert x509.load_pem_x509_certificate(logged) == signed.leaf


def test_trust_root_lists_the_ca_and_the_ct_log(signed: Signed) -> None:
    doc = json.loads(signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub").read_text())
    (ca,) = doc["certificateAuthorities"]
    assert ca["subject"] == {"organization": "Example Org", "commonName": "Example Org Code Signing CA"}
    assert base64.b64decode(ca["certChain"]["certificates"][0]["rawBytes"]) == signed.ca.cert.public_bytes(
        serialization.Encoding.DER)
    assert ca["validFor"]["start"] < ca["validFor"]["end"]
    assert len(doc["ctlogs"]) == 1 and len(doc["tlogs"]) == 1
    # A leaf is not a CA.
    fails(signed.run("trust", "root", "--ca", "me.crt"), "not a CA certificate")


def test_sigstore_python_verifies_the_bundle(signed: Signed) -> None:
    root = signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub")
    _sigstore_verify(signed.bundle(), root)


@pytest.mark.parametrize("case", ["identity", "issuer", "artifact", "another CA", "another CT log"])
def test_sigstore_python_refuses(signed: Signed, case: str) -> None:
    full = signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub")
    stranger = OrgCA.create("Another CA")
    (signed.dir / "stranger.pem").write_bytes(stranger.pem)
    (signed.dir / "stranger-ct.pub").write_bytes(stranger.ct_public_pem)
    with pytest.raises(SigstoreVerificationError):
        if case == "identity":
            _sigstore_verify(signed.bundle(), full, identity="mallory@example.com")
        elif case == "issuer":
            _sigstore_verify(signed.bundle(), full, issuer="https://evil.example.com")
        elif case == "artifact":
            _sigstore_verify(signed.bundle(), full, artifact=b"other contents\n")
        elif case == "another CA":
            _sigstore_verify(signed.bundle(), signed.root("--ca", "stranger.pem", "--ct-log-key", "ct.pub"))
        else:
            _sigstore_verify(signed.bundle(),
                             signed.root("--ca", "ca.pem", "--ct-log-key", "stranger-ct.pub"))


def test_sigstore_python_requires_an_sct(signed: Signed) -> None:
    """sigstore-python 4.5.1 verifies an embedded SCT on every signing certificate, with no
    way to turn it off (verify/verifier.py, step 2): a certificate without one is refused."""
    bare = signed.ca.issue(signed.key.public_key(), email=EMAIL, issuer=ISSUER, sct=False)
    (signed.dir / "bare.crt").write_bytes(_pem(bare))
    (signed.dir / "bare.txt").write_bytes(ARTIFACT)
    ok(signed.run("sign", "--key", "me.key", "--certificate", "bare.crt", "bare.txt"))
    root = signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub")
    with pytest.raises(SigstoreVerificationError, match="signed certificate timestamp"):
        _sigstore_verify(signed.bundle("bare.txt.bundle.json"), root)


def test_sign_refuses_a_certificate_that_does_not_fit(signed: Signed) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    cases = {
        "other.crt": (_pem(signed.ca.issue(other.public_key(), email=EMAIL)), "certifies another key"),
        "expired.crt": (_pem(signed.ca.issue(signed.key.public_key(), email=EMAIL,
                                             valid=timedelta(seconds=-30))), "not valid now"),
        "server.crt": (_pem(signed.ca.issue(signed.key.public_key(), email=EMAIL,
                                            usage=ExtendedKeyUsageOID.SERVER_AUTH)), "lacks codeSigning"),
        "two.crt": (_pem(signed.leaf) + signed.ca.pem, "expected one certificate"),
    }
    for name, (pem, reason) in cases.items():
        (signed.dir / name).write_bytes(pem)
        fails(signed.run("sign", "--key", "me.key", "--certificate", name, "release.tar.gz"), reason)
    (signed.dir / "stranger.pem").write_bytes(OrgCA.create("Another CA").pem)
    fails(signed.run("sign", "--key", "me.key", "--certificate", "me.crt", "--certificate-chain",
                     "stranger.pem", "release.tar.gz"), "did not issue")
    usage = signed.run("sign", "--key", "me.key", "--certificate-chain", "ca.pem", "release.tar.gz")
    assert usage.exit_code == 2 and "--certificate-chain goes with --certificate" in usage.stderr


# --- @sigstore/verify (npm) ------------------------------------------------------------------

_JS = """
const fs = require('fs');
const { toSignedEntity, toTrustMaterial, Verifier } = require('@sigstore/verify');
const { bundleFromJSON } = require('@sigstore/bundle');
const { TrustedRoot } = require('@sigstore/protobuf-specs');
const [bundlePath, rootPath, artifactPath, san, issuer] = process.argv.slice(2);
try {
  const bundle = bundleFromJSON(JSON.parse(fs.readFileSync(bundlePath)));
  const trust = toTrustMaterial(TrustedRoot.fromJSON(JSON.parse(fs.readFileSync(rootPath))));
  const entity = toSignedEntity(bundle, fs.readFileSync(artifactPath));
  new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 1 }).verify(entity, {
    subjectAlternativeName: san, extensions: { issuer } });
  console.log('OK');
} catch (e) { console.log('FAIL ' + (e.code || '') + ' ' + e.message); process.exit(1); }
"""


SIGSTORE_JS = ("@sigstore/verify@3", "@sigstore/bundle@4", "@sigstore/protobuf-specs@0.5")


@pytest.fixture(scope="session")
def sigstore_js() -> Path:
    """node_modules holding @sigstore/verify: installed with npm from the registry once into
    the user's cache (reused afterwards); the test is skipped when npm or the registry is
    not there."""
    base = Path.home() / ".cache" / "tlog-tests" / "sigstore-js"
    modules = base / "node_modules"
    if not (modules / "@sigstore" / "verify").is_dir():
        if not (shutil.which("node") and shutil.which("npm")):
            pytest.skip("node and npm are not installed")
        base.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(base),
                                   *SIGSTORE_JS], capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("npm install @sigstore/verify timed out")
        if done.returncode != 0:
            pytest.skip(f"npm install @sigstore/verify failed: {done.stderr.strip()[-300:]}")
    return modules


def test_sigstore_js_verifies_the_bundle(signed: Signed, sigstore_js: Path) -> None:
    script = signed.dir / "verify_cert_bundle.js"
    script.write_text(_JS)
    root = signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub")

    def run(san: str, artifact: str = "release.tar.gz") -> str:
        args = [script, signed.dir / "release.tar.gz.bundle.json", root, signed.dir / artifact, san, ISSUER]
        out = subprocess.run([shutil.which("node") or "node", *map(str, args)], capture_output=True,
                             text=True, timeout=60, env={"NODE_PATH": str(sigstore_js)})
        return out.stdout.strip() + out.stderr.strip()

    assert run(EMAIL) == "OK"
    assert run("mallory@example.com").startswith("FAIL UNTRUSTED_SIGNER_ERROR")
    (signed.dir / "other.txt").write_bytes(b"other contents\n")
    assert run(EMAIL, "other.txt").startswith("FAIL SIGNATURE_ERROR")


def test_tlog_verify_checks_the_identity(signed: Signed) -> None:
    root = signed.root("--ca", "ca.pem", "--ct-log-key", "ct.pub")
    common = ("verify", "--bundle", "release.tar.gz.bundle.json", "--trusted-root", root, "--offline",
              "--certificate-oidc-issuer", ISSUER)
    out = json_out(signed.run(*common, "--certificate-identity", EMAIL, "--json", "release.tar.gz"))
    assert out["verified"] is True
    fails(signed.run(*common, "--certificate-identity", "mallory@example.com", "release.tar.gz"),
          "identity")
    fails(signed.run(*common[:-1], "https://evil.example.com", "--certificate-identity", EMAIL,
                     "release.tar.gz"), "issuer")
    (signed.dir / "stranger.pem").write_bytes(OrgCA.create("Another CA").pem)
    stranger = signed.root("--ca", "stranger.pem", "--ct-log-key", "ct.pub")
    fails(signed.run("verify", "--bundle", "release.tar.gz.bundle.json", "--trusted-root", stranger,
                     "--offline", "--certificate-oidc-issuer", ISSUER, "--certificate-identity", EMAIL,
                     "release.tar.gz"), "chain")

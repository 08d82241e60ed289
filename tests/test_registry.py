"""`tlog sign --image` / `tlog verify --image` / `tlog compose` against a real registry
(tests/registry_support.py: docker-registry with htpasswd auth, images pushed with skopeo)
and a real log server; and the attached signature checked by code that is not tlog's."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .cli_support import Server, fails, json_out, ok, serve, tlog
from .registry_support import PASSWORD, USER, Registry, basic_auth, push, registry  # noqa: F401
from .test_serve import stop

KEY_PASSWORD = "correct horse"


@dataclass
class Env:
    dir: Path
    trust: Path
    registry: Registry
    server: Server

    def run(self, *args: str | Path, creds: bool = True, extra: dict[str, str] | None = None) -> Result:
        # An empty variable is an unset option to click; DOCKER_CONFIG keeps ~/.docker out.
        env = {"TLOG_PASSWORD": KEY_PASSWORD, "DOCKER_CONFIG": str(self.dir / "no-docker"),
               "TLOG_REGISTRY_USERNAME": USER if creds else "",
               "TLOG_REGISTRY_PASSWORD": PASSWORD if creds else ""}
        return tlog(*args, "--trust", self.trust, "--allow-http-registry", env={**env, **(extra or {})},
                    cwd=self.dir)

    def ref(self, repo_tag: str) -> str:
        return f"{self.registry.host}/{repo_tag}"


@pytest.fixture(scope="module")
def env(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: F811
    server = serve(tmp_path_factory.mktemp("log"))
    d = tmp_path_factory.mktemp("signer")
    e = Env(d, d / "trust.json", registry, server)
    ok(tlog("keygen", "--out", d / "me", env={"TLOG_PASSWORD": KEY_PASSWORD}))
    ok(tlog("keygen", "--out", d / "other", env={"TLOG_PASSWORD": KEY_PASSWORD}))
    ok(tlog("trust", "add", server.url, "--trust", e.trust))
    yield e
    stop(server.proc)


def test_sign_by_tag_resolves_the_digest_and_verifies_from_the_registry(env: Env, tmp_path: Path) -> None:
    digest = push(env.registry, tmp_path, "team/app:v1")
    out = ok(env.run("sign", "--key", "me.key", "--image", env.ref("team/app:v1"))).stdout
    assert f"Resolved {env.ref('team/app:v1')} to {env.ref('team/app')}@{digest}" in out
    assert f"team/app:sha256-{digest[7:]}.sig" in out
    for ref in (env.ref("team/app:v1"), env.ref(f"team/app@{digest}")):
        out = ok(env.run("verify", "--key", "me.pub", "--image", ref)).stdout
        assert out.startswith(f"Verified OK: {env.ref('team/app')}@{digest} — sha256-") \
            and "inclusion proof" in out
    out = ok(env.run("verify", "--offline", "--key", "me.pub", "--image", env.ref("team/app:v1"))).stdout
    assert "SET (offline)" in out
    # The moved tag: v1 now names another image, which nobody signed.
    push(env.registry, tmp_path, "team/app:v1")
    fails(env.run("verify", "--key", "me.pub", "--image", env.ref("team/app:v1")),
          "no matching signatures", "none found")
    ok(env.run("verify", "--key", "me.pub", "--image", env.ref(f"team/app@{digest}")))


def test_sign_by_digest_appends_and_annotations_must_match(env: Env, tmp_path: Path) -> None:
    digest = push(env.registry, tmp_path, "team/ann:1")
    image = env.ref(f"team/ann@{digest}")
    ok(env.run("sign", "--key", "me.key", "--image", image))
    out = ok(env.run("sign", "--key", "me.key", "--image", image, "-a", "env=prod", "-a", "git=abc")).stdout
    assert "Resolved" not in out
    sig, _ = env.registry.get(f"team/ann/manifests/sha256-{digest[7:]}.sig")
    assert len(json.loads(sig)["layers"]) == 2, "the second signature is appended"
    ok(env.run("verify", "--key", "me.pub", "--image", image, "-a", "env=prod"))
    result = json_out(env.run("verify", "--json", "--key", "me.pub", "--image", image, "-a", "git=abc"))
    assert result["verified"] and result["images"][0]["annotations"] == {"env": "prod", "git": "abc"}
    line = fails(env.run("verify", "--key", "me.pub", "--image", image, "-a", "env=dev"),
                 "no matching signatures", "annotations: env=dev required")
    assert "layer 1" in line and "layer 2" in line, "each candidate says why it failed"
    fails(env.run("verify", "--key", "other.pub", "--image", image), "no matching signatures",
          "signature: does not verify")


def test_unsigned_image_fails_with_json_reason(env: Env, tmp_path: Path) -> None:
    push(env.registry, tmp_path, "team/unsigned:1")
    result = env.run("verify", "--json", "--key", "me.pub", "--image", env.ref("team/unsigned:1"))
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["verified"] is False and "no matching signatures" in doc["reason"]


def test_recursive_index_signs_every_platform(env: Env, tmp_path: Path) -> None:
    digest = push(env.registry, tmp_path, "team/multi:1", multi_arch=True)
    out = ok(env.run("sign", "--key", "me.key", "--image", env.ref("team/multi:1"), "--recursive")).stdout
    assert out.count("Logged ") == 3
    index = json.loads(env.registry.get(f"team/multi/manifests/{digest}")[0])
    platforms = [m["digest"] for m in index["manifests"]]
    for d in [digest, *platforms]:
        ok(env.run("verify", "--key", "me.pub", "--image", env.ref(f"team/multi@{d}")))
    result = json_out(env.run("verify", "--json", "--recursive", "--key", "me.pub", "--image",
                              env.ref("team/multi:1")))
    assert [i["image"].rpartition("@")[2] for i in result["images"]] == [digest, *platforms]


def test_missing_credentials_give_one_clear_line(env: Env, tmp_path: Path) -> None:
    push(env.registry, tmp_path, "team/creds:1")
    fails(env.run("sign", "--key", "me.key", "--image", env.ref("team/creds:1"), creds=False),
          "needs credentials", "--registry-username")
    fails(env.run("verify", "--key", "me.pub", "--image", env.ref("team/creds:1"), creds=False),
          "needs credentials")


def test_docker_config_credentials_are_used(env: Env, tmp_path: Path) -> None:
    digest = push(env.registry, tmp_path, "team/dockercfg:1")
    cfg = tmp_path / "docker"
    cfg.mkdir()
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (cfg / "config.json").write_text(json.dumps({"auths": {env.registry.host: {"auth": auth}}}))
    ok(env.run("sign", "--key", "me.key", "--image", env.ref(f"team/dockercfg@{digest}"), creds=False,
               extra={"DOCKER_CONFIG": str(cfg)}))


def test_compose_verify_is_a_deploy_gate(env: Env, tmp_path: Path) -> None:
    signed = push(env.registry, tmp_path, "team/web:1")
    push(env.registry, tmp_path, "team/db:1")
    ok(env.run("sign", "--key", "me.key", "--image", env.ref(f"team/web@{signed}")))
    compose = env.dir / "compose.yaml"
    compose.write_text(
        "services:\n"
        "  web:\n"
        "    image: ${REG}/team/web:${TAG:-1}\n"
        "    x-nerdctl-verify: cosign\n"
        "    x-nerdctl-cosign-public-key: ./me.pub\n"
        "  cache:\n"
        "    image: redis:$${NOT_INTERPOLATED}\n")
    out = ok(env.run("compose", "verify", extra={"REG": env.registry.host})).stdout
    assert "web: Verified OK" in out and "cache: skipped (no x-nerdctl-verify)" in out
    (env.dir / "bad.yaml").write_text(compose.read_text() + (
        "  db:\n    image: ${REG}/team/db:1\n    x-nerdctl-verify: cosign\n"
        "    x-nerdctl-cosign-public-key: me.pub\n"))
    result = env.run("compose", "verify", "bad.yaml", extra={"REG": env.registry.host})
    assert result.exit_code == 1 and "db: FAILED" in result.stdout and "web: Verified OK" in result.stdout
    assert "1 service image(s) failed verification: db" in result.stderr
    (env.dir / "sign.yaml").write_text(
        "services:\n  db:\n    image: ${REG}/team/db:1\n    x-nerdctl-sign: cosign\n"
        "    x-nerdctl-cosign-private-key: me.key\n")
    ok(env.run("compose", "sign", "sign.yaml", extra={"REG": env.registry.host}))
    ok(env.run("compose", "verify", "bad.yaml", extra={"REG": env.registry.host}))


def test_attached_signature_checked_without_tlog(env: Env, tmp_path: Path) -> None:
    """cosign's layout, by hand: the `.sig` manifest over plain HTTP, the layer, the
    signature over the payload, and the SET over canonical JSON built here."""
    digest = push(env.registry, tmp_path, "team/indep:1")
    ok(env.run("sign", "--key", "me.key", "--image", env.ref(f"team/indep@{digest}"), "-a", "a=<&>"))
    manifest_bytes, ctype = env.registry.get(f"team/indep/manifests/sha256-{digest[7:]}.sig")
    manifest = json.loads(manifest_bytes)
    assert ctype == manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    payload, _ = env.registry.get(f"team/indep/blobs/{layer['digest']}", accept="*/*")
    assert "sha256:" + hashlib.sha256(payload).hexdigest() == layer["digest"]
    repo = env.ref("team/indep")
    assert payload == (
        '{"critical":{"identity":{"docker-reference":"' + repo + '"},"image":{"docker-manifest-digest":"'
        + digest + '"},"type":"cosign container image signature"},"optional":{"a":"\\u003c\\u0026\\u003e"}}'
    ).encode()
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    signer = serialization.load_pem_public_key((env.dir / "me.pub").read_bytes())
    assert isinstance(signer, ec.EllipticCurvePublicKey)
    signer.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
    cosign_bundle: dict[str, Any] = json.loads(layer["annotations"]["dev.sigstore.cosign/bundle"])
    assert list(cosign_bundle) == ["SignedEntryTimestamp", "Payload"]
    p = cosign_bundle["Payload"]
    assert list(p) == ["body", "integratedTime", "logIndex", "logID"]
    body = json.loads(base64.b64decode(p["body"]))
    want = {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
    assert body["spec"]["data"]["hash"] == want
    assert base64.b64decode(body["spec"]["signature"]["content"]) == signature
    # The SET: the log key signs {"body","integratedTime","logID","logIndex"} (sorted, compact).
    canonical = (f'{{"body":"{p["body"]}","integratedTime":{p["integratedTime"]:d},'
                 f'"logID":"{p["logID"]}","logIndex":{p["logIndex"]:d}}}').encode()
    log_pem = json.loads(env.trust.read_text())
    log_key = serialization.load_pem_public_key(_pinned_key(log_pem).encode())
    der = log_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(der).hexdigest() == p["logID"]
    set_sig = base64.b64decode(cosign_bundle["SignedEntryTimestamp"])
    if isinstance(log_key, ed25519.Ed25519PublicKey):
        log_key.verify(set_sig, canonical)
    else:
        assert isinstance(log_key, ec.EllipticCurvePublicKey)
        log_key.verify(set_sig, canonical, ec.ECDSA(hashes.SHA256()))


def _pinned_key(trust: Any) -> str:
    logs = trust["logs"] if isinstance(trust, dict) and "logs" in trust else trust
    (log,) = logs
    key: str = log["publicKey"]
    return key


def test_the_sigstore_bundle_referrer_verifies_alone(env: Env, tmp_path: Path) -> None:
    """With the `.sig` manifest deleted, the Sigstore bundle attached as a referrer (here
    through the referrers tag: this registry has no referrers API) still proves the image."""
    import urllib.request

    digest = push(env.registry, tmp_path, "team/referred:1")
    ok(env.run("sign", "--key", "me.key", "--image", env.ref(f"team/referred@{digest}")))
    index = json.loads(env.registry.get(f"team/referred/manifests/sha256-{digest[7:]}")[0])
    bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert [m["artifactType"] for m in index["manifests"]] == [bundle_type]
    sig = env.registry.get(f"team/referred/manifests/sha256-{digest[7:]}.sig")[0]
    request = urllib.request.Request(
        f"http://{env.registry.host}/v2/team/referred/manifests/sha256:{hashlib.sha256(sig).hexdigest()}",
        method="DELETE", headers={"Authorization": basic_auth()})
    urllib.request.urlopen(request, timeout=10).close()
    out = ok(env.run("verify", "--key", "me.pub", "--image", env.ref(f"team/referred@{digest}"))).stdout
    assert "referrer sha256:" in out and "Sigstore bundle" in out
    fails(env.run("verify", "--key", "me.pub", "--image", env.ref(f"team/referred@{digest}"), "-a", "x=y"),
          "no matching signatures", "payload")

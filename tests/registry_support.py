"""A real OCI registry for the tests: Debian's docker-registry (the CNCF distribution
registry) on loopback with htpasswd (Basic) authentication, and images built here as OCI
layouts and pushed with skopeo. tests/setup/registry.sh installs the three when missing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .test_serve import free_port

SETUP = Path(__file__).resolve().parent / "setup" / "registry.sh"
USER, PASSWORD = "signer", "registry-secret"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    proc: subprocess.Popen[bytes]

    def get(self, path: str, accept: str = f"{OCI_MANIFEST}, {OCI_INDEX}") -> tuple[bytes, str]:
        """GET /v2/PATH with Basic auth: (body, Content-Type)."""
        request = urllib.request.Request(f"http://{self.host}/v2/{path}", headers={
            "Accept": accept, "Authorization": basic_auth()})
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.read(), r.headers.get("Content-Type", "")


def basic_auth() -> str:
    import base64

    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def ensure_tools() -> None:
    """Install docker-registry, skopeo and htpasswd if missing (the project's own set-up)."""
    result = subprocess.run(["sh", str(SETUP)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"tests/setup/registry.sh failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    ensure_tools()
    root = tmp_path_factory.mktemp("registry")
    htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True,
                              check=True).stdout
    (root / "htpasswd").write_text(htpasswd)
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: tlog-tests\n    path: {root / 'htpasswd'}\n")
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    reg = Registry(f"127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=2)
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    break  # up, and asking for credentials
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start")
            time.sleep(0.1)
        yield reg
    finally:
        proc.terminate()  # by its PID: only the registry this fixture started
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- images as OCI layouts --------------------------------------------------------------------


class Layout:
    """An OCI image layout (image-spec `image-layout.md`) being written in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (self.root / "blobs" / "sha256" / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    def image(self, arch: str = "amd64") -> dict[str, object]:
        """A one-layer image of random content: its manifest's descriptor."""
        content = os.urandom(64)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("random.bin")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **self.blob(buf.getvalue())}
        config = {"mediaType": "application/vnd.oci.image.config.v1+json", **self.blob(json.dumps({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}).encode())}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                               "layers": [layer]}).encode()
        return {"mediaType": OCI_MANIFEST, **self.blob(manifest),
                "platform": {"architecture": arch, "os": "linux"}}

    def index(self, archs: tuple[str, ...] = ("amd64", "arm64")) -> dict[str, object]:
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": [self.image(a) for a in archs]}).encode()
        return {"mediaType": OCI_INDEX, **self.blob(index)}

    def tag(self, descriptor: dict[str, object], tag: str) -> None:
        entry = {k: v for k, v in descriptor.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        (self.root / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}))


def push(registry: Registry, tmp: Path, repo_tag: str, *, multi_arch: bool = False) -> str:
    """Build a random image (or a two-platform index) and push it as REPO:TAG with skopeo;
    its manifest digest `sha256:…`."""
    layout = Layout(tmp / f"layout-{os.urandom(4).hex()}")
    top = layout.index() if multi_arch else layout.image()
    layout.tag(top, "t")
    subprocess.run(["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                    "--dest-creds", f"{USER}:{PASSWORD}", *(["--all"] if multi_arch else []),
                    f"oci:{layout.root}:t", f"docker://{registry.host}/{repo_tag}"],
                   check=True, capture_output=True, timeout=120)
    return str(top["digest"])

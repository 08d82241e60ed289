"""The README's signing walkthrough runs as written, with the real `tlog`, against a real log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .cli_support import Server, server_fixture  # noqa: F401
from .test_readme import readme_block


def test_readme_signing_walkthrough_runs_as_written(server: Server, tmp_path: Path) -> None:
    work, config = tmp_path / "work", tmp_path / "config"
    work.mkdir()
    bin_dir = Path(sys.executable).parent  # the venv's bin: `tlog` and its python
    script = "set -euo pipefail\n" + readme_block("signing-walkthrough")
    r = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True, timeout=120,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
                            "XDG_CONFIG_HOME": str(config), "TLOG_URL": server.url},
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    out = r.stdout
    assert out.count("Verified OK: ") == 5, out
    assert "Verified OK: release.tar.gz — signature found in log" in out  # --signature, no bundle
    assert "trusted on first use" in out and "offline" in out
    assert "registry.example.com/team/app@sha256:" in out
    # The pin went to $XDG_CONFIG_HOME/tlog/trust.json, and the trusted root names that log.
    (pinned,) = json.loads((config / "tlog" / "trust.json").read_text())["logs"]
    assert pinned["url"] == server.url
    root = json.loads((work / "trusted_root.json").read_text())
    assert root["tlogs"][0]["baseUrl"] == server.url
    assert (work / "signer.key").stat().st_mode & 0o777 == 0o600
    assert (work / "signer.key").read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    for bundle in ("release.tar.gz.bundle.json", "app.bundle.json", "ci.bundle.json"):
        assert json.loads((work / bundle).read_text())["mediaType"].endswith("bundle.v0.3+json")

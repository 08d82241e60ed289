"""The README's "Attestations" walkthrough runs as written (real `tlog`, real log), and
`tlog verify-attestation` fails where it must: a policy the predicate breaks, another key,
another predicate type; `tlog verify --offline` refuses an artifact that is not a subject."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .cli_support import Server, server_fixture  # noqa: F401
from .test_readme import readme_block


def _run(script: str, work: Path, tmp_path: Path, server: Server) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    return subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=work,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path),
                               "XDG_CONFIG_HOME": str(tmp_path / "config"),
                               "TLOG_URL": server.url, "TLOG_PASSWORD": "pw"},
                          stdin=subprocess.DEVNULL)


def test_readme_attestations_walkthrough_and_failures(server: Server, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    r = _run(readme_block("attestations"), work, tmp_path, server)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout.count("Verified OK") == 2, r.stdout
    bundle = json.loads((work / "app.tar.attestation.bundle.json").read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["dsseEnvelope"]["payloadType"] == "application/vnd.in-toto+json"
    assert bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["kind"] == "dsse"
    uuids = [line for line in r.stdout.splitlines() if len(line) == 64]
    assert len(uuids) == 1, r.stdout  # `tlog search --artifact` found the attestation

    (work / "strict.json").write_text(json.dumps(
        {"equals": {"predicate.buildDefinition.externalParameters.repository":
                    "https://github.com/evil/app"}}))
    failing = {
        "policy": "tlog verify-attestation --key builder.pub --type slsaprovenance1 "
                  "--policy strict.json app.tar",
        "key": "tlog keygen --out other >/dev/null && tlog verify-attestation --key other.pub "
               "--type slsaprovenance1 app.tar",
        "type": "tlog verify-attestation --key builder.pub --type spdxjson app.tar",
        "subject": "echo other > other.tar && tlog verify --key builder.pub --offline "
                   "--bundle app.tar.attestation.bundle.json other.tar",
    }
    for name, script in failing.items():
        r = _run(script, work, tmp_path, server)
        assert r.returncode == 1, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
    r = _run(failing["policy"].replace("strict.json", "strict.json --json"), work, tmp_path, server)
    doc = json.loads(r.stdout)
    assert doc["verified"] is False
    (only,) = doc["attestations"]
    assert "policy: predicate.buildDefinition.externalParameters.repository" in only["problems"][0]

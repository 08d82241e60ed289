"""Sigstore's client conformance suite, bundle verification: every vendored case of
sigstore-conformance `test/assets/bundle-verify/` (tests/data/sigstore-conformance/README.md),
run as the suite runs it (its test/client.py and test/test_bundle.py): once with the artifact's
path, once with `sha256:HEX`, offline, with the case's `trusted_root.json` if it has one and
the shipped public-good root otherwise, `key.pub` for key-signed cases and the case's
identity/issuer (or the suite's defaults) otherwise. A case named `*_fail` must fail, the
others must pass: exit status decides, as in the suite.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tests.conformance_cli import tlog_args

CASES = Path(__file__).parent / "data" / "sigstore-conformance" / "bundle-verify"
# The suite's defaults (test/client.py: CERTIFICATE_IDENTITY, CERTIFICATE_OIDC_ISSUER).
IDENTITY = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
            ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"


def protocol_args(case: Path, digest: bool) -> list[str]:
    """The suite's `verify-bundle` arguments for a case (test/client.py build_verify_args)."""
    args = ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        args += ["--key", str(case / "key.pub")]
    else:
        identity = (case / "identity").read_text().strip() if (case / "identity").exists() else IDENTITY
        issuer = (case / "issuer").read_text().strip() if (case / "issuer").exists() else ISSUER
        args += ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]
    if (case / "trusted_root.json").exists():
        args += ["--trusted-root", str(case / "trusted_root.json")]
    artifact = case / "artifact" if (case / "artifact").exists() else CASES / "a.txt"
    args.append(f"sha256:{hashlib.sha256(artifact.read_bytes()).hexdigest()}" if digest
                else str(artifact))
    return args


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No trust file and no refreshed Sigstore root: the shipped public-good root only."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("TLOG_URL", raising=False)


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("digest", [False, True], ids=["path", "digest"])
@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_bundle_verify(case: str, digest: bool) -> None:
    result = CliRunner().invoke(main, tlog_args(protocol_args(CASES / case, digest)))
    if case.endswith("_fail"):
        assert result.exit_code != 0, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    else:
        assert result.exit_code == 0, result.output


def test_every_case_is_vendored() -> None:
    """All 70 cases of the suite's bundle-verify directory, 21 of them positive."""
    cases = [p.name for p in CASES.iterdir() if p.is_dir()]
    assert len(cases) == 70
    assert sum(not c.endswith("_fail") for c in cases) == 21


def test_readme_example_runs_as_written(tmp_path: Path) -> None:
    """README "Verifying Sigstore and cosign bundles": the keyless example, as written."""
    import subprocess
    import sys

    from tests.test_readme import ROOT, readme_block

    script = "set -euo pipefail\n" + readme_block("sigstore-verify")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Verified OK") == 2, r.stdout

"""The explorer's JavaScript RFC 9162 verifiers (tlog/server/explorer/static/merkle.js) pass the
transparency-dev/merkle vectors: `node --test tests/js/` (Node 20's test runner), from pytest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent


def test_merkle_js_passes_the_transparency_dev_vectors() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (20 or later) is needed to test the explorer's JavaScript")
    done = subprocess.run([node, "--test", str(ROOT / "js")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = dict(line[2:].split(" ", 1) for line in done.stdout.splitlines()
                   if line.startswith("# ") and line[2:].split(" ", 1)[0] in ("pass", "fail"))
    assert summary["fail"] == "0" and int(summary["pass"]) > 100, done.stdout[-2000:]

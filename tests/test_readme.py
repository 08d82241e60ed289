"""The README's API walkthrough runs as written against a real `tlog serve`."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from .test_serve import free_port, start, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]


def readme_block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- readme-test: {name} -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert m, f"README block {name} not found"
    return m.group(1)


async def test_readme_api_walkthrough_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path / "data", port)
    await wait_ready(port, proc)
    try:
        work = tmp_path / "work"
        work.mkdir()
        script = "set -euo pipefail\n" + readme_block("api-walkthrough")
        r = subprocess.run(["bash", "-c", script], cwd=work, capture_output=True, text=True,
                           timeout=60, env={"PATH": "/usr/bin:/bin", "TLOG": f"http://127.0.0.1:{port}"})
        assert r.returncode == 0, r.stderr
        created = json.loads((work / "created.json").read_text())
        uuid = next(iter(created))
        # Each curl printed one JSON document (the public key is PEM).
        out = r.stdout
        assert out.count(uuid) >= 5, out  # by index, by uuid, retrieve, two searches
        assert '"treeSize":1' in out and "BEGIN PUBLIC KEY" in out and '"status":"ok"' in out
        assert '"code"' not in out, out  # no error answers anywhere
    finally:
        stop(proc)

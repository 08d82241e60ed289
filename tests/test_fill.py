"""`tlog bench --fill` builds a log in the same format HTTP submissions do."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from tlog.core.compact import root_from_leaf_hashes
from tlog.core.entries.hashedrekord import parse_body, verify_signature
from tlog.core.merkle import leaf_hash
from tlog.server.fsck import check_data_dir
from tlog.server.log import Log, LogConfig

ROOT = Path(__file__).resolve().parents[1]


async def test_filled_log_holds_valid_signed_entries_and_serves_them(tmp_path: Path) -> None:
    data = tmp_path / "filled"
    fill = [sys.executable, "-m", "cli", "bench", "--data-dir", str(data), "--json", "--fill"]
    r = subprocess.run([*fill, "1500"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tree_size"] == 1500
    lg = await Log.open(LogConfig(data_dir=data))
    try:
        bodies = await lg.storage.read_entry_range(0, 1500)
        assert len(bodies) == 1500
        assert root_from_leaf_hashes([leaf_hash(b) for b in bodies]) == lg.head.root
        for b in bodies[::97]:
            entry = parse_body(b)  # canonical hashedrekord, byte-exact
            verify_signature(entry)
        # The search index was written as admission writes it.
        entry = parse_body(bodies[700])
        found = await lg.search(entry.artifact_key(), None)
        assert found.uuids == [leaf_hash(bodies[700])] and found.more_before is None
        (got,) = await lg.entries_by_index([1234])
        assert base64.b64decode(next(iter(got.values()))["body"]) == bodies[1234]
    finally:
        await lg.close()
    # Filling again appends to the same log.
    r = subprocess.run([*fill, "10"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert json.loads(r.stdout)["tree_size"] == 1510
    # And fsck finds it a normal log: among other things, every high-s signature's event key
    # is in the leaf index (about half of ECDSA signatures), as admission would have put it.
    rep = check_data_dir(data)
    assert rep.ok and not rep.notes, (rep.faults[:3], rep.notes)


def test_bench_reports_every_run_with_ratio_to_bare_aiohttp() -> None:
    r = subprocess.run([sys.executable, "-m", "cli", "bench", "-n", "60", "--reads", "60", "-c", "4",
                        "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert set(result["runs"]) == {"submit", "proof-index", "proof-uuid", "checkpoint"}
    for name, run in result["runs"].items():
        assert run["ok"] == 60 and run["errors"] == {}, (name, run)
        assert run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["ratio_to_bare_aiohttp"] > 0
    assert result["rss_mb"] and max(result["rss_mb"]) < 500

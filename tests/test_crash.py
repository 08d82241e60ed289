"""A short crash test: SIGKILL a real server under load a few times (`make crash-test`
runs the long version)."""

from __future__ import annotations

from pathlib import Path

from .crash import run


async def test_sigkill_under_load_loses_no_acknowledged_entry_and_forks_nothing(tmp_path: Path) -> None:
    report = await run(4, tmp_path / "data", clients=16, min_run=0.3, max_run=0.8, seed=7)
    assert report.failures == [], report.failures
    assert report.kills == 4
    assert report.acknowledged > 50 and report.verified_present == report.acknowledged
    assert report.checkpoints_checked > 4

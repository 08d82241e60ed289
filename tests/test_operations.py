"""Operating tlog: read-only (frozen) logs, --version, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import main
from tlog.errors import StartupError
from tlog.server.storage.sqlite import SqliteStorage

from .support import OpenLog, Signer, check_log_entry

ROOT = Path(__file__).resolve().parents[1]


async def test_read_only_log_serves_reads_and_refuses_writes(tmp_path: Path, open_log: OpenLog) -> None:
    data = tmp_path / "old"
    lg, client = await open_log(data_dir=data, batch_ms=0)
    signer = Signer()
    for _ in range(3):
        assert (await client.post("/api/v1/log/entries", json=signer.proposed())).status == 201
    size, root = lg.head.state.size, lg.head.root
    await lg.close()
    frozen, client = await open_log(data_dir=data, read_only=True)
    r = await client.post("/api/v1/log/entries", json=signer.proposed())
    assert r.status == 403
    assert "read-only" in (await r.json())["message"]
    r = await client.get("/api/v1/log/entries", params={"logIndex": "2"})
    check_log_entry(await r.json(), frozen.public_key)
    assert (await client.get("/readyz")).status == 200
    assert (frozen.head.state.size, frozen.head.root) == (size, root)
    # Even a bug could not write: the database connection itself refuses.
    storage = frozen.storage
    assert isinstance(storage, SqliteStorage)
    with pytest.raises(Exception, match=r"readonly|read-only"):
        await storage._w.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")


async def test_read_only_refuses_to_create_a_log(tmp_path: Path, open_log: OpenLog) -> None:
    with pytest.raises(StartupError, match="existing log"):
        await open_log(data_dir=tmp_path / "nothing", read_only=True)
    assert not (tmp_path / "nothing" / "log.key").exists()
    # A log whose key is missing is not given a new one either.
    lg, _ = await open_log(data_dir=tmp_path / "keyless")
    await lg.close()
    (tmp_path / "keyless" / "log.key").unlink()
    with pytest.raises(StartupError, match=r"needs log\.key"):
        await open_log(data_dir=tmp_path / "keyless", read_only=True)
    assert not (tmp_path / "keyless" / "log.key").exists()


def test_version_and_completion() -> None:
    r = CliRunner().invoke(main, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("tlog, version ")
    r = CliRunner().invoke(main, ["completion", "bash"])
    assert r.exit_code == 0 and "_TLOG_COMPLETE" in r.output and "complete" in r.output
    # The completion protocol itself: what bash gets for `tlog se<TAB>` and `tlog serve --da<TAB>`.
    env = {**os.environ, "_TLOG_COMPLETE": "bash_complete", "COMP_WORDS": "tlog se", "COMP_CWORD": "1"}
    complete = [sys.executable, "-m", "cli"]
    out = subprocess.run(complete, env=env, capture_output=True, text=True, cwd=ROOT).stdout
    assert "plain,search" in out and "plain,serve" in out
    env |= {"COMP_WORDS": "tlog serve --da", "COMP_CWORD": "2"}
    out = subprocess.run(complete, env=env, capture_output=True, text=True, cwd=ROOT).stdout
    assert "plain,--data-dir" in out


async def test_readme_backup_commands_make_a_copy_that_fsck_passes(tmp_path: Path) -> None:
    import aiohttp

    from .test_readme import readme_block
    from .test_serve import free_port, start, stop, wait_ready

    data, port = tmp_path / "data", free_port()
    proc = start(data, port)
    await wait_ready(port, proc)
    try:
        signer = Signer()
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                async with s.post(f"http://127.0.0.1:{port}/api/v1/log/entries", json=signer.proposed()) as r:
                    assert r.status == 201
        backup = tmp_path / "backup"
        env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "DATA": str(data),
               "BACKUP": str(backup)}
        done = subprocess.run(["bash", "-c", "set -euo pipefail\n" + readme_block("backup")], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (backup / "log.key").stat().st_mode & 0o777 == 0o600
        assert "tree size 5" in done.stdout
    finally:
        stop(proc)

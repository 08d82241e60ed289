"""Helpers for the `tlog` CLI tests: a real `tlog serve` subprocess and the CLI run in-process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main

from .test_serve import free_port, start, stop, wait_ready


@dataclass
class Server:
    url: str
    data: Path
    proc: subprocess.Popen[str]


def serve(data: Path, *extra: str) -> Server:
    port = free_port()
    proc = start(data, port, "--batch-ms", "1", *extra)
    try:
        asyncio.run(wait_ready(port, proc))
    except BaseException:
        proc.kill()
        raise
    return Server(f"http://127.0.0.1:{port}", data, proc)


@pytest.fixture(scope="module", name="server")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`server`: one real log server (Ed25519 key) for a test module. Import server_fixture
    to use it (its own name, so a test's `server` argument does not shadow the import)."""
    srv = serve(tmp_path_factory.mktemp("log"))
    yield srv
    stop(srv.proc)


def tlog(*args: str | Path, env: dict[str, str] | None = None, input: str | bytes | None = None,
         cwd: Path | None = None) -> Result:
    """Run `tlog ARGS` in-process. No TLOG_* (or COSIGN_PASSWORD) variable leaks in from the
    test environment."""
    base = {"TLOG_URL": None, "TLOG_PASSWORD": None, "COSIGN_PASSWORD": None}
    with contextlib.chdir(cwd or Path.cwd()):
        return CliRunner().invoke(main, [str(a) for a in args], env={**base, **(env or {})},
                                  input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return result


def fails(result: Result, *needles: str) -> str:
    """The command failed with one `tlog: error:` line containing every needle."""
    assert result.exit_code == 1, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    err = result.stderr
    assert "Traceback" not in err and "Traceback" not in result.stdout
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tlog: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def json_out(result: Result) -> Any:
    """The command's JSON output (any shape: the test looks into it)."""
    return json.loads(ok(result).stdout)

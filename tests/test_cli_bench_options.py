"""`tlog bench --port` and `--log-name` (issue 18): the log a run starts, or `--fill` creates,
where and under the name asked for."""

from __future__ import annotations

import json
from pathlib import Path

from .cli_support import json_out, ok, serve, tlog
from .test_serve import free_port, stop


def _name_of(data: Path, tmp_path: Path) -> str:
    """The name of the log in `data`, as a client pinning it sees it."""
    srv = serve(data)
    try:
        trust = tmp_path / f"trust-{data.name}.json"
        ok(tlog("trust", "add", srv.url, "--trust", trust))
        return str(json_out(tlog("info", "--trust", trust, "--json"))["name"])
    finally:
        stop(srv.proc)


def test_fill_names_the_log(tmp_path: Path) -> None:
    ok(tlog("bench", "--fill", "3", "--data-dir", tmp_path / "filled", "--log-name",
            "bench.example", "--json"))
    assert _name_of(tmp_path / "filled", tmp_path) == "bench.example"


def test_a_run_serves_on_the_port_and_under_the_name_asked(tmp_path: Path) -> None:
    port = free_port()
    result = json_out(tlog("bench", "--port", str(port), "--log-name", "bench.test", "-n", "3",
                           "--reads", "3", "-c", "2", "--no-calibrate", "--data-dir",
                           tmp_path / "run", "--json"))
    assert result["log"] == f"http://127.0.0.1:{port}" and result["runs"]["submit"]["ok"] == 3
    assert _name_of(tmp_path / "run", tmp_path) == "bench.test"
    # The server's CPU per request, read from /proc for the one server the run started (in
    # clock ticks: a run of 3 requests may well cost none).
    cpu = {name: run["server_cpu_us"] for name, run in result["runs"].items()}
    assert set(cpu) == {"submit", "proof-index", "proof-uuid", "checkpoint"}
    assert all(isinstance(v, float) and v >= 0 for v in cpu.values())


def test_port_and_name_are_for_a_log_the_run_starts(tmp_path: Path) -> None:
    for extra in (("--log-url", "http://127.0.0.1:9", "--port", "3001"),
                  ("--log-url", "http://127.0.0.1:9", "--log-name", "x.example"),
                  ("--fill", "3", "--data-dir", str(tmp_path), "--port", "3001")):
        r = tlog("bench", *extra, "--json")
        assert r.exit_code == 2 and json.loads(r.stdout)["error"]["code"] == "usage", r.stdout

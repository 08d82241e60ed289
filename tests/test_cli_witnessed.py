"""A log with a witness, end to end as a user runs it: `tlog witness keygen/serve`,
`tlog serve --witness`, then `tlog verify --witness` and `tlog monitor --min-witnesses`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from .cli_support import fails, ok, serve, tlog
from .test_serve import free_port, stop

ROOT = Path(__file__).resolve().parents[1]


def _wait_witnessed(url: str, size: int, timeout: float = 15) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        note = urllib.request.urlopen(f"{url}/checkpoint", timeout=5).read().decode()
        lines = note.split("\n")
        if int(lines[1]) >= size and sum(1 for x in lines if x.startswith("— w.example")) >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"no witnessed checkpoint of size {size}: {note!r}")


def test_verify_and_monitor_require_witness_cosignatures(tmp_path: Path) -> None:
    # The log's key is made first so the witness can pin it.
    log_data = tmp_path / "log"
    r = ok(tlog("witness", "keygen", "--name", "w.example", "--out", tmp_path / "w.key"))
    vkey = r.stdout.strip().splitlines()[-1]
    first = serve(log_data)  # creates log.key and fixes the log's name; stopped again below
    stop(first.proc)
    origin = first.url.removeprefix("http://")
    pub = tmp_path / "log.pub"
    from tlog.core.keys import LogKey
    pub.write_bytes(LogKey.from_pem((log_data / "log.key").read_bytes()).public_key.pem())
    w_port = free_port()
    witness = subprocess.Popen([sys.executable, "-m", "cli", "witness", "serve",
                                "--key", str(tmp_path / "w.key"),
                                "--data-dir", str(tmp_path / "wdata"), "--port", str(w_port),
                                "--log", f"{origin}={pub}"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        srv = serve(log_data, "--witness", f"http://127.0.0.1:{w_port}={vkey}")
        try:
            trust = tmp_path / "trust.json"
            ok(tlog("trust", "add", srv.url, "--log-key", pub, "--name", origin,
                    "--trust", trust))
            ok(tlog("keygen", "--out", tmp_path / "me", env={"TLOG_PASSWORD": "pw"}))
            art = tmp_path / "release.tar"
            art.write_bytes(b"release contents")
            env = {"TLOG_PASSWORD": "pw"}
            ok(tlog("sign", "--key", tmp_path / "me.key", art, "--trust", trust, env=env))
            _wait_witnessed(srv.url, 1)
            verify = ("verify", "--key", tmp_path / "me.pub", art, "--trust", trust)
            r = ok(tlog(*verify, "--witness", vkey))
            assert "witnessed by 1+" in r.stdout
            other = ok(tlog("witness", "keygen", "--name", "w.example", "--out", tmp_path / "o.key"))
            other_vkey = other.stdout.strip().splitlines()[-1]
            fails(tlog(*verify, "--witness", other_vkey), "witnesses", "0 valid cosignature")
            r = tlog(*verify, "--witness", vkey, "--offline")
            assert r.exit_code == 2 and "drop --offline" in r.output
            state = tmp_path / "monitor.json"
            r = ok(tlog("monitor", "--once", "--json", "--trust", trust, "--state", state,
                        "--witness", vkey, "--min-witnesses", "1"))
            events = [json.loads(x) for x in r.stdout.splitlines()]
            assert any(e.get("event") == "checkpoint" for e in events), events
            r = tlog("monitor", "--once", "--trust", trust, "--state", tmp_path / "m2.json",
                     "--witness", other_vkey)
            assert r.exit_code == 4, r.output
        finally:
            stop(srv.proc)
    finally:
        witness.terminate()
        witness.wait(timeout=20)

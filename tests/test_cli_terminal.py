"""What a person sees in a real terminal (tmux, 80×24): progress bars that leave nothing
behind, colour only on a terminal and never with NO_COLOR, tables that fit 80 columns; and
`tlog serve`'s start-up line, each fact once.

Each command runs in its own tmux server (`-L`), in a pane of exactly 80 columns; the
screen is read with `capture-pane` (`-e` keeps the escape codes, `-J` joins lines the
terminal wrapped, so a line wider than the pane shows as such).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tlog.audit.monitor import MonitorState
from tlog.core.keys import LogKey

from .cli_support import Server, ok, serve, tlog
from .test_serve import free_port, start, stop, wait_ready

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = 1500  # above cli.monitor_cmd.PROGRESS_THRESHOLD: the bar is drawn
ESC = "\x1b["


@pytest.fixture(scope="module", autouse=True)
def tmux() -> None:
    """tmux, installed if missing (apt-get is idempotent)."""
    if shutil.which("tmux") is None:
        install = ["apt-get", "install", "-y", "tmux"]
        if subprocess.run(install, capture_output=True, timeout=300).returncode != 0:
            # A fresh machine has no package lists yet: fetch them once, then install.
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=300)
            subprocess.run(install, capture_output=True, timeout=300)
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed and could not be installed")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A served log of ENTRIES entries (made with `bench --fill`), pinned in a trust file,
    and a key pair with one signed file."""
    d = tmp_path_factory.mktemp("term")
    ok(tlog("bench", "--fill", str(ENTRIES), "--data-dir", d / "data", "--json"))
    # --bundle-memory: the default 128 MiB reserves room for 3 full bundles of the largest
    # bodies, fewer than the monitor reads at once from a log just started (503s).
    srv = serve(d / "data", "--bundle-memory", "1024")
    try:
        ok(tlog("trust", "add", srv.url, "--trust", d / "trust.json"))
        ok(tlog("keygen", "--out", d / "me", env={"TLOG_PASSWORD": ""}))
        (d / "a.txt").write_text("a\n")
        ok(tlog("sign", "--key", "me.key", "a.txt", "--trust", d / "trust.json", cwd=d))
        yield srv, d
    finally:
        stop(srv.proc)


def screen(command: str, cwd: Path, *, env: dict[str, str] | None = None, done: str,
           escapes: bool = False) -> str:
    """Run `command` (a shell command line) in an 80×24 tmux pane and return the screen once
    `done` is on it: the lines the terminal shows, wrapped lines joined."""
    socket = f"tlog-test-{uuid.uuid4().hex[:8]}"
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    script = cwd / f"{socket}.sh"
    script.write_text(f"cd {shlex.quote(str(cwd))}\nexport PYTHONPATH={shlex.quote(str(ROOT))}\n"
                      f"unset NO_COLOR TLOG_URL\n{'export ' + exports if exports else ''}\n"
                      f"{command}\necho '<'done'>'\nsleep 30\n")
    base = ["tmux", "-L", socket]
    subprocess.run([*base, "-f", "/dev/null", "new-session", "-d", "-x", "80", "-y", "24",
                    f"sh {shlex.quote(str(script))}"], check=True,
                   env={**os.environ, "TERM": "xterm-256color"})
    try:
        deadline = time.monotonic() + 60
        while True:
            text = subprocess.run([*base, "capture-pane", "-p", "-J", *(["-e"] if escapes else [])],
                                  capture_output=True, text=True, check=True).stdout
            if "<done>" in text:
                assert done in text, text
                return text.split("<done>")[0]
            assert time.monotonic() < deadline, text
            time.sleep(0.2)
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)


def tlog_line(*args: str | Path) -> str:
    return " ".join(shlex.quote(str(a)) for a in (sys.executable, "-m", "cli", *args))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_monitor_leaves_no_progress_bar_behind(big: tuple[Server, Path]) -> None:
    _, d = big
    info = json.loads(ok(tlog("info", "--trust", d / "trust.json", "--json")).stdout)
    size = info["treeSize"]  # ENTRIES, and the signed file
    cmd = tlog_line("monitor", "--trust", d / "trust.json", "--state", d / "mon.json")
    shown = lines(screen(cmd, d, done="first run"))
    assert len(shown) == 1, shown  # the bar was drawn (a catch-up of ENTRIES) and is gone
    # The root in hex, as `tlog info` prints it:
    assert shown[0] == (f"{info['name']}: first run: trusting size {size}, {size} entries read; "
                        f"root {info['rootHash']}")


def test_fork_alert_is_red_and_no_colour_with_no_color(big: tuple[Server, Path]) -> None:
    _, d = big
    info = json.loads(ok(tlog("info", "--trust", d / "trust.json", "--json")).stdout)
    other = hashlib.sha256(b"another history").digest()
    forged = MonitorState(info["name"], info["logID"], 1, other, (other,), b"forged\n")
    (d / "forked.json").write_text(json.dumps(forged.to_json()))
    cmd = tlog_line("monitor", "--trust", d / "trust.json", "--state", d / "forked.json")
    red = screen(cmd, d, done="FORK ALERT", escapes=True)
    alert = next(line for line in red.splitlines() if "FORK ALERT" in line)
    assert f"{ESC}31m" in alert, repr(alert)
    plain = screen(cmd, d, done="FORK ALERT", escapes=True, env={"NO_COLOR": "1"})
    assert ESC not in plain, repr(plain)


def test_verify_is_green_red_on_failure_and_plain_into_a_pipe(big: tuple[Server, Path]) -> None:
    _, d = big
    verify = tlog_line("verify", "--key", "me.pub", "a.txt", "--trust", d / "trust.json")
    good = screen(verify, d, done="Verified OK", escapes=True)
    assert f"{ESC}32mVerified OK" in good, repr(good)
    (d / "b.txt").write_text("not signed\n")
    bad = screen(tlog_line("verify", "--key", "me.pub", "b.txt", "--bundle", "a.txt.bundle.json",
                           "--trust", d / "trust.json"), d, done="tlog: error:", escapes=True)
    assert f"{ESC}31mtlog: error: verification failed: artifact:" in bad, repr(bad)
    piped = screen(verify + " | cat", d, done="Verified OK", escapes=True)
    assert ESC not in piped and "Verified OK: a.txt" in piped, repr(piped)


def test_trust_list_is_a_table_that_fits_80_columns(big: tuple[Server, Path]) -> None:
    srv, d = big
    trust = d / "two.json"
    trust.write_text((d / "trust.json").read_text())
    (d / "other.pub").write_bytes(LogKey.generate("ecdsa-p256").public_key.pem())
    far = "https://transparency-log.a-rather-long-organisation-name.example/"
    ok(tlog("trust", "add", far, "--log-key", d / "other.pub", "--name", "tlog.example",
            "--trust", trust))
    shown = screen(tlog_line("trust", "list", "--trust", trust), d, done="LOGID")
    assert max(len(line) for line in shown.splitlines()) <= 80, shown
    pinned = json.loads(ok(tlog("trust", "list", "--trust", trust, "--json")).stdout)
    assert _cells(lines(shown)) == [
        [lg["url"], lg["name"], lg["logID"], kind] for lg, kind in
        zip(pinned, ("ed25519", "ecdsa-p256"), strict=True)], shown  # nothing cut
    assert srv.url == pinned[0]["url"] and far.rstrip("/") == pinned[1]["url"]
    piped = ok(tlog("trust", "list", "--trust", trust)).stdout  # not a terminal: one line a log
    assert len(lines(piped)) == 2 and all("logID " in line for line in lines(piped))


def _cells(shown: list[str]) -> list[list[str]]:
    """A table's rows read back from the screen: columns start where their headers do; a
    row's first line has its last cell (a short one, never folded), the lines a long cell
    folded onto do not."""
    header, *body = shown
    names = header.split()
    starts = [header.index(n) for n in names] + [None]
    rows: list[list[str]] = []
    for line in body:
        parts = [line[a:b].strip() for a, b in itertools.pairwise(starts)]
        if parts[-1]:
            rows.append(parts)
        else:
            rows[-1] = [r + p for r, p in zip(rows[-1], parts, strict=True)]
    return rows


def test_serve_says_each_fact_once_and_warns_only_about_what_was_passed(tmp_path: Path) -> None:
    data = tmp_path / "d"
    first = free_port()
    proc = start(data, first)
    asyncio.run(wait_ready(first, proc))
    out = stop(proc)
    (line,) = [x for x in out.splitlines() if "serving" in x]
    assert line.count(f"http://127.0.0.1:{first}") == 1 and "WARNING" not in out, out
    # Started again on another port, no --public-url: the log keeps its name, quietly.
    second = free_port()
    proc = start(data, second)
    asyncio.run(wait_ready(second, proc))
    out = stop(proc)
    (line,) = [x for x in out.splitlines() if "serving" in x]
    assert "WARNING" not in out and "--public-url" not in out, out
    assert f"log 127.0.0.1:{first} at http://127.0.0.1:{second}" in line, line
    # A --public-url that names the log otherwise is worth a warning, and the address listened
    # on, no longer the public one, is said too.
    proc = start(data, second, "--public-url", "https://log.example")
    asyncio.run(wait_ready(second, proc))
    out = stop(proc)
    (line,) = [x for x in out.splitlines() if "serving" in x]
    assert "WARNING" in out and "--public-url https://log.example would name it log.example" in out
    assert "at https://log.example" in line and f"(listening on http://127.0.0.1:{second})" in line

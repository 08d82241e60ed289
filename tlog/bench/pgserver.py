"""A throw-away PostgreSQL server from the machine's own binaries, for the tests and
`tlog bench --database` with no value (issue 15): initdb in a temporary directory, listening on
127.0.0.1 on a free port (and a Unix socket in that directory), trust authentication,
stopped by its PID. Run as the `postgres` user when started by root (initdb refuses root).
tests/setup/postgres.sh installs the binaries when they are missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "tests" / "setup" / "postgres.sh"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin with initdb (15 preferred when present)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: (p.parts[-3] != "15", -int(p.parts[-3]) if p.parts[-3].isdigit() else 0))
    return found[0].parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class TempPostgres:
    """One PostgreSQL server in a temporary directory. `start()`, then `dsn(db)`; `stop()`
    (fast shutdown by PID) removes the directory."""

    def __init__(self, *, fsync: bool = True) -> None:
        self.fsync = fsync
        self.root: Path | None = None
        self.port = 0
        self.pid: int | None = None

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> TempPostgres:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            subprocess.run(["sh", str(SETUP)], check=True, capture_output=True)
            bin_dir = find_bin_dir()
            if bin_dir is None:
                raise RuntimeError(f"{SETUP} ran, and still no PostgreSQL binaries")
        self.root = Path(tempfile.mkdtemp(prefix="tlog-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        data = self.root / "data"
        run = self._as_owner()
        subprocess.run([*run, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
                       check=True, capture_output=True)
        self.port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.root} -c max_connections=200 "
                   f"-c fsync={'on' if self.fsync else 'off'}")
        subprocess.run([*run, str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data),
                        "-l", str(self.root / "server.log"), "-o", options],
                       check=True, capture_output=True)
        self.pid = int((data / "postmaster.pid").read_text().split()[0])
        return self

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """SIGINT (fast shutdown) to the postmaster, wait for it, remove the directory."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and _alive(self.pid):
                    time.sleep(0.05)
                if _alive(self.pid):
                    os.kill(self.pid, signal.SIGKILL)
            self.pid = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


def _alive(pid: int) -> bool:
    """Running, not a zombie: the postmaster outlives pg_ctl, so its parent is whichever
    process adopted it, which may be slow to reap it (or never: a container's PID 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def create_database(server: TempPostgres, name: str) -> str:
    """CREATE DATABASE `name` (psql over the server's socket); its DSN."""
    bin_dir = find_bin_dir()
    assert bin_dir is not None and server.root is not None
    subprocess.run([str(bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                    "-d", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True)
    return server.dsn(name)

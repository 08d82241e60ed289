"""Durable file writes: state and keys are replaced whole or not at all, and survive a crash.
And the lock that gives a data directory to one process (`DirLock`).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from tlog.errors import StartupError

LOCK_FILE = "LOCK"  # in a data directory: locked by the process serving it, holds its PID


def fsync_dir(path: Path) -> None:
    """Make entries created or renamed in a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_with(path: Path, data: bytes, mode: int) -> str:
    """A temporary file beside `path` holding `data`, fsync'd, with `mode` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` all at once: temp file, fsync, rename, fsync the directory."""
    tmp = _temp_with(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_private(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write a secret (a key): mode 0600 from its first byte, complete or absent after a
    crash, and never replacing an existing file unless `force` (FileExistsError)."""
    if force:
        write_atomically(path, data, mode=0o600)
        return
    tmp = _temp_with(path, data, 0o600)
    try:
        os.link(tmp, path)  # atomic, and fails if `path` exists
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)


class DirLock:
    """A data directory held by this process: an advisory flock(2) on DATA_DIR/LOCK, kept
    until `release` or the process's end (the kernel drops it on a crash or SIGKILL, so a
    lock is never stale). Two servers on one directory would each take the other's writes
    for corruption and serve their own stale checkpoint; the second one is refused instead.

    `shared`: for a frozen (read-only) log, which many processes may serve at once, but no
    writer beside them (its entries would leave their checkpoint silently behind). Offline readers
    (`tlog fsck`) take no lock at all: SQLite gives them a consistent snapshot.
    The holder writes its PID into the file, only so that a refusal can name it."""

    def __init__(self, directory: Path, fd: int) -> None:
        self.directory = directory
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, directory: Path, *, shared: bool = False) -> DirLock:
        """Lock `directory` (created if missing) or raise StartupError naming the holder's
        PID; a refused process writes nothing (the LOCK file is opened, never truncated)."""
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            pid = f" (PID {holder})" if holder.isdigit() else ""
            raise StartupError(f"{directory} is in use by another tlog process{pid}",
                               hint="one server per data directory: stop that process first, "
                                    "or give this one another --data-dir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(directory, fd)

    def release(self) -> None:
        """Let another process have the directory (again: a no-op)."""
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

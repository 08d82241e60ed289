"""Durable file writes: state and keys are replaced whole or not at all, and survive a crash."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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

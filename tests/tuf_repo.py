"""A real TUF repository for tests, made with python-tuf's Metadata API and served on loopback.

Four top-level roles, one Ed25519 key each (securesystemslib's CryptoSigner), consistent
snapshots (TUF specification §4.4 and §5.5.2: `N.root.json`, `N.targets.json`,
`N.snapshot.json`, `timestamp.json`, and targets as `targets/<sha256>.<name>`), the layout of
Sigstore's repository. A test publishes targets, lets metadata expire, tampers with a served
file or rotates the root, and points `tlog trust sigstore --url` at `url`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

ROLES = ("root", "targets", "snapshot", "timestamp")


def _in(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


class TufRepo:
    """A TUF repository in a directory: `bootstrap` is its first root, the trust anchor."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "targets").mkdir(parents=True, exist_ok=True)
        self.signers = {role: CryptoSigner.generate_ed25519() for role in ROLES}
        root = Root(expires=_in(365), consistent_snapshot=True)
        for role, signer in self.signers.items():
            root.add_key(signer.public_key, role)
        self.root: Metadata[Root] = Metadata(root)
        self.targets: Metadata[Targets] = Metadata(Targets(expires=_in(30)))
        self.snapshot: Metadata[Snapshot] = Metadata(Snapshot(expires=_in(7)))
        self.timestamp: Metadata[Timestamp] = Metadata(Timestamp(expires=_in(1)))
        self._write_root([self.signers["root"]])
        self.bootstrap = (base / "1.root.json").read_bytes()
        self._next = 0  # the version step of publish(): 0 the first time (all at version 1)
        self.publish()

    def _sign_and_write(self, md: Metadata[Any], name: str, signers: list[CryptoSigner]) -> None:
        md.signatures.clear()
        for signer in signers:
            md.sign(signer, append=True)
        (self.base / name).write_bytes(md.to_bytes(JSONSerializer(compact=False)))

    def _write_root(self, signers: list[CryptoSigner]) -> None:
        self._sign_and_write(self.root, f"{self.root.signed.version}.root.json", signers)

    def add_target(self, data: bytes, name: str = "trusted_root.json") -> None:
        """Publish `data` as target `name` (a new targets, snapshot and timestamp version)."""
        target = TargetFile.from_data(name, data, ["sha256"])
        self.targets.signed.targets[name] = target
        (self.base / "targets" / f"{target.hashes['sha256']}.{name}").write_bytes(data)
        self.publish()

    def served_target(self, name: str = "trusted_root.json") -> Path:
        """The file the repository serves for target `name` (to tamper with)."""
        return self.base / "targets" / f"{self.targets.signed.targets[name].hashes['sha256']}.{name}"

    def publish(self, *, timestamp_expires: datetime | None = None) -> None:
        """New versions of targets, snapshot and timestamp, each naming the one below it."""
        t, s, ts = self.targets.signed, self.snapshot.signed, self.timestamp.signed
        step, self._next = self._next, 1
        t.version += step
        self._sign_and_write(self.targets, f"{t.version}.targets.json", [self.signers["targets"]])
        s.version += step
        s.meta["targets.json"] = MetaFile(version=t.version)
        self._sign_and_write(self.snapshot, f"{s.version}.snapshot.json", [self.signers["snapshot"]])
        ts.version += step
        ts.snapshot_meta = MetaFile(version=s.version)
        ts.expires = timestamp_expires or _in(1)
        self._sign_and_write(self.timestamp, "timestamp.json", [self.signers["timestamp"]])

    def rotate_root_and_timestamp_keys(self) -> None:
        """Root version +1 with new root and timestamp keys, signed by the old and the new
        root key (§5.3.4: a new root must meet both thresholds); then republish, so the
        timestamp is signed by a key only the new root trusts."""
        old_root = self.signers["root"]
        root = self.root.signed
        for role in ("root", "timestamp"):
            root.revoke_key(self.signers[role].public_key.keyid, role)
            self.signers[role] = CryptoSigner.generate_ed25519()
            root.add_key(self.signers[role].public_key, role)
        root.version += 1
        self._write_root([old_root, self.signers["root"]])
        self.publish()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def served(base: Path) -> Iterator[str]:
    """Serve the directory `base` over HTTP on 127.0.0.1 for the duration; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(base))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()

"""Pinned logs: the trust file every verifying command reads (never the server's own word).

`~/.config/tlog/trust.json` (or `$XDG_CONFIG_HOME/tlog/trust.json`, or --trust FILE):
`{"logs": [{"url", "name", "logID", "publicKey": PEM}]}`. A verifier pins a log's key once
(`tlog trust add`) and afterwards checks checkpoints, SETs and proofs against that key only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from tlog.core.keys import LogPublicKey
from tlog.core.trusted import TrustedLog, normalize_url
from tlog.errors import InvalidInput, TlogError
from tlog.files import write_atomically


def default_trust_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tlog" / "trust.json"


def load_trust(path: Path) -> list[TrustedLog]:
    """The pinned logs in `path`; an absent file pins nothing."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return []
    try:
        doc = json.loads(raw)
        logs = []
        for item in doc["logs"]:
            pub = LogPublicKey.from_pem(item["publicKey"].encode())
            if item.get("logID") not in (None, pub.log_id().hex()):
                raise InvalidInput(f"logID of {item['url']} does not match its public key")
            logs.append(TrustedLog(normalize_url(item["url"]), str(item["name"]), pub))
        return logs
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise TlogError(f"trust file {path} is malformed ({e}); fix or remove it") from e


def save_trust(path: Path, logs: Sequence[TrustedLog]) -> None:
    """Write the trust file atomically (temp file, fsync, rename)."""
    data = json.dumps({"logs": [lg.to_json() for lg in logs]}, indent=2) + "\n"
    write_atomically(path, data.encode())


def select_log(logs: Sequence[TrustedLog], url: str | None) -> TrustedLog:
    """The log a command talks to: --log-url, else $TLOG_URL, else the only pinned log."""
    url = url or os.environ.get("TLOG_URL")
    if url:
        want = normalize_url(url)
        for lg in logs:
            if lg.url == want:
                return lg
        raise TlogError(f"log {want} is not pinned in the trust file; run `tlog trust add {want}` first")
    if len(logs) == 1:
        return logs[0]
    if not logs:
        raise TlogError("no log is pinned yet; run `tlog trust add URL` first")
    raise TlogError("several logs are pinned; choose one with --log-url or TLOG_URL: "
                    + ", ".join(lg.url for lg in logs))

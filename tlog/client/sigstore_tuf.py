"""Sigstore's public-good trusted root, kept fresh with The Update Framework.

Sigstore publishes its `TrustedRoot` (Fulcio CAs, Rekor and CT log keys, timestamp
authorities) as the target `trusted_root.json` of a TUF repository
(<https://tuf-repo-cdn.sigstore.dev>, staging <https://tuf-repo-cdn.sigstage.dev>). This
module fetches it with the `tuf` package's ngclient, which implements the TUF client
workflow (TUF specification v1.0, §5 "Detailed client workflow": root rotation by chained
signatures, then timestamp, snapshot and targets, each checked for signature threshold,
version rollback and expiry, and the target checked against its length and hashes).

The trust anchor is the TUF `root.json` shipped with tlog (tlog/data/sigstore/, see its
README for the source); later roots are only accepted when signed by the previous one. A
mirror (`url`) is checked against the same anchor; a private repository needs its own
(`bootstrap_root`).

Where things go: the verified `trusted_root.json` in
`$XDG_CONFIG_HOME/tlog/sigstore/<instance>/trusted_root.json` (beside the trust file), the
TUF metadata and target cache in `$XDG_CACHE_HOME/tlog/tuf/<quoted URL>/`.
`sigstore_trusted_root()` is what a verifier loads: the refreshed file if there is one,
else the one shipped with tlog.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import urllib3
from tuf.api import exceptions as tuf_errors
from tuf.ngclient.config import UpdaterConfig
from tuf.ngclient.updater import Updater

from tlog.client.trust import default_trust_path
from tlog.errors import TlogError, VerificationError
from tlog.files import write_atomically

TARGET = "trusted_root.json"
_MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.trustedroot"
_USER_AGENT = "tlog"


@dataclass(frozen=True)
class SigstoreInstance:
    """A Sigstore deployment: its name (the folder of its data) and TUF repository URL."""

    name: str
    url: str


PRODUCTION = SigstoreInstance("prod", "https://tuf-repo-cdn.sigstore.dev")
STAGING = SigstoreInstance("staging", "https://tuf-repo-cdn.sigstage.dev")


def instance(staging: bool) -> SigstoreInstance:
    return STAGING if staging else PRODUCTION


@dataclass(frozen=True)
class Refreshed:
    """The outcome of a TUF refresh: where the verified trusted root now is, and what changed."""

    path: Path
    url: str
    root_version: int  # of the TUF root the client ended up trusting
    sha256: str  # hex, of the trusted_root.json written
    changed: bool  # False: the file held these bytes already


def _shipped(staging: bool, name: str) -> bytes:
    return (resources.files("tlog") / "data" / "sigstore" / instance(staging).name / name).read_bytes()


def embedded_tuf_root(staging: bool) -> bytes:
    """The TUF `root.json` tlog ships for the instance: the anchor of every refresh."""
    return _shipped(staging, "root.json")


def refreshed_path(staging: bool) -> Path:
    """Where `tlog trust sigstore` keeps the instance's verified trusted root."""
    return default_trust_path().parent / "sigstore" / instance(staging).name / TARGET


def tuf_cache_dir(url: str) -> Path:
    """The TUF metadata and target cache for the repository at `url`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tlog" / "tuf" / quote(url.rstrip("/"), safe="")


def sigstore_trusted_root(staging: bool = False) -> bytes:
    """The Sigstore trusted root a verifier should use by default (issue 12): the one last
    fetched over TUF by `tlog trust sigstore`, else the one shipped with tlog."""
    try:
        return refreshed_path(staging).read_bytes()
    except FileNotFoundError:
        return _shipped(staging, TARGET)


def refresh_sigstore_root(staging: bool, *, url: str | None = None,
                          bootstrap_root: bytes | None = None) -> Refreshed:
    """Run the TUF client workflow against the instance's repository (or the mirror at
    `url`, or a private repository anchored at `bootstrap_root`), download the verified
    `trusted_root.json` target and store it at `refreshed_path(staging)`.

    Raises VerificationError when the repository's metadata or target fails a TUF check
    (signature threshold, rollback, expiry, length or hash), TlogError when it cannot be
    reached or holds no trusted root.
    """
    base = (url or instance(staging).url).rstrip("/")
    cache = tuf_cache_dir(base)
    targets = cache / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    try:
        updater = Updater(
            metadata_dir=str(cache),
            metadata_base_url=base,
            target_base_url=f"{base}/targets/",
            target_dir=str(targets),
            config=UpdaterConfig(app_user_agent=_USER_AGENT),
            bootstrap=bootstrap_root if bootstrap_root is not None else embedded_tuf_root(staging),
        )
        updater.refresh()
        info = updater.get_targetinfo(TARGET)
        if info is None:
            raise TlogError(f"the TUF repository at {base} has no target {TARGET}")
        cached = updater.find_cached_target(info)
        data = Path(cached or updater.download_target(info)).read_bytes()
        # ngclient keeps the root it trusts now as root.json in its metadata directory.
        root_version = int(json.loads((cache / "root.json").read_bytes())["signed"]["version"])
    except (tuf_errors.RepositoryError, tuf_errors.DownloadLengthMismatchError) as e:
        raise VerificationError(f"TUF repository {base} failed a check "
                                f"({type(e).__name__}: {e}); the trusted root was not changed") from e
    except (tuf_errors.DownloadError, urllib3.exceptions.HTTPError, OSError) as e:
        raise TlogError(f"cannot fetch from the TUF repository {base} "
                        f"({type(e).__name__}: {str(e) or 'no answer'})") from e
    _check_trusted_root(data, base)
    out = refreshed_path(staging)
    changed = not out.exists() or out.read_bytes() != data
    if changed:
        write_atomically(out, data)
    return Refreshed(out, base, root_version, hashlib.sha256(data).hexdigest(), changed)


def _check_trusted_root(data: bytes, base: str) -> None:
    """The target is a Sigstore TrustedRoot document (TUF vouched for its bytes, not its
    kind): refuse anything else before it replaces the verifier's default."""
    try:
        doc = json.loads(data)
        ok = isinstance(doc, dict) and str(doc.get("mediaType", "")).startswith(_MEDIA_TYPE_PREFIX)
    except ValueError:
        ok = False
    if not ok:
        raise TlogError(f"the {TARGET} of {base} is not a Sigstore trusted root "
                        f"(mediaType {_MEDIA_TYPE_PREFIX}…)")

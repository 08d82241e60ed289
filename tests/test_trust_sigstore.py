"""`tlog trust sigstore`: Sigstore's trusted root refreshed with a real TUF client (issue 12).

Each test generates a TUF repository (tests/tuf_repo.py), serves it on 127.0.0.1 and runs
the command with `--url` and `--tuf-root` (that repository's first root: Sigstore's own is
not ours to sign with). The real repository (tuf-repo-cdn.sigstore.dev) is out of reach of
the test machines: the default URL and shipped root.json are checked only for being there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from tlog.client.sigstore_tuf import (
    embedded_tuf_root,
    refreshed_path,
    sigstore_trusted_root,
    tuf_cache_dir,
)

from .cli_support import fails, json_out, ok, tlog
from .tuf_repo import TufRepo, served

Repo = tuple[TufRepo, str, Path]  # the repository, its URL, its bootstrap root file


def _root_doc(marker: str) -> bytes:
    """A small Sigstore TrustedRoot, told apart by its (only) log's URL."""
    return json.dumps({"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                       "tlogs": [{"baseUrl": f"https://{marker}.example"}], "ctlogs": [],
                       "certificateAuthorities": [], "timestampAuthorities": []}).encode()


@pytest.fixture(name="home")
def home_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Config and cache directories of the test's own, for the CLI and for library calls."""
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Iterator[Repo]:
    """A repository publishing trusted root "v1", served; and its bootstrap root file."""
    repo = TufRepo(tmp_path / "repo")
    repo.add_target(_root_doc("v1"))
    anchor = tmp_path / "anchor-root.json"
    anchor.write_bytes(repo.bootstrap)
    with served(repo.base) as url:
        yield repo, url, anchor


def _refresh(home: dict[str, str], url: str, anchor: Path, *extra: str) -> Result:
    return tlog("trust", "sigstore", "--url", url, "--tuf-root", anchor, "--json", *extra, env=home)


def test_first_fetch_becomes_the_default(home: dict[str, str], repo: Repo) -> None:
    _, url, anchor = repo
    shipped = sigstore_trusted_root()
    assert json.loads(shipped)["mediaType"].startswith("application/vnd.dev.sigstore.trustedroot")
    out = json_out(_refresh(home, url, anchor))
    assert out["fetched"] and out["changed"] and out["tufRootVersion"] == 1
    assert Path(out["path"]) == refreshed_path(False)
    assert sigstore_trusted_root() == _root_doc("v1") != shipped
    assert (tuf_cache_dir(url) / "timestamp.json").exists()
    # Without --update a second run only reports; staging is a separate slot.
    again = json_out(tlog("trust", "sigstore", "--json", env=home))
    assert again["fetched"] is False and again["sha256"] == out["sha256"]
    assert sigstore_trusted_root(staging=True) != sigstore_trusted_root()


def test_update_follows_a_new_version(home: dict[str, str], repo: Repo) -> None:
    r, url, anchor = repo
    ok(_refresh(home, url, anchor))
    same = json_out(_refresh(home, url, anchor, "--update"))
    assert same["changed"] is False
    r.add_target(_root_doc("v2"))
    json_out(_refresh(home, url, anchor))  # no --update: nothing fetched
    assert sigstore_trusted_root() == _root_doc("v1")
    out = json_out(_refresh(home, url, anchor, "--update"))
    assert out["changed"] is True
    assert sigstore_trusted_root() == _root_doc("v2")
    text = ok(tlog("trust", "sigstore", "--url", url, "--tuf-root", anchor, "--update", env=home)).stdout
    assert "unchanged: verified over TUF" in text


def test_tampered_target_is_refused(home: dict[str, str], repo: Repo) -> None:
    r, url, anchor = repo
    ok(_refresh(home, url, anchor))
    r.add_target(_root_doc("v2"))
    r.served_target().write_bytes(_root_doc("v3"))  # same length: the hash gives it away
    fails(_refresh(home, url, anchor, "--update"), "TUF repository", "LengthOrHashMismatchError")
    r.served_target().write_bytes(_root_doc("evil"))  # longer than the targets role says
    fails(_refresh(home, url, anchor, "--update"), "DownloadLengthMismatchError")
    assert sigstore_trusted_root() == _root_doc("v1")  # the old one stays


def test_expired_metadata_is_refused(home: dict[str, str], repo: Repo) -> None:
    r, url, anchor = repo
    ok(_refresh(home, url, anchor))
    r.add_target(_root_doc("v2"))
    r.publish(timestamp_expires=datetime.now(UTC) - timedelta(hours=1))
    fails(_refresh(home, url, anchor, "--update"), "ExpiredMetadataError")
    assert sigstore_trusted_root() == _root_doc("v1")


def test_root_rotation(home: dict[str, str], repo: Repo) -> None:
    r, url, anchor = repo
    ok(_refresh(home, url, anchor))
    r.rotate_root_and_timestamp_keys()
    r.add_target(_root_doc("v2"))
    out = json_out(_refresh(home, url, anchor, "--update"))
    assert out["tufRootVersion"] == 2 and sigstore_trusted_root() == _root_doc("v2")


def test_foreign_root_and_unreachable_repository(home: dict[str, str], repo: Repo,
                                                 tmp_path: Path) -> None:
    _, url, _ = repo
    # Sigstore's embedded root does not sign this repository's metadata.
    fails(tlog("trust", "sigstore", "--url", url, env=home), "TUF repository", "failed a check")
    other = TufRepo(tmp_path / "other")
    stranger = tmp_path / "stranger-root.json"
    stranger.write_bytes(other.bootstrap)
    fails(_refresh(home, url, stranger), "failed a check")
    fails(_refresh(home, "http://127.0.0.1:9", stranger), "cannot fetch from the TUF repository")
    assert not refreshed_path(False).exists()


def test_shipped_tuf_roots() -> None:
    for staging in (False, True):
        root = json.loads(embedded_tuf_root(staging))
        assert root["signed"]["_type"] == "root" and root["signed"]["consistent_snapshot"]
        assert "tlogs" in json.loads(sigstore_trusted_root(staging))


"""`tlog trust`: pin logs' keys, and print them as a Sigstore trusted root."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli import terminal
from cli.common import (
    echo_json,
    json_option,
    pinned_logs,
    read_file,
    selected_log,
    trust_option,
    trust_path,
    with_client,
)
from cli.main import main
from tlog.errors import TlogError

if TYPE_CHECKING:
    from tlog.client.http import LogClient
    from tlog.core.keys import LogPublicKey


@main.group()
def trust() -> None:
    """Pin the keys of the logs you trust (the trust file), or print them for Sigstore."""


@trust.command("add")
@click.argument("url")
@click.option("--log-key", type=click.Path(path_type=Path), default=None,
              metavar="PEM", help="The log's public key, obtained out of band. Without it, "
              "the key is fetched from the log once: trust on first use.")
@click.option("--name", default=None, help="The log's name (its checkpoint origin). "
              "Default: read from the log's signed checkpoint.")
@click.option("--force", is_flag=True, help="Replace a log pinned with another key or name.")
@trust_option
@json_option
def trust_add(url: str, log_key: Path | None, name: str | None, force: bool,
              trust_file: Path | None, as_json: bool) -> None:
    """Pin the log at URL: its URL, name and public key go into the trust file."""
    from tlog.client.trust import save_trust
    from tlog.core.checkpoint import validate_origin
    from tlog.core.keys import LogPublicKey
    from tlog.core.trusted import TrustedLog, normalize_url

    url = normalize_url(url)
    pub = LogPublicKey.from_pem(read_file(log_key, "log key")) if log_key else None
    if pub is None or name is None:
        pub, name = with_client(url, lambda c: _fetch_identity(c, pub, name))
    validate_origin(name)
    log = TrustedLog(url, name, pub)
    path = trust_path(trust_file)
    logs = pinned_logs(trust_file)
    old = next((lg for lg in logs if lg.url == url), None)
    if old is not None and old != log and not force:
        raise TlogError(
            f"{url} is already pinned as log {old.name} with logID {old.log_id_hex}, but it now "
            f"presents log {name} with logID {log.log_id_hex}. A log's key should never change: "
            "find out why before replacing it with --force")
    if old != log:
        save_trust(path, [lg for lg in logs if lg.url != url] + [log])
    how = "key from " + str(log_key) if log_key else "fetched on first use"
    if as_json:
        echo_json({**log.to_json(), "trustFile": str(path), "trustOnFirstUse": log_key is None,
                   "changed": old != log})
        return
    if old == log:
        click.echo(f"{url} is already pinned: log {name}, logID {log.log_id_hex}")
        return
    click.echo(f"Pinned {url}: log {name}, logID {log.log_id_hex} ({how}), in {path}")
    if log_key is None:
        click.echo("This key was trusted on first use: compare the logID above with the one the "
                   "log's operator publishes, or pin with --log-key PEM obtained out of band.")


async def _fetch_identity(client: LogClient, pub: LogPublicKey | None,
                          name: str | None) -> tuple[LogPublicKey, str]:
    """The log's key (unless given) and its name, from a checkpoint signed by that key."""
    from tlog.core.checkpoint import verify_checkpoint
    from tlog.core.keys import LogPublicKey
    from tlog.errors import VerificationError

    if pub is None:
        pub = LogPublicKey.from_pem(await client.public_key())
    if name is None:
        info = await client.log_info()
        note = info.get("signedTreeHead")
        try:
            name = verify_checkpoint(str(note).encode("utf-8"), pub).origin
        except VerificationError as e:
            raise TlogError(f"the log at {client.base_url} does not sign its checkpoints "
                            f"with this key ({e}); check the URL and the key") from None
    return pub, name


@trust.command("remove")
@click.argument("url")
@trust_option
@json_option
def trust_remove(url: str, trust_file: Path | None, as_json: bool) -> None:
    """Unpin the log at URL: verifiers stop accepting its entries."""
    from tlog.client.trust import save_trust
    from tlog.core.trusted import normalize_url

    url = normalize_url(url)
    path = trust_path(trust_file)
    logs = pinned_logs(trust_file)
    gone = [lg for lg in logs if lg.url == url]
    if not gone:
        raise TlogError(f"{url} is not pinned in {path}")
    save_trust(path, [lg for lg in logs if lg.url != url])
    if as_json:
        echo_json({**gone[0].to_json(), "trustFile": str(path), "removed": True})
        return
    click.echo(f"Removed {url} (log {gone[0].name}, logID {gone[0].log_id_hex}) from {path}")


@trust.command("list")
@trust_option
@json_option
def trust_list(trust_file: Path | None, as_json: bool) -> None:
    """Show the pinned logs."""
    logs = pinned_logs(trust_file)
    if as_json:
        echo_json([lg.to_json() for lg in logs])
        return
    if not logs:
        click.echo(f"No log is pinned in {trust_path(trust_file)}; run `tlog trust add URL`.")
    elif terminal.is_terminal():
        terminal.table(("URL", "LOG", "LOGID", "KEY"), [
            (lg.url, lg.name, lg.log_id_hex, lg.public_key.key_type) for lg in logs])
        return
    for lg in logs:  # one line a log, for scripts
        click.echo(f"{lg.url}  log {lg.name}  logID {lg.log_id_hex}  ({lg.public_key.key_type})")


@trust.command("root")
@click.option("--log-url", metavar="URL", default=None,
              help="Only this pinned log. Default: every pinned log.")
@click.option("--valid-from", type=click.DateTime(), default=None,
              help="Trust the keys for entries since this date (UTC). Default: no lower bound.")
@click.option("--ca", "ca_files", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
              help="A certificate authority whose code-signing certificates to trust (`tlog sign "
              "--certificate`): its certificate, or its chain issuing CA first. Repeatable.")
@click.option("--ct-log-key", "ct_keys", multiple=True, type=click.Path(path_type=Path),
              metavar="PEM", help="The key of a CT log whose SCTs your CA embeds in its "
              "certificates (Sigstore clients require one). Repeatable.")
@trust_option
def trust_root(log_url: str | None, valid_from: datetime | None, ca_files: tuple[Path, ...],
               ct_keys: tuple[Path, ...], trust_file: Path | None) -> None:
    """Print a Sigstore trusted root naming the pinned logs (for cosign, sigstore-python...),
    and the certificate authorities and CT logs given."""
    from tlog.core.keys import LogPublicKey
    from tlog.core.trustroot import EPOCH, certificate_authority, trusted_root

    logs = [selected_log(trust_file, log_url)] if log_url else pinned_logs(trust_file)
    if not logs:
        raise TlogError("no log is pinned yet; run `tlog trust add URL` first")
    start = valid_from.replace(tzinfo=UTC) if valid_from else EPOCH
    authorities = []
    for path in ca_files:
        pem = read_file(path, "CA file")
        try:
            authorities.append(certificate_authority(pem))
        except TlogError as e:
            raise TlogError(f"{path}: {e}") from None
    ct_logs = [LogPublicKey.from_pem(read_file(path, "CT log key")) for path in ct_keys]
    echo_json(trusted_root(logs, start, authorities=authorities, ct_logs=ct_logs))


@trust.command("sigstore")
@click.option("--staging", is_flag=True, help="Sigstore's staging instance instead of production.")
@click.option("--update", is_flag=True, help="Refresh over TUF even when a trusted root was "
              "fetched before. Without it, the first run fetches and later runs only report.")
@click.option("--url", metavar="URL", default=None, help="The TUF repository (a mirror). "
              "Default: Sigstore's (https://tuf-repo-cdn.sigstore.dev, or sigstage.dev).")
@click.option("--tuf-root", type=click.Path(path_type=Path), default=None, metavar="ROOT.json",
              help="The TUF root metadata to start from, for a repository Sigstore's root does "
              "not sign (a private one). Default: the root.json shipped with tlog.")
@json_option
def trust_sigstore(staging: bool, update: bool, url: str | None, tuf_root: Path | None,
                   as_json: bool) -> None:
    """Fetch Sigstore's public-good trusted root over TUF, for `tlog verify`.

    The TUF client starts from the root.json shipped with tlog and checks every metadata
    file and the trusted_root.json target (signatures, versions, expiry, hashes). The result
    becomes `tlog verify`'s default trusted root; without it, the one shipped with tlog is used.
    """
    import hashlib

    from tlog.client.sigstore_tuf import instance, refresh_sigstore_root, refreshed_path

    name = instance(staging).name
    path = refreshed_path(staging)
    if not update and path.exists():
        digest = hashlib.sha256(read_file(path, "trusted root")).hexdigest()
        if as_json:
            echo_json({"instance": name, "path": str(path), "sha256": digest, "fetched": False})
            return
        click.echo(f"Sigstore's trusted root ({name}) was fetched before: {path} "
                   f"(sha256 {digest}); refresh it with --update")
        return
    bootstrap = read_file(tuf_root, "TUF root") if tuf_root else None
    got = refresh_sigstore_root(staging, url=url, bootstrap_root=bootstrap)
    if as_json:
        echo_json({"instance": name, "path": str(got.path), "sha256": got.sha256, "fetched": True,
                   "url": got.url, "tufRootVersion": got.root_version, "changed": got.changed})
        return
    what = "updated" if got.changed else "unchanged"
    click.echo(f"Sigstore's trusted root ({name}) {what}: verified over TUF from {got.url} "
               f"(TUF root version {got.root_version}), sha256 {got.sha256}, in {got.path}")

"""`tlog get`, `tlog search`, `tlog info`: read the log, checking what it says against the
pinned key."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import (
    echo_json,
    file_sha256,
    json_option,
    log_url_option,
    param_check,
    read_public_key,
    selected_log,
    trust_option,
    with_client,
)
from cli.main import main
from tlog.core.identity import identity_query
from tlog.core.rekor import parse_uuid
from tlog.errors import InvalidInput

if TYPE_CHECKING:
    from tlog.core.trusted import TrustedLog
    from tlog.core.verify import VerifiedEntry

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def sha256_hex(text: str) -> str:
    """A SHA-256 digest as 64 lowercase hex digits (`sha256:` prefix allowed)."""
    digest = text.strip().lower().removeprefix("sha256:")
    if not _HEX64.fullmatch(digest):
        raise InvalidInput(f"must be 64 hex digits, got {text!r}")
    return digest


def entry_uuid(text: str) -> str:
    """An entry UUID as given (64 hex, or Rekor's 80-hex form), checked before any request."""
    parse_uuid(text.strip())
    return text.strip()


def checked_entry(answer: object, log: TrustedLog, *, index: int | None = None,
                  uuid: str | None = None) -> VerifiedEntry:
    """The entry the log answered, verified with the pinned key, and the one asked for."""
    from tlog.core.verify import CheckFailed, verify_log_entry

    verified = verify_log_entry(answer, log)
    e = verified.entry
    if (index is not None and e.log_index != index) or (
            uuid is not None and e.uuid != parse_uuid(uuid).hex()):
        raise CheckFailed("entry", f"the log answered with entry {e.log_index} ({e.uuid}), "
                                   "not the one asked for")
    return verified


@main.command()
@click.option("--index", "--log-index", "index", type=click.IntRange(0), default=None,
              help="The entry's log index (--log-index, as rekor-cli spells it).")
@click.option("--uuid", default=None, callback=param_check(entry_uuid),
              help="The entry's UUID (64 hex, or Rekor's 80-hex form).")
@log_url_option
@trust_option
@json_option
def get(index: int | None, uuid: str | None, log_url: str | None, trust_file: Path | None,
        as_json: bool) -> None:
    """Fetch one entry and verify it (SET, inclusion proof, checkpoint) with the pinned key."""
    if (index is None) == (uuid is None):
        raise click.UsageError("give exactly one of --index or --uuid")
    log = selected_log(trust_file, log_url)
    if index is not None:
        answer = with_client(log.url, lambda c: c.entry_by_index(index))
    else:
        assert uuid is not None  # exactly one of the two, checked above
        answer = with_client(log.url, lambda c: c.entry_by_uuid(uuid))
    verified = checked_entry(answer, log, index=index, uuid=uuid)
    e = verified.entry
    if as_json:
        echo_json(answer)
        return
    from tlog.core.entries import read_body

    record = read_body(e.body)  # any kind: checked by checked_entry
    when = datetime.fromtimestamp(e.integrated_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        ("uuid", e.uuid),
        ("integrated", f"{when} ({e.integrated_time})"),
        ("kind", f"{e.kind} {e.version}"),
        *(("artifact", a) for a in record.artifact_keys[:1] if not record.details),
        *record.details,
        *(("certificate" if s.is_certificate else "public key", "SHA256:" + s.fingerprint.hex())
          for s in record.signers),
        ("verified", f"SET, inclusion proof in tree size {verified.checkpoint.size}, "
                     "checkpoint signed by the pinned key"),
    ]
    click.echo(f"Entry {e.log_index} in log {log.name}")
    for label, value in rows:
        click.echo(f"  {label:<12} {value}")


@main.command()
@click.option("--artifact", type=click.Path(path_type=Path), default=None,
              help="Entries for this file's SHA-256.")
@click.option("--sha256", "sha256", metavar="HEX", default=None, callback=param_check(sha256_hex),
              help="Entries for this digest.")
@click.option("--public-key", type=click.Path(path_type=Path), default=None,
              help="Entries signed with this key (PEM).")
@click.option("--email", metavar="EMAIL", default=None,
              callback=param_check(lambda v: identity_query(v, "--email", email_only=True)),
              help="Entries signed with a certificate for this email (its SAN; any case).")
@click.option("--identity", metavar="URI|EMAIL", default=None,
              callback=param_check(lambda v: identity_query(v, "--identity")),
              help="Entries signed with a certificate for this identity: a SAN URI, exactly "
                   "(e.g. a GitHub workflow's), or an email.")
@click.option("--operator", type=click.Choice(["and", "or"]), default="or", show_default=True,
              help="Entries matching all of the criteria given, or any of them.")
@log_url_option
@trust_option
@json_option
def search(artifact: Path | None, sha256: str | None, public_key: Path | None,
           email: str | None, identity: str | None, operator: str,
           log_url: str | None, trust_file: Path | None, as_json: bool) -> None:
    """List the UUIDs of the entries for an artifact or a digest, a public key, and/or a
    signing certificate's identity (rekor-cli search --email)."""
    if artifact is not None and sha256 is not None:
        raise click.UsageError("give at most one of --artifact and --sha256")
    if all(x is None for x in (artifact, sha256, public_key, email, identity)):
        raise click.UsageError("give --artifact, --sha256, --public-key, --email and/or --identity")
    digest = pem = None
    if artifact is not None:
        digest = file_sha256(artifact).hex()
    elif sha256 is not None:
        digest = sha256
    if public_key is not None:
        pem = read_public_key(public_key, "--public-key")
    log = selected_log(trust_file, log_url)
    uuids = with_client(log.url, lambda c: c.search(sha256=digest, public_key_pem=pem, email=email,
                                                    identity=identity, operator=operator))
    if as_json:
        echo_json(uuids)
        return
    if not uuids:
        click.echo("No entries found.", err=True)
    for u in uuids:
        click.echo(u)


@main.command()
@log_url_option
@trust_option
@json_option
def info(log_url: str | None, trust_file: Path | None, as_json: bool) -> None:
    """Show the log's tree size, root hash and checkpoint, verified with the pinned key."""
    from tlog.core.verify import verify_log_info

    log = selected_log(trust_file, log_url)
    answer = with_client(log.url, lambda c: c.log_info())
    cp = verify_log_info(answer, log)
    if as_json:
        echo_json({"url": log.url, "name": log.name, "logID": log.log_id_hex,
                   "treeSize": cp.size, "rootHash": cp.root_hash.hex(),
                   "checkpoint": answer["signedTreeHead"]})
        return
    click.echo(f"Log {log.name} at {log.url}")
    click.echo(f"  tree size   {cp.size}")
    click.echo(f"  root hash   {cp.root_hash.hex()}")
    click.echo(f"  logID       {log.log_id_hex}")
    click.echo("  checkpoint  verified with the pinned key")

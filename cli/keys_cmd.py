"""`tlog keygen`: make a signing key pair for `tlog sign`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.common import echo_json, json_option, passphrase, warn
from cli.main import main
from tlog.core.userkeys import USER_KEY_TYPES, UserKeyType
from tlog.errors import TlogError


@main.command()
@click.option("--out", "prefix", default="tlog", show_default=True, metavar="PREFIX",
              help="Write PREFIX.key (private) and PREFIX.pub (public).")
@click.option("--type", "key_type", type=click.Choice(USER_KEY_TYPES), default="ecdsa-p256",
              show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@json_option
def keygen(prefix: str, key_type: UserKeyType, force: bool, as_json: bool) -> None:
    """Make a signing key pair: PREFIX.key (mode 0600) and PREFIX.pub.

    The private key is encrypted with $TLOG_PASSWORD if it is set (else $COSIGN_PASSWORD),
    else with a passphrase typed at a prompt (asked twice) on a terminal, else with one read
    from standard input, in cosign's format (scrypt + NaCl secretbox: `cosign sign-blob --key`
    takes it). An empty passphrase writes it unencrypted, as plain PKCS#8 PEM.
    """
    from tlog.core.userkeys import SigningKey, key_fingerprint

    key_path, pub_path = Path(prefix + ".key"), Path(prefix + ".pub")
    if not force:
        for p in (key_path, pub_path):
            if p.exists():
                raise TlogError(f"{p} already exists; pass --force to overwrite it")
    secret = passphrase(f"Passphrase for {key_path} (empty for none)", confirm=True)
    key = SigningKey.generate(key_type)
    _write_private(key_path, key.to_pem(secret or None), force=force)
    pub_path.write_bytes(key.public_pem())
    if not secret:
        warn(f"{key_path} is not encrypted (empty passphrase): keep it where only you can read it")
    fingerprint = key_fingerprint(key.public_pem())
    if as_json:
        echo_json({"privateKey": str(key_path), "publicKey": str(pub_path), "type": key_type,
                   "encrypted": bool(secret), "fingerprint": fingerprint})
        return
    state = "cosign-encrypted (scrypt)" if secret else "unencrypted PKCS#8"
    click.echo(f"Wrote {key_path} ({key.description}, {state}, mode 0600) and "
               f"{pub_path}; key {fingerprint}")


def _write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write a secret file that is mode 0600 from its first byte."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # a file overwritten with --force keeps its old mode
        f.write(data)

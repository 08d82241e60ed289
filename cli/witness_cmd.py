"""`tlog witness`: make a witness key, run a C2SP tlog-witness next to a log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from cli.config import configurable
from cli.main import main


@main.group()
def witness() -> None:
    """Cosign a log's checkpoints, never two that are inconsistent (C2SP tlog-witness)."""


@witness.command()
@click.option("--name", required=True,
              help="The witness's name: a schema-less URL such as witness.example.com/w1.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing key file (its key is lost).")
def keygen(name: str, out: Path, force: bool) -> None:
    """Make an Ed25519 witness key; print its verifier key (vkey) on stdout.

    Give the printed `NAME+<key id>+<base64>` to whoever checks this witness's
    cosignatures (`tlog monitor --witness`, `tlog serve --witness`).
    """
    from tlog.core.cosignature import CosignatureSigner
    from tlog.witness.server import write_witness_key

    signer = CosignatureSigner.generate(name)
    write_witness_key(out, signer, force=force)
    click.echo(signer.verifier().verifier_key())


@configurable(env_prefix="TLOG_WITNESS_", section="witness")
@witness.command()
@click.option("--key", "key_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The witness key file made by `tlog witness keygen`.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tlog-witness-data"), show_default=True,
              help="Where the witness keeps the latest checkpoint it cosigned for each log.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=3100, show_default=True)
@click.option("--log", "logs", multiple=True, required=True, metavar="ORIGIN=KEY",
              help="A log to witness: its origin, and its public key as a PEM file or a note "
                   "verifier key (name+id+base64). Repeatable.")
def serve(key_file: Path, data_dir: Path, host: str, port: int, logs: tuple[str, ...]) -> None:
    """Serve POST /add-checkpoint: cosign each checkpoint that extends the last one."""
    from tlog.witness.server import WitnessConfig, serve_witness

    asyncio.run(serve_witness(WitnessConfig(key_file, data_dir, list(logs)), host, port))

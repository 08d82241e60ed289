"""`tlog logproof` and `tlog verify-entry`: rekor-cli's `logproof` and `verify`, verified
against the pinned log (the checks themselves are tlog.client.online)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.common import (
    echo_json,
    file_sha256,
    json_option,
    log_url_option,
    param_check,
    read_file,
    read_public_key,
    selected_log,
    trust_option,
    with_client,
)
from cli.main import main
from cli.query_cmd import checked_entry, entry_uuid
from cli.terminal import OK, echo

if TYPE_CHECKING:
    from tlog.client.http import LogClient
    from tlog.core.verify import VerifiedEntry


@main.command()
@click.option("--first-size", type=click.IntRange(1), required=True, metavar="A",
              help="The smaller tree size.")
@click.option("--last-size", type=click.IntRange(1), default=None, metavar="B",
              help="The larger tree size. Default: the log's current size.")
@log_url_option
@trust_option
@json_option
def logproof(first_size: int, last_size: int | None, log_url: str | None,
             trust_file: Path | None, as_json: bool) -> None:
    """Fetch the consistency proof from tree size A to B and verify it: the root at B is
    proven consistent with the log's current checkpoint (signed by the pinned key), and the
    proof leads from the root at A to it."""
    from tlog.client.online import current_checkpoint, log_proof

    if last_size is not None and last_size < first_size:
        raise click.UsageError("--last-size must not be smaller than --first-size")
    log = selected_log(trust_file, log_url)

    async def run(c: LogClient) -> Any:
        last = last_size or (await current_checkpoint(c, log)).size
        return await log_proof(c, log, first_size, last)

    proof = with_client(log.url, run)
    if as_json:
        echo_json({"firstSize": proof.first_size, "lastSize": proof.last_size,
                   "firstRootHash": proof.first_root.hex(), "lastRootHash": proof.last_root.hex(),
                   "hashes": [h.hex() for h in proof.hashes], "verified": True,
                   "checkpoint": {"treeSize": proof.current.size,
                                  "rootHash": proof.current.root_hash.hex()}})
        return
    click.echo(f"Consistency proof of log {log.name} from size {proof.first_size} to "
               f"{proof.last_size}: verified")
    click.echo(f"  root at {proof.first_size:<8} {proof.first_root.hex()}")
    click.echo(f"  root at {proof.last_size:<8} {proof.last_root.hex()}")
    click.echo(f"  hashes          {len(proof.hashes)}")
    click.echo(f"  proven against  the checkpoint at size {proof.current.size}, signed by the "
               "pinned key")


@main.command("verify-entry")
@click.option("--uuid", default=None, callback=param_check(entry_uuid), help="The entry's UUID.")
@click.option("--log-index", "--index", "index", type=click.IntRange(0), default=None,
              help="The entry's log index.")
@click.option("--artifact", type=click.Path(path_type=Path), default=None,
              help="The entry for this file, with --signature and --public-key.")
@click.option("--signature", "signature_path", type=click.Path(path_type=Path), default=None,
              help="The signature over ARTIFACT: raw or base64.")
@click.option("--public-key", type=click.Path(path_type=Path), default=None,
              help="The signer's public key (PEM) or certificate.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Where the last checkpoint seen is kept. Default: "
              "~/.local/state/tlog/seen-<log name>.json.")
@log_url_option
@trust_option
@json_option
def verify_entry(uuid: str | None, index: int | None, artifact: Path | None,
                 signature_path: Path | None, public_key: Path | None, state_file: Path | None,
                 log_url: str | None, trust_file: Path | None, as_json: bool) -> None:
    """Verify that an entry is in the log, as `rekor-cli verify` does: by --uuid, by
    --log-index, or by --artifact with --signature and --public-key.

    Checks the entry's SET and its inclusion proof against a checkpoint signed by the pinned
    key, that the log's current checkpoint extends that one, and that it extends the last
    checkpoint this client saw (kept in the state file): a log showing this client another
    history fails here.
    """
    from tlog.audit.tilesync import default_state_path
    from tlog.client.online import SeenCheckpoints, find_entry, fresh_checkpoint, prove_extends
    from tlog.client.sign import decode_signature

    by_content = (artifact, signature_path, public_key)
    given = (uuid is not None) + (index is not None) + (artifact is not None)
    if given != 1 or (artifact is not None) != all(x is not None for x in by_content) or (
            artifact is None and any(x is not None for x in by_content)):
        raise click.UsageError("give one of --uuid, --log-index, or --artifact with "
                               "--signature and --public-key")
    log = selected_log(trust_file, log_url)
    seen = SeenCheckpoints(state_file or default_state_path("seen", log.name), log)
    pem = read_public_key(public_key, "--public-key") if public_key else None
    sig = decode_signature(read_file(signature_path, "signature")) if signature_path else None
    digest = file_sha256(artifact) if artifact else None

    async def run(c: LogClient) -> tuple[VerifiedEntry, Any, Any]:
        if index is not None:
            verified = checked_entry(await c.entry_by_index(index), log, index=index)
        elif uuid is not None:
            verified = checked_entry(await c.entry_by_uuid(uuid), log, uuid=uuid)
        else:
            assert digest is not None and sig is not None
            verified = await find_entry(c, log, digest, sig, pem)
        current, note = await fresh_checkpoint(c, log)
        await prove_extends(c, log, verified.checkpoint, current)
        before = await seen.advance(c, current, note)
        return verified, current, before

    verified, current, before = with_client(log.url, run)
    e = verified.entry
    if as_json:
        echo_json({"verified": True, "logIndex": e.log_index, "uuid": e.uuid,
                   "integratedTime": e.integrated_time, "log": log.url,
                   "inclusionTreeSize": verified.checkpoint.size,
                   "consistentWith": {"treeSize": current.size,
                                      "rootHash": current.root_hash.hex()},
                   "lastSeenTreeSize": None if before is None else before.size})
        return
    seen_text = ("first check by this client" if before is None
                 else f"consistent with size {before.size} seen before")
    echo(f"Verified OK: entry {e.log_index} ({e.uuid}) in log {log.name}: SET, inclusion "
         f"proof at size {verified.checkpoint.size}, log consistent up to size "
         f"{current.size}; {seen_text}", OK)


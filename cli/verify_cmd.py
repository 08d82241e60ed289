"""`tlog verify`: check a bundle against an artifact or image, a public key and a pinned log."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.common import (
    echo_json,
    file_sha256,
    json_option,
    pinned_logs,
    read_file,
    read_public_key,
    selected_log,
    subject_of,
    subject_options,
    trust_option,
    with_client,
)
from cli.contract import failure_details
from cli.images import ImageArgs, image_options
from cli.main import main
from cli.terminal import OK, echo
from cli.verify_sigstore import identity_policy, sigstore_flow, sigstore_options, verify_sigstore

if TYPE_CHECKING:
    from tlog.client.http import LogClient
    from tlog.core.checkpoint import Checkpoint
    from tlog.core.cosignature import CosignatureVerifier
    from tlog.core.trusted import TrustedLog


@main.command()
@subject_options("Verify")
@click.option("--key", "key_path", default=None, type=click.Path(path_type=Path),
              help="The signer's public key (PEM). Or, for a certificate-signed Sigstore bundle, "
              "--certificate-identity and --certificate-oidc-issuer.")
@click.option("--signature", "signature_path", default=None, type=click.Path(path_type=Path),
              metavar="SIG", help="Verify this signature (raw or base64, as `tlog sign "
              "--output-signature` and cosign write it) without a bundle: its entry is looked "
              "up in the log by the artifact's digest and checked online.")
@click.option("--certificate", "cert_path", default=None, type=click.Path(path_type=Path),
              metavar="PEM", help="With --signature: the signing certificate (`tlog sign "
              "--output-certificate`), instead of --key or for it.")
@click.option("--offline", is_flag=True,
              help="Check the bundle alone; do not ask the log for a consistency proof.")
@click.option("--log-url", metavar="URL", default=None,
              help="The pinned log to check against. Default: $TLOG_URL, else the pinned log "
              "whose logID the bundle names.")
@click.option("--witness", "witness_keys", multiple=True, metavar="VKEY",
              help="A witness cosignature key (name+id+base64) to require; repeatable.")
@click.option("--min-witnesses", type=click.IntRange(0), default=None,
              help="Valid cosignatures required on the log's checkpoint (default: 1 if "
              "--witness is given).")
@trust_option
@json_option
@sigstore_options
@image_options("Verify")
def verify(artifact: Path | None, key_path: Path | None, image: str | None, bundle_path: Path | None,
           offline: bool, log_url: str | None, witness_keys: tuple[str, ...], min_witnesses: int | None,
           trust_file: Path | None, as_json: bool, trusted_root: Path | None, identity: str | None,
           identity_regexp: str | None, issuer: str | None, issuer_regexp: str | None,
           gh_repository: str | None, gh_ref: str | None, gh_sha: str | None,
           signature_path: Path | None, cert_path: Path | None, **image_opts: Any) -> None:
    """Verify ARTIFACT (or --image) against its bundle, the signer's key and the pinned log.

    Checks the signature, that the log entry records this digest, signature and key, the
    inclusion proof, the checkpoint signature and the SET against the pinned log key, and
    (unless --offline) that the log's current tree is consistent with the bundle's.
    Exit 0 and "Verified OK" on success, exit 1 naming the failed check otherwise.

    --image REF without --bundle verifies the image in its registry, as cosign does: one of
    its signatures (`sha256-<hex>.sig` layers, Sigstore-bundle referrers) must verify with
    --key, name exactly this digest, carry every -a, and be proven in the pinned log.

    Any Sigstore bundle (cosign, sigstore-python, …; v0.1 to v0.3, Rekor v1 or v2) verifies
    offline against a Sigstore trusted root (--trusted-root, default: the public-good root
    plus the pinned logs): keyless with --certificate-identity[-regexp] and
    --certificate-oidc-issuer[-regexp], or with --key. ARTIFACT may be `sha256:HEX`.

    --signature SIG instead of a bundle (cosign's verify-blob): the log is searched for the
    artifact's digest, the entry with this signature and key is checked as a bundle's would
    be, and the log's current tree is proven consistent with it.
    """
    if signature_path is not None or cert_path is not None:
        _verify_signature(artifact, signature_path, key_path, cert_path, log_url, trust_file,
                          as_json, bundle_path is not None or image is not None or offline
                          or bool(witness_keys) or min_witnesses is not None)
        return
    policy = identity_policy(identity, identity_regexp, issuer, issuer_regexp, gh_repository,
                             gh_ref, gh_sha)
    if sigstore_bundle := sigstore_flow(artifact, image, bundle_path, policy, trusted_root,
                                        pinned_logs(trust_file)):
        assert artifact is not None
        verify_sigstore(artifact, sigstore_bundle, key_path, policy, trusted_root,
                        pinned_logs(trust_file), as_json)
        return
    if key_path is None:
        raise click.UsageError("give --key, or --certificate-identity and --certificate-oidc-issuer")
    image_args = ImageArgs.of(image_opts)
    if image is not None and artifact is None and bundle_path is None:
        from cli.images import verify_in_registry

        if witness_keys or min_witnesses:
            raise click.UsageError("--witness needs a bundle: give --bundle, or drop --witness")
        verify_in_registry(image, read_public_key(key_path, "--key"), pinned_logs(trust_file), log_url,
                           offline, image_args, as_json)
        return
    if image_args.used():
        raise click.UsageError("-a and --recursive verify an image in its registry: drop --bundle")
    from tlog.client.online import prove_extends
    from tlog.core.bundle import parse_bundle
    from tlog.core.cosignature import parse_cosignature_verifier_key
    from tlog.core.verify import CheckFailed, log_for_entry, verify_bundle
    from tlog.errors import InvalidInput

    witnesses = [parse_cosignature_verifier_key(k) for k in witness_keys]
    need = (1 if witnesses else 0) if min_witnesses is None else min_witnesses
    if need > len(witnesses):
        raise click.UsageError(f"--min-witnesses {need} needs at least {need} --witness keys")
    if need and offline:
        raise click.UsageError("--min-witnesses needs the log's cosigned checkpoint: drop --offline")
    subject = subject_of(artifact, image)
    path = bundle_path or subject.default_bundle
    pem = read_public_key(key_path, "--key")
    try:
        try:
            bundle = parse_bundle(read_file(path, "bundle"))
        except InvalidInput as e:
            raise CheckFailed("bundle", f"{path} is malformed: {e}") from None
        log = log_for_entry(pinned_logs(trust_file), bundle.entry.log_id,
                            log_url or os.environ.get("TLOG_URL"))
        verified = verify_bundle(bundle, subject.digest(bundle.algorithm), pem, log, subject=subject.kind)
        current = None if offline else with_client(
            log.url, lambda c: prove_extends(c, log, verified.checkpoint))
        witnessed = None if not need else with_client(
            log.url, lambda c: check_witnessed(c, log, verified.checkpoint, verified.entry.log_index,
                                               witnesses, need))
    except CheckFailed as e:
        if as_json:
            failure_details(verified=False, check=e.check, reason=e.reason)
        raise
    entry = verified.entry
    when = _utc(entry.integrated_time)
    if as_json:
        echo_json({"verified": True, subject.kind: subject.name, "bundle": str(path),
                   "log": log.url, "logID": log.log_id_hex, "logIndex": entry.log_index,
                   "uuid": entry.uuid, "integratedTime": entry.integrated_time,
                   "checkpoint": {"treeSize": verified.checkpoint.size,
                                  "rootHash": verified.checkpoint.root_hash.hex()},
                   "consistentWith": None if current is None else {
                       "treeSize": current.size, "rootHash": current.root_hash.hex()},
                   "witnessedAt": None if witnessed is None else witnessed.size})
        return
    tail = ("offline: not compared with the log's current tree" if current is None
            else f"log consistent up to tree size {current.size}")
    if witnessed is not None:
        tail += f"; witnessed by {need}+ at tree size {witnessed.size}"
    echo(f"Verified OK: {subject.name} — entry {entry.log_index} in log {log.name}, "
         f"integrated {when}; {tail}", OK)


def _verify_signature(artifact: Path | None, signature_path: Path | None, key_path: Path | None,
                      cert_path: Path | None, log_url: str | None, trust_file: Path | None,
                      as_json: bool, bundle_options: bool) -> None:
    """`verify --signature`: no bundle, so everything is asked of the log
    (tlog.client.online.verify_signature_online)."""
    from tlog.client.online import verify_signature_online
    from tlog.client.sign import decode_signature
    from tlog.core.entries.hashedrekord import public_key_fingerprint_of_pem
    from tlog.core.verify import CheckFailed

    if signature_path is None:
        raise click.UsageError("--certificate goes with --signature")
    if bundle_options:
        raise click.UsageError("--signature verifies ARTIFACT online, without a bundle: drop "
                               "--bundle, --image, --offline and --witness")
    if artifact is None:
        raise click.UsageError("--signature needs ARTIFACT")
    if key_path is None and cert_path is None:
        raise click.UsageError("give --key (or --certificate) with --signature")
    pem = read_public_key(key_path, "--key") if key_path else b""
    cert = read_public_key(cert_path, "--certificate") if cert_path else None
    signature = decode_signature(read_file(signature_path, "signature"))
    digest = file_sha256(artifact)
    log = selected_log(trust_file, log_url)
    try:
        if cert is not None:
            if pem and public_key_fingerprint_of_pem(cert) != public_key_fingerprint_of_pem(pem):
                raise CheckFailed("certificate", f"{cert_path} is for another key than {key_path}")
            pem = cert
        verified, current = with_client(log.url, lambda c: verify_signature_online(
            c, log, digest, signature, pem))
    except CheckFailed as e:
        if as_json:
            failure_details(verified=False, check=e.check, reason=e.reason)
        raise
    entry = verified.entry
    if as_json:
        echo_json({"verified": True, "artifact": str(artifact), "signature": str(signature_path),
                   "log": log.url, "logID": log.log_id_hex, "logIndex": entry.log_index,
                   "uuid": entry.uuid, "integratedTime": entry.integrated_time,
                   "checkpoint": {"treeSize": verified.checkpoint.size,
                                  "rootHash": verified.checkpoint.root_hash.hex()},
                   "consistentWith": {"treeSize": current.size,
                                      "rootHash": current.root_hash.hex()}})
        return
    echo(f"Verified OK: {artifact} — signature found in log {log.name} as entry "
         f"{entry.log_index}, integrated {_utc(entry.integrated_time)}; log consistent up to "
         f"tree size {current.size}", OK)


def _utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def check_witnessed(client: LogClient, log: TrustedLog, old: Checkpoint, index: int,
                          witnesses: list[CosignatureVerifier], need: int) -> Checkpoint:
    """The log's published (cosigned) checkpoint has `need` witness cosignatures, covers the
    entry, and is consistent with the bundle's checkpoint, whichever is larger."""
    from tlog.core.verify import consistency_proof_hashes, verify_extends, verify_witnessed

    witnessed = verify_witnessed(await client.checkpoint(), log, witnesses, need, index)
    small, large = sorted((old, witnessed), key=lambda cp: cp.size)
    proof: list[bytes] = []
    if large.size > small.size:
        proof = consistency_proof_hashes(await client.consistency(small.size, large.size))
    verify_extends(small, large, proof)
    return witnessed

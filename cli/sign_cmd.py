"""`tlog sign` and `tlog upload`: log a signature, check the log's answer, write the bundle."""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.common import (
    Subject,
    bundle_option,
    echo_json,
    json_option,
    load_signing_key,
    log_url_option,
    read_file,
    selected_log,
    subject_of,
    subject_options,
    trust_option,
    with_client,
)
from cli.main import main
from tlog.errors import InvalidInput, TlogError

if TYPE_CHECKING:
    from tlog.core.bundle import Bundle
    from tlog.client.http import LogClient
    from tlog.core.trusted import TrustedLog
    from tlog.core.verify import VerifiedEntry


@main.command()
@subject_options("Sign")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="Your private key (from `tlog keygen`, or any ECDSA/RSA PEM key).")
@log_url_option
@trust_option
@json_option
def sign(artifact: Path | None, key_path: Path, image: str | None, bundle_path: Path | None,
         log_url: str | None, trust_file: Path | None, as_json: bool) -> None:
    """Sign ARTIFACT (or --image), log the signature, verify the log's answer against the
    pinned log key, and write a Sigstore bundle."""
    subject = subject_of(artifact, image)
    log = selected_log(trust_file, log_url)
    key = load_signing_key(key_path)
    signature = key.sign_digest(subject.digest)
    _log_and_write(log, subject, signature, key.public_pem(), bundle_path, as_json)


@main.command()
@click.option("--public-key", "public_key", required=True,
              type=click.Path(path_type=Path), help="PEM of the signing key.")
@click.option("--signature", "signature_path", required=True,
              type=click.Path(path_type=Path),
              help="The signature over the artifact's SHA-256: raw (openssl dgst -sign) or "
              "base64 (cosign sign-blob).")
@click.option("--artifact", type=click.Path(path_type=Path), default=None, help="The signed file.")
@click.option("--digest", metavar="sha256:HEX", default=None,
              help="The artifact's digest, instead of the artifact.")
@bundle_option("Default: ARTIFACT.bundle.json, or sha256-HEX.bundle.json.")
@log_url_option
@trust_option
@json_option
def upload(public_key: Path, signature_path: Path, artifact: Path | None, digest: str | None,
           bundle_path: Path | None, log_url: str | None, trust_file: Path | None,
           as_json: bool) -> None:
    """Log a signature made elsewhere (openssl, cosign) and write the bundle."""
    if (artifact is None) == (digest is None):
        raise click.UsageError("give exactly one of --artifact or --digest")
    subject = subject_of(artifact, None, digest)
    log = selected_log(trust_file, log_url)
    pem = read_file(public_key, "public key")
    signature = _decode_signature(read_file(signature_path, "signature"))
    _log_and_write(log, subject, signature, pem, bundle_path, as_json)


def _decode_signature(data: bytes) -> bytes:
    """A signature file: base64 text (cosign) or raw bytes (openssl)."""
    text = data.strip()
    if text and re.fullmatch(rb"[A-Za-z0-9+/]+={0,2}", text) and len(text) % 4 == 0:
        try:
            return base64.b64decode(text, validate=True)
        except binascii.Error:
            pass
    if not data:
        raise InvalidInput("the signature file is empty")
    return data


def _log_and_write(log: TrustedLog, subject: Subject, signature: bytes, public_pem: bytes,
                   bundle_path: Path | None, as_json: bool) -> None:
    from tlog.core.bundle import encode_bundle

    bundle, verified, created = with_client(
        log.url, lambda c: submit_signature(c, log, subject, signature, public_pem))
    out = bundle_path or subject.default_bundle
    try:
        out.write_bytes(encode_bundle(bundle))
    except OSError as e:
        raise TlogError(f"cannot write the bundle {out}: {e.strerror or e}") from e
    e = verified.entry
    if as_json:
        echo_json({"logIndex": e.log_index, "uuid": e.uuid, "integratedTime": e.integrated_time,
                   "logID": e.log_id.hex(), "log": log.url, "bundle": str(out),
                   "created": created, subject.kind: subject.name})
        return
    what = "Logged" if created else "Already logged"
    click.echo(f"{what} {subject.name} as entry {e.log_index} in log {log.name} "
               f"(verified: SET, inclusion proof, checkpoint); bundle written to {out}")


async def submit_signature(client: LogClient, log: TrustedLog, subject: Subject,
                           signature: bytes, public_pem: bytes
                           ) -> tuple[Bundle, VerifiedEntry, bool]:
    """Submit a signature over subject.digest; check the answer; return its bundle.

    The entry is checked locally first (the log would refuse it anyway, less clearly). A
    duplicate (409) is fetched and bundled like a new entry: it is in the log either way.
    """
    from tlog.core.bundle import bundle_from_log_entry
    from tlog.core.entries.hashedrekord import parse_request, proposed_entry
    from tlog.core.verify import CheckFailed, verify_bundle

    proposed = proposed_entry("sha256", subject.digest, signature, public_pem)
    try:
        parse_request(proposed)
    except InvalidInput as e:
        raise InvalidInput(f"the log would refuse this signature: {e}") from None
    answer, created = await client.submit(proposed)
    try:
        bundle = bundle_from_log_entry(answer, subject.digest, signature, public_pem)
    except InvalidInput as e:
        raise CheckFailed("entry", f"the log's answer is malformed: {e}") from None
    verified = verify_bundle(bundle, subject.digest, public_pem, log, subject=subject.kind)
    return bundle, verified, created

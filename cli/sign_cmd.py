"""`tlog sign` and `tlog upload`: log a signature, check the log's answer, write the bundle.

Argument parsing and printing only; logging and checking is tlog.client.sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.common import (
    Subject,
    bundle_option,
    echo_json,
    json_option,
    load_signing_key,
    log_url_option,
    read_file,
    read_public_key,
    selected_log,
    subject_of,
    subject_options,
    trust_option,
    with_client,
)
from cli.images import ImageArgs, image_options
from cli.main import main
from tlog.errors import InvalidInput, TlogError

if TYPE_CHECKING:
    from tlog.core.trusted import TrustedLog


@main.command()
@subject_options("Sign")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="Your private key (from `tlog keygen`, or any ECDSA/RSA PEM key).")
@click.option("--certificate", "cert_path", type=click.Path(path_type=Path), default=None,
              metavar="PEM", help="A code-signing certificate for --key that your organisation's "
              "CA issued: logged and bundled instead of the key, so verifiers check the identity "
              "it names (`tlog verify --certificate-identity`).")
@click.option("--certificate-chain", "chain_path", type=click.Path(path_type=Path), default=None,
              metavar="PEM", help="The CA certificates that issued --certificate, its issuer "
              "first: checked before signing (verifiers take the CA from their trusted root).")
@click.option("--output-signature", "signature_out", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="Also write the signature, base64 (as cosign sign-blob does), "
              "for `tlog verify --signature`.")
@click.option("--output-certificate", "cert_out", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="Also write the --certificate that was logged (PEM).")
@click.option("--force", is_flag=True, help="Overwrite an existing bundle (and output files).")
@log_url_option
@trust_option
@json_option
@image_options("Sign")
def sign(artifact: Path | None, key_path: Path, image: str | None, bundle_path: Path | None,
         log_url: str | None, trust_file: Path | None, as_json: bool, cert_path: Path | None,
         chain_path: Path | None, signature_out: Path | None, cert_out: Path | None, force: bool,
         **image_opts: Any) -> None:
    """Sign ARTIFACT (or --image), log the signature, verify the log's answer against the
    pinned log key, and write a Sigstore bundle (ARTIFACT.bundle.json; an existing one is
    kept unless --force).

    The passphrase of an encrypted --key is read from $TLOG_PASSWORD, else $COSIGN_PASSWORD
    (even empty), else asked for on a terminal, else read from standard input. ARTIFACT is a
    file: standard input is not signed (`-` is a file named "-").

    --image REF without --bundle signs the image in its registry, as cosign does: a tag is
    resolved to its digest, and the signature is attached as `sha256-<hex>.sig` (cosign's
    layout) and as a Sigstore-bundle referrer."""
    image_args = ImageArgs.of(image_opts)
    if cert_out is not None and cert_path is None:
        raise click.UsageError("--output-certificate goes with --certificate")
    if chain_path is not None and cert_path is None:
        raise click.UsageError("--certificate-chain goes with --certificate")
    if image is not None and artifact is None and bundle_path is None and cert_path is not None:
        raise click.UsageError("--certificate signs a file, or an image with --bundle")
    if image is not None and artifact is None and bundle_path is None:
        from cli.images import sign_in_registry

        if signature_out or cert_out:
            raise click.UsageError("--output-signature and --output-certificate go with a file "
                                   "or --bundle, not an image signed in its registry")

        sign_in_registry(image, load_signing_key(key_path), selected_log(trust_file, log_url),
                         image_args, as_json)
        return
    if image_args.used():
        raise click.UsageError("-a and --recursive sign an image in its registry: drop --bundle")
    subject = subject_of(artifact, image)
    outputs = Outputs(bundle_path or subject.default_bundle, signature_out, cert_out)
    log = selected_log(trust_file, log_url)
    key = load_signing_key(key_path)
    logged_key = key.public_pem()
    if cert_path is not None:
        logged_key = _signing_certificate(cert_path, chain_path, logged_key)
    if not force:  # after the key's and certificate's errors, which a person is fixing
        outputs.refuse_overwrite()
    algorithm = key.digest_algorithm  # the key's: a P-384 key signs a sha384 digest
    signature = key.sign_digest(subject.digest(algorithm), algorithm)
    _log_and_write(log, subject, algorithm, signature, logged_key, outputs, as_json)


@dataclass(frozen=True)
class Outputs:
    """The files a signing writes once the log's answer is verified: the bundle, and the
    signature and certificate alone when asked for (cosign's --output-* files)."""

    bundle: Path
    signature: Path | None = None
    certificate: Path | None = None

    def refuse_overwrite(self) -> None:
        """Checked before anything is signed or logged, as keygen does for its keys: a
        signing that cannot write its bundle should not have logged anything."""
        for path in (self.bundle, self.signature, self.certificate):
            if path is not None and path.exists():
                raise TlogError(f"{path} already exists; pass --force to overwrite it")

    def write(self, bundle: bytes, signature: bytes, certificate: bytes) -> dict[str, str]:
        """Write each file; returns {what: path} of those written, for --json."""
        import base64

        written: dict[str, str] = {}
        for what, path, data in (("bundle", self.bundle, bundle),
                                 ("signature", self.signature, base64.b64encode(signature)),
                                 ("certificate", self.certificate, certificate)):
            if path is None:
                continue
            try:
                path.write_bytes(data)
            except OSError as e:
                raise TlogError(f"cannot write the {what} {path}: {e.strerror or e}") from e
            written[what] = str(path)
        return written


def _signing_certificate(cert_path: Path, chain_path: Path | None, public_pem: bytes) -> bytes:
    """The certificate to log in place of the key, checked against it (tlog.core.signingcert)."""
    from datetime import UTC, datetime

    from tlog.core.signingcert import signing_certificate

    chain = read_file(chain_path, "certificate chain") if chain_path else None
    return signing_certificate(read_file(cert_path, "certificate"), public_pem,
                               datetime.now(UTC), chain)


@main.command()
@click.option("--public-key", "public_key", default=None,
              type=click.Path(path_type=Path), help="PEM of the signing key.")
@click.option("--signature", "signature_path", default=None,
              type=click.Path(path_type=Path),
              help="The signature over the artifact's digest (SHA-256; SHA-384 for a P-384 key, "
              "SHA-512 for P-521): raw (openssl dgst -sign) or base64 (cosign sign-blob).")
@click.option("--artifact", type=click.Path(path_type=Path), default=None, help="The signed file.")
@click.option("--digest", metavar="sha256:HEX", default=None,
              help="The artifact's digest, instead of the artifact (sha384:HEX, sha512:HEX too).")
@click.option("--entry", "entry_path", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="Instead: a proposed entry (JSON, any kind the log accepts: "
              "hashedrekord, dsse, intoto), posted as is (rekor-cli upload --entry).")
@bundle_option("Default: ARTIFACT.bundle.json, or sha256-HEX.bundle.json.")
@log_url_option
@trust_option
@json_option
def upload(public_key: Path | None, signature_path: Path | None, artifact: Path | None,
           digest: str | None, entry_path: Path | None, bundle_path: Path | None,
           log_url: str | None, trust_file: Path | None, as_json: bool) -> None:
    """Log a signature made elsewhere (openssl, cosign) and write the bundle; or, with
    --entry, log a proposed entry of any kind and check the log's answer (no bundle)."""
    from tlog.client.sign import decode_signature
    from tlog.core.entries.hashedrekord import digest_for_pem

    if entry_path is not None:
        if any(x is not None for x in (public_key, signature_path, artifact, digest, bundle_path)):
            raise click.UsageError("--entry is the whole entry: drop --public-key, --signature, "
                                   "--artifact, --digest and --bundle")
        _upload_entry(entry_path, selected_log(trust_file, log_url), as_json)
        return
    if public_key is None or signature_path is None:
        raise click.UsageError("give --public-key and --signature (or --entry FILE)")
    if (artifact is None) == (digest is None):
        raise click.UsageError("give exactly one of --artifact or --digest")
    subject = subject_of(artifact, None, digest)
    log = selected_log(trust_file, log_url)
    pem = read_public_key(public_key, "--public-key")
    signature = decode_signature(read_file(signature_path, "signature"))
    algorithm = subject.algorithm or digest_for_pem(pem)
    _log_and_write(log, subject, algorithm, signature, pem,
                   Outputs(bundle_path or subject.default_bundle), as_json)


def _upload_entry(path: Path, log: TrustedLog, as_json: bool) -> None:
    """`upload --entry`: the file's JSON posted unchanged; the log's answer checked
    (tlog.client.sign.submit_entry)."""
    import json

    from tlog.client.sign import submit_entry

    try:
        proposed = json.loads(read_file(path, "entry"))
    except ValueError as e:
        raise InvalidInput(f"{path} is not JSON: {e}") from None
    if not isinstance(proposed, dict) or not isinstance(proposed.get("kind"), str):
        raise InvalidInput(f"{path} is not a proposed entry: expected a JSON object with "
                           '"kind" and "apiVersion" (e.g. rekor-cli\'s or cosign\'s)')
    logged = with_client(log.url, lambda c: submit_entry(c, log, proposed))
    entry = logged.verified.entry
    if as_json:
        echo_json({"logIndex": entry.log_index, "uuid": entry.uuid, "kind": entry.kind,
                   "apiVersion": entry.version, "integratedTime": entry.integrated_time,
                   "logID": entry.log_id.hex(), "log": log.url, "created": logged.created})
        return
    what = "Logged" if logged.created else "Already logged"
    click.echo(f"{what} a {entry.kind} {entry.version} entry as entry {entry.log_index} "
               f"({entry.uuid}) in log {log.name} (verified: SET, inclusion proof, checkpoint)")


def _log_and_write(log: TrustedLog, subject: Subject, algorithm: str, signature: bytes,
                   public_pem: bytes, outputs: Outputs, as_json: bool) -> None:
    from tlog.client.sign import submit_signature
    from tlog.core.bundle import encode_bundle

    digest = subject.digest(algorithm)
    logged = with_client(log.url, lambda c: submit_signature(
        c, log, digest, signature, public_pem, subject=subject.kind, algorithm=algorithm))
    written = outputs.write(encode_bundle(logged.bundle), signature, public_pem)
    entry = logged.verified.entry
    if as_json:
        echo_json({"logIndex": entry.log_index, "uuid": entry.uuid,
                   "integratedTime": entry.integrated_time,
                   "logID": entry.log_id.hex(), "log": log.url, **written,
                   "created": logged.created, subject.kind: subject.name})
        return
    what = "Logged" if logged.created else "Already logged"
    also = "".join(f"; {k} written to {v}" for k, v in written.items() if k != "bundle")
    click.echo(f"{what} {subject.name} as entry {entry.log_index} in log {log.name} "
               f"(verified: SET, inclusion proof, checkpoint); bundle written to "
               f"{outputs.bundle}{also}")


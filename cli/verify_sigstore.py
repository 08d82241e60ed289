"""`tlog verify` for any Sigstore bundle: keyless (certificate identity) or key-signed,
checked offline against a Sigstore trusted root (tlog.core.sigstore_verify).

The trusted root is `--trusted-root FILE`, else Sigstore's public-good root (the one `tlog
trust sigstore` last fetched, else the one shipped with tlog) plus the logs pinned with
`tlog trust`. cli/verify_cmd.py dispatches here; tlog's own key-signed bundles from a pinned
log keep their own flow (with the online consistency check).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from cli.common import echo_json, file_sha256, read_file
from cli.contract import failure_details
from cli.terminal import OK, echo

if TYPE_CHECKING:
    from tlog.core.identity import IdentityPolicy
    from tlog.core.sigstore_root import TrustedRoot
    from tlog.core.trusted import TrustedLog

F = TypeVar("F", bound=Callable[..., object])

_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")


def sigstore_options(f: F) -> F:
    """The keyless identity policy and trusted-root options (cosign's names)."""
    for flag, dest, text in reversed([
        ("--certificate-identity", "identity", "The signer's identity (SAN email or URI), exactly."),
        ("--certificate-identity-regexp", "identity_regexp", "The signer's identity, as a regexp."),
        ("--certificate-oidc-issuer", "issuer", "The OIDC issuer in the certificate, exactly."),
        ("--certificate-oidc-issuer-regexp", "issuer_regexp", "The OIDC issuer, as a regexp."),
        ("--certificate-github-workflow-repository", "gh_repository",
         "The GitHub workflow repository (owner/name) the certificate must name."),
        ("--certificate-github-workflow-ref", "gh_ref", "The GitHub workflow ref (refs/…)."),
        ("--certificate-github-workflow-sha", "gh_sha", "The GitHub workflow commit SHA."),
    ]):
        f = click.option(flag, dest, metavar="VALUE", default=None, help=text)(f)
    return click.option("--trusted-root", "trusted_root", metavar="FILE", default=None,
                        type=click.Path(path_type=Path),
                        help="A Sigstore TrustedRoot JSON. Default: Sigstore's public-good root "
                        "plus the pinned logs.")(f)


def identity_policy(identity: str | None, identity_regexp: str | None, issuer: str | None,
                    issuer_regexp: str | None, gh_repository: str | None, gh_ref: str | None,
                    gh_sha: str | None) -> IdentityPolicy | None:
    """The policy the options ask for, None when none of them is given."""
    from tlog.core.identity import IdentityPolicy

    workflow = {k: v for k, v in (("repository", gh_repository), ("ref", gh_ref), ("sha", gh_sha))
                if v is not None}
    if all(v is None for v in (identity, identity_regexp, issuer, issuer_regexp)) and not workflow:
        return None
    try:
        return IdentityPolicy(identity, identity_regexp, issuer, issuer_regexp, workflow)
    except (ValueError, re.error) as e:
        raise click.UsageError(f"{e} (--certificate-identity[-regexp], "
                               "--certificate-oidc-issuer[-regexp])") from None


def subject_digest(file_or_digest: Path) -> tuple[str, bytes]:
    """FILE_OR_DIGEST: `sha256:HEX` unless that names a file (the conformance suite's rule)."""
    text = str(file_or_digest)
    if (m := _DIGEST.fullmatch(text)) and not file_or_digest.exists():
        return f"sha256:{m.group(1).lower()}", bytes.fromhex(m.group(1))
    return text, file_sha256(file_or_digest)


def default_root(logs: list[TrustedLog]) -> TrustedRoot:
    """Sigstore's public-good root with the pinned logs added (trusted from the epoch)."""
    from dataclasses import replace
    from datetime import datetime

    from tlog.client.sigstore_tuf import sigstore_trusted_root
    from tlog.core.sigstore_root import LogInstance, ValidFor, load_public_key, parse_trusted_root

    root = parse_trusted_root(sigstore_trusted_root())
    pinned = tuple(LogInstance(lg.url, lg.public_key.log_id(), load_public_key(lg.public_key.spki_der()),
                               ValidFor(datetime(1970, 1, 1, tzinfo=UTC), None)) for lg in logs)
    return replace(root, tlogs=root.tlogs + pinned)


def is_sigstore_bundle(data: bytes, logs: list[TrustedLog]) -> bool:
    """Whether a bundle verified with --key alone goes to the Sigstore flow: it is not one
    of tlog's own, or it is from a log of the public-good root that is not pinned."""
    from tlog.core.bundle import parse_bundle
    from tlog.core.checks import CheckFailed
    from tlog.core.sigstore_bundle import parse_sigstore_bundle
    from tlog.errors import InvalidInput

    try:
        log_id = parse_bundle(data).entry.log_id
    except InvalidInput:
        try:
            parse_sigstore_bundle(data)
        except CheckFailed:
            return False  # neither: let tlog's own flow report what is wrong with it
        return True
    if any(lg.public_key.log_id() == log_id for lg in logs):
        return False
    return default_root([]).tlog(log_id) is not None


def sigstore_flow(artifact: Path | None, image: str | None, bundle_path: Path | None,
                  policy: IdentityPolicy | None, trusted_root: Path | None,
                  logs: list[TrustedLog]) -> Path | None:
    """The bundle to verify in the Sigstore flow, or None for tlog's own flow: an identity
    policy or a trusted root asks for it; with --key alone, the bundle decides."""
    if policy is None and trusted_root is None:
        if artifact is None or image is not None:
            return None
        path = bundle_path or Path(str(artifact) + ".bundle.json")
        try:
            data = path.read_bytes()
        except OSError:
            return None  # tlog's own flow reports it
        return path if is_sigstore_bundle(data, logs) else None
    if artifact is None or image is not None:
        raise click.UsageError("a Sigstore bundle is verified against ARTIFACT (a path or "
                               "sha256:HEX), not --image")
    return bundle_path or Path(str(artifact) + ".bundle.json")


def verify_sigstore(file_or_digest: Path, bundle_path: Path, key_path: Path | None,
                    policy: IdentityPolicy | None, trusted_root: Path | None,
                    logs: list[TrustedLog], as_json: bool) -> None:
    """Verify, print the outcome (one line, or one JSON document), raise CheckFailed."""
    from cryptography.hazmat.primitives import serialization

    from tlog.core.checks import CheckFailed
    from tlog.core.sigstore_bundle import parse_sigstore_bundle
    from tlog.core.sigstore_root import PublicKey, parse_trusted_root
    from tlog.core.sigstore_verify import verify_sigstore_bundle
    from tlog.errors import InvalidInput

    if (key_path is None) == (policy is None):
        raise click.UsageError("give either --key, or --certificate-identity[-regexp] and "
                               "--certificate-oidc-issuer[-regexp]")
    key: PublicKey | None = None
    if key_path is not None:
        try:
            loaded = serialization.load_pem_public_key(read_file(key_path, "public key"))
        except ValueError as e:
            raise InvalidInput(f"{key_path} is not a PEM public key: {e}") from None
        key = loaded  # type: ignore[assignment]
    name, digest = subject_digest(file_or_digest)
    try:
        root = (parse_trusted_root(read_file(trusted_root, "trusted root")) if trusted_root
                else default_root(logs))
        bundle = parse_sigstore_bundle(read_file(bundle_path, "bundle"))
        verified = verify_sigstore_bundle(bundle, root, digest, policy=policy, key=key)
    except CheckFailed as e:
        if as_json:
            failure_details(verified=False, check=e.check, reason=e.reason)
        raise
    times = [t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in verified.times]
    if as_json:
        echo_json({"verified": True, "artifact": name, "bundle": str(bundle_path),
                   "log": verified.log.base_url, "logID": verified.entry.log_id.hex(),
                   "logIndex": verified.entry.log_index, "signedAt": times,
                   "identity": verified.identity, "issuer": verified.issuer})
        return
    signer = f"{verified.identity} ({verified.issuer})" if verified.identity else "the given key"
    echo(f"Verified OK: {name} — signed by {signer} at {times[0]}; entry "
         f"{verified.entry.log_index} in {verified.log.base_url or verified.entry.log_id.hex()}", OK)

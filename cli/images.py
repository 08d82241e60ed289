"""`tlog sign --image` and `tlog verify --image` against the image's registry (no --bundle):
options, and the calls into tlog.client.image_signatures. Printing only; the work is there.

Registry options follow cosign's names: --allow-http-registry, --allow-insecure-registry;
credentials from --registry-username/--registry-password (TLOG_REGISTRY_USERNAME/
TLOG_REGISTRY_PASSWORD), else Docker's config file.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.common import echo_json
from cli.contract import failure_details
from cli.terminal import OK, echo

if TYPE_CHECKING:
    from tlog.client.image_signatures import SignedImage, VerifiedImage
    from tlog.client.registry import RegistryOptions
    from tlog.core.trusted import TrustedLog
    from tlog.core.userkeys import SigningKey

F = TypeVar("F", bound=Callable[..., Any])


def image_options(verb: str) -> Callable[[F], F]:
    """-a KEY=VALUE, --recursive, and how to reach the registry."""
    def wrap(f: F) -> F:
        for option in reversed((
            click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
                         help="An annotation in the signed payload (`optional`); repeatable. "
                         + ("Signing records it." if verb == "sign" else
                            "Verifying requires a signature that carries it.")),
            click.option("--recursive", is_flag=True,
                         help=f"For an image index (multi-arch): {verb.lower()} the index and "
                         "every platform manifest it lists."),
            click.option("--registry-username", envvar="TLOG_REGISTRY_USERNAME", default=None,
                         help="Registry user (default: $TLOG_REGISTRY_USERNAME, else Docker's "
                         "config.json)."),
            click.option("--registry-password", envvar="TLOG_REGISTRY_PASSWORD", default=None,
                         help="Registry password or token (default: $TLOG_REGISTRY_PASSWORD)."),
            click.option("--allow-http-registry", is_flag=True,
                         help="Talk to the registry over plain HTTP."),
            click.option("--allow-insecure-registry", is_flag=True,
                         help="Do not verify the registry's TLS certificate."),
        )):
            f = option(f)
        return f
    return wrap


@dataclass(frozen=True)
class ImageArgs:
    annotations: Mapping[str, str]
    recursive: bool
    registry: RegistryOptions

    @classmethod
    def of(cls, opts: Mapping[str, Any]) -> ImageArgs:
        from tlog.client.registry import Credentials, RegistryOptions
        from tlog.core.image import parse_annotations

        user, password = opts.get("registry_username"), opts.get("registry_password")
        if (user is None) != (password is None):
            raise click.UsageError("give both --registry-username and --registry-password "
                                   "(or TLOG_REGISTRY_USERNAME and TLOG_REGISTRY_PASSWORD), or neither")
        creds = Credentials(user, password) if user is not None and password is not None else None
        return cls(parse_annotations(opts.get("annotations") or ()), bool(opts.get("recursive")),
                   RegistryOptions(creds, bool(opts.get("allow_http_registry")),
                                   bool(opts.get("allow_insecure_registry"))))

    def used(self) -> bool:
        """Any option that only the registry flow reads."""
        return bool(self.annotations or self.recursive)


def sign_in_registry(reference: str, key: SigningKey, log: TrustedLog, args: ImageArgs,
                     as_json: bool) -> None:
    """Resolve, sign, log and attach (tlog.client.image_signatures.sign_image)."""
    from tlog.client.http import LogClient
    from tlog.client.image_signatures import platform_manifests, resolve, sign_image
    from tlog.client.registry import registry_for
    from tlog.core.cosign import INDEX_TYPES
    from tlog.core.image import parse_image_name

    name = parse_image_name(reference)

    async def run() -> tuple[str, list[SignedImage]]:
        registry, path = registry_for(name.repository, args.registry)
        async with registry, LogClient(log.url) as client:
            top = await resolve(registry, path, name)
            targets = [top]
            if args.recursive and top.media_type in INDEX_TYPES:
                targets += await platform_manifests(registry, path, top)
            signed = [await sign_image(registry, path, name.by_digest(m.digest), m, key,
                                       args.annotations, client, log) for m in targets]
            return top.digest_str, signed

    digest, signed = asyncio.run(run())
    if as_json:
        echo_json({"image": reference, "digest": digest, "log": log.url, "signed": [
            {"image": str(s.image), "logIndex": s.logged.verified.entry.log_index,
             "uuid": s.logged.verified.entry.uuid, "created": s.logged.created,
             "signatureTag": _sig_tag(s), "referrer": s.referrer} for s in signed]})
        return
    if name.digest is None:
        click.echo(f"Resolved {name} to {name.repository}@{digest}")
    for s in signed:
        entry = s.logged.verified.entry
        what = "Logged" if s.logged.created else "Already logged"
        click.echo(f"{what} {s.image} as entry {entry.log_index} in log {log.name} (verified: SET, "
                   f"inclusion proof, checkpoint); signature attached as {_sig_tag(s)}"
                   + ("" if s.appended else " (already there)") + f"; bundle: {s.referrer}")


def _sig_tag(s: SignedImage) -> str:
    from tlog.core.cosign import signature_tag

    return f"{s.image.repository}:{signature_tag(s.image.digest)}"


def verify_in_registry(reference: str, public_key_pem: bytes, logs: Sequence[TrustedLog],
                       log_url: str | None, offline: bool, args: ImageArgs, as_json: bool) -> None:
    """Find the image's signatures in its registry and verify them (tlog.client.image_signatures)."""
    from tlog.client.image_signatures import (
        NoMatchingSignatures,
        platform_manifests,
        resolve,
        verify_image,
    )
    from tlog.client.registry import registry_for
    from tlog.core.cosign import INDEX_TYPES
    from tlog.core.image import parse_image_name

    name = parse_image_name(reference)
    url = log_url or os.environ.get("TLOG_URL")

    async def run() -> list[VerifiedImage]:
        registry, path = registry_for(name.repository, args.registry)
        async with registry:
            top = await resolve(registry, path, name)
            targets = [top]
            if args.recursive and top.media_type in INDEX_TYPES:
                targets += await platform_manifests(registry, path, top)
            return [await verify_image(registry, path, name.by_digest(m.digest), public_key_pem,
                                       args.annotations, logs, url, offline=offline) for m in targets]

    try:
        verified = asyncio.run(run())
    except NoMatchingSignatures as e:
        if as_json:
            failure_details(verified=False, image=str(e.image), reason=str(e),
                            candidates=[{"signature": c.where, "failure": c.failure}
                                        for c in e.candidates])
        raise
    if as_json:
        echo_json({"verified": True, "images": [{
            "image": str(v.image), "signature": v.accepted.where, "log": v.log.url,
            "logID": v.log.log_id_hex, "logIndex": v.log_index, "uuid": v.uuid,
            "integratedTime": v.integrated_time, "annotations": dict(v.annotations),
            "proof": v.proof} for v in verified]})
        return
    for v in verified:
        when = datetime.fromtimestamp(v.integrated_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        echo(f"Verified OK: {v.image} — {v.accepted.where}, entry {v.log_index} in log "
             f"{v.log.name}, integrated {when}; proven by {v.proof}", OK)

"""What the signer and verifier commands share: options, files, passphrases, the log client."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tlog.errors import InvalidInput, TlogError

if TYPE_CHECKING:
    from tlog.client.http import LogClient
    from tlog.core.trusted import TrustedLog
    from tlog.core.userkeys import SigningKey

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Where a key's passphrase is read from, first set wins: ours, then cosign's (so that a
# cosign user's key and environment work unchanged).
PASSWORD_ENVS = ("TLOG_PASSWORD", "COSIGN_PASSWORD")
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")


def log_url_option(f: F) -> F:
    return click.option("--log-url", metavar="URL", default=None,
                        help="The log to use. Default: $TLOG_URL, else the only pinned log.")(f)


def trust_option(f: F) -> F:
    return click.option("--trust", "trust_file", metavar="FILE",
                        type=click.Path(path_type=Path), default=None,
                        help="The trust file. Default: ~/.config/tlog/trust.json.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(f)


def bundle_option(help: str) -> Callable[[F], F]:
    return click.option("--bundle", "bundle_path", metavar="FILE", default=None,
                        type=click.Path(path_type=Path), help=f"The bundle. {help}")


def subject_options(verb: str) -> Callable[[F], F]:
    """ARTIFACT or --image REPO@sha256:DIGEST, and --bundle: what `sign`/`verify` work on."""
    def wrap(f: F) -> F:
        f = bundle_option("Default: ARTIFACT.bundle.json, or sha256-DIGEST.bundle.json "
                          "for an image.")(f)
        f = click.option("--image", metavar="REPO@sha256:DIGEST", default=None,
                         help=f"{verb} a container image by digest instead of a file.")(f)
        return click.argument("artifact", required=False, type=click.Path(path_type=Path))(f)
    return wrap


@dataclass(frozen=True)
class Subject:
    """What is signed: a file, an image (its simple-signing payload), or a bare digest."""

    kind: str  # "artifact" | "image"
    name: str
    digest: bytes  # SHA-256 of the signed bytes
    default_bundle: Path


def subject_of(artifact: Path | None, image: str | None, digest: str | None = None) -> Subject:
    """Exactly one of a file, an image REPO@sha256:DIGEST, or a sha256:HEX digest."""
    given = [x for x in (artifact, image, digest) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of ARTIFACT or --image")
    if image is not None:
        from tlog.core.image import parse_image_ref, payload_digest

        ref = parse_image_ref(image)
        return Subject("image", str(ref), payload_digest(ref),
                       Path(f"sha256-{ref.digest.hex()}.bundle.json"))
    if digest is not None:
        m = _DIGEST.fullmatch(digest.strip())
        if not m:
            raise InvalidInput(f"--digest must be sha256: and 64 hex digits, got {digest!r}")
        hex_digest = m.group(1).lower()
        return Subject("artifact", f"sha256:{hex_digest}", bytes.fromhex(hex_digest),
                       Path(f"sha256-{hex_digest}.bundle.json"))
    assert artifact is not None
    return Subject("artifact", str(artifact), file_sha256(artifact),
                   Path(str(artifact) + ".bundle.json"))


def trust_path(trust_file: Path | None) -> Path:
    from tlog.client.trust import default_trust_path

    return trust_file or default_trust_path()


def pinned_logs(trust_file: Path | None) -> list[TrustedLog]:
    from tlog.client.trust import load_trust

    return load_trust(trust_path(trust_file))


def selected_log(trust_file: Path | None, log_url: str | None) -> TrustedLog:
    """--log-url, else $TLOG_URL, else the only pinned log."""
    from tlog.client.trust import select_log

    return select_log(pinned_logs(trust_file), log_url)


def with_client(url: str, call: Callable[[LogClient], Awaitable[T]]) -> T:
    """Run one conversation with the log at `url`."""
    from tlog.client.http import LogClient

    async def run() -> T:
        async with LogClient(url) as client:
            return await call(client)

    return asyncio.run(run())


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise TlogError(f"cannot read {what} {path}: {e.strerror or e}") from e


def file_sha256(path: Path, what: str = "artifact") -> bytes:
    """SHA-256 of a file, read in chunks (artifacts can be large)."""
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise TlogError(f"cannot read {what} {path}: {e.strerror or e}") from e
    return h.digest()


def warn(message: str) -> None:
    click.echo(f"tlog: warning: {message}", err=True)


def passphrase(prompt: str, *, confirm: bool) -> bytes:
    """The passphrase of a private key, the way cosign gets COSIGN_PASSWORD:
    $TLOG_PASSWORD if set (even empty), else $COSIGN_PASSWORD if set, else a hidden prompt on
    a terminal, else all of standard input (one final newline dropped)."""
    for name in PASSWORD_ENVS:
        env = os.environ.get(name)
        if env is not None:
            return env.encode("utf-8")
    if sys.stdin is not None and sys.stdin.isatty():
        text = click.prompt(prompt, hide_input=True, confirmation_prompt=confirm,
                            default="", show_default=False, err=True)
        return text.encode("utf-8")
    data = sys.stdin.buffer.read()
    return data[:-1] if data.endswith(b"\n") else data


def load_signing_key(path: Path) -> SigningKey:
    """A user's private key, asking for its passphrase only if it is encrypted."""
    from tlog.core.userkeys import SigningKey, is_encrypted

    pem = read_file(path, "private key")
    secret = passphrase(f"Passphrase for {path}", confirm=False) if is_encrypted(pem) else None
    try:
        return SigningKey.from_pem(pem, secret)
    except TlogError as e:
        raise TlogError(f"{path}: {e}") from None


def echo_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2))

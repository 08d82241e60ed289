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
_DIGEST = re.compile(r"(\w+):([0-9a-fA-F]+)")


def root_log_url() -> str | None:
    """`tlog --log-url URL COMMAND`: the URL given before the command's name, which is the
    default of the command's own --log-url (given after its name)."""
    ctx = click.get_current_context(silent=True)
    url = ctx.find_root().params.get("log_url") if ctx is not None else None
    return str(url) if url else None


def log_url_option(f: F) -> F:
    return click.option("--log-url", metavar="URL", default=root_log_url,
                        help="The log to use. Default: $TLOG_URL, else the only pinned log.")(f)


def param_check(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that parses an option's value with `parse`, so that a malformed value
    is bad usage (exit 2, naming the option) rather than a failed operation (exit 1)."""
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except InvalidInput as e:
            raise click.BadParameter(str(e), ctx, param) from None
    return callback


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
    default_bundle: Path
    # The signed bytes' digest with an algorithm (sha256, sha384, sha512), computed when
    # asked: the signing key decides which (a P-384 key signs sha384), or a bundle does.
    hash: Callable[[str], bytes]
    algorithm: str | None = None  # that of a digest given as such (--digest): the only one

    def digest(self, algorithm: str = "sha256") -> bytes:
        return self.hash(algorithm)


def subject_of(artifact: Path | None, image: str | None, digest: str | None = None) -> Subject:
    """Exactly one of a file, an image REPO@sha256:DIGEST, or a sha256:HEX digest."""
    given = [x for x in (artifact, image, digest) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of ARTIFACT or --image")
    if image is not None:
        from tlog.core.image import parse_image_ref, payload_digest

        ref = parse_image_ref(image)
        return Subject("image", str(ref), Path(f"sha256-{ref.digest.hex()}.bundle.json"),
                       lambda algorithm: payload_digest(ref, algorithm=algorithm))
    if digest is not None:
        m = _DIGEST.fullmatch(digest.strip())
        from tlog.core.digests import DIGESTS  # the one digest table

        known = DIGESTS.get(m.group(1)) if m else None
        if m is None or known is None or len(m.group(2)) != known.hex_length:
            raise InvalidInput(f"--digest must be sha256: and 64 hex digits (or sha384: and 96, "
                               f"sha512: and 128), got {digest!r}")
        named, hex_digest = m.group(1), m.group(2).lower()

        def as_given(algorithm: str) -> bytes:
            if algorithm != named:
                raise InvalidInput(f"--digest gives a {named} digest, and the signature is over a "
                                   f"{algorithm} one (the key's): give --digest {algorithm}:HEX")
            return bytes.fromhex(hex_digest)
        return Subject("artifact", f"{named}:{hex_digest}", Path(f"{named}-{hex_digest}.bundle.json"),
                       as_given, named)
    assert artifact is not None
    return Subject("artifact", str(artifact), Path(str(artifact) + ".bundle.json"),
                   lambda algorithm: file_sha256(artifact, algorithm=algorithm))


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


def read_public_key(path: Path, option: str) -> bytes:
    """A public key (or certificate) file given to `option`. A private key given by mistake
    is refused here, before anything is parsed or sent: nothing left this machine, and the
    message says so (the log's own refusal, worded for a key it received, would not)."""
    pem = read_file(path, "public key")
    if b"PRIVATE KEY" in pem:
        raise InvalidInput(f"{path} is a private key: give {option} the public key (the .pub "
                           "file `tlog keygen` wrote next to it); nothing was sent")
    return pem


def file_sha256(path: Path, what: str = "artifact", *, algorithm: str = "sha256") -> bytes:
    """SHA-256 (or another `algorithm`'s digest) of a file, read in chunks (artifacts can
    be large)."""
    h = hashlib.new(algorithm)
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

"""`tlog compose verify|sign [FILE]`: the images of a Compose file, as nerdctl's
`x-nerdctl-verify` / `x-nerdctl-sign` extensions ask (tlog.core.compose), checked or signed
in their registries (cli.images). A deploy gate: exit 1 if any required verification fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cli.common import load_signing_key, log_url_option, pinned_logs, read_file, selected_log, trust_option
from cli.images import ImageArgs, image_options, sign_in_registry, verify_in_registry
from cli.main import main
from tlog.errors import InvalidInput, TlogError


@main.group()
def compose() -> None:
    """Verify or sign the images of a Compose file (nerdctl's x-nerdctl-* extensions)."""


def _file_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("compose_file", metavar="[FILE]", required=False,
                          type=click.Path(path_type=Path))(f)


@compose.command("verify")
@_file_argument
@click.option("--offline", is_flag=True, help="Prove log entries by their SET alone.")
@click.option("--log-url", metavar="URL", default=None,
              help="The pinned log to check against. Default: $TLOG_URL, else the one each "
              "signature names.")
@trust_option
@image_options("Verify")
def compose_verify(compose_file: Path | None, offline: bool, log_url: str | None,
                   trust_file: Path | None, **image_opts: Any) -> None:
    """Verify the image of every service with `x-nerdctl-verify: cosign` against its
    `x-nerdctl-cosign-public-key`; list the others as skipped. FILE defaults to compose.yaml
    (or compose.yml, docker-compose.yml, docker-compose.yaml) here."""
    args = ImageArgs.of(image_opts)
    path, plans = _plans(compose_file, "verify")
    logs = pinned_logs(trust_file)
    failed = []
    for p in plans:
        if p.skipped or p.key is None or p.image is None:
            click.echo(f"{p.service}: skipped ({p.skipped})")
            continue
        try:
            pem = read_file(_key_path(path, p.key), "public key")
            click.echo(f"{p.service}: ", nl=False)
            verify_in_registry(p.image, pem, logs, log_url, offline, args, as_json=False)
        except TlogError as e:
            click.echo(f"FAILED {p.image}: {e.diagnostics()}")
            failed.append(p.service)
    if failed:
        raise TlogError(f"{len(failed)} service image(s) failed verification: {', '.join(failed)}")


@compose.command("sign")
@_file_argument
@log_url_option
@trust_option
@image_options("Sign")
def compose_sign(compose_file: Path | None, log_url: str | None, trust_file: Path | None,
                 **image_opts: Any) -> None:
    """Sign the image of every service with `x-nerdctl-sign: cosign` with its
    `x-nerdctl-cosign-private-key` (passphrase: $TLOG_PASSWORD or $COSIGN_PASSWORD), in its
    registry; list the others as skipped."""
    args = ImageArgs.of(image_opts)
    path, plans = _plans(compose_file, "sign")
    log = selected_log(trust_file, log_url)
    for p in plans:
        if p.skipped or p.key is None or p.image is None:
            click.echo(f"{p.service}: skipped ({p.skipped})")
            continue
        click.echo(f"{p.service}: ", nl=False)
        sign_in_registry(p.image, load_signing_key(_key_path(path, p.key)), log, args, as_json=False)


def _plans(compose_file: Path | None, action: str) -> tuple[Path, list[Any]]:
    import yaml

    from tlog.core.compose import DEFAULT_FILES, interpolate_tree, plan

    path = compose_file or next((Path(n) for n in DEFAULT_FILES if Path(n).exists()), None)
    if path is None:
        raise TlogError(f"no Compose file here (looked for {', '.join(DEFAULT_FILES)}); give FILE")
    try:
        doc = yaml.safe_load(read_file(path, "Compose file"))
    except yaml.YAMLError as e:
        raise InvalidInput(f"{path}: not valid YAML: {e}") from None
    return path, plan(interpolate_tree(doc, dict(os.environ)), action)


def _key_path(compose_file: Path, key: Any) -> Path:
    """A key path from the Compose file: relative to the file's folder, as Compose reads paths."""
    key_path = Path(key).expanduser()
    return key_path if key_path.is_absolute() else compose_file.parent / key_path

"""`tlog attest` and `tlog verify-attestation`: in-toto attestations in the pinned log.

Argument parsing and printing only; the work is tlog.client.attest and tlog.core.attestation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from cli.common import (
    bundle_option,
    echo_json,
    file_sha256,
    json_option,
    load_signing_key,
    log_url_option,
    read_file,
    selected_log,
    trust_option,
    with_client,
)
from cli.main import main
from tlog.errors import TlogError

_TYPE_HELP = ("The predicate type: a URI, or one of cosign's short names slsaprovenance1, "
              "spdxjson, cyclonedx, vuln, custom.")


@main.command()
@click.argument("artifacts", nargs=-1, type=click.Path(path_type=Path))
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="Your private key (from `tlog keygen`, or any ECDSA/RSA PEM key).")
@click.option("--type", "type_", required=True, metavar="TYPE", help=_TYPE_HELP)
@click.option("--predicate", "predicate_path", required=True, type=click.Path(path_type=Path),
              help="The predicate, a JSON file (SLSA provenance, an SBOM, a scan...).")
@click.option("--image", metavar="REPO@sha256:DIGEST", default=None,
              help="Attest a container image by digest instead of files.")
@bundle_option("Default: the first ARTIFACT's name + .attestation.bundle.json, or "
               "sha256-DIGEST.attestation.bundle.json for an image.")
@log_url_option
@trust_option
@json_option
def attest(artifacts: tuple[Path, ...], key_path: Path, type_: str, predicate_path: Path,
           image: str | None, bundle_path: Path | None, log_url: str | None,
           trust_file: Path | None, as_json: bool) -> None:
    """Attest ARTIFACT... (or --image): sign an in-toto Statement v1 about them (subjects:
    their SHA-256 digests) with --predicate as its predicate, in a DSSE envelope; log it as
    a `dsse` entry, verify the log's answer against the pinned log, and write a Sigstore
    bundle (v0.3, `dsseEnvelope`) that `tlog verify --bundle B --key K ARTIFACT` checks."""
    from tlog.client.attest import sign_envelope, submit_attestation
    from tlog.core.attestation import predicate_type, statement
    from tlog.core.image import parse_image_ref
    from tlog.errors import InvalidInput

    if bool(artifacts) == (image is not None):
        raise click.UsageError("give ARTIFACT... or --image, not both")
    if image is not None:
        ref = parse_image_ref(image)
        subjects = [(ref.repository, ref.digest)]
        default = Path(f"sha256-{ref.digest.hex()}.attestation.bundle.json")
    else:
        subjects = [(a.name, file_sha256(a)) for a in artifacts]
        default = Path(str(artifacts[0]) + ".attestation.bundle.json")
    try:
        predicate = json.loads(read_file(predicate_path, "predicate"))
    except ValueError as e:
        raise InvalidInput(f"{predicate_path} is not JSON: {e}") from None
    ptype = predicate_type(type_)
    log = selected_log(trust_file, log_url)
    key = load_signing_key(key_path)
    envelope = sign_envelope(key, statement(subjects, ptype, predicate))
    logged = with_client(log.url, lambda c: submit_attestation(
        c, log, envelope, key.public_pem(), subjects[0][1]))
    out = bundle_path or default
    try:
        out.write_text(json.dumps(logged.bundle_json, indent=2) + "\n")
    except OSError as e:
        raise TlogError(f"cannot write the bundle {out}: {e.strerror or e}") from e
    entry = logged.bundle.entry
    if as_json:
        echo_json({"logIndex": entry.log_index, "log": log.url, "bundle": str(out),
                   "created": logged.created, "predicateType": ptype,
                   "subjects": [{"name": n, "sha256": d.hex()} for n, d in subjects]})
        return
    what = "Logged" if logged.created else "Already logged"
    names = ", ".join(n for n, _ in subjects)
    click.echo(f"{what} a {ptype} attestation about {names} as entry {entry.log_index} in "
               f"log {log.name} (verified: signature, SET, inclusion proof, checkpoint); "
               f"bundle written to {out}")


@main.command("verify-attestation")
@click.argument("artifact", type=click.Path(path_type=Path), required=False)
@click.option("--image", metavar="REPO@sha256:DIGEST", default=None,
              help="Verify the attestations about a container image (by digest) instead.")
@click.option("--key", "key_path", required=True, type=click.Path(path_type=Path),
              help="The attester's public key (PEM).")
@click.option("--type", "type_", required=True, metavar="TYPE", help=_TYPE_HELP)
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), default=None,
              help="A JSON policy on the statement: {predicateType, equals: {PATH: VALUE}, "
                   "matches: {PATH: REGEX}} (paths dotted from the statement's root).")
@log_url_option
@trust_option
@json_option
def verify_attestation(artifact: Path | None, image: str | None, key_path: Path, type_: str,
                       policy_path: Path | None, log_url: str | None, trust_file: Path | None,
                       as_json: bool) -> None:
    """Find the attestations about ARTIFACT in the pinned log (by its SHA-256) and verify
    each: signed by --key over the DSSE PAE, ARTIFACT among its subjects, its log entry
    proven in the pinned log (SET, inclusion proof, checkpoint), of predicate type --type,
    and (with --policy) satisfying the policy. Exit 0 if at least one passes."""
    from tlog.client.attest import find_attestations
    from tlog.core.attestation import parse_policy, predicate_type
    from tlog.core.checks import CheckFailed
    from tlog.core.image import parse_image_ref

    if (artifact is None) == (image is None):
        raise click.UsageError("give ARTIFACT or --image, not both")
    ptype = predicate_type(type_)
    policy = None if policy_path is None else parse_policy(read_file(policy_path, "policy"))
    digest = file_sha256(artifact) if artifact is not None else parse_image_ref(str(image)).digest
    pem = read_file(key_path, "public key")
    log = selected_log(trust_file, log_url)
    found = with_client(log.url, lambda c: find_attestations(c, log, digest, pem))
    results: list[dict[str, Any]] = []
    for a in found:
        problems = [a.failure] if a.failure else []
        if not problems and a.predicate_type != ptype:
            continue  # another type of attestation about the same artifact
        if not problems and policy is not None and a.statement is not None:
            problems = [f"policy: {p}" for p in policy.failures(a.statement)]
        results.append({"uuid": a.uuid, "logIndex": a.log_index, "kind": a.kind,
                        "predicateType": a.predicate_type, "verified": not problems,
                        "problems": problems})
    passed = [r for r in results if r["verified"]]
    if as_json:
        echo_json({"artifact": str(artifact or image), "sha256": digest.hex(),
                   "predicateType": ptype, "log": log.url, "verified": bool(passed), "attestations": results})
        if not passed:
            click.get_current_context().exit(1)  # one JSON document: this one
        return
    else:
        for r in results:
            state = "OK" if r["verified"] else "FAILED: " + "; ".join(str(p) for p in r["problems"])
            click.echo(f"entry {r['logIndex']} ({r['kind']}): {state}")
    if not passed:
        reason = (f"no {ptype} attestation about {artifact or image} in log {log.name} verifies"
                  + ("" if results else " (none found)"))
        raise CheckFailed("attestation", reason)
    click.echo(f"Verified OK: {len(passed)} {ptype} attestation(s) about {artifact or image}")

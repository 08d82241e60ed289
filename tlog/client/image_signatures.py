"""Signing and verifying images where they live: in their registry, in cosign's layout.

Signing (what `cosign sign --key` does, with tlog as the log): resolve the reference to a
manifest digest, sign the simple-signing payload for that digest (tlog.core.image), log it as
a hashedrekord and check the log's answer against the pinned log (tlog.client.sign), then
attach it: a layer appended to the `sha256-<hex>.sig` manifest, and the Sigstore bundle as an
OCI 1.1 referrer (tlog.core.cosign describes both layouts).

Verifying (what `cosign verify --key` does): every signature found for the digest — the
`.sig` layers and the Sigstore-bundle referrers — is a candidate; one is accepted only if it
verifies with the key, its payload names exactly this digest, it carries every required
annotation, and its log entry is proven against the pinned log: offline by the SET of the
cosign bundle annotation, and (unless offline) online by the entry's inclusion proof under
the log's signed checkpoint; a referrer's Sigstore bundle carries its own inclusion proof.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tlog.client.http import LogClient
from tlog.client.registry import Manifest, Registry, RegistryAuthError, RegistryError
from tlog.client.sign import LoggedSignature, submit_signature
from tlog.core.bundle import MEDIA_TYPE as SIGSTORE_BUNDLE, encode_bundle, parse_bundle
from tlog.core.checks import CheckFailed
from tlog.core.cosign import (
    EMPTY_JSON,
    INDEX_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    RekorBundle,
    SignatureLayer,
    add_referrer,
    append_signature,
    check_payload,
    index_children,
    manifest_layers,
    referrer_manifest,
    referrers_tag,
    signature_layers,
    signature_manifest,
    signature_tag,
    verify_offline,
)
from tlog.core.image import ImageName, ImageRef, simple_signing_payload
from tlog.core.merkle import leaf_hash
from tlog.core.trusted import TrustedLog
from tlog.core.userkeys import SigningKey
from tlog.core.verify import log_for_entry, verify_bundle, verify_log_entry
from tlog.errors import TlogError, VerificationError


async def resolve(registry: Registry, path: str, name: ImageName) -> Manifest:
    """The manifest a reference names: by digest if it has one (the tag is then ignored,
    as docker does), else what the tag points at now."""
    reference = f"sha256:{name.digest.hex()}" if name.digest is not None else str(name.tag)
    manifest = await registry.get_manifest(path, reference)
    if manifest is None:
        raise RegistryError(f"no image {name} in the registry {registry.host}",
                            hint="check the name, tag or digest (`skopeo inspect docker://IMAGE`)")
    return manifest


async def platform_manifests(registry: Registry, path: str, index: Manifest) -> list[Manifest]:
    """The manifests an image index lists (each fetched and checked against its digest)."""
    out = []
    for child in index_children(index.data):
        manifest = await registry.get_manifest(path, child.digest)
        if manifest is None:
            raise RegistryError(f"the index {index.digest_str} lists {child.digest}, which the "
                                f"registry {registry.host} does not have")
        out.append(manifest)
    return out


@dataclass(frozen=True)
class SignedImage:
    image: ImageRef
    logged: LoggedSignature
    appended: bool  # False: this very signature was already in the `.sig` manifest
    referrer: str  # "referrers API", "referrers tag sha256-…", or why there is none


async def sign_image(registry: Registry, path: str, image: ImageRef, manifest: Manifest,
                     key: SigningKey, annotations: Mapping[str, str], client: LogClient,
                     log: TrustedLog) -> SignedImage:
    """Sign `image` (whose manifest is `manifest`), log the signature in the pinned `log`,
    and attach it in cosign's tag layout and as a Sigstore-bundle referrer."""
    payload = simple_signing_payload(image, annotations)
    algorithm = key.digest_algorithm  # the key's: a P-384 key signs sha384
    digest = hashlib.new(algorithm, payload).digest()
    signature = key.sign_digest(digest, algorithm)
    logged = await submit_signature(client, log, digest, signature, key.public_pem(), subject="image",
                                    algorithm=algorithm)
    layer = SignatureLayer(payload, signature, RekorBundle.of(logged.bundle.entry)).descriptor
    tag = signature_tag(image.digest)
    existing = await registry.get_manifest(path, tag)
    layers = append_signature(existing.data if existing else None, layer)
    if layers is not None:
        sig_manifest, config = signature_manifest(layers)
        await registry.put_blob(path, payload)
        await registry.put_blob(path, config)
        await registry.put_manifest(path, tag, sig_manifest, OCI_MANIFEST)
    subject = Descriptor.of(manifest.media_type, manifest.data)
    referrer = await _attach_referrer(registry, path, image, subject, encode_bundle(logged.bundle))
    return SignedImage(image, logged, layers is not None, referrer)


async def _attach_referrer(registry: Registry, path: str, image: ImageRef, subject: Descriptor,
                           bundle: bytes) -> str:
    """Push the bundle as a referrer of `subject`; if the registry does not index it itself
    (no `OCI-Subject` header: distribution-spec "Pushing Manifests with Subject"), add it to
    the referrers tag. A registry that refuses the artifact leaves the `.sig` layout alone."""
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    manifest = referrer_manifest(bundle, subject, created)
    try:
        await registry.put_blob(path, bundle)
        await registry.put_blob(path, EMPTY_JSON)
        descriptor = Descriptor.of(OCI_MANIFEST, manifest, artifact_type=SIGSTORE_BUNDLE)
        headers = await registry.put_manifest(path, descriptor.digest, manifest, OCI_MANIFEST)
        if "OCI-Subject" in headers:
            return "referrers API"
        tag = referrers_tag(image.digest)
        existing = await registry.get_manifest(path, tag)
        index = add_referrer(existing.data if existing else None, descriptor)
        if index is not None:
            await registry.put_manifest(path, tag, index, OCI_INDEX)
        return f"referrers tag {tag}"
    except RegistryAuthError:
        raise
    except RegistryError as e:
        return f"not attached as a referrer ({e})"


# --- verifying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    where: str  # which signature: "sha256-….sig layer 1", "referrer sha256:…"
    failure: str | None  # None: this one verified


@dataclass(frozen=True)
class VerifiedImage:
    image: ImageRef
    log: TrustedLog
    log_index: int
    integrated_time: int
    uuid: str
    annotations: Mapping[str, object]
    proof: str  # how the entry was proven
    accepted: Candidate
    candidates: Sequence[Candidate] = field(default_factory=tuple)


class NoMatchingSignatures(VerificationError):
    """No signature found for the image passes every check."""

    def __init__(self, image: ImageRef, candidates: Sequence[Candidate]) -> None:
        why = "; ".join(f"{c.where}: {c.failure}" for c in candidates) if candidates else \
            (f"none found (no {signature_tag(image.digest)} tag and no Sigstore-bundle referrers)")
        super().__init__(f"no matching signatures for {image}: {why}")
        self.image = image
        self.candidates = list(candidates)


async def verify_image(registry: Registry, path: str, image: ImageRef, public_key_pem: bytes,
                       required: Mapping[str, str], logs: Sequence[TrustedLog], log_url: str | None,
                       *, offline: bool = False) -> VerifiedImage:
    """Find `image`'s signatures in its registry and accept the first that passes every
    check (module docstring); NoMatchingSignatures, saying why each failed, if none does."""
    tried: list[Candidate] = []
    sig_manifest = await registry.get_manifest(path, signature_tag(image.digest))
    if sig_manifest is not None:
        for i, (layer, signature, rekor) in enumerate(signature_layers(sig_manifest.data), 1):
            where = f"{signature_tag(image.digest)} layer {i}"
            try:
                if signature is None:
                    raise CheckFailed("signature", "the layer has no base64 signature annotation")
                if rekor is None:
                    raise CheckFailed("log", "the layer has no (valid) cosign bundle annotation: "
                                             "nothing shows the signature was logged")
                payload = await registry.get_blob(path, layer.digest)
                signed = check_payload(payload, image.digest, required)
                log = log_for_entry(logs, _log_id(rekor.log_id_hex), log_url)
                verify_offline(payload, signature, rekor, public_key_pem, log)
                proof = "SET (offline)"
                if not offline:
                    await _prove_included(log, rekor)
                    proof = "SET and inclusion proof under the log's signed checkpoint"
            except TlogError as e:
                tried.append(Candidate(where, _reason(e)))
                continue
            accepted = Candidate(where, None)
            return VerifiedImage(image, log, rekor.log_index, rekor.integrated_time,
                                 leaf_hash(rekor.body).hex(), signed.annotations, proof, accepted,
                                 (*tried, accepted))
    for where, bundle_bytes in await _referrer_bundles(registry, path, image):
        try:
            bundle = parse_bundle(bundle_bytes)
            log = log_for_entry(logs, bundle.entry.log_id, log_url)
            payload = simple_signing_payload(image, required)
            try:
                digest = hashlib.new(bundle.algorithm, payload).digest()
                verified = verify_bundle(bundle, digest, public_key_pem, log, subject="image")
            except CheckFailed as e:
                if e.check == "image":
                    raise CheckFailed("payload", "the bundle signs another payload than this "
                                      "digest's with exactly the required annotations") from None
                raise
        except TlogError as e:
            tried.append(Candidate(where, _reason(e)))
            continue
        accepted = Candidate(where, None)
        entry = verified.entry
        return VerifiedImage(image, log, entry.log_index, entry.integrated_time, entry.uuid,
                             dict(required), "Sigstore bundle: SET and inclusion proof", accepted,
                             (*tried, accepted))
    raise NoMatchingSignatures(image, tried)


async def _prove_included(log: TrustedLog, rekor: RekorBundle) -> None:
    """Online: the pinned log serves the entry with an inclusion proof under a checkpoint
    signed by its key, and it is the entry the annotation names."""
    async with LogClient(log.url) as client:
        answer = await client.entry_by_uuid(leaf_hash(rekor.body).hex())
    verified = verify_log_entry(answer, log)
    if verified.entry.body != rekor.body or verified.entry.log_index != rekor.log_index:
        raise CheckFailed("inclusion proof", "the log serves another entry than the annotation's")


async def _referrer_bundles(registry: Registry, path: str, image: ImageRef) -> list[tuple[str, bytes]]:
    """The Sigstore bundles attached to `image` as referrers (the API, else the tag)."""
    digest = f"sha256:{image.digest.hex()}"
    index = await registry.referrers(path, digest)
    if index is None:
        tagged = await registry.get_manifest(path, referrers_tag(image.digest))
        index = tagged.data if tagged is not None and tagged.media_type in INDEX_TYPES else None
    if index is None:
        return []
    out = []
    for child in index_children(index):
        if child.artifact_type != SIGSTORE_BUNDLE:
            continue
        where = f"referrer {child.digest}"
        try:
            manifest = await registry.get_manifest(path, child.digest)
            layers = manifest_layers(manifest.data, where) if manifest else []
            bundle = [d for d in layers if d.media_type == SIGSTORE_BUNDLE]
            if not bundle:
                continue
            out.append((where, await registry.get_blob(path, bundle[0].digest)))
        except TlogError:
            continue
    return out


def _log_id(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CheckFailed("log", f"the cosign bundle's logID {text[:80]!r} is not hex") from None


def _reason(e: TlogError) -> str:
    return str(e) if isinstance(e, CheckFailed) else e.diagnostics()

"""Signatures stored next to an image, as cosign stores them: layouts and JSON, no I/O.

Two places hold an image's signatures in its repository (the registry calls are
tlog.client.registry's; this module only builds and reads the documents):

- **cosign's tag layout** (cosign `pkg/oci/remote` `SignatureTag`, `pkg/oci/static`,
  `pkg/oci/mutate`): the tag `sha256-<hex>.sig` names an OCI image manifest with one layer
  per signature. Each layer is the simple-signing payload (media type
  `application/vnd.dev.cosign.simplesigning.v1+json`) annotated with
  `dev.cosignproject.cosign/signature` (the base64 signature) and `dev.sigstore.cosign/bundle`
  (cosign's `RekorBundle`, `pkg/cosign/bundle/rekor.go`:
  `{"SignedEntryTimestamp":…,"Payload":{"body":…,"integratedTime":…,"logIndex":…,"logID":…}}`,
  Go field order). A new signature is appended; the ones already there are kept.
- **an OCI 1.1 referrer** (image-spec 1.1 `manifest.md` "subject" and "artifactType";
  cosign `specs/BUNDLE_SPEC.md`): an artifact manifest whose `subject` is the image, whose
  `artifactType` and single layer are the Sigstore bundle, found through the distribution
  spec's referrers API or, on registries without it, the referrers tag `sha256-<hex>` (an
  image index, distribution-spec "Referrers Tag Schema").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tlog.core.bundle import MEDIA_TYPE as SIGSTORE_BUNDLE, TlogEntry
from tlog.core.checks import CheckFailed
from tlog.core.entries.hashedrekord import (
    HashedRekord,
    digest_for_pem,
    parse_body,
    public_key_fingerprint_of_pem,
    verify_signature,
)
from tlog.core.image import SignedPayload, go_json, parse_payload
from tlog.core.timestamp import verify_set
from tlog.core.trusted import TrustedLog
from tlog.errors import InvalidInput, VerificationError

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"  # BUNDLE_SPEC.md "Annotations"
TITLE_ANNOTATION = "org.opencontainers.image.title"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST)
# image-spec 1.1 "Guidance for an Empty Descriptor": the two bytes `{}`.
EMPTY_JSON = b"{}"
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what go-containerregistry writes


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>`: a content descriptor's digest (image-spec `descriptor.md`)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def signature_tag(digest: bytes) -> str:
    """cosign's signature tag for the manifest with SHA-256 `digest`: `sha256-<hex>.sig`."""
    return f"sha256-{digest.hex()}.sig"


def referrers_tag(digest: bytes) -> str:
    """The distribution spec's referrers fallback tag: `sha256-<hex>`."""
    return f"sha256-{digest.hex()}"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (image-spec `descriptor.md`)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes, annotations: Mapping[str, str] | None = None,
           artifact_type: str | None = None) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data), dict(annotations or {}), artifact_type)

    def to_json(self) -> dict[str, Any]:
        """go-containerregistry's member order: mediaType, size, digest, annotations, artifactType."""
        out: dict[str, Any] = {"mediaType": self.media_type, "size": self.size, "digest": self.digest}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


def descriptor_from_json(obj: object, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise InvalidInput(f"{where}: a descriptor must be an object")
    media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    annotations = obj.get("annotations") or {}
    if not (isinstance(media_type, str) and isinstance(digest, str) and isinstance(size, int)
            and isinstance(annotations, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())):
        raise InvalidInput(f"{where}: a descriptor needs mediaType, digest, size (and string annotations)")
    artifact_type = obj.get("artifactType")
    return Descriptor(media_type, digest, size, annotations,
                      artifact_type if isinstance(artifact_type, str) else None)


def parse_manifest(data: bytes, where: str = "manifest") -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{where}: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: not a JSON object")
    return doc


def index_children(data: bytes) -> list[Descriptor]:
    """The manifests an image index (or Docker manifest list) lists."""
    doc = parse_manifest(data, "image index")
    items = doc.get("manifests")
    if not isinstance(items, list):
        raise InvalidInput("image index: no manifests list")
    return [descriptor_from_json(m, "image index manifests[]") for m in items]


def manifest_layers(data: bytes, where: str) -> list[Descriptor]:
    """The layers of an image manifest."""
    layers = parse_manifest(data, where).get("layers")
    if not isinstance(layers, list):
        raise InvalidInput(f"{where}: no layers list")
    return [descriptor_from_json(layer, f"{where} layers[]") for layer in layers]


# --- cosign's RekorBundle (the `dev.sigstore.cosign/bundle` annotation) ----------------------


@dataclass(frozen=True)
class RekorBundle:
    """cosign's `RekorBundle`: what cosign keeps of a log entry to verify it offline (SET)."""

    signed_entry_timestamp: bytes
    body: bytes
    integrated_time: int
    log_index: int
    log_id_hex: str

    @classmethod
    def of(cls, entry: TlogEntry) -> RekorBundle:
        return cls(entry.signed_entry_timestamp, entry.body, entry.integrated_time,
                   entry.log_index, entry.log_id.hex())

    def to_text(self) -> str:
        """The annotation's value: Go's json.Marshal of the struct (field order kept; the
        []byte SET and the body as standard base64)."""
        return go_json({
            "SignedEntryTimestamp": _b64(self.signed_entry_timestamp),
            "Payload": {"body": _b64(self.body), "integratedTime": self.integrated_time,
                        "logIndex": self.log_index, "logID": self.log_id_hex},
        }).decode("utf-8")


def parse_rekor_bundle(text: str) -> RekorBundle:
    """Read a `dev.sigstore.cosign/bundle` annotation; InvalidInput naming what is wrong."""
    try:
        doc = json.loads(text)
        payload = doc["Payload"]
        set_b64, body_b64 = doc["SignedEntryTimestamp"], payload["body"]
        integrated, index, log_id = payload["integratedTime"], payload["logIndex"], payload["logID"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("cosign bundle: not {SignedEntryTimestamp, Payload: {body, "
                           "integratedTime, logIndex, logID}}") from None
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (integrated, index)):
        raise InvalidInput("cosign bundle: integratedTime and logIndex must be integers")
    if not isinstance(log_id, str):
        raise InvalidInput("cosign bundle: logID must be a string")
    return RekorBundle(_unb64(set_b64, "SignedEntryTimestamp"), _unb64(body_b64, "Payload.body"),
                       integrated, index, log_id)


# --- the `.sig` manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureLayer:
    """One signature in cosign's layout: the payload blob and the layer that annotates it."""

    payload: bytes
    signature: bytes
    rekor_bundle: RekorBundle

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor.of(SIMPLE_SIGNING, self.payload, {
            SIGNATURE_ANNOTATION: _b64(self.signature),
            BUNDLE_ANNOTATION: self.rekor_bundle.to_text(),
        })


def signature_manifest(layers: Sequence[Descriptor]) -> tuple[bytes, bytes]:
    """(manifest, config) of a signature image holding `layers`: an OCI image manifest whose
    config is the image config go-containerregistry writes for layers appended to
    `empty.Image` (cosign `pkg/oci/static`, `mutate.Append`): uncompressed layers, so each
    diff_id is the layer's digest."""
    config = go_json({
        "architecture": "", "created": _ZERO_TIME,
        "history": [{"created": _ZERO_TIME} for _ in layers], "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        "config": {},
    })
    manifest = go_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": Descriptor.of(OCI_CONFIG, config).to_json(),
        "layers": [layer.to_json() for layer in layers],
    })
    return manifest, config


def append_signature(existing: bytes | None, layer: Descriptor) -> list[Descriptor] | None:
    """The layers of the `.sig` manifest once `layer` is added to `existing` (None: there
    is none yet), or None if an identical layer is already there (nothing to write)."""
    layers = manifest_layers(existing, "signature manifest") if existing is not None else []
    if any(old.digest == layer.digest and dict(old.annotations) == dict(layer.annotations)
           for old in layers):
        return None
    return [*layers, layer]


# --- the Sigstore bundle as an OCI 1.1 referrer ------------------------------------------------


def referrer_manifest(bundle: bytes, subject: Descriptor, created: str) -> bytes:
    """The artifact manifest that attaches a Sigstore bundle to `subject` (BUNDLE_SPEC.md)."""
    layer = Descriptor.of(SIGSTORE_BUNDLE, bundle,
                          {TITLE_ANNOTATION: sha256_digest(bundle).replace(":", "-") + ".sigstore.json"})
    return go_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIGSTORE_BUNDLE,
        "config": Descriptor.of(OCI_EMPTY, EMPTY_JSON).to_json(),
        "layers": [layer.to_json()],
        "subject": {"mediaType": subject.media_type, "size": subject.size, "digest": subject.digest},
        "annotations": {BUNDLE_CONTENT_ANNOTATION: "message-signature",
                        "org.opencontainers.image.created": created},
    })


def add_referrer(existing: bytes | None, referrer: Descriptor) -> bytes | None:
    """The referrers-tag index with `referrer` added (distribution-spec "Referrers Tag
    Schema"); None if it is listed already."""
    listed = index_children(existing) if existing is not None else []
    if any(d.digest == referrer.digest for d in listed):
        return None
    return go_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                    "manifests": [d.to_json() for d in [*listed, referrer]]})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"cosign bundle: {where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise InvalidInput(f"cosign bundle: {where} is not valid base64") from None


# --- verifying one signature of the tag layout -------------------------------------------------


def signature_layers(manifest: bytes) -> list[tuple[Descriptor, bytes | None, RekorBundle | None]]:
    """Each layer of a `.sig` manifest with its decoded signature and cosign bundle (None
    where the annotation is missing or malformed: that candidate then fails, others are
    still tried)."""
    out: list[tuple[Descriptor, bytes | None, RekorBundle | None]] = []
    for layer in manifest_layers(manifest, "signature manifest"):
        signature: bytes | None = None
        rekor: RekorBundle | None = None
        try:
            text = layer.annotations.get(SIGNATURE_ANNOTATION, "")
            signature = base64.b64decode(text, validate=True) or None
        except binascii.Error:
            signature = None
        if BUNDLE_ANNOTATION in layer.annotations:
            try:
                rekor = parse_rekor_bundle(layer.annotations[BUNDLE_ANNOTATION])
            except InvalidInput:
                rekor = None
        out.append((layer, signature, rekor))
    return out


def check_payload(payload: bytes, digest: bytes, required: Mapping[str, str]) -> SignedPayload:
    """The payload is a simple-signing document for the manifest with SHA-256 `digest`
    and carries every `required` annotation with its value; CheckFailed otherwise."""
    try:
        signed = parse_payload(payload)
    except InvalidInput as e:
        raise CheckFailed("payload", str(e).removeprefix("payload: ")) from None
    if signed.image.digest != digest:
        raise CheckFailed("image", f"the payload signs sha256:{signed.image.digest.hex()}, "
                                   f"not sha256:{digest.hex()}")
    for key, value in required.items():
        if signed.annotations.get(key) != value:
            got = signed.annotations.get(key)
            raise CheckFailed("annotations", f"{key}={value} required, the payload has "
                              + (f"{key}={got}" if got is not None else f"no {key}"))
    return signed


def verify_offline(payload: bytes, signature: bytes, rekor: RekorBundle, public_key_pem: bytes,
                   log: TrustedLog) -> HashedRekord:
    """A signature of the tag layout, checked without the network: it verifies over the
    payload's digest with the key (SHA-256; the key's own for P-384 and P-521: Sigstore's
    algorithm registry); the logged body records exactly that digest, signature and key;
    the entry is the pinned log's; and the log's SET over the body, integratedTime, logID
    and logIndex verifies with the pinned key (cosign's offline bundle check)."""
    is_certificate = public_key_pem.lstrip().startswith(b"-----BEGIN CERTIFICATE")
    try:
        algorithm = digest_for_pem(public_key_pem)
        digest = hashlib.new(algorithm, payload).digest()
        verify_signature(HashedRekord(algorithm, digest, signature, public_key_pem, is_certificate))
    except InvalidInput:
        raise CheckFailed("signature", "does not verify over the payload with the given public key") from None
    try:
        record = parse_body(rekor.body)
    except InvalidInput as e:
        raise CheckFailed("body", str(e).removeprefix("body: ")) from None
    if record.algorithm != algorithm or record.digest != digest:
        raise CheckFailed("body", f"the log entry records {record.artifact_key()}, not the "
                                  f"payload's {algorithm}:{digest.hex()}")
    if record.signature != signature:
        raise CheckFailed("body", "the log entry records another signature")
    if record.public_key_fingerprint() != public_key_fingerprint_of_pem(public_key_pem):
        raise CheckFailed("body", "the log entry was signed with another public key")
    if rekor.log_id_hex != log.log_id_hex:
        raise CheckFailed("log", f"the entry is from log {rekor.log_id_hex}, not the pinned log "
                                 f"{log.url} ({log.log_id_hex})")
    try:
        verify_set(log.public_key, rekor.signed_entry_timestamp, rekor.body, rekor.integrated_time,
                   rekor.log_id_hex, rekor.log_index)
    except VerificationError as e:
        raise CheckFailed("SET", str(e)) from None
    return record

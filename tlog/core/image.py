"""Container images, signed by digest: cosign's "simple signing" payload.

cosign signs an image by signing a small JSON document that names the repository and the
manifest digest (containers/image "simple signing", as cosign writes it in
`pkg/cosign/payload`); the signature, the payload's SHA-256 and the key go to the log as a
`hashedrekord`. A verifier rebuilds the same bytes from `REPO@sha256:DIGEST`, so the payload
must be byte-exact: compact JSON, these members, in this order.

Only digests are signed: a tag (`app:1.2`) names whatever the registry points it at today,
so a signature over a tag would vouch for images nobody has seen yet.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from tlog.errors import InvalidInput

PAYLOAD_TYPE = "cosign container image signature"

# Docker's reference grammar (distribution/reference): an optional registry host[:port],
# then lower-case path components separated by '/'.
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
# Docker limits a repository name to 255 characters.
_MAX_NAME = 255

_RESOLVE_HINT = ("find the digest with `docker buildx imagetools inspect IMAGE`, "
                 "`crane digest IMAGE` or `skopeo inspect docker://IMAGE`")


@dataclass(frozen=True)
class ImageRef:
    """An image by digest: `repository@sha256:<hex>`."""

    repository: str
    digest: bytes  # the manifest's SHA-256

    def __str__(self) -> str:
        return f"{self.repository}@sha256:{self.digest.hex()}"


def parse_image_ref(text: str) -> ImageRef:
    """Parse `REPO@sha256:DIGEST`; InvalidInput for a tag or anything malformed."""
    repository, at, digest = text.strip().partition("@")
    if not at:
        tagged = _split_tag(repository)
        what = f"the tag {tagged[1]!r}" if tagged else "no digest"
        raise InvalidInput(
            f"image {text!r} has {what}: sign and verify images by digest "
            "(REPO@sha256:DIGEST), because a tag can be moved to another image after it "
            f"is signed and a digest cannot; {_RESOLVE_HINT}"
        )
    tagged = _split_tag(repository)
    if tagged:
        raise InvalidInput(
            f"image {text!r} has both the tag {tagged[1]!r} and a digest: drop the tag "
            f"({tagged[0]}@{digest}), the digest alone names the image"
        )
    if not _SHA256.fullmatch(digest):
        raise InvalidInput(
            f"image digest {digest!r} must be sha256: followed by 64 lower-case hex digits"
        )
    if len(repository) > _MAX_NAME or not _REPOSITORY.fullmatch(repository):
        raise InvalidInput(
            f"image repository {repository!r} is not a valid reference: an optional "
            "registry host[:port]/ then lower-case path components (e.g. ghcr.io/org/app)"
        )
    return ImageRef(repository, bytes.fromhex(digest.removeprefix("sha256:")))


def _split_tag(repository: str) -> tuple[str, str] | None:
    """(name, tag) if the reference ends in ':tag' (a ':' after the last '/')."""
    name, colon, tag = repository.rpartition(":")
    if colon and "/" not in tag:
        return name, tag
    return None


def simple_signing_payload(image: ImageRef) -> bytes:
    """The bytes cosign signs for an image (compact JSON, cosign's member order)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": image.repository},
            "image": {"docker-manifest-digest": f"sha256:{image.digest.hex()}"},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def payload_digest(image: ImageRef) -> bytes:
    """SHA-256 of the simple-signing payload: the digest that is signed and logged."""
    return hashlib.sha256(simple_signing_payload(image)).digest()

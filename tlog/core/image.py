"""Container images, signed by digest: cosign's "simple signing" payload.

cosign signs an image by signing a small JSON document that names the repository and the
manifest digest (containers/image "simple signing", as cosign writes it in
`pkg/cosign/payload`); the signature, the payload's SHA-256 and the key go to the log as a
`hashedrekord`. A verifier rebuilds the same bytes from `REPO@sha256:DIGEST`, so the payload
must be byte-exact: compact JSON, these members, in this order.

Only digests are signed: a tag (`app:1.2`) names whatever the registry points it at today,
so a signature over a tag would vouch for images nobody has seen yet. A tag is only ever
*resolved* through the registry (tlog.client.registry), and the digest it names is signed.

`optional` carries the signer's annotations (`cosign sign -a KEY=VALUE`): cosign marshals
them with Go's encoding/json, so keys are sorted and `<`, `>`, `&`, U+2028 and U+2029 are
written as `\\u` escapes (sigstore's `pkg/signature/payload`, `Cosign.MarshalJSON`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
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


def simple_signing_payload(image: ImageRef, annotations: Mapping[str, str] | None = None) -> bytes:
    """The bytes cosign signs for an image (compact JSON, cosign's member order), with the
    signer's `annotations` as `optional` (null when there are none, as Go writes a nil map)."""
    doc = {
        "critical": {
            "identity": {"docker-reference": image.repository},
            "image": {"docker-manifest-digest": f"sha256:{image.digest.hex()}"},
            "type": PAYLOAD_TYPE,
        },
        "optional": dict(sorted(annotations.items())) if annotations else None,
    }
    return go_json(doc)


def go_json(doc: object) -> bytes:
    """Compact JSON as Go's encoding/json.Marshal writes it: the members in the order given
    (struct fields; maps are sorted by the caller), non-ASCII as UTF-8, and the HTML-unsafe
    `<`, `>`, `&` and the JavaScript-unsafe U+2028, U+2029 escaped (they only occur inside
    strings, so replacing them in the text is exact)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES:
        text = text.replace(char, escape)
    return text.encode("utf-8")


_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
               ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def payload_digest(image: ImageRef, annotations: Mapping[str, str] | None = None, *,
                   algorithm: str = "sha256") -> bytes:
    """The digest of the simple-signing payload that is signed and logged: SHA-256, or the
    signing key's `algorithm` (a P-384 key signs sha384)."""
    return hashlib.new(algorithm, simple_signing_payload(image, annotations)).digest()


@dataclass(frozen=True)
class SignedPayload:
    """What a simple-signing payload says: the image it names and the signer's annotations."""

    image: ImageRef
    annotations: Mapping[str, object]


def parse_payload(data: bytes) -> SignedPayload:
    """Read a simple-signing payload (any member order); InvalidInput if it is not a cosign
    container image signature naming `REPO` and a sha256 digest."""
    try:
        doc = json.loads(data)
        critical = doc["critical"]
        kind = critical["type"]
        repository = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
        optional = doc.get("optional") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidInput("payload: not a simple-signing JSON document") from None
    if kind != PAYLOAD_TYPE:
        raise InvalidInput(f"payload: type {kind!r} is not {PAYLOAD_TYPE!r}")
    if not isinstance(optional, dict) or not isinstance(repository, str) or not isinstance(digest, str):
        raise InvalidInput("payload: malformed identity, image or optional member")
    return SignedPayload(parse_image_ref(f"{repository}@{digest}"), optional)


def parse_annotations(pairs: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (cosign's `-a`) as a mapping; InvalidInput for one without `=`,
    an empty key, or a key given twice."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise InvalidInput(f"annotation {pair!r} is not KEY=VALUE")
        if key in out:
            raise InvalidInput(f"annotation {key!r} is given twice")
        out[key] = value
    return out


@dataclass(frozen=True)
class ImageName:
    """An image as a user names it: a repository and a tag, a digest, or both."""

    repository: str
    tag: str | None
    digest: bytes | None

    def by_digest(self, digest: bytes) -> ImageRef:
        return ImageRef(self.repository, digest)

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@sha256:{self.digest.hex()}" if self.digest is not None else ""
        return f"{self.repository}{tag}{digest}"


_TAG = re.compile(r"[\w][\w.-]{0,127}")


def parse_image_name(text: str) -> ImageName:
    """`REPO[:TAG][@sha256:DIGEST]` (Docker's reference grammar); a bare `REPO` means the tag
    `latest`, as docker and cosign read it. InvalidInput for anything malformed."""
    text = text.strip()
    name, at, digest = text.partition("@")
    tagged = _split_tag(name)
    repository, tag = tagged or (name, None)
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidInput(f"image {text!r}: tag {tag!r} is not a valid tag")
    if at:
        ref = parse_image_ref(f"{repository}@{digest}")
        return ImageName(ref.repository, tag, ref.digest)
    parse_image_ref(f"{repository}@sha256:{'0' * 64}")  # the repository's grammar
    return ImageName(repository, tag or "latest", None)


# Docker Hub: a reference without a registry host means it, and one path component means
# the `library/` namespace (distribution/reference's normalization).
DOCKER_HUB = "index.docker.io"


def registry_and_path(repository: str) -> tuple[str, str]:
    """(registry host[:port], repository path within it): the first component is a registry
    if it has a `.` or a `:` or is `localhost` (distribution/reference's rule)."""
    first, slash, rest = repository.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, repository if slash else f"library/{repository}"

"""tlog.core.image: cosign's simple-signing payload, byte for byte; images only by digest."""

from __future__ import annotations

import hashlib

import pytest

from tlog.core.image import ImageRef, parse_image_ref, payload_digest, simple_signing_payload
from tlog.errors import InvalidInput

DIGEST = "sha256:" + "ab" * 32


def test_payload_is_cosigns_simple_signing_json_exactly() -> None:
    ref = parse_image_ref(f"ghcr.io/org/app@{DIGEST}")
    assert ref == ImageRef("ghcr.io/org/app", bytes.fromhex("ab" * 32))
    expected = (
        '{"critical":{"identity":{"docker-reference":"ghcr.io/org/app"},'
        f'"image":{{"docker-manifest-digest":"{DIGEST}"}},'
        '"type":"cosign container image signature"},"optional":null}'
    ).encode()
    assert simple_signing_payload(ref) == expected
    assert payload_digest(ref) == hashlib.sha256(expected).digest()
    assert str(ref) == f"ghcr.io/org/app@{DIGEST}"


@pytest.mark.parametrize("repo", ["app", "library/ubuntu", "localhost:5000/team/app",
                                  "registry.example.com/a/b/c", "my-org/my_app.v2", "[::1]:5000/x"])
def test_valid_repositories_are_kept_as_written(repo: str) -> None:
    assert parse_image_ref(f"{repo}@{DIGEST}").repository == repo


@pytest.mark.parametrize("text,message", [
    ("ghcr.io/org/app:1.2", "has the tag '1.2'.*tags? can be moved"),
    ("ghcr.io/org/app", "has no digest"),
    ("localhost:5000/app", "has no digest"),
    (f"ghcr.io/org/app:1.2@{DIGEST}", "both the tag '1.2' and a digest: drop the tag"),
    ("ghcr.io/org/app@sha256:ABCD", "64 lower-case hex"),
    ("ghcr.io/org/app@sha512:" + "ab" * 64, "must be sha256:"),
    (f"ghcr.io/Org/App@{DIGEST}", "not a valid reference"),
    (f"ghcr.io/org//app@{DIGEST}", "not a valid reference"),
    (f'ghcr.io/org/a"pp@{DIGEST}', "not a valid reference"),
])
def test_tags_and_malformed_references_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_image_ref(text)

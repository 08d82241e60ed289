"""tlog.client.sign as a library: log a signature with a real log and get a checked bundle."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tlog.client.http import LogClient
from tlog.client.sign import decode_signature, submit_signature
from tlog.core.bundle import encode_bundle, parse_bundle
from tlog.core.keys import LogKey
from tlog.core.trusted import TrustedLog
from tlog.core.userkeys import SigningKey
from tlog.core.verify import CheckFailed, verify_bundle
from tlog.errors import InvalidInput
from tlog.server.log import Log

# The `open_log` fixture (conftest): a real log on SQLite, served on a loopback port.
OpenLog = Callable[..., Awaitable[tuple[Log, TestClient[web.Request, web.Application]]]]
DIGEST = hashlib.sha256(b"release 1.0\n").digest()


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("ecdsa-p256")


async def _served(open_log: OpenLog) -> tuple[Log, TrustedLog]:
    """A real log, and its pin (URL, name, key) as `tlog trust add` writes it."""
    lg, client = await open_log()
    return lg, TrustedLog(str(client.make_url("")).rstrip("/"), lg.origin, lg.public_key)


async def test_submit_signature_returns_a_bundle_that_verifies_offline(
        open_log: OpenLog, key: SigningKey) -> None:
    lg, pin = await _served(open_log)
    async with LogClient(pin.url) as client:
        logged = await submit_signature(client, pin, DIGEST, key.sign_digest(DIGEST),
                                        key.public_pem())
    assert logged.created and logged.verified.entry.log_index == 0
    assert logged.verified.checkpoint.size == lg.head.state.size == 1
    # What a signer saves is what a verifier later accepts, from the bundle alone.
    saved = parse_bundle(encode_bundle(logged.bundle))
    verified = verify_bundle(saved, DIGEST, key.public_pem(), pin)
    assert verified.entry.uuid == logged.verified.entry.uuid


async def test_a_signature_already_logged_is_fetched_and_bundled(
        open_log: OpenLog, key: SigningKey) -> None:
    _, pin = await _served(open_log)
    signature = key.sign_digest(DIGEST)
    async with LogClient(pin.url) as client:
        first = await submit_signature(client, pin, DIGEST, signature, key.public_pem())
        again = await submit_signature(client, pin, DIGEST, signature, key.public_pem())
    assert first.created and not again.created
    assert again.verified.entry.log_index == first.verified.entry.log_index


async def test_a_signature_the_log_would_refuse_is_never_sent(
        open_log: OpenLog, key: SigningKey) -> None:
    lg, pin = await _served(open_log)
    other = hashlib.sha256(b"something else").digest()
    async with LogClient(pin.url) as client:
        with pytest.raises(InvalidInput, match=r"^the log would refuse this signature: "):
            await submit_signature(client, pin, DIGEST, key.sign_digest(other), key.public_pem())
    assert lg.head.state.size == 0


async def test_an_answer_that_does_not_match_the_pinned_key_is_refused(
        open_log: OpenLog, key: SigningKey) -> None:
    lg, pin = await _served(open_log)
    impostor = TrustedLog(pin.url, pin.name, LogKey.generate("ed25519").public_key)
    async with LogClient(pin.url) as client:
        with pytest.raises(CheckFailed) as failed:
            await submit_signature(client, impostor, DIGEST, key.sign_digest(DIGEST),
                                   key.public_pem(), subject="image")
    assert failed.value.check == "log"
    assert lg.head.state.size == 1  # logged all the same: only the check failed


def test_decode_signature_takes_base64_text_or_raw_bytes(key: SigningKey) -> None:
    raw = key.sign_digest(DIGEST)
    assert decode_signature(raw) == raw  # openssl dgst -sign
    assert decode_signature(base64.b64encode(raw) + b"\n") == raw  # cosign sign-blob
    with pytest.raises(InvalidInput, match="empty"):
        decode_signature(b"")

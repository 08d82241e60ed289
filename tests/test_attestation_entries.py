"""`dsse` v0.0.1 and `intoto` v0.0.2 entries (issue 13): Rekor's canonical bodies, 400s for
every mismatch, 413 past the per-kind size limit, search by subject, sigstore-python's own
verification of the entries the log returns.

The pinned real Rekor bodies come from the sigstore-conformance bundles vendored in
tests/data/sigstore-conformance (Apache-2.0, see its README): `happy-path-intoto-in-dsse-v3`
(public-good Rekor, log index 155690850) and `intoto-with-custom-trust-root`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from sigstore.models import TransparencyLogEntry

from tlog.core import entries
from tlog.core.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, pae
from tlog.core.entries import dsse, intoto
from tlog.errors import InvalidInput, PayloadTooLarge
from tlog.server.api import ApiLimits

from .support import OpenLog
from .test_sigstore_interop import keyring_for

CONFORMANCE = Path(__file__).parent / "data" / "sigstore-conformance" / "bundle-verify"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def statement(*subjects: tuple[str, bytes], predicate: dict[str, Any] | None = None) -> bytes:
    return json.dumps({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": n, "digest": {"sha256": hashlib.sha256(d).hexdigest()}}
                    for n, d in subjects],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": predicate or {"buildDefinition": {"buildType": "https://example.com/b"}},
    }).encode()


def sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(message)


def pem_of(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def envelope(payload: bytes, *keys: PrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> Envelope:
    return Envelope(payload, payload_type, tuple(sign(k, pae(payload_type, payload)) for k in keys))


def dsse_request(env: Envelope, *keys: PrivateKey) -> dict[str, Any]:
    return dsse.proposed_entry(json.dumps(env.to_json()), [pem_of(k) for k in keys])


def intoto_request(env: Envelope, *keys: PrivateKey) -> dict[str, Any]:
    text = json.dumps(env.to_json()).encode()
    return intoto.proposed_entry(env, text, tuple(pem_of(k) for k in keys))


def conformance(name: str) -> tuple[dict[str, Any], bytes]:
    doc = json.loads((CONFORMANCE / name / "bundle.sigstore.json").read_bytes())
    body = base64.b64decode(doc["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"])
    return doc, body


# --- Rekor's canonical bodies ------------------------------------------------------------


def test_real_rekor_dsse_body_byte_for_byte() -> None:
    """The request Rekor got (the envelope as sigstore-python sends it: compact JSON, whose
    SHA-256 is the body's envelopeHash; the Fulcio certificate as verifier) gives Rekor's
    stored body, byte for byte — signature, verifier PEM, hashes, member order."""
    doc, body = conformance("happy-path-intoto-in-dsse-v3")
    cert = x509.load_der_x509_certificate(
        base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"]))
    request = dsse.proposed_entry(json.dumps(doc["dsseEnvelope"], separators=(",", ":")),
                                  [cert.public_bytes(serialization.Encoding.PEM)])
    entry = entries.check_request(request).verify()
    assert entry.canonical_body() == body
    subject = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))["subject"][0]
    assert f"sha256:{subject['digest']['sha256']}" in entry.artifact_keys()


def test_real_rekor_intoto_body() -> None:
    """A real intoto v0.0.2 body, resubmitted, gives Rekor's current Canonicalize() output:
    the stored body without the payload (which Rekor no longer stores) and with the
    certificate PEM normalized (rekor#1170)."""
    _, body = conformance("intoto-with-custom-trust-root")
    doc = json.loads(body)
    content = doc["spec"]["content"]
    request = {"apiVersion": "0.0.2", "kind": "intoto",
               "spec": {"content": {"envelope": content["envelope"], "hash": content["hash"]}}}
    entry = entries.check_request(request).verify()
    del content["envelope"]["payload"]
    for s in content["envelope"]["signatures"]:
        cert = x509.load_pem_x509_certificate(base64.b64decode(s["publicKey"]))
        s["publicKey"] = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    assert entry.canonical_body() == rfc8785.dumps(doc)


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ed25519.Ed25519PrivateKey.generate,
])
def test_key_types_and_canonical_form(make: Any) -> None:
    key, other = make(), ec.generate_private_key(ec.SECP256R1())
    env = envelope(statement(("a.tar", b"A"), ("b.tar", b"B")), key, other)
    entry = entries.check_request(dsse_request(env, key, other)).verify()
    body = json.loads(entry.canonical_body())
    assert rfc8785.dumps(body) == entry.canonical_body()
    assert set(body["spec"]) == {"envelopeHash", "payloadHash", "signatures"}  # no proposedContent
    sigs = [s["signature"] for s in body["spec"]["signatures"]]
    assert sigs == sorted(sigs) and len(sigs) == 2
    assert {f"sha256:{hashlib.sha256(x).hexdigest()}" for x in (b"A", b"B")} <= set(entry.artifact_keys())
    assert len(entry.key_fingerprints()) == 2
    ientry = entries.check_request(intoto_request(env, key, other)).verify()
    payload_hash = json.loads(ientry.canonical_body())["spec"]["content"]["payloadHash"]
    assert payload_hash == body["spec"]["payloadHash"]


# --- 400s ----------------------------------------------------------------------------------


def _bad_requests() -> dict[str, tuple[str, dict[str, Any]]]:
    key, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    good = envelope(statement(("a", b"a")), key)
    text = json.dumps(good.to_json())
    wrong_sig = Envelope(good.payload, good.payload_type, (sign(key, good.payload),))
    urlsafe = json.loads(text)
    urlsafe["payload"] = base64.urlsafe_b64encode(good.payload).decode().rstrip("=")
    not_statement = envelope(b"not json", key)
    return {
        "signature by another key": ("no verifier verifies", dsse_request(good, stranger)),
        "extra verifier": ("verifies none", dsse.proposed_entry(text, [pem_of(key), pem_of(stranger)])),
        "signature not over PAE": ("no verifier verifies", dsse_request(wrong_sig, key)),
        "envelope not JSON": ("not a JSON DSSE envelope", dsse.proposed_entry("{", [pem_of(key)])),
        "no signatures": ("signatures", dsse.proposed_entry(json.dumps({**good.to_json(), "signatures": []}),
                                                            [pem_of(key)])),
        "payload url-safe": ("base64", dsse.proposed_entry(json.dumps(urlsafe), [pem_of(key)])),
        "payload not a statement": ("not JSON", dsse_request(not_statement, key)),
        "verifier not base64": ("base64", _raw_verifiers(text, ["%%%"])),
        "verifier is raw PEM": ("PEM itself", _raw_verifiers(text, [pem_of(key).decode()])),
        "no verifiers": ("verifiers", dsse.proposed_entry(text, [])),
        "intoto wrong key": ("no verifier verifies", intoto_request(good, stranger)),
        "intoto single base64": ("inner", _single_base64(intoto_request(good, key))),
        "unknown kind": ("supported kinds: hashedrekord 0.0.1, dsse 0.0.1, intoto 0.0.2",
                         {"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}),
        "unknown version": ("supported: \"0.0.1\"", {**dsse_request(good, key), "apiVersion": "0.0.2"}),
    }


def _raw_verifiers(text: str, verifiers: list[str]) -> dict[str, Any]:
    return {"apiVersion": "0.0.1", "kind": "dsse",
            "spec": {"proposedContent": {"envelope": text, "verifiers": verifiers}}}


def _single_base64(request: dict[str, Any]) -> dict[str, Any]:
    env = request["spec"]["content"]["envelope"]
    env["payload"] = base64.b64decode(env["payload"]).decode()  # one layer only
    env["payload"] = base64.b64encode(base64.b64decode(env["payload"])[:7] + b"\xff").decode()
    return request


BAD = _bad_requests()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_are_400(case: str) -> None:
    message, request = BAD[case]
    with pytest.raises(InvalidInput) as raised:
        entries.check_request(request).verify()
    assert not isinstance(raised.value, PayloadTooLarge)
    assert message in str(raised.value)


# --- over HTTP ---------------------------------------------------------------------------------


async def test_submit_search_duplicate_and_sigstore_verifies(open_log: OpenLog) -> None:
    lg, client = await open_log(key_type="ecdsa-p256")
    key = ec.generate_private_key(ec.SECP256R1())
    env = envelope(statement(("app.tar", b"the app")), key)
    keyring = keyring_for(lg.public_key)
    uuids = []
    for request in (dsse_request(env, key), intoto_request(env, key)):
        r = await client.post("/api/v1/log/entries", json=request)
        assert r.status == 201, await r.text()
        answer = await r.json()
        if request["kind"] == "dsse":  # sigstore's own code (it reads hashedrekord and dsse only)
            TransparencyLogEntry._from_v1_response(answer)._verify(keyring)
        uuids.append(next(iter(answer)))
        r = await client.post("/api/v1/log/entries", json=request)
        assert r.status == 409
    # The log keeps the envelope (dsse) and the payload (intoto) and serves them back.
    for uuid, kept in zip(uuids, (json.dumps(env.to_json()).encode(), env.payload), strict=True):
        got = await (await client.get(f"/api/v1/log/entries/{uuid}")).json()
        assert base64.b64decode(got[uuid]["attestation"]["data"]) == kept
    subject = f"sha256:{hashlib.sha256(b'the app').hexdigest()}"
    payload = f"sha256:{hashlib.sha256(env.payload).hexdigest()}"
    for query in ({"hash": subject}, {"hash": payload},
                  {"publicKey": {"format": "x509", "content": base64.b64encode(pem_of(key)).decode()}}):
        r = await client.post("/api/v1/index/retrieve", json=query)
        assert sorted(await r.json()) == sorted(uuids), query
    r = await client.post("/api/v1/index/retrieve",
                          json={"hash": f"sha256:{hashlib.sha256(b'other').hexdigest()}"})
    assert await r.json() == []


async def test_per_kind_size_limit(open_log: OpenLog) -> None:
    _, client = await open_log(limits=ApiLimits(max_body=64 * 1024, max_attestation_body=256 * 1024))
    key = ec.generate_private_key(ec.SECP256R1())

    def sized(n: int) -> dict[str, Any]:
        return dsse_request(envelope(statement(("x", b"x"), predicate={"pad": "x" * n}), key), key)

    r = await client.post("/api/v1/log/entries", json=sized(100 * 1024))  # > max_body, < its own
    assert r.status == 201, await r.text()
    r = await client.post("/api/v1/log/entries", json=sized(300 * 1024))
    assert r.status == 413 and "262144" in (await r.json())["message"]
    big_hashedrekord = {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {"pad": "x" * 100_000}}
    r = await client.post("/api/v1/log/entries", json=big_hashedrekord)
    assert r.status == 413 and "65536" in (await r.json())["message"]


async def test_attestations_kept_as_files_by_an_older_tlog_are_still_served(tmp_path: Path) -> None:
    """Kept in storage now; a log written before schema 4 has them as files, read as a fallback."""
    from tlog.server.attestations import AttestationStore
    from tlog.server.storage.memory import MemoryDriver

    storage = await MemoryDriver()(tmp_path)
    store = AttestationStore(storage, tmp_path / "attestations")
    old, new = b"an old envelope", b"a new envelope"
    old_name, new_name = hashlib.sha256(old).hexdigest(), hashlib.sha256(new).hexdigest()
    (tmp_path / "attestations" / old_name[:2]).mkdir(parents=True)
    (tmp_path / "attestations" / old_name[:2] / old_name).write_bytes(old)
    await store.put(new_name, new)
    assert await storage.get_attestation(new_name) == new
    assert not (tmp_path / "attestations" / new_name[:2]).exists()
    assert await store.get(old_name) == old and await store.get(new_name) == new
    assert await store.get("00" * 32) is None and await store.get("not a name") is None
    with pytest.raises(ValueError):
        await store.put(old_name, new)

"""A log entry's canonical body must describe exactly what the bundle carries.

The log signed (SET, checkpoint) the entry's canonicalized body, not the bundle: without
this check a valid entry for one signature could vouch for another (CVE-2022-36056). Per
kind, the body must record the bundle's signature, its verification material (the leaf
certificate or the public key) and the signed content:

- Rekor v1 `hashedrekord` 0.0.1 (rekor `pkg/types/hashedrekord/v0.0.1`): `spec.data.hash`
  {algorithm sha256, hex value} is the artifact's digest; `spec.signature.content` the
  signature; `spec.signature.publicKey.content` the base64 PEM certificate or key.
- Rekor v1 `dsse` 0.0.1: `spec.payloadHash` is SHA-256 of the envelope's payload and
  `spec.signatures` the envelope's signatures, each with its base64 PEM verifier.
- Rekor v1 `intoto` 0.0.2: `spec.content.envelope` the envelope with payload and
  signatures base64-encoded once more, `spec.content.payloadHash` SHA-256 of the payload.
- Rekor v2 `hashedrekord` 0.0.2 (rekor-tiles `api/proto/rekor/v2/hashedrekord.proto`):
  `spec.hashedRekordV002.data` {algorithm SHA2_256, base64 digest}, `signature` {content,
  verifier {x509Certificate|publicKey {rawBytes}}}; a DSSE envelope is logged this way with
  the digest of its PAE (rekor-v2 spec §6.1.4).
- Rekor v2 `dsse` 0.0.2: `spec.dsseV002` {payloadHash, signatures [{content, verifier}]}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tlog.core.checks import CheckFailed
from tlog.core.sigstore_bundle import LogEntry, SigstoreBundle


def _fail(reason: str) -> CheckFailed:
    return CheckFailed("entry", reason)


def _get(obj: object, *path: str) -> object:
    for name in path:
        if not isinstance(obj, dict) or name not in obj:
            raise _fail(f"the log entry has no {'.'.join(path)}")
        obj = obj[name]
    return obj


def _b64(obj: object, *path: str) -> bytes:
    value = _get(obj, *path)
    try:
        return base64.b64decode(value if isinstance(value, str) else "!", validate=True)
    except binascii.Error:
        raise _fail(f"the log entry's {'.'.join(path)} is not base64") from None


def _pem_der(pem: bytes) -> bytes:
    """DER of a PEM certificate or public key (a body's verifier), for comparison."""
    try:
        if b"CERTIFICATE" in pem:
            return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        return serialization.load_pem_public_key(pem).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except ValueError:
        raise _fail("the log entry's verifier is not a PEM certificate or key") from None


def _same(a: bytes, b: bytes, what: str) -> None:
    if not hmac.compare_digest(a, b):
        raise _fail(f"the log entry records another {what} than the bundle's")


def _v2_verifier(obj: object) -> bytes:
    for name in ("x509Certificate", "publicKey"):
        if isinstance(obj, dict) and name in obj:
            return _b64(obj, name, "rawBytes")
    raise _fail("the log entry's verifier has neither x509Certificate nor publicKey")


def _paired(logged: object, signatures: tuple[bytes, ...]) -> list[tuple[object, bytes]]:
    """The entry's signature records beside the envelope's signatures, one for one."""
    if not isinstance(logged, list) or len(logged) != len(signatures):
        raise _fail("the log entry records another number of signatures than the envelope")
    return list(zip(logged, signatures, strict=True))


def check_entry_body(entry: LogEntry, bundle: SigstoreBundle, material: bytes,
                     digest: bytes | None) -> None:
    """The entry records `bundle`'s signature, `material` (DER of the leaf certificate or
    of the public key's SPKI) and the signed content: `digest` (SHA-256 of the artifact)
    for a message signature, the envelope itself for DSSE."""
    try:
        body = json.loads(entry.body)
    except (ValueError, UnicodeDecodeError):
        raise _fail("the log entry's body is not JSON") from None
    if _get(body, "kind") != entry.kind or _get(body, "apiVersion") != entry.version:
        raise _fail("the log entry's body is of another kind or version than its kindVersion")
    env = bundle.envelope
    kind = (entry.kind, entry.version)
    if kind == ("hashedrekord", "0.0.1"):
        if env is not None or digest is None:
            raise _fail("a hashedrekord 0.0.1 entry records a message signature, not DSSE")
        if _get(body, "spec", "data", "hash", "algorithm") != "sha256":
            raise _fail("the log entry's hash is not SHA-256")
        value = _get(body, "spec", "data", "hash", "value")
        _same(str(value).encode(), digest.hex().encode(), "artifact digest")
        _same(_b64(body, "spec", "signature", "content"), bundle.signature, "signature")
        _same(_pem_der(_b64(body, "spec", "signature", "publicKey", "content")), material,
              "certificate or key")
    elif kind == ("hashedrekord", "0.0.2"):
        spec = _get(body, "spec", "hashedRekordV002")
        if _get(spec, "data", "algorithm") != "SHA2_256":
            raise _fail("the log entry's digest is not SHA2_256")
        signed = digest if env is None else hashlib.sha256(env.pae()).digest()
        if signed is None:
            raise _fail("no digest to compare the log entry with")
        _same(_b64(spec, "data", "digest"), signed, "digest")
        _same(_b64(spec, "signature", "content"), bundle.signature, "signature")
        _same(_v2_verifier(_get(spec, "signature", "verifier")), material, "certificate or key")
    elif kind == ("dsse", "0.0.1"):
        if env is None:
            raise _fail("a dsse entry needs a DSSE envelope in the bundle")
        if _get(body, "spec", "payloadHash", "algorithm") != "sha256":
            raise _fail("the log entry's payload hash is not SHA-256")
        _same(str(_get(body, "spec", "payloadHash", "value")).encode(),
              hashlib.sha256(env.payload).hexdigest().encode(), "payload")
        for logged, sig in _paired(_get(body, "spec", "signatures"), env.signatures):
            _same(_b64(logged, "signature"), sig, "signature")
            _same(_pem_der(_b64(logged, "verifier")), material, "certificate or key")
    elif kind == ("dsse", "0.0.2"):
        if env is None:
            raise _fail("a dsse entry needs a DSSE envelope in the bundle")
        spec = _get(body, "spec", "dsseV002")
        _same(_b64(spec, "payloadHash", "digest"), hashlib.sha256(env.payload).digest(), "payload")
        for logged, sig in _paired(_get(spec, "signatures"), env.signatures):
            _same(_b64(logged, "content"), sig, "signature")
            _same(_v2_verifier(_get(logged, "verifier")), material, "certificate or key")
    elif kind == ("intoto", "0.0.2"):
        if env is None:
            raise _fail("an intoto entry needs a DSSE envelope in the bundle")
        content = _get(body, "spec", "content")
        if _get(content, "payloadHash", "algorithm") != "sha256":
            raise _fail("the log entry's payload hash is not SHA-256")
        _same(str(_get(content, "payloadHash", "value")).encode(),
              hashlib.sha256(env.payload).hexdigest().encode(), "payload")
        logged_env = _get(content, "envelope")
        if "payload" in logged_env:  # type: ignore[operator]
            _same(base64.b64decode(_b64(logged_env, "payload")), env.payload, "payload")
        if _get(logged_env, "payloadType") != env.payload_type:
            raise _fail("the log entry records another payload type than the envelope's")
        for logged, sig in _paired(_get(logged_env, "signatures"), env.signatures):
            _same(base64.b64decode(_b64(logged, "sig")), sig, "signature")
            _same(_pem_der(_b64(logged, "publicKey")), material, "certificate or key")
    else:
        raise _fail(f"unsupported log entry kind {entry.kind} {entry.version}")

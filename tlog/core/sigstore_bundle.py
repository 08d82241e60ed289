"""Any Sigstore bundle, v0.1 to v0.3 (protobuf-specs `dev.sigstore.bundle.v1.Bundle`).

tlog.core.bundle reads and writes the key-signed bundles tlog itself produces; this module
reads every bundle a Sigstore client may hand a verifier: certificate chains (v0.1, v0.2),
a single leaf certificate (v0.3), a public-key hint, a message signature or a DSSE
envelope, RFC 3161 timestamps, and Rekor v1 or v2 log entries. Parsing is strict and every
defect is a `CheckFailed("bundle", …)`: a bundle that does not parse verifies nothing.

Media types (protobuf-specs `sigstore_bundle.proto`): `application/vnd.dev.sigstore.bundle
+json;version=0.1|0.2|0.3` and, for v0.3 on, `application/vnd.dev.sigstore.bundle.v0.3+json`.
Per version: v0.1 entries MUST carry an inclusion promise (SET); v0.2 and later MUST carry
an inclusion proof with a checkpoint; v0.3 carries the leaf alone in `certificate`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from cryptography import x509

from tlog.core.checks import CheckFailed
from tlog.core.dsse import Envelope, parse_envelope
from tlog.errors import InvalidInput

__all__ = ["Envelope", "InclusionProof", "LogEntry", "SigstoreBundle", "b64",
           "parse_sigstore_bundle"]

_MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class InclusionProof:
    """`dev.sigstore.rekor.v1.InclusionProof`: RFC 9162 audit path plus the signed checkpoint."""

    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None  # the signed note; required from v0.2 on


@dataclass(frozen=True)
class LogEntry:
    """`dev.sigstore.rekor.v1.TransparencyLogEntry`, as a Rekor v1 or v2 log wrote it."""

    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int  # 0 when absent (Rekor v2 has none)
    set_signature: bytes | None  # inclusionPromise.signedEntryTimestamp
    proof: InclusionProof | None
    body: bytes  # canonicalizedBody


@dataclass(frozen=True)
class SigstoreBundle:
    """What a verifier needs from a bundle, decoded."""

    version: str  # "0.1", "0.2" or "0.3"
    certificates: tuple[x509.Certificate, ...]  # the leaf first; empty for a key-signed bundle
    signature: bytes  # the message signature, or the envelope's one signature
    message_digest: bytes | None  # messageSignature.messageDigest (SHA2_256), a hint
    envelope: Envelope | None
    entry: LogEntry
    timestamps: tuple[bytes, ...]  # DER RFC 3161 TimeStampResponses


def _fail(reason: str) -> CheckFailed:
    return CheckFailed("bundle", reason)


def _obj(value: object, path: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _fail(f"{path} must be an object")
    return value


def _list(value: object, path: str) -> list[object]:
    if not isinstance(value, list):
        raise _fail(f"{path} must be an array")
    return value


def _str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"{path} must be a string")
    return value


def b64(value: object, path: str) -> bytes:
    """Standard base64 (protobuf JSON `bytes`), strict but for line breaks, which Go's
    decoder (and so protojson) skips; CheckFailed("bundle") otherwise."""
    text = _str(value, path).replace("\n", "").replace("\r", "")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise _fail(f"{path} is not valid base64") from None


def _uint(value: object, path: str) -> int:
    """protobuf JSON int64: a decimal string (or number); negative values are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _fail(f"{path} must be an integer")
    try:
        n = int(value)
    except ValueError:
        raise _fail(f"{path} must be an integer") from None
    if n < 0:
        raise _fail(f"{path} must not be negative, got {n}")
    return n


def _cert(value: object, path: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(b64(_obj(value, path).get("rawBytes"), path + ".rawBytes"))
    except ValueError as e:
        raise _fail(f"{path} is not a DER certificate: {e}") from None


def parse_sigstore_bundle(data: bytes) -> SigstoreBundle:
    """Decode a bundle's JSON; CheckFailed("bundle") naming the first defect."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(f"not JSON: {e}") from None
    doc = _obj(doc, "bundle")
    media_type = _str(doc.get("mediaType"), "mediaType")
    version = _MEDIA_TYPES.get(media_type)
    if version is None:
        raise _fail(f"unsupported media type {media_type!r}")
    material = _obj(doc.get("verificationMaterial"), "verificationMaterial")
    certs: tuple[x509.Certificate, ...] = ()
    if "certificate" in material:
        certs = (_cert(material["certificate"], "verificationMaterial.certificate"),)
    elif "x509CertificateChain" in material:
        if version == "0.3":
            raise _fail("a v0.3 bundle carries its leaf in `certificate`, not a chain")
        chain = _list(_obj(material["x509CertificateChain"], "x509CertificateChain").get("certificates"),
                      "x509CertificateChain.certificates")
        if not chain:
            raise _fail("x509CertificateChain.certificates is empty")
        certs = tuple(_cert(c, f"x509CertificateChain.certificates[{i}]") for i, c in enumerate(chain))
    elif "publicKey" not in material:
        raise _fail("verificationMaterial has no certificate, chain or public key")
    entries = _list(material.get("tlogEntries"), "verificationMaterial.tlogEntries")
    if len(entries) != 1:
        raise _fail(f"expected exactly one transparency log entry, got {len(entries)}")
    entry = _entry(entries[0])
    if version == "0.1" and entry.set_signature is None:
        raise _fail("a v0.1 bundle's log entry must carry an inclusion promise")
    if version != "0.1" and (entry.proof is None or entry.proof.checkpoint is None):
        raise _fail(f"a v{version} bundle's log entry must carry an inclusion proof with a "
                    "checkpoint")
    tsv = _obj(material.get("timestampVerificationData", {}), "timestampVerificationData")
    timestamps = tuple(b64(_obj(t, "rfc3161Timestamps[]").get("signedTimestamp"),
                           "rfc3161Timestamps[].signedTimestamp")
                       for t in _list(tsv.get("rfc3161Timestamps", []), "rfc3161Timestamps"))
    envelope = None
    digest = None
    if "messageSignature" in doc:
        msg = _obj(doc["messageSignature"], "messageSignature")
        signature = b64(msg.get("signature"), "messageSignature.signature")
        if "messageDigest" in msg:
            md = _obj(msg["messageDigest"], "messageSignature.messageDigest")
            if md.get("algorithm") != "SHA2_256":
                raise _fail(f"unsupported message digest algorithm {md.get('algorithm')!r}")
            digest = b64(md.get("digest"), "messageSignature.messageDigest.digest")
    elif "dsseEnvelope" in doc:
        try:
            envelope = parse_envelope(doc["dsseEnvelope"], "dsseEnvelope")
        except InvalidInput as e:
            raise _fail(str(e)) from None
        if len(envelope.signatures) != 1:
            raise _fail("a DSSE envelope must carry exactly one signature, got "
                        f"{len(envelope.signatures)}")
        signature = envelope.signatures[0]
    else:
        raise _fail("the bundle has neither messageSignature nor dsseEnvelope")
    return SigstoreBundle(version, certs, signature, digest, envelope, entry, timestamps)


def _entry(value: object) -> LogEntry:
    e = _obj(value, "tlogEntries[0]")
    kv = _obj(e.get("kindVersion"), "kindVersion")
    promise = e.get("inclusionPromise")
    set_sig = None if promise is None else b64(
        _obj(promise, "inclusionPromise").get("signedEntryTimestamp"),
        "inclusionPromise.signedEntryTimestamp")
    proof = None
    if (p := e.get("inclusionProof")) is not None:
        p = _obj(p, "inclusionProof")
        proof = InclusionProof(
            _uint(p.get("logIndex"), "inclusionProof.logIndex"),
            _uint(p.get("treeSize"), "inclusionProof.treeSize"),
            b64(p.get("rootHash"), "inclusionProof.rootHash"),
            tuple(b64(h, "inclusionProof.hashes[]") for h in _list(p.get("hashes", []),
                                                                   "inclusionProof.hashes")),
            None if p.get("checkpoint") is None else
            _str(_obj(p.get("checkpoint"), "inclusionProof.checkpoint").get("envelope"),
                 "inclusionProof.checkpoint.envelope"))
    return LogEntry(
        _uint(e.get("logIndex"), "logIndex"),
        b64(_obj(e.get("logId"), "logId").get("keyId"), "logId.keyId"),
        _str(kv.get("kind"), "kindVersion.kind"),
        _str(kv.get("version"), "kindVersion.version"),
        _uint(e.get("integratedTime", 0), "integratedTime"),
        set_sig, proof,
        b64(e.get("canonicalizedBody"), "canonicalizedBody"))

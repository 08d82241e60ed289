"""DSSE envelopes: the one parser and the Pre-Authentication Encoding (PAE) every part of
tlog uses — the `dsse`/`intoto` log entries (tlog.core.entries), Sigstore bundles
(tlog.core.sigstore_bundle), their log-entry checks (tlog.core.rekor_entries) and `tlog
attest` (tlog.client.attest).

DSSE v1 (secure-systems-lab/dsse, envelope.md and protocol.md): an envelope is the JSON
object `{"payload": Base64(SERIALIZED_BODY), "payloadType": TYPE, "signatures": [{"keyid":
KEYID, "sig": Base64(SIGNATURE)}]}`; each signature is over
`PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, LEN the decimal byte
length with no leading zeros, never over the payload alone. Pure: bytes in, values out.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Final

from tlog.errors import InvalidInput

# in-toto's payload type (in-toto attestation spec, Envelope layer).
IN_TOTO_PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
# Most signatures one envelope may carry: each costs a signature check at admission.
MAX_SIGNATURES: Final = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 PAE (protocol.md): `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope (envelope.md), decoded: the payload's bytes, its type, and each
    signature's bytes (with its optional, unauthenticated `keyid`)."""

    payload: bytes
    payload_type: str
    signatures: tuple[bytes, ...]
    keyids: tuple[str, ...] = ()

    def pae(self) -> bytes:
        """What every signature of the envelope signs (`pae`)."""
        return pae(self.payload_type, self.payload)

    def to_json(self) -> dict[str, object]:
        """The envelope as JSON (envelope.md), standard base64; `keyid` only where set."""
        keyids = self.keyids or ("",) * len(self.signatures)
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {**({"keyid": k} if k else {}), "sig": base64.b64encode(s).decode("ascii")}
                for s, k in zip(self.signatures, keyids, strict=True)
            ],
        }


def decode_base64(value: object, path: str, *, canonical: bool = False) -> bytes:
    """Standard, padded base64 (RFC 4648 §4), as protobuf JSON and Sigstore clients write
    an envelope's bytes; line breaks are skipped, as Go's decoder skips them. `canonical`:
    the text must be exactly what re-encoding the bytes gives (one text per value), for
    fields a log entry records as text. InvalidInput naming `path` otherwise."""
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: expected a base64 string, got {_json_type(value)}")
    text = value if canonical else value.replace("\n", "").replace("\r", "")
    if "-" in text or "_" in text:
        raise InvalidInput(f"{path}: URL-safe base64 is not accepted; use standard base64 (+ /)")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidInput(f"{path}: not valid standard, padded base64") from None
    if canonical and base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInput(f"{path}: not canonical base64 (padding bits must be zero)")
    return raw


def parse_envelope(obj: object, path: str = "envelope", *, canonical: bool = False) -> Envelope:
    """An envelope from its parsed JSON (envelope.md): a non-empty `payloadType`, base64
    `payload` and at least one `{sig, keyid?}`; unknown members are ignored, as DSSE
    readers do. InvalidInput naming the field at fault. Nothing is verified here."""
    if not isinstance(obj, dict):
        raise InvalidInput(f"{path}: expected a JSON object, got {_json_type(obj)}")
    for name in ("payload", "payloadType", "signatures"):
        if name not in obj:
            raise InvalidInput(f"{path}.{name}: required")
    payload_type = obj["payloadType"]
    if not isinstance(payload_type, str) or not payload_type:
        raise InvalidInput(f"{path}.payloadType: expected a non-empty string")
    payload = decode_base64(obj["payload"], f"{path}.payload", canonical=canonical)
    signatures = obj["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise InvalidInput(f"{path}.signatures: expected a non-empty array")
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidInput(f"{path}.signatures: at most {MAX_SIGNATURES} signatures, "
                           f"got {len(signatures)}")
    sigs: list[bytes] = []
    keyids: list[str] = []
    for i, s in enumerate(signatures):
        where = f"{path}.signatures[{i}]"
        if not isinstance(s, dict) or "sig" not in s:
            raise InvalidInput(f"{where}: expected an object with a sig")
        sig = decode_base64(s["sig"], f"{where}.sig", canonical=canonical)
        if not sig:
            raise InvalidInput(f"{where}.sig: must not be empty")
        keyid = s.get("keyid") or ""
        if not isinstance(keyid, str):
            raise InvalidInput(f"{where}.keyid: expected a string")
        sigs.append(sig)
        keyids.append(keyid)
    return Envelope(payload, payload_type, tuple(sigs), tuple(keyids))


def parse_envelope_json(text: str | bytes, path: str = "envelope") -> Envelope:
    """`parse_envelope` of an envelope's JSON text (a dsse entry's `proposedContent.envelope`),
    with canonical base64 in its fields."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{path}: not a JSON DSSE envelope") from None
    return parse_envelope(obj, path, canonical=True)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), type(value).__name__)

"""In-toto attestations (issue 13): statements, predicate types, envelopes kept by the log,
and the small JSON policy `tlog verify-attestation --policy` checks.

in-toto Statement v1 (in-toto/attestation spec/v1/statement.md): `{"_type":
"https://in-toto.io/Statement/v1", "subject": [{"name", "digest": {"sha256": HEX}}],
"predicateType": URI, "predicate": {...}}`, carried as the payload of a DSSE envelope of
type `application/vnd.in-toto+json` (tlog.core.dsse). Predicate short names are cosign's
(`cosign attest --type`, pkg/cosign/attestation: slsaprovenance1, spdxjson, cyclonedx,
vuln, custom).

Policy (a JSON object; every member optional, all must hold):

    {"predicateType": "https://slsa.dev/provenance/v1",
     "equals":  {"predicate.runDetails.builder.id": "https://github.com/org/repo/..."},
     "matches": {"predicate.buildDefinition.externalParameters.workflow.repository":
                 "^https://github\\.com/org/"}}

Paths are dotted, from the statement's root; a segment that is a number indexes an array.
`equals` compares JSON values; `matches` applies a Python regular expression (re.search)
to a string. No other operators: anything richer belongs in a policy engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tlog.core.dsse import IN_TOTO_PAYLOAD_TYPE, Envelope, parse_envelope_json
from tlog.errors import InvalidInput

STATEMENT_TYPE: Final = "https://in-toto.io/Statement/v1"
# cosign's `--type` short names (pkg/cosign/attestation/attestation.go).
PREDICATE_TYPES: Final[Mapping[str, str]] = {
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}


def predicate_type(name: str) -> str:
    """A predicate type URI, from a URI or one of cosign's short names."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if re.match(r"[a-z][a-z0-9+.-]*://\S+$", name):
        return name
    raise InvalidInput(f"--type {name!r}: give a predicate type URI or one of "
                       f"{', '.join(PREDICATE_TYPES)}")


def statement(subjects: Sequence[tuple[str, bytes]], predicate_type_uri: str,
              predicate: object) -> bytes:
    """An in-toto Statement v1 about `subjects` (name, SHA-256), as compact JSON."""
    if not subjects:
        raise InvalidInput("an attestation needs at least one subject")
    return json.dumps({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": n, "digest": {"sha256": d.hex()}} for n, d in subjects],
        "predicateType": predicate_type_uri,
        "predicate": predicate,
    }, separators=(",", ":")).encode("utf-8")


def envelope_json(envelope: Envelope) -> str:
    """The envelope as the compact JSON text tlog logs (its SHA-256 is the dsse entry's
    envelopeHash), as sigstore-python writes it."""
    return json.dumps(envelope.to_json(), separators=(",", ":"))


def kept_envelope(body: bytes, kept: bytes) -> Envelope:
    """The envelope of a dsse or intoto entry, from the `attestation.data` the log served
    beside its body (tlog.server.attestations), checked against the hash the body records:
    a dsse entry's kept envelope text, or an intoto entry's payload with the body's
    signatures and payload type. InvalidInput if they do not belong together."""
    doc = json.loads(body)
    kind, spec = doc.get("kind"), doc.get("spec", {})
    if kind == "dsse":
        if hashlib.sha256(kept).hexdigest() != spec["envelopeHash"]["value"]:
            raise InvalidInput("the kept envelope is not the one the entry records")
        return parse_envelope_json(kept)
    if kind == "intoto":
        content = spec["content"]
        if hashlib.sha256(kept).hexdigest() != content["payloadHash"]["value"]:
            raise InvalidInput("the kept payload is not the one the entry records")
        sigs = tuple(base64.b64decode(base64.b64decode(s["sig"]))
                     for s in content["envelope"]["signatures"])
        return Envelope(kept, content["envelope"]["payloadType"], sigs)
    raise InvalidInput(f"a {kind} entry is not an attestation")


def parse_statement(envelope: Envelope) -> dict[str, Any]:
    """The in-toto statement an envelope carries; InvalidInput if it carries none."""
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise InvalidInput(f"the envelope's payloadType is {envelope.payload_type!r}, not "
                           f"{IN_TOTO_PAYLOAD_TYPE}")
    try:
        doc = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the envelope's payload is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("_type"), str):
        raise InvalidInput("the envelope's payload is not an in-toto Statement")
    return doc


@dataclass(frozen=True)
class Policy:
    """A parsed `--policy` (see the module doc)."""

    predicate_type: str | None
    equals: Mapping[str, object]
    matches: Mapping[str, re.Pattern[str]]

    def failures(self, stmt: Mapping[str, Any]) -> list[str]:
        """Why `stmt` does not satisfy the policy; [] if it does."""
        out = []
        if self.predicate_type is not None and stmt.get("predicateType") != self.predicate_type:
            out.append(f"predicateType is {stmt.get('predicateType')!r}, the policy requires "
                       f"{self.predicate_type!r}")
        for path, want in self.equals.items():
            found, got = _lookup(stmt, path)
            if not found or got != want:
                out.append(f"{path}: {'absent' if not found else json.dumps(got)}, the policy "
                           f"requires {json.dumps(want)}")
        for path, pattern in self.matches.items():
            found, got = _lookup(stmt, path)
            if not isinstance(got, str) or pattern.search(got) is None:
                shown = "absent" if not found else json.dumps(got)
                out.append(f"{path}: {shown} does not match /{pattern.pattern}/")
        return out


def parse_policy(data: bytes) -> Policy:
    """A policy file's JSON; InvalidInput naming what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("policy: not JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput("policy: expected a JSON object")
    unknown = sorted(set(doc) - {"predicateType", "equals", "matches"})
    if unknown:
        raise InvalidInput(f"policy: unknown member {unknown[0]!r} (predicateType, equals, "
                           "matches)")
    ptype = doc.get("predicateType")
    if ptype is not None and not isinstance(ptype, str):
        raise InvalidInput("policy.predicateType: expected a string")
    equals = doc.get("equals", {})
    matches = doc.get("matches", {})
    if not isinstance(equals, dict) or not isinstance(matches, dict):
        raise InvalidInput("policy.equals and policy.matches: objects of path → value")
    patterns = {}
    for path, text in matches.items():
        if not isinstance(text, str):
            raise InvalidInput(f"policy.matches[{path!r}]: expected a regular expression string")
        try:
            patterns[path] = re.compile(text)
        except re.error as e:
            raise InvalidInput(f"policy.matches[{path!r}]: not a regular expression: {e}") from None
    return Policy(ptype, equals, patterns)


def _lookup(doc: object, path: str) -> tuple[bool, object]:
    """(found, value) at a dotted path; numeric segments index arrays."""
    for part in path.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return False, None
    return True, doc

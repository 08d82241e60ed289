"""Who signed: the identity policy on a Fulcio signing certificate.

Fulcio (`docs/oid-info.md`) puts the OIDC identity in the Subject Alternative Name (an
email address or a URI such as a GitHub workflow) and the OIDC issuer in an extension:
`1.3.6.1.4.1.57264.1.8` (DER UTF8String) or its deprecated predecessor `1.3.6.1.4.1.57264.1.1`
(the raw string). GitHub Actions certificates also carry the workflow's details in the
deprecated raw-string extensions cosign's `--certificate-github-workflow-*` flags check:
trigger `.1.2`, SHA `.1.3`, name `.1.4`, repository `.1.5`, ref `.1.6`.

Exact values compare byte for byte; a regular expression matches anywhere in the value
(Go's `regexp.MatchString`, as cosign does) — anchor it with `^…$` to match the whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from tlog.core.checks import CheckFailed
from tlog.errors import InvalidInput

OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
GITHUB_WORKFLOW = {
    "trigger": ObjectIdentifier("1.3.6.1.4.1.57264.1.2"),
    "sha": ObjectIdentifier("1.3.6.1.4.1.57264.1.3"),
    "name": ObjectIdentifier("1.3.6.1.4.1.57264.1.4"),
    "repository": ObjectIdentifier("1.3.6.1.4.1.57264.1.5"),
    "ref": ObjectIdentifier("1.3.6.1.4.1.57264.1.6"),
}


@dataclass(frozen=True)
class IdentityPolicy:
    """The expected signer. Each of identity and issuer is given exactly or as a regexp."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    github_workflow: dict[str, str] = field(default_factory=dict)  # GITHUB_WORKFLOW key → value

    def __post_init__(self) -> None:
        if (self.identity is None) == (self.identity_regexp is None):
            raise ValueError("give exactly one of an identity and an identity regexp")
        if (self.issuer is None) == (self.issuer_regexp is None):
            raise ValueError("give exactly one of an OIDC issuer and an issuer regexp")
        for name in self.github_workflow:
            if name not in GITHUB_WORKFLOW:
                raise ValueError(f"unknown GitHub workflow field {name!r}")
        for pattern in (self.identity_regexp, self.issuer_regexp):
            if pattern is not None:
                re.compile(pattern)


def _der_utf8(value: bytes) -> str | None:
    """A DER UTF8String (tag 12, short or long length) as text, else None."""
    if len(value) < 2 or value[0] != 0x0C:
        return None
    n, i = value[1], 2
    if n & 0x80:
        width = n & 0x7F
        n, i = int.from_bytes(value[2:2 + width], "big"), 2 + width
    if i + n != len(value):
        return None
    try:
        return value[i:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _raw_extension(cert: x509.Certificate, oid: ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    return ext.value if isinstance(ext, x509.UnrecognizedExtension) else None


def oidc_issuer(cert: x509.Certificate) -> str | None:
    """The Fulcio OIDC issuer: extension .1.8 (UTF8String), else .1.1 (raw)."""
    if (v2 := _raw_extension(cert, OIDC_ISSUER_V2)) is not None:
        return _der_utf8(v2)
    if (v1 := _raw_extension(cert, OIDC_ISSUER_V1)) is not None:
        return v1.decode("utf-8", "replace")
    return None


def _san_values(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """The certificate's SAN emails and URIs, as written (none if it has no SAN)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return (san.get_values_for_type(x509.RFC822Name),
            san.get_values_for_type(x509.UniformResourceIdentifier))


def san_identities(cert: x509.Certificate) -> list[str]:
    """The certificate's SAN emails and URIs."""
    emails, uris = _san_values(cert)
    return [*emails, *uris]


# Search by identity (issues 17 and 18): Rekor's SearchIndex `email`, and tlog's `identity`.
MAX_IDENTITY_LENGTH = 1024  # characters of a searched identity (a GitHub workflow URI is ~150)
# What `identity_query` reads (also the API's OpenAPI patterns): an RFC 3986 scheme, ":"
# and no white space; an email is local@domain without ":" (then it is a URI).
URI_PATTERN = r"[A-Za-z][A-Za-z0-9+.-]*:\S+"
EMAIL_PATTERN = r"[^@\s:]+@[^@\s:/]+"
_URI = re.compile(URI_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)


def searchable_identities(cert: x509.Certificate) -> tuple[str, ...]:
    """The identities a certificate-signed entry is found by: each SAN email lower-cased
    (Rekor's x509 `PublicKey.Subjects`/`EmailAddresses`, which `IndexKeys` indexes, and
    its search, which lower-cases the SearchIndex `email`) and each SAN URI exactly as
    written (a Fulcio workflow identity: its case is meaningful). Distinct, in SAN order;
    none for a certificate whose extensions do not parse."""
    try:
        emails, uris = _san_values(cert)
    except ValueError:  # a malformed extension: cryptography parses them lazily
        return ()
    return tuple(dict.fromkeys([*(e.lower() for e in emails), *uris]))


def certificate_identities(der: bytes) -> tuple[str, ...]:
    """`searchable_identities` of a DER certificate (none if it does not parse)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return ()
    return searchable_identities(cert)


def identity_query(value: object, name: str = "identity", *, email_only: bool = False) -> str:
    """A searched identity in the form `searchable_identities` indexes: a URI exactly as
    given, an email lower-cased. InvalidInput (a 400) naming `name` for anything else: not a string,
    empty, over MAX_IDENTITY_LENGTH, white space or control characters, neither a URI
    (`scheme:…`) nor an email (`local@domain`); with `email_only` (Rekor's `email`), a URI
    too."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string")
    if len(value) > MAX_IDENTITY_LENGTH:
        raise InvalidInput(f"{name}: at most {MAX_IDENTITY_LENGTH} characters, got {len(value)}")
    if not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidInput(f"{name}: white space or control characters are not in an identity")
    if not email_only and _URI.fullmatch(value):
        return value
    if _EMAIL.fullmatch(value):
        return value.lower()
    want = "an email address (local@domain)" if email_only else \
        "an email address (local@domain) or a URI (scheme:…), as the certificate's SAN holds it"
    raise InvalidInput(f"{name}: {value!r} is not {want}")


def _matches(value: str, exact: str | None, pattern: str | None) -> bool:
    return value == exact if exact is not None else re.search(pattern or "", value) is not None


def check_identity(cert: x509.Certificate, policy: IdentityPolicy) -> None:
    """CheckFailed("identity" | "issuer") unless the certificate is the policy's signer."""
    names = san_identities(cert)
    want = policy.identity if policy.identity is not None else f"/{policy.identity_regexp}/"
    if not any(_matches(n, policy.identity, policy.identity_regexp) for n in names):
        raise CheckFailed("identity", f"the certificate is for {', '.join(names) or 'no identity'}, "
                                      f"not {want}")
    issuer = oidc_issuer(cert)
    want = policy.issuer if policy.issuer is not None else f"/{policy.issuer_regexp}/"
    if issuer is None or not _matches(issuer, policy.issuer, policy.issuer_regexp):
        raise CheckFailed("issuer", f"the certificate's OIDC issuer is {issuer or 'absent'}, "
                                    f"not {want}")
    for name, expected in policy.github_workflow.items():
        raw = _raw_extension(cert, GITHUB_WORKFLOW[name])
        got = None if raw is None else raw.decode("utf-8", "replace")
        if got != expected:
            raise CheckFailed("identity", f"the certificate's GitHub workflow {name} is "
                                          f"{got or 'absent'}, not {expected}")

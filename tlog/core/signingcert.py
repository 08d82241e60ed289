"""Signing with a certificate an organisation's CA issued (`tlog sign --certificate`, issue 12).

The signer holds a key and a code-signing certificate for it. What is logged and bundled is
the certificate (Rekor hashedrekord `publicKey.content`, as cosign logs `--certificate`; the
bundle's v0.3 `verificationMaterial.certificate`), so verifiers check an identity, not a key:
the certificate's SubjectAlternativeName and OIDC issuer extension, chained to the CA listed
in their trusted root (`tlog trust root --ca`).

Refused before anything is logged, each with the reason: a certificate for another key, one
not valid now (the log's integratedTime will be now, and verifiers require the certificate
valid then), one outside the code-signing leaf profile verifiers apply (tlog.core.certs), or
a `--certificate-chain` that did not issue it. Pure: the current time is an argument.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from tlog.core.certs import check_code_signing_leaf
from tlog.core.checks import CheckFailed
from tlog.errors import InvalidInput


def _spki(cert_or_key: x509.Certificate | bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a certificate, or of a PEM public key."""
    key = (cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate)
           else serialization.load_pem_public_key(cert_or_key))
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    """The certificates of a PEM file (at least one); InvalidInput naming `what` otherwise."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidInput(f"{what}: not PEM X.509 certificates") from None


def signing_certificate(cert_pem: bytes, public_key_pem: bytes, now: datetime,
                        chain_pem: bytes | None = None) -> bytes:
    """Check that `cert_pem` certifies the signing key `public_key_pem` for code signing at
    `now` (and was issued by `chain_pem`, issuer first, if given); return it as one
    normalized PEM certificate, what `tlog sign` logs in place of the key."""
    certs = load_certificates(cert_pem, "certificate")
    if len(certs) != 1:
        raise InvalidInput(f"certificate: expected one certificate (the signer's), found "
                           f"{len(certs)}; give its issuers with --certificate-chain")
    leaf = certs[0]
    try:
        cert_key, signing_key = _spki(leaf), _spki(public_key_pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidInput(f"certificate: cannot read its public key ({e})") from None
    if cert_key != signing_key:
        raise InvalidInput(
            f"certificate: it certifies another key (sha256:{hashlib.sha256(cert_key).hexdigest()}) "
            f"than the signing key (sha256:{hashlib.sha256(signing_key).hexdigest()})")
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if not start <= now <= end:
        raise InvalidInput(f"certificate: not valid now ({now:%Y-%m-%dT%H:%M:%SZ}); it is valid "
                           f"from {start:%Y-%m-%dT%H:%M:%SZ} to {end:%Y-%m-%dT%H:%M:%SZ}")
    try:
        check_code_signing_leaf(leaf)
    except CheckFailed as e:
        raise InvalidInput(f"certificate: {e.reason.replace('the signing certificate', 'it')}") from None
    if chain_pem is not None:
        check_issued(leaf, load_certificates(chain_pem, "certificate chain"))
    return leaf.public_bytes(serialization.Encoding.PEM)


def check_issued(leaf: x509.Certificate, chain: list[x509.Certificate]) -> None:
    """Each certificate is issued (name and signature) by the next: leaf, chain[0], ...;
    InvalidInput naming the pair that is not."""
    for child, parent in zip([leaf, *chain], chain, strict=False):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise InvalidInput(f"chain: {parent.subject.rfc4514_string()} did not issue "
                               f"{child.subject.rfc4514_string() or 'the certificate'}") from None

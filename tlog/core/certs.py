"""Signing certificates: the chain to a trusted CA and the code-signing leaf profile.

Fulcio issues short-lived leaf certificates (Fulcio `docs/certificate-specification.md`):
not a CA, key usage digitalSignature, extended key usage codeSigning (1.3.6.1.5.5.7.3.3).
The leaf must chain to a certificate authority of the trusted root that is itself trusted
(`validFor`) at the signing time, with every certificate valid at that time (RFC 5280 §6.1,
path validation at a chosen time, as Sigstore clients do).

Chain building and RFC 5280 path validation are `cryptography`'s (its X.509 verifier);
the Sigstore profile on top of it is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tlog.core.checks import CheckFailed
from tlog.core.sigstore_root import Authority


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def check_bundle_chain(certs: Sequence[x509.Certificate]) -> None:
    """A bundle's chain must not carry a root: the trust anchor comes from the trusted root,
    never from the bundle (protobuf-specs `X509CertificateChain`: "MUST NOT contain the
    root")."""
    for cert in certs:
        if _is_self_signed(cert):
            raise CheckFailed("chain", f"the bundle carries a self-signed root certificate "
                                       f"({cert.subject.rfc4514_string()})")


def check_code_signing_leaf(leaf: x509.Certificate) -> None:
    """The Fulcio leaf profile: not a CA, digitalSignature, EKU codeSigning."""
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise CheckFailed("chain", "the signing certificate is a CA certificate")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        raise CheckFailed("chain", f"the signing certificate lacks {e.oid.dotted_string}") from None
    if not usage.digital_signature:
        raise CheckFailed("chain", "the signing certificate's key usage lacks digitalSignature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise CheckFailed("chain", "the signing certificate's extended key usage lacks codeSigning")


def verify_chain(leaf: x509.Certificate, authorities: Sequence[Authority],
                 when: datetime) -> list[x509.Certificate]:
    """The path from `leaf` to a CA trusted at `when` (leaf excluded, root last)."""
    trusted = [c for ca in authorities if ca.valid_for.contains(when) for c in ca.certificates]
    if not trusted:
        raise CheckFailed("chain", f"no certificate authority of the trusted root is valid at "
                                   f"{when:%Y-%m-%dT%H:%M:%SZ}")
    # Fulcio leaves carry codeSigning, not serverAuth/clientAuth: let the EKU through here
    # and check it in check_code_signing_leaf.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    verifier = (PolicyBuilder().store(Store(trusted)).time(when)
                .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
                .build_client_verifier())
    try:
        return list(verifier.verify(leaf, []).chain[1:])
    except (VerificationError, x509.UnsupportedGeneralNameType) as e:
        raise CheckFailed("chain", f"the signing certificate does not chain to a trusted CA at "
                                   f"{when:%Y-%m-%dT%H:%M:%SZ}: {e}") from None

"""An organisation's certificate authority for tests: a root CA, a CT log, code-signing leaves.

Leaves follow Fulcio's profile (Sigstore's "Certificate Issuing Overview"): KeyUsage
digitalSignature, ExtendedKeyUsage codeSigning, the identity in the SubjectAlternativeName
(email or URI), the OIDC issuer in `1.3.6.1.4.1.57264.1.8` (DER UTF8String) and in the
legacy `1.3.6.1.4.1.57264.1.1` (raw bytes, the one sigstore-python 4.5.1 reads), and one
embedded SCT. Sigstore verifiers (sigstore-python's verify_sct) insist on that SCT, so the
CA has its own CT log sign one and embeds it (RFC 6962 §3.1): the SCT signs (§3.2) the
TBSCertificate without poison and SCT extensions, and the SHA-256 of the issuer's
SubjectPublicKeyInfo. (No precertificate is submitted anywhere: the test CT log is a key.)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OIDC_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")  # RFC 6962 §3.3


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    size = (n.bit_length() + 7) // 8
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _spki(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class OrgCA:
    """A root CA key and certificate, and a CT log key the CA submits precertificates to."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    ct_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "Example Org Code Signing CA") -> OrgCA:
        key = ec.generate_private_key(ec.SECP384R1())
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(name)).issuer_name(_name(name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                               critical=True)
                .sign(key, hashes.SHA384()))
        return cls(key, cert, ec.generate_private_key(ec.SECP256R1()))

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def ct_public_pem(self) -> bytes:
        return self.ct_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    def issue(self, public_key: CertificatePublicKeyTypes, *, email: str | None = None,
              uri: str | None = None, issuer: str = "https://accounts.example.com",
              valid: timedelta = timedelta(days=30), sct: bool = True,
              usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING) -> x509.Certificate:
        """A code-signing leaf for `public_key` naming `email` or `uri` and OIDC `issuer`."""
        now = datetime.now(UTC).replace(microsecond=0)
        san: list[x509.GeneralName] = ([x509.RFC822Name(email)] if email else []) + (
            [x509.UniformResourceIdentifier(uri)] if uri else [])
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([])).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + valid)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                                False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.SubjectAlternativeName(san), critical=True)
                   # RFC 5280 §4.2.1.1; the Web PKI profile verifiers build chains with needs it.
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False)
                   .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V1, issuer.encode()), critical=False)
                   .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2, _der(0x0C, issuer.encode())),
                                  critical=False))
        if not sct:
            return builder.sign(self.key, hashes.SHA384())
        # RFC 6962 §3.2: an SCT for a precertificate signs its TBSCertificate without the poison
        # and SCT list extensions, which cryptography computes from any certificate holding an
        # SCT list: issue one with a placeholder list first.
        placeholder = x509.UnrecognizedExtension(SCT_LIST, _der(0x04, b"\0\0"))
        tbs = builder.add_extension(placeholder, critical=False).sign(
            self.key, hashes.SHA384()).tbs_precertificate_bytes
        timestamp = int(now.timestamp() * 1000)
        signed = (struct.pack("!BBQH", 0, 0, timestamp, 1)  # v1, certificate_timestamp, precert_entry
                  + hashlib.sha256(_spki(self.cert.public_key())).digest()
                  + len(tbs).to_bytes(3, "big") + tbs
                  + struct.pack("!H", 0))  # no CtExtensions
        signature = self.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
        log_id = hashlib.sha256(_spki(self.ct_key.public_key())).digest()
        sct_bytes = (struct.pack("!B", 0) + log_id + struct.pack("!QH", timestamp, 0)
                     + struct.pack("!BBH", 4, 3, len(signature)) + signature)  # sha256, ecdsa
        sct_list = struct.pack("!H", len(sct_bytes) + 2) + struct.pack("!H", len(sct_bytes)) + sct_bytes
        leaf = (builder.add_extension(x509.UnrecognizedExtension(SCT_LIST, _der(0x04, sct_list)),
                                      critical=False)
                .sign(self.key, hashes.SHA384()))
        assert leaf.tbs_precertificate_bytes == tbs  # the SCT is over this very certificate
        return leaf

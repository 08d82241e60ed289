"""Signers' keys in cosign's format (issue 11, item 12): `tlog keygen` writes them (scrypt +
NaCl secretbox, `ENCRYPTED SIGSTORE PRIVATE KEY`), `tlog sign` reads them — made by tlog or
by cosign (here: tests/cosign_keys.py, written from the spec) — with the passphrase from
TLOG_PASSWORD, else COSIGN_PASSWORD; keys tlog wrote before (PKCS#8, PBKDF2) still sign."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .cli_support import Server, fails, ok, server_fixture, tlog  # noqa: F401
from .cosign_keys import cosign_json, cosign_open, cosign_seal


@pytest.fixture(scope="module")
def home(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the log pinned and a file to sign."""
    d = tmp_path_factory.mktemp("home")
    ok(tlog("trust", "add", server.url, "--trust", d / "trust.json"))
    (d / "a.txt").write_text("a\n")
    return d


def sign_and_verify(home: Path, key: str, pub: str, env: dict[str, str], bundle: str) -> None:
    trust = ("--trust", home / "trust.json")
    ok(tlog("sign", "--key", key, "--bundle", bundle, "a.txt", *trust, env=env, cwd=home))
    ok(tlog("verify", "--key", pub, "--bundle", bundle, "a.txt", *trust, cwd=home))


def write_key_pair(home: Path, name: str, key: ec.EllipticCurvePrivateKey, private: bytes) -> None:
    (home / f"{name}.key").write_bytes(private)
    (home / f"{name}.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def test_keygen_writes_a_key_cosign_can_open_and_tlog_signs_with_it(home: Path) -> None:
    ok(tlog("keygen", "--out", home / "mine", env={"TLOG_PASSWORD": "pw"}))
    pem = (home / "mine.key").read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    doc = cosign_json(pem)
    assert doc["kdf"]["name"] == "scrypt" and doc["kdf"]["params"]["N"] >= 1 << 15
    # What cosign's LoadPrivateKey does: scrypt, secretbox.Open, PKCS#8.
    key = serialization.load_der_private_key(cosign_open(doc, b"pw"), None)
    assert key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo) == \
        (home / "mine.pub").read_bytes()
    sign_and_verify(home, "mine.key", "mine.pub", {"TLOG_PASSWORD": "pw"}, "mine.bundle.json")


@pytest.mark.parametrize("label", ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"])
def test_a_cosign_key_signs_with_cosign_password(home: Path, label: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_key_pair(home, "cosign", key, cosign_seal(der, b"cosign pw", label=label))
    sign_and_verify(home, "cosign.key", "cosign.pub", {"COSIGN_PASSWORD": "cosign pw"},
                    f"c-{label.replace(' ', '-')}.json")  # one bundle per label: sign keeps one
    # TLOG_PASSWORD comes first when both are set.
    fails(tlog("sign", "--key", "cosign.key", "a.txt", "--trust", home / "trust.json",
               env={"TLOG_PASSWORD": "other", "COSIGN_PASSWORD": "cosign pw"}, cwd=home),
          "cosign.key: wrong passphrase for the private key")


def test_wrong_passphrase_is_one_line_and_exit_1(home: Path) -> None:
    ok(tlog("keygen", "--out", home / "locked", env={"TLOG_PASSWORD": "right"}))
    for env in ({"TLOG_PASSWORD": "wrong"}, {"COSIGN_PASSWORD": "wrong"}):
        fails(tlog("sign", "--key", "locked.key", "a.txt", "--trust", home / "trust.json",
                   env=env, cwd=home), "locked.key: wrong passphrase for the private key")
    fails(tlog("sign", "--key", "locked.key", "a.txt", "--trust", home / "trust.json",
               input="", cwd=home), "is encrypted and no passphrase was given")


def test_keys_tlog_wrote_before_still_sign(home: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"old pw"))
    assert old.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")  # PBES2, PBKDF2
    write_key_pair(home, "old", key, old)
    sign_and_verify(home, "old.key", "old.pub", {"TLOG_PASSWORD": "old pw"}, "old.json")

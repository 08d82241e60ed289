"""cosign's encrypted private keys, written for the tests from the spec alone — not with tlog's
code — so that tlog is checked against the format, not against itself.

The format (sigstore/cosign pkg/cosign/keys.go, go-securesystemslib encrypted/encrypted.go):
a PEM block `ENCRYPTED SIGSTORE PRIVATE KEY` (formerly `ENCRYPTED COSIGN PRIVATE KEY`) whose
body is the JSON `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher":
{"name": "nacl/secretbox", "nonce"}, "ciphertext"}`, byte strings in padded base64; the key is
scrypt(passphrase, salt, N, r, p, 32 bytes), the ciphertext secretbox.Seal(PKCS#8 DER) under a
24-byte nonce. Here scrypt is hashlib's (OpenSSL) and secretbox PyNaCl's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import textwrap
from typing import Any

import nacl.secret

SIGSTORE = "ENCRYPTED SIGSTORE PRIVATE KEY"


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n)


def cosign_pem(body: bytes, label: str = SIGSTORE) -> bytes:
    """A PEM block as Go's encoding/pem writes it (64-character lines)."""
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return f"-----BEGIN {label}-----\n{chr(10).join(lines)}\n-----END {label}-----\n".encode()


def cosign_seal(der: bytes, passphrase: bytes, *, n: int = 1 << 15, label: str = SIGSTORE,
                raw: bool = False) -> bytes:
    """What `cosign generate-key-pair` writes for the PKCS#8 DER `der` (the JSON if raw)."""
    salt, nonce = os.urandom(32), os.urandom(24)
    box = nacl.secret.SecretBox(_scrypt(passphrase, salt, n, 8, 1))
    b64 = base64.b64encode
    doc = {"kdf": {"name": "scrypt", "params": {"N": n, "r": 8, "p": 1}, "salt": b64(salt).decode()},
           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce).decode()},
           "ciphertext": b64(box.encrypt(der, nonce).ciphertext).decode()}
    body = json.dumps(doc).encode()
    return body if raw else cosign_pem(body, label)


def cosign_json(pem: bytes) -> Any:
    """The JSON document inside a cosign key's PEM block."""
    m = re.search(rb"-----BEGIN ENCRYPTED (?:SIGSTORE|COSIGN) PRIVATE KEY-----(.*?)-----END", pem, re.DOTALL)
    assert m is not None, pem[:60]
    return json.loads(base64.b64decode(b"".join(m.group(1).split())))


def cosign_open(doc: Any, passphrase: bytes) -> bytes:
    """The PKCS#8 DER sealed in a cosign key's JSON (cosign's LoadPrivateKey)."""
    kdf, params = doc["kdf"], doc["kdf"]["params"]
    key = _scrypt(passphrase, base64.b64decode(kdf["salt"]), params["N"], params["r"], params["p"])
    return nacl.secret.SecretBox(key).decrypt(base64.b64decode(doc["ciphertext"]),
                                              base64.b64decode(doc["cipher"]["nonce"]))

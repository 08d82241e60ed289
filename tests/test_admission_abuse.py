"""Issue 11, items 3, 4, 6, 7 and 8: submissions that cost an attacker one cheap request and
the log its memory, its event loop or its honesty — each against a real server (a log served
on a loopback port, the whole HTTP path), and each failing without its fix.

3. distinct large certificates with bad signatures filled the parsed-key cache for good;
4. RSA keys outside Sigstore's registry (8192 bits, huge exponents) cost the event loop;
6. one P-256 signature "signed" every sha512 digest that starts with its SHA-256 digest;
7. (r, s) and (r, n - s), one signing event, made two entries;
8. RSA-PSS signatures with OpenSSL's default salt (the longest) or none were refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from tlog.core import rekor
from tlog.core.digests import DIGESTS
from tlog.core.entries.hashedrekord import KEY_CACHE, proposed_entry
from tlog.server.fsck import check_data_dir

from .support import ApiClient, OpenLog, Signer
from .test_hashedrekord import spki_pem
from .test_observability import _samples
from .test_read_limits import LARGE_CERTIFICATE, _certificate

ENTRIES = "/api/v1/log/entries"
# The group order of P-256 (SEC 2 §2.4.2), written here independently of the code under test.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _ecdsa(key: ec.EllipticCurvePrivateKey, algorithm: str, digest: bytes) -> bytes:
    return key.sign(digest, ec.ECDSA(utils.Prehashed(DIGESTS[algorithm].algorithm())))


async def _post(client: ApiClient, proposal: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
    r = await client.post(ENTRIES, json=proposal)
    return r.status, await r.json(), r.headers.get("Location")


async def _metrics(client: ApiClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return _samples(await (await client.get("/metrics")).text())


# -- item 3: the key cache --------------------------------------------------------------------


async def test_rejected_requests_leave_nothing_in_the_key_cache(open_log: OpenLog) -> None:
    # Before: 4,200 requests with distinct 35 KB certificates and bad signatures, all 400,
    # kept 370 MB in the cache for good. Now a key is kept only once a signature verified.
    _, client = await open_log()
    KEY_CACHE.clear()
    for _ in range(40):
        signer = Signer()
        certificate = _certificate(signer, LARGE_CERTIFICATE)
        digest = os.urandom(32)
        wrong = _ecdsa(signer.key, "sha256", hashlib.sha256(digest).digest())
        status, answer, _ = await _post(client, proposed_entry("sha256", digest, wrong, certificate))
        assert status == 400 and "signature does not verify" in answer["message"]
    m = await _metrics(client)
    assert m[("tlog_key_cache_bytes", ())] == 0 and m[("tlog_key_cache_keys", ())] == 0
    assert KEY_CACHE.weight == 0


async def test_the_key_cache_is_bounded_by_the_bytes_it_holds(open_log: OpenLog) -> None:
    _, client = await open_log()
    KEY_CACHE.clear()
    limit = KEY_CACHE.max_bytes
    KEY_CACHE.max_bytes = 1 << 20  # room for about twelve 35 KB certificates
    try:
        for _ in range(24):
            signer = Signer()
            certificate = _certificate(signer, LARGE_CERTIFICATE)
            digest = os.urandom(32)
            proposal = proposed_entry("sha256", digest, _ecdsa(signer.key, "sha256", digest), certificate)
            assert (await _post(client, proposal))[0] == 201
            m = await _metrics(client)
            assert 0 < m[("tlog_key_cache_bytes", ())] <= 1 << 20
        assert 8 <= m[("tlog_key_cache_keys", ())] <= 12  # by weight, not the 4,096 entries it may hold
        # A signer's next submission finds its key (the most recent ones stay).
        digest = os.urandom(32)
        again = proposed_entry("sha256", digest, _ecdsa(signer.key, "sha256", digest), certificate)
        assert (await _post(client, again))[0] == 201
        assert (await _metrics(client))[("tlog_key_cache_keys", ())] == m[("tlog_key_cache_keys", ())]
    finally:
        KEY_CACHE.max_bytes = limit
        KEY_CACHE.clear()


# -- item 4: expensive keys ---------------------------------------------------------------------


async def test_rsa_keys_outside_sigstores_registry_are_refused_before_any_signature_check(
        open_log: OpenLog) -> None:
    # Before: a bad signature under RSA-8192 with a huge exponent cost 1.5 ms of event loop.
    _, client = await open_log()
    digest = os.urandom(32)
    for bits, exponent, says in (
            (8192, (1 << 31) - 1, "RSA key of 8192 bits is larger than this log accepts: 2048 to 4096"),
            (4104, 65537, "RSA key of 4104 bits is larger than this log accepts"),
            (4096, (1 << 31) - 1, f"RSA public exponent {(1 << 31) - 1} is not accepted: only 65537"),
            (2048, 3, "RSA public exponent 3 is not accepted: only 65537")):
        key = rsa.RSAPublicNumbers(exponent, (1 << (bits - 1)) | 1).public_key()  # no primes needed
        status, answer, _ = await _post(client, proposed_entry("sha256", digest, os.urandom(bits // 8),
                                                               spki_pem(key)))
        assert (status, says in answer["message"]) == (400, True), answer
    m = await _metrics(client)
    assert ("tlog_signature_checks_total", (("where", "inline"),)) not in m  # none was tried


async def test_costly_signature_checks_run_on_a_verification_thread(open_log: OpenLog) -> None:
    # P-384, P-521 and RSA-4096 cost 0.3 to 0.9 ms a check: off the event loop. P-256 stays.
    lg, client = await open_log()
    digest = os.urandom(32)
    p256 = Signer()
    assert (await _post(client, proposed_entry("sha256", digest, _ecdsa(p256.key, "sha256", digest),
                                               p256.pem)))[0] == 201
    p384 = ec.generate_private_key(ec.SECP384R1())
    d384 = hashlib.sha384(digest).digest()
    assert (await _post(client, proposed_entry("sha384", d384, _ecdsa(p384, "sha384", d384),
                                               spki_pem(p384))))[0] == 201
    wrong = _ecdsa(p384, "sha384", digest + digest[:16])
    status, answer, _ = await _post(client, proposed_entry("sha384", d384, wrong, spki_pem(p384)))
    assert status == 400 and "signature does not verify" in answer["message"]
    big = rsa.generate_private_key(65537, 4096)
    signature = big.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    assert (await _post(client, proposed_entry("sha256", digest, signature, spki_pem(big))))[0] == 201
    m = await _metrics(client)
    assert m[("tlog_signature_checks_total", (("where", "thread"),))] == 3
    assert m[("tlog_signature_checks_total", (("where", "inline"),))] == 1
    assert lg.head.state.size == 3


# -- item 6: digest truncation ------------------------------------------------------------------


async def test_one_p256_signature_logs_one_entry_not_one_per_longer_digest(open_log: OpenLog) -> None:
    # Before: the signature over SHA-256 digest D also verified as sha512 D‖X for any X
    # (ECDSA cuts the digest to the curve's size): 20,000 entries "signed" by the victim.
    lg, client = await open_log()
    victim = Signer()
    digest = hashlib.sha256(b"the one artifact the victim signed").digest()
    signature = _ecdsa(victim.key, "sha256", digest)
    assert (await _post(client, proposed_entry("sha256", digest, signature, victim.pem)))[0] == 201
    for _ in range(20):
        forged = proposed_entry("sha512", digest + os.urandom(32), signature, victim.pem)
        status, answer, _ = await _post(client, forged)
        assert status == 400
        assert answer["message"].startswith(
            "spec.data.hash.algorithm: a P-256 key signs sha256 digests only, not sha512")
    by_key = await client.post("/api/v1/index/retrieve",
                               json={"publicKey": {"format": "x509", "content": victim.pem.decode()}})
    assert len(await by_key.json()) == 1 and lg.head.state.size == 1


async def test_each_curve_signs_its_own_digest(open_log: OpenLog) -> None:
    _, client = await open_log()
    artifact = os.urandom(64)
    for curve, algorithm, name in ((ec.SECP384R1(), "sha384", "P-384"), (ec.SECP521R1(), "sha512", "P-521")):
        key = ec.generate_private_key(curve)
        for other in ("sha256", "sha384", "sha512"):
            digest = hashlib.new(other, artifact).digest()
            status, answer, _ = await _post(client, proposed_entry(other, digest, _ecdsa(key, other, digest),
                                                                   spki_pem(key)))
            if other == algorithm:
                assert status == 201
            else:
                assert (status, answer["message"].split(":", 1)[1].strip()[:45]) == (
                    400, f"a {name} key signs {algorithm} digests only, not {other}"[:45])


# -- item 7: malleable ECDSA --------------------------------------------------------------------


def _other_s(signature: bytes) -> bytes:
    """The same P-256 signature with s replaced by n - s: valid too (SEC 1 §4.1.4)."""
    r, s = utils.decode_dss_signature(signature)
    return utils.encode_dss_signature(r, P256_ORDER - s)


def _high_and_low(signer: Signer, digest: bytes) -> tuple[bytes, bytes]:
    signature = _ecdsa(signer.key, "sha256", digest)
    other = _other_s(signature)
    s = utils.decode_dss_signature(signature)[1]
    return (signature, other) if s > P256_ORDER // 2 else (other, signature)


async def test_the_same_ecdsa_signature_with_the_other_s_is_the_same_entry(
        open_log: OpenLog, tmp_path: Path) -> None:
    # Before: (r, s) and (r, n - s) both 201, two entries for one signing event.
    data = tmp_path / "data"
    lg, client = await open_log(data_dir=data)
    signer = Signer()
    firsts = {}
    for first in ("high", "low"):  # whichever the signer's library produced comes first
        digest = os.urandom(32)
        high, low = _high_and_low(signer, digest)
        one, two = (high, low) if first == "high" else (low, high)
        status, answer, location = await _post(client, proposed_entry("sha256", digest, one, signer.pem))
        assert status == 201
        (uuid,) = answer
        status, answer, again = await _post(client, proposed_entry("sha256", digest, two, signer.pem))
        assert status == 409 and again == location == rekor.entry_path(uuid)
        assert f"UUID {uuid} at index" in answer["message"]
        # The identical body again: 409 to the same entry, as before.
        assert (await _post(client, proposed_entry("sha256", digest, one, signer.pem)))[2] == location
        firsts[first] = (digest, two, location)
    assert lg.head.state.size == 2
    await lg.close()
    # The index holds the event across a restart; and fsck finds the index rows consistent.
    report = check_data_dir(data)
    assert report.ok, report.faults
    lg, client = await open_log(data_dir=data)
    for digest, two, location in firsts.values():
        status, _, again = await _post(client, proposed_entry("sha256", digest, two, signer.pem))
        assert (status, again) == (409, location)
    assert lg.head.state.size == 2


async def test_both_forms_in_one_batch_make_one_entry(open_log: OpenLog) -> None:
    lg, client = await open_log(batch_ms=200)  # both wait for the same batch
    signer = Signer()
    digest = os.urandom(32)
    high, low = _high_and_low(signer, digest)
    answers = await asyncio.gather(*(_post(client, proposed_entry("sha256", digest, sig, signer.pem))
                                     for sig in (low, high)))
    assert sorted(status for status, _, _ in answers) == [201, 409]
    created = next(a for a in answers if a[0] == 201)
    duplicate = next(a for a in answers if a[0] == 409)
    (uuid,) = created[1]
    assert duplicate[2] == created[2] == rekor.entry_path(uuid)
    assert lg.head.state.size == 1


# -- item 8: PSS salt -------------------------------------------------------------------------


async def test_rsa_pss_signatures_with_any_salt_length_are_logged(open_log: OpenLog) -> None:
    # Before: only salt = digest length; OpenSSL's default (the longest) and 0 got 400.
    lg, client = await open_log()
    key = rsa.generate_private_key(65537, 2048)
    for algorithm in ("sha256", "sha512"):
        h = DIGESTS[algorithm].algorithm()
        for salt in (0, h.digest_size, padding.calculate_max_pss_salt_length(key, h)):
            digest = hashlib.new(algorithm, os.urandom(16)).digest()
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=salt)
            signature = key.sign(digest, pss, utils.Prehashed(h))
            proposal = proposed_entry(algorithm, digest, signature, spki_pem(key))
            status, answer, _ = await _post(client, proposal)
            assert status == 201, (algorithm, salt, answer)
    assert lg.head.state.size == 6

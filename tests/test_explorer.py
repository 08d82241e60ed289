"""The web explorer (issue 17), driven in a real headless Chromium through Selenium against a
real log on 127.0.0.1: the pages find entries, the browser itself verifies inclusion and
consistency proofs (and says so only when they hold), nothing reaches the console, and a
screenshot of every page lands in tests/artifacts/. Attestations (dsse, intoto) are shown
with their kept envelope, checked against the body, and found by in-toto subject digest.

The browser comes from Debian's chromium and chromium-driver packages, installed by
tests/setup/browser.sh when missing (the `browser` fixture runs it once a session).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.x509.oid import NameOID
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tlog.client.attest import pinned_root
from tlog.core.bundle import MEDIA_TYPE, parse_bundle
from tlog.core.dsse import Envelope
from tlog.core.entries import dsse, hashedrekord
from tlog.core.keys import KeyType
from tlog.core.merkle import leaf_hash
from tlog.core.sigstore_bundle import parse_sigstore_bundle
from tlog.core.sigstore_verify import verify_sigstore_bundle
from tlog.core.trusted import TrustedLog
from tlog.server.api import make_app
from tlog.server.explorer import CSP
from tlog.server.log import Log, LogConfig

from .support import Signer
from .test_attestation_entries import envelope, intoto_request, statement
from .test_serve import free_port

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Without the background-networking flags Chromium phones home at start, and on a closed
# network its connections are refused (and logged).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1100,1500")
EMAIL, OIDC_ISSUER = "alice@example.com", "https://accounts.example.com"
WAIT = 20.0  # seconds a page may take to settle


class TamperingLog(Log):
    """A real log that, while `tamper` is set, serves every entry with a corrupted inclusion
    proof (one bit of its first hash flipped): what a lying server would send. While
    `attestation` is "swap", it serves another envelope beside an attestation; while "drop",
    none (as a log that lost it)."""

    tamper = False
    attestation: str | None = None

    async def entries_by_index(self, indexes: Sequence[int]) -> list[dict[str, Any]]:
        entries = await super().entries_by_index(indexes)
        for entry in entries:
            for e in entry.values():
                if self.tamper:
                    hashes_ = e["verification"]["inclusionProof"]["hashes"]
                    hashes_[0] = f"{int(hashes_[0][0], 16) ^ 1:x}" + hashes_[0][1:]
                if self.attestation == "drop":
                    e.pop("attestation", None)
                elif self.attestation == "swap" and "attestation" in e:
                    e["attestation"]["data"] = base64.b64encode(b'{"payload":"","payloadType":"x",'
                                                                b'"signatures":[]}').decode()
        return entries


class LiveLog:
    """A TamperingLog served on 127.0.0.1 from its own thread and event loop, so that the
    test's blocking WebDriver calls never stall it."""

    def __init__(self, data_dir: Path, key_type: KeyType = "ed25519") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.log: TamperingLog = self.run(self._start(data_dir, key_type))

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self, data_dir: Path, key_type: KeyType) -> TamperingLog:
        lg = await TamperingLog.open(LogConfig(data_dir=data_dir, public_url=self.url, key_type=key_type))
        assert isinstance(lg, TamperingLog)
        self.runner = web.AppRunner(make_app(lg))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return lg

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.log.close()

    def close(self) -> None:
        try:
            self.run(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()


def certificate_pem(signer: Signer) -> bytes:
    """A Fulcio-like certificate for the signer's key: an email SAN and Fulcio's OIDC-issuer
    extension (1.3.6.1.4.1.57264.1.8, a DER UTF8String)."""
    now = datetime.now(UTC)
    issuer_ext = b"\x0c" + bytes([len(OIDC_ISSUER)]) + OIDC_ISSUER.encode()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA"),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog tests")]))
            .public_key(signer.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]), critical=True)
            .add_extension(x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8"), issuer_ext), critical=False)
            .sign(signer.key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_proposal(signer: Signer) -> dict[str, Any]:
    """A hashedrekord signed with a Fulcio-like certificate (`certificate_pem`)."""
    digest = hashlib.sha256(b"a release").digest()
    signature = signer.key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return hashedrekord.proposed_entry("sha256", digest, signature, certificate_pem(signer))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveLog, list[dict[str, Any]]]]:
    """A log of five entries of one key, then one of a certificate for that key."""
    server = LiveLog(tmp_path_factory.mktemp("explorer-log"))
    try:
        signer = Signer()
        proposals = [signer.proposed() for _ in range(5)] + [certificate_proposal(signer)]
        entries = []
        for p in proposals:  # one at a time: a checkpoint per entry, for the history
            ((uuid, e),) = server.run(server.log.submit(p)).items()
            entries.append({"uuid": uuid, **e, "proposal": p})
        yield server, entries
    finally:
        server.close()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium, installed first if missing (tests/setup/browser.sh), in a fresh profile."""
    subprocess.run(["sh", str(ROOT / "setup" / "browser.sh")], check=True)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """What the page logged to the console since the last call (needs goog:loggingPrefs)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def open_page(driver: webdriver.Chrome, url: str, status_id: str, name: str) -> str:
    """Load a page, wait until the status box `status_id` settles (ok or bad), screenshot the
    page to tests/artifacts/NAME.png, check the console is clean, and return the status text."""
    console(driver)  # drop what earlier pages left
    driver.get(url)

    def settled(d: webdriver.Chrome) -> bool:
        classes = (d.find_element(By.ID, status_id).get_attribute("class") or "").split()
        return "ok" in classes or "bad" in classes

    WebDriverWait(driver, WAIT).until(settled)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(shot))
    print(f"screenshot: {shot}")
    errors = [e for e in console(driver) if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], f"console messages on {url}: {errors}"
    return driver.find_element(By.ID, status_id).text


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def results(driver: webdriver.Chrome) -> str:
    return text_of(driver, "results-list")


# -- pages -------------------------------------------------------------------------------------
def test_home_shows_the_log_and_its_checked_checkpoint(live: tuple[LiveLog, list[dict[str, Any]]],
                                                      browser: webdriver.Chrome) -> None:
    server, entries = live
    status = open_page(browser, server.url + "/", "checkpoint-status", "home")
    assert "verified in your browser" in status
    assert text_of(browser, "tree-size") == str(len(entries))
    assert text_of(browser, "log-name") == f"127.0.0.1:{server.port}"
    assert text_of(browser, "pin-command") == f"tlog trust add {server.url}"
    recent = browser.find_elements(By.CSS_SELECTOR, "#recent li")
    assert [li.text.split()[0] for li in recent] == [f"#{i}" for i in reversed(range(len(entries)))]


@pytest.mark.parametrize("how", ["digest", "bare-digest", "index", "uuid", "fingerprint"])
def test_search_finds_the_entry(live: tuple[LiveLog, list[dict[str, Any]]], browser: webdriver.Chrome,
                                how: str) -> None:
    server, entries = live
    target = entries[2]
    digest = target["proposal"]["spec"]["data"]["hash"]["value"]
    pem = base64.b64decode(target["proposal"]["spec"]["signature"]["publicKey"]["content"])
    query = {"digest": f"sha256:{digest}", "bare-digest": digest, "index": "2", "uuid": target["uuid"],
             "fingerprint": hashedrekord.public_key_fingerprint_of_pem(pem).hex()}[how]
    status = open_page(browser, f"{server.url}/?q={query}", "results-status", f"search-{how}")
    assert "found" in status, status
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#results-list a")]
    if how == "fingerprint":  # every entry is signed with the one key (the last with its certificate)
        assert len(links) == len(entries)
    else:
        assert links == [f"{server.url}/entry/{target['uuid']}"], results(browser)


def test_search_by_email_finds_the_certificate_signed_entry(
        live: tuple[LiveLog, list[dict[str, Any]]], browser: webdriver.Chrome) -> None:
    """`/?q=EMAIL` (in any case) is a search by the signing certificate's SAN email: only the
    last entry is signed with a certificate."""
    server, entries = live
    status = open_page(browser, f"{server.url}/?q={EMAIL.upper()}", "results-status", "search-identity")
    assert "1 entry found" in status, status
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#results-list a")]
    assert links == [f"{server.url}/entry/{entries[-1]['uuid']}"]
    assert f"matched by certificate identity {EMAIL.upper()}" in results(browser)
    assert "email" in text_of(browser, "search-help")


def test_search_pages_results(live: tuple[LiveLog, list[dict[str, Any]]], browser: webdriver.Chrome) -> None:
    """Older results below a log index: `&before=` keeps only what is older."""
    server, entries = live
    fingerprint = hashedrekord.public_key_fingerprint_of_pem(
        base64.b64decode(entries[0]["proposal"]["spec"]["signature"]["publicKey"]["content"])).hex()
    open_page(browser, f"{server.url}/?q={fingerprint}&before=3", "results-status", "search-page")
    shown = [li.text.split()[0] for li in browser.find_elements(By.CSS_SELECTOR, "#results-list li")]
    assert shown == ["#2", "#1", "#0"]


def test_entry_page_verifies_in_the_browser(live: tuple[LiveLog, list[dict[str, Any]]],
                                            browser: webdriver.Chrome) -> None:
    server, entries = live
    entry = entries[-1]  # signed with a certificate
    status = open_page(browser, f"{server.url}/entry/{entry['uuid']}", "verify-status", "entry")
    assert status.startswith("Verified in your browser"), status
    assert len(browser.find_elements(By.CSS_SELECTOR, "#verify-steps li")) == 3
    body = text_of(browser, "body")
    assert EMAIL in body and OIDC_ISSUER in body and "ECDSA P-256" in body
    summary = text_of(browser, "summary")
    assert "hashedrekord 0.0.1" in summary and str(entry["logIndex"]) in summary
    assert json.loads(browser.find_element(By.ID, "raw").get_attribute("textContent") or "") \
        == {entry["uuid"]: {k: v for k, v in entry.items() if k not in ("uuid", "proposal")}}
    bundle_url = browser.find_element(By.ID, "bundle-link").get_attribute("href")
    assert bundle_url == f"{server.url}/api/v1/log/entries/{entry['uuid']}/bundle"


def test_entry_page_fails_clearly_on_a_tampered_proof(live: tuple[LiveLog, list[dict[str, Any]]],
                                                      browser: webdriver.Chrome) -> None:
    server, entries = live
    server.log.tamper = True
    try:
        status = open_page(browser, f"{server.url}/entry/{entries[1]['uuid']}", "verify-status",
                           "entry-tampered")
    finally:
        server.log.tamper = False
    assert status.startswith("Verification FAILED"), status
    assert "does not lead to the root" in status
    assert "Verified" not in status


def test_consistency_is_checked_in_the_browser(live: tuple[LiveLog, list[dict[str, Any]]],
                                               browser: webdriver.Chrome) -> None:
    server, entries = live
    status = open_page(browser, f"{server.url}/checkpoints?first=3&second={len(entries)}",
                       "consistency-status", "checkpoints")
    assert status.startswith("Verified in your browser"), status
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert [r.text.split()[0] for r in rows] == [str(n) for n in reversed(range(len(entries) + 1))]
    assert all("✓ verified" in r.text for r in rows)
    # A size the log never signed is refused, not "verified".
    status = open_page(browser, f"{server.url}/checkpoints?first=2&second=99", "consistency-status",
                       "checkpoints-unsigned")
    assert "NOT verified" in status


def test_an_ecdsa_p256_log_verifies_too(tmp_path: Path, browser: webdriver.Chrome) -> None:
    """Checkpoints signed with ECDSA P-256 (ASN.1 DER, which WebCrypto takes as r‖s)."""
    server = LiveLog(tmp_path / "ecdsa", "ecdsa-p256")
    try:
        signer = Signer()
        uuids = [next(iter(server.run(server.log.submit(signer.proposed())))) for _ in range(3)]
        status = open_page(browser, f"{server.url}/entry/{uuids[0]}", "verify-status", "entry-ecdsa")
        assert status.startswith("Verified in your browser"), status
        assert "ECDSA P-256 key" in text_of(browser, "verify-steps")
        status = open_page(browser, f"{server.url}/checkpoints?first=1&second=3", "consistency-status",
                           "checkpoints-ecdsa")
        assert status.startswith("Verified in your browser"), status
    finally:
        server.close()


# -- the HTTP side -------------------------------------------------------------------------------
def fetch(url: str, accept: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_pages_go_to_browsers_and_json_to_api_clients(live: tuple[LiveLog, list[dict[str, Any]]]) -> None:
    server, _ = live
    status, headers, body = fetch(server.url + "/", "text/html,application/xhtml+xml,*/*;q=0.8")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP and "default-src 'self'" in CSP
    assert b"<script>" not in body and b"<script " in body  # modules from files, nothing inline
    status, headers, body = fetch(server.url + "/", "*/*")  # curl
    assert status == 404 and json.loads(body)["code"] == 404
    status, headers, body = fetch(server.url + "/api/v1/log", "*/*")
    assert status == 200 and json.loads(body)["treeSize"] == 6
    assert fetch(server.url + "/explorer/merkle.js")[1]["Content-Type"].startswith("text/javascript")
    assert fetch(server.url + "/explorer/..%2Fapi.py")[0] == 404
    assert fetch(server.url + "/entry/not-a-uuid", "text/html")[0] == 400


def test_bundle_download_is_a_sigstore_bundle(live: tuple[LiveLog, list[dict[str, Any]]]) -> None:
    server, entries = live
    for entry in (entries[0], entries[-1]):
        status, headers, body = fetch(f"{server.url}/api/v1/log/entries/{entry['uuid']}/bundle")
        assert status == 200, body
        assert headers["Content-Type"].startswith("application/vnd.dev.sigstore.bundle.v0.3+json")
        assert headers["Content-Disposition"] == f'attachment; filename="{entry["uuid"]}.sigstore.json"'
        bundle = parse_sigstore_bundle(body)  # any Sigstore client's reading
        assert leaf_hash(bundle.entry.body).hex() == entry["uuid"]
        assert bundle.entry.log_index == entry["logIndex"] and bundle.version == "0.3"
        assert len(bundle.certificates) == (1 if entry is entries[-1] else 0)
    assert parse_bundle(fetch(f"{server.url}/api/v1/log/entries/{entries[0]['uuid']}/bundle")[2]).entry.uuid \
        == entries[0]["uuid"]  # and what `tlog verify` reads
    assert fetch(f"{server.url}/api/v1/log/entries/{'0' * 64}/bundle")[0] == 404


def test_checkpoint_history_is_bounded_and_paged(live: tuple[LiveLog, list[dict[str, Any]]]) -> None:
    server, _ = live
    status, _, body = fetch(f"{server.url}/api/v1/log/checkpoints?before=4&limit=2")
    assert status == 200 and [c["treeSize"] for c in json.loads(body)] == [3, 2]
    for bad in ("limit=0", "limit=101", "before=-1", "before=" + "9" * 20):
        assert fetch(f"{server.url}/api/v1/log/checkpoints?{bad}")[0] == 400, bad
    assert fetch(f"{server.url}/api/v1/index/fingerprint/{'g' * 64}")[0] == 400


# -- attestations (issue 13) -------------------------------------------------------------------
APP, LIB = b"the app", b"the library"  # the subjects of the dsse and the intoto statements


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveLog, dict[str, Any]]]:
    """A log of a hashedrekord, a dsse attestation signed with a certificate (about APP) and
    an intoto one signed with a key (about LIB): their UUIDs, signers and envelopes."""
    server = LiveLog(tmp_path_factory.mktemp("explorer-attestations"))
    try:
        certified, keyed = Signer(), Signer()
        subjects = {"dsse": [("app.tar", APP), ("app.spdx.json", b"its SBOM")], "intoto": [("lib.tar", LIB)]}
        app_env = envelope(statement(*subjects["dsse"]), certified.key)
        lib_env = envelope(statement(*subjects["intoto"]), keyed.key)
        requests = {"hashedrekord": keyed.proposed(),
                    "dsse": dsse.proposed_entry(json.dumps(app_env.to_json()), [certificate_pem(certified)]),
                    "intoto": intoto_request(lib_env, keyed.key)}
        uuids = {kind: next(iter(server.run(server.log.submit(r)))) for kind, r in requests.items()}
        yield server, {"uuids": uuids, "keyed": keyed, "dsse": app_env, "intoto": lib_env,
                       "dsse-subjects": subjects["dsse"], "intoto-subjects": subjects["intoto"]}
    finally:
        server.close()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def same_envelope(got: Envelope | None, want: Envelope) -> bool:
    """The same payload, type and signatures (a bundle's envelope has every keyid, if empty)."""
    return got is not None and (got.payload, got.payload_type, got.signatures) \
        == (want.payload, want.payload_type, want.signatures)


@pytest.mark.parametrize("kind", ["dsse", "intoto"])
def test_attestation_entry_page_verifies_and_shows_the_statement(
        attested: tuple[LiveLog, dict[str, Any]], browser: webdriver.Chrome, kind: str) -> None:
    server, made = attested
    uuid = made["uuids"][kind]
    status = open_page(browser, f"{server.url}/entry/{uuid}", "verify-status", f"entry-{kind}")
    assert status.startswith("Verified in your browser"), status
    steps = browser.find_elements(By.CSS_SELECTOR, "#verify-steps li")
    kept = "envelope" if kind == "dsse" else "payload"
    assert len(steps) == 4 and f"The {kept} the log keeps hashes to" in steps[3].text
    assert f"{kind} {'0.0.1' if kind == 'dsse' else '0.0.2'}" in text_of(browser, "summary")
    body = text_of(browser, "body")
    assert f"sha256:{sha256_hex(made[kind].payload)}" in body and "Envelope hash" in body
    if kind == "dsse":  # the certificate, read by der.js
        assert EMAIL in body and OIDC_ISSUER in body and "an X.509 certificate" in body
    else:
        fingerprint = hashedrekord.public_key_fingerprint_of_pem(made["keyed"].pem).hex()
        assert f"Key fingerprint\n{fingerprint}" in body
    attestation = text_of(browser, "attestation")
    assert "application/vnd.in-toto+json" in attestation and "https://slsa.dev/provenance/v1" in attestation
    subjects = made[f"{kind}-subjects"]
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#subjects a")]
    assert links == [f"{server.url}/?q=sha256:{sha256_hex(d)}" for _, d in subjects]
    assert all(name in text_of(browser, "subjects") for name, _ in subjects)
    link = browser.find_element(By.ID, "bundle-link")
    assert link.is_displayed()
    assert link.get_attribute("href") == f"{server.url}/api/v1/log/entries/{uuid}/bundle"


@contextmanager
def misbehaving(lg: TamperingLog, *, tamper: bool = False, attestation: str | None = None) -> Iterator[None]:
    """The log lies (TamperingLog) while in the block."""
    lg.tamper, lg.attestation = tamper, attestation
    try:
        yield
    finally:
        lg.tamper, lg.attestation = False, None


def dsse_page(attested: tuple[LiveLog, dict[str, Any]], browser: webdriver.Chrome, name: str) -> str:
    """`open_page` of the dsse entry's page."""
    server, made = attested
    return open_page(browser, f"{server.url}/entry/{made['uuids']['dsse']}", "verify-status", name)


def test_attestation_entry_page_fails_clearly_on_a_tampered_proof(
        attested: tuple[LiveLog, dict[str, Any]], browser: webdriver.Chrome) -> None:
    with misbehaving(attested[0].log, tamper=True):
        status = dsse_page(attested, browser, "entry-dsse-tampered")
    assert status.startswith("Verification FAILED") and "does not lead to the root" in status, status
    assert "Verified" not in status


def test_a_kept_envelope_that_is_not_the_entrys_is_refused(
        attested: tuple[LiveLog, dict[str, Any]], browser: webdriver.Chrome) -> None:
    with misbehaving(attested[0].log, attestation="swap"):
        status = dsse_page(attested, browser, "entry-dsse-wrong-envelope")
    assert status.startswith("Verification FAILED") and "not the one the entry records" in status, status
    assert browser.find_elements(By.ID, "subjects") == []  # nothing shown from it
    assert "not shown" in text_of(browser, "attestation")


def test_an_entry_without_its_envelope_says_so(attested: tuple[LiveLog, dict[str, Any]],
                                               browser: webdriver.Chrome) -> None:
    with misbehaving(attested[0].log, attestation="drop"):
        status = dsse_page(attested, browser, "entry-dsse-no-envelope")
    assert status.startswith("Verified in your browser") and "keeps no envelope" in status, status
    assert len(browser.find_elements(By.CSS_SELECTOR, "#verify-steps li")) == 3
    assert "not available" in text_of(browser, "attestation")
    assert not browser.find_element(By.ID, "bundle-link").is_displayed()
    assert "keeps no envelope" in text_of(browser, "bundle-note")


def test_search_by_subject_digest_finds_the_attestation(attested: tuple[LiveLog, dict[str, Any]],
                                                         browser: webdriver.Chrome) -> None:
    server, made = attested
    status = open_page(browser, f"{server.url}/?q=sha256:{sha256_hex(APP)}", "results-status",
                       "search-subject")
    assert "1 entry found" in status, status
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#results-list a")]
    assert links == [f"{server.url}/entry/{made['uuids']['dsse']}"]
    assert f"dsse payload sha256:{sha256_hex(made['dsse'].payload)}" in results(browser)
    help_text = text_of(browser, "search-help")
    assert "in-toto subject digest" in help_text and "no attestations" not in help_text
    # The certificate-signed dsse entry is found by its certificate's email too.
    status = open_page(browser, f"{server.url}/?q={EMAIL}", "results-status", "search-dsse-identity")
    assert "1 entry found" in status, status
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#results-list a")]
    assert links == [f"{server.url}/entry/{made['uuids']['dsse']}"]


def test_attestation_bundles(attested: tuple[LiveLog, dict[str, Any]]) -> None:
    """The bundle of a key-signed intoto entry verifies as `tlog verify-attestation` checks
    one; a certificate-signed dsse entry's names its certificate."""
    server, made = attested
    uuids = made["uuids"]
    status, headers, body = fetch(f"{server.url}/api/v1/log/entries/{uuids['intoto']}/bundle")
    assert status == 200 and headers["Content-Type"].startswith(MEDIA_TYPE)
    bundle = parse_sigstore_bundle(body)
    assert bundle.entry.log_index == 2 and same_envelope(bundle.envelope, made["intoto"])
    log = TrustedLog(server.url, server.log.origin, server.log.public_key)
    verify_sigstore_bundle(bundle, pinned_root(log), hashlib.sha256(LIB).digest(),
                           key=made["keyed"].key.public_key())
    status, _, body = fetch(f"{server.url}/api/v1/log/entries/{uuids['dsse']}/bundle")
    assert status == 200, body
    bundle = parse_sigstore_bundle(body)
    assert leaf_hash(bundle.entry.body).hex() == uuids["dsse"]
    assert same_envelope(bundle.envelope, made["dsse"])
    (cert,) = bundle.certificates
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [EMAIL]
    # Without the kept envelope there is nothing to bundle: a 400 that says why.
    with misbehaving(server.log, attestation="drop"):
        status, _, body = fetch(f"{server.url}/api/v1/log/entries/{uuids['dsse']}/bundle")
    assert status == 400 and "not kept by the log" in json.loads(body)["message"]

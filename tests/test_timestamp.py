"""Signed entry timestamps (tlog.core.timestamp): exact payload bytes and real Rekor SETs."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from tlog.core.keys import KEY_TYPES, LogKey, LogPublicKey
from tlog.core.timestamp import set_payload, sign_set, verify_set
from tlog.errors import InvalidInput, VerificationError

# A production rekor.sigstore.dev entry (sigstore-python test/assets/npm/
# sigstore-3.1.0.sigstore.json) and Rekor's public key (GET /api/v1/log/publicKey).
REKOR_PUBLIC_KEY_PEM = b"""-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr
kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==
-----END PUBLIC KEY-----
"""
REKOR_LOG_ID = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
REKOR_LOG_INDEX = 168704762
REKOR_INTEGRATED_TIME = 1738701347
REKOR_SET = base64.b64decode(
    "MEQCIELLn+QZF5rEN2QWuEBcEJ4gFNgmZxA3Hoqb7kBmvVITAiBshZb8wD0rEDak8dkoyVuNQ5cdRNVjPMuD43pCi+i7og=="
)
# The entry's canonicalized body (an intoto v0.0.2 entry), base64 as in the bundle.
REKOR_BODY_B64 = (
    "eyJhcGlWZXJzaW9uIjoiMC4wLjIiLCJraW5kIjoiaW50b3RvIiwic3BlYyI6eyJjb250ZW50Ijp7ImVudmVsb3Bl"
    "Ijp7InBheWxvYWRUeXBlIjoiYXBwbGljYXRpb24vdm5kLmluLXRvdG8ranNvbiIsInNpZ25hdHVyZXMiOlt7InB1"
    "YmxpY0tleSI6IkxTMHRMUzFDUlVkSlRpQkRSVkpVU1VaSlEwRlVSUzB0TFMwdENrMUpTVWQwVkVORFFtcDFaMEYz"
    "U1VKQlowbFZUalV2ZGpkR2NXTm9WWGxWYnpWT1lpdEhPWHBtUlVOUGMwRmpkME5uV1VsTGIxcEplbW93UlVGM1RY"
    "Y0tUbnBGVmsxQ1RVZEJNVlZGUTJoTlRXTXliRzVqTTFKMlkyMVZkVnBIVmpKTlVqUjNTRUZaUkZaUlVVUkZlRlo2"
    "WVZka2VtUkhPWGxhVXpGd1ltNVNiQXBqYlRGc1drZHNhR1JIVlhkSWFHTk9UV3BWZDAxcVFUQk5ha0Y2VGxSUk0x"
    "ZG9ZMDVOYWxWM1RXcEJNRTFxUVRCT1ZGRXpWMnBCUVUxR2EzZEZkMWxJQ2t0dldrbDZhakJEUVZGWlNVdHZXa2w2"
    "YWpCRVFWRmpSRkZuUVVWbVFrRnZia3BzVTJWSU5uUTRVemRNWVZsNVIzbEtURWxCWlVOa1pqSmxNVWxxWWs4S1NF"
    "Sk1iMXBVZVhSeVIwdzNaRlpEUW1SNlRFVlhXbUV5TW1OcVdXSnBhR2RtUlRVM2JFbHVPWHBYT1RCSGVUTnROMHRQ"
    "UTBKV2IzZG5aMVpYVFVFMFJ3cEJNVlZrUkhkRlFpOTNVVVZCZDBsSVowUkJWRUpuVGxaSVUxVkZSRVJCUzBKbloz"
    "SkNaMFZHUWxGalJFRjZRV1JDWjA1V1NGRTBSVVpuVVZWdFJtMURDbEZ2ZVVGQlEyZzVlR3B3VjFSVE5XVXpVbTVs"
    "TW1Fd2QwaDNXVVJXVWpCcVFrSm5kMFp2UVZVek9WQndlakZaYTBWYVlqVnhUbXB3UzBaWGFYaHBORmtLV2tRNGQx"
    "bDNXVVJXVWpCU1FWRklMMEpHYTNkV05GcFdZVWhTTUdOSVRUWk1lVGx1WVZoU2IyUlhTWFZaTWpsMFRETk9jRm96"
    "VGpCaU0wcHNURE5PY0FwYU0wNHdZak5LYkV4WGNIcE1lVFZ1WVZoU2IyUlhTWFprTWpsNVlUSmFjMkl6WkhwTU0w"
    "cHNZa2RXYUdNeVZYVmxWekZ6VVVoS2JGcHVUWFpoUjFab0NscElUWFppVjBad1ltcEJOVUpuYjNKQ1owVkZRVmxQ"
    "TDAxQlJVSkNRM1J2WkVoU2QyTjZiM1pNTTFKMllUSldkVXh0Um1wa1IyeDJZbTVOZFZveWJEQUtZVWhXYVdSWVRt"
    "eGpiVTUyWW01U2JHSnVVWFZaTWpsMFRVSkpSME5wYzBkQlVWRkNaemM0ZDBGUlNVVkNTRUl4WXpKbmQwNW5XVXRM"
    "ZDFsQ1FrRkhSQXAyZWtGQ1FYZFJiMDFFV21wYVJFa3lUakpPYVZwSFRYbGFWMVpvV1ZSQk1FMXFhekJQVkdzeFRt"
    "cEplVnBIU1RWYWFscG9Xa1JLYlZsVVpHcGFha0ZXQ2tKbmIzSkNaMFZGUVZsUEwwMUJSVVZDUVdSVFdsZDRiRmxZ"
    "VG14TlEwbEhRMmx6UjBGUlVVSm5OemgzUVZGVlJVWklUbkJhTTA0d1lqTktiRXd6VG5BS1dqTk9NR0l6U214TVYz"
    "QjZUVUl3UjBOcGMwZEJVVkZDWnpjNGQwRlJXVVZFTTBwc1dtNU5kbUZIVm1oYVNFMTJZbGRHY0dKcVFUZENaMjl5"
    "UW1kRlJRcEJXVTh2VFVGRlNVSkRNRTFMTW1nd1pFaENlazlwT0haa1J6bHlXbGMwZFZsWFRqQmhWemwxWTNrMWJt"
    "RllVbTlrVjBveFl6SldlVmt5T1hWa1IxWjFDbVJETldwaU1qQjNXbEZaUzB0M1dVSkNRVWRFZG5wQlFrTlJVbGhF"
    "UmxadlpFaFNkMk42YjNaTU1tUndaRWRvTVZscE5XcGlNakIyWXpKc2JtTXpVbllLWTIxVmRtTXliRzVqTTFKMlky"
    "MVZkR0Z1VFhaTWJXUndaRWRvTVZscE9UTmlNMHB5V20xNGRtUXpUWFpqYlZaeldsZEdlbHBUTlRWaVYzaEJZMjFX"
    "YlFwamVUbHZXbGRHYTJONU9YUlpWMngxVFVSblIwTnBjMGRCVVZGQ1p6YzRkMEZSYjBWTFozZHZUVVJhYWxwRVNU"
    "Sk9NazVwV2tkTmVWcFhWbWhaVkVFd0NrMXFhekJQVkdzeFRtcEplVnBIU1RWYWFscG9Xa1JLYlZsVVpHcGFha0Zr"
    "UW1kdmNrSm5SVVZCV1U4dlRVRkZURUpCT0UxRVYyUndaRWRvTVZscE1XOEtZak5PTUZwWFVYZE9kMWxMUzNkWlFr"
    "SkJSMFIyZWtGQ1JFRlJjRVJEWkc5a1NGSjNZM3B2ZGt3eVpIQmtSMmd4V1drMWFtSXlNSFpqTW14dVl6TlNkZ3Bq"
    "YlZWMll6SnNibU16VW5aamJWVjBZVzVOZDA5QldVdExkMWxDUWtGSFJIWjZRVUpFVVZGeFJFTm5kMDV0VG10TmFs"
    "a3pXVEpLYTFsNlNteGFWMFpvQ2sxRVVYbFBWRkUxVDFSVk1rMXFTbXRaYW14dFRtMUdhMDF0V21oT01rNXRUVUk0"
    "UjBOcGMwZEJVVkZDWnpjNGQwRlJORVZGVVhkUVkyMVdiV041T1c4S1dsZEdhMk41T1hSWlYyeDFUVUpyUjBOcGMw"
    "ZEJVVkZDWnpjNGQwRlJPRVZEZDNkS1RrUnJNVTVVWXpCT1ZGVXhUVU56UjBOcGMwZEJVVkZDWnpjNGR3cEJVa0ZG"
    "U0ZGM1ltRklVakJqU0UwMlRIazVibUZZVW05a1YwbDFXVEk1ZEV3elRuQmFNMDR3WWpOS2JFMUNaMGREYVhOSFFW"
    "RlJRbWMzT0hkQlVrVkZDa05uZDBsT2VrVjNUMVJaZWs1VVRYZGFVVmxMUzNkWlFrSkJSMFIyZWtGQ1JXZFNXRVJH"
    "Vm05a1NGSjNZM3B2ZGt3eVpIQmtSMmd4V1drMWFtSXlNSFlLWXpKc2JtTXpVblpqYlZWMll6SnNibU16VW5aamJW"
    "VjBZVzVOZGt4dFpIQmtSMmd4V1drNU0ySXpTbkphYlhoMlpETk5kbU50Vm5OYVYwWjZXbE0xTlFwaVYzaEJZMjFX"
    "YldONU9XOWFWMFpyWTNrNWRGbFhiSFZOUkdkSFEybHpSMEZSVVVKbk56aDNRVkpOUlV0bmQyOU5SRnBxV2tSSk1r"
    "NHlUbWxhUjAxNUNscFhWbWhaVkVFd1RXcHJNRTlVYXpGT2FrbDVXa2RKTlZwcVdtaGFSRXB0V1ZSa2FscHFRVlZD"
    "WjI5eVFtZEZSVUZaVHk5TlFVVlZRa0ZaVFVKSVFqRUtZekpuZDFkM1dVdExkMWxDUWtGSFJIWjZRVUpHVVZKT1JF"
    "VjBiMlJJVW5kamVtOTJUREprY0dSSGFERlphVFZxWWpJd2RtTXliRzVqTTFKMlkyMVZkZ3BqTW14dVl6TlNkbU50"
    "VlhSaGJrMTJXVmRPTUdGWE9YVmplVGw1WkZjMWVreDZSWHBOVkZFd1RYcFZNMDVxWnpCTU1rWXdaRWRXZEdOSVVu"
    "cE1la1YzQ2tabldVdExkMWxDUWtGSFJIWjZRVUpHWjFGSlJFRmFkMlJYU25OaFYwMTNaMWxyUjBOcGMwZEJVVkZD"
    "TVc1clEwSkJTVVZsZDFJMVFVaGpRV1JSUkdRS1VGUkNjWGh6WTFKTmJVMWFTR2g1V2xwNlkwTnZhM0JsZFU0ME9I"
    "Sm1LMGhwYmt0QlRIbHVkV3BuUVVGQldsUlRjbEpzZDBGQlFVVkJkMEpIVFVWUlF3cEpSelo2VTBkV2VXdHdlV1pN"
    "Vml0RVdWTm1WRmxrWkRnelpEQnFSMlZLUVVSWWIwdGpNRk4xV2pORGMwRnBRbTloT0VWU1JrUkZTWE5uTnprNVdt"
    "ZFpDbFEyWm5KbWFrRTNVbFZ1UjBKelRERjJRbEJaY2t4dlN6TlVRVXRDWjJkeGFHdHFUMUJSVVVSQmQwNXZRVVJD"
    "YkVGcVJVRTFlbmtyYlRZeGRrWjJVRFFLY3poclNsUlVXbXhNUVVWeFpEVlVUMlZFT1dwaU1tSTBWMGxqV25WemRr"
    "bDFRa0pzYTIxdE1qWllRVXRFTkRNMGFtOUxNRUZxUVhWaU9VeDVNVTFuY3dwV1lqbDVkSEZaZFdGTk5FWnZjRmx1"
    "VG5NMWRqZHJaalJxVDA5RkswTk9hWFJwV0hkNWRpOTRRVXhaUTFsUWEwVkJVMGsyTWpGUlBRb3RMUzB0TFVWT1JD"
    "QkRSVkpVU1VaSlEwRlVSUzB0TFMwdCIsInNpZyI6IlRVVlJRMGxHUW1wUlQxVjZRblJhUnk5bVpHdFpkMjlpVlM5"
    "U01DdFdZakpDTkdKSlpHeE9UamxDU0RaSGFYTlFRV2xDTHpNMWVFbDRVa3BpTW5Bd2VHbG9Va015ZWtSR2QxSTRa"
    "V3hLVEU1d1F5OXlORkppU0VaallVZEhRVDA5In1dfSwiaGFzaCI6eyJhbGdvcml0aG0iOiJzaGEyNTYiLCJ2YWx1"
    "ZSI6IjliZWE0Y2E0NjI5MWI1ZDFhMGNmM2E2MjMzOGE5MzBhMDlhNmZiNTI0ZDZhODI1YjJiZTk1NWZlZDMzMmZh"
    "MTMifSwicGF5bG9hZEhhc2giOnsiYWxnb3JpdGhtIjoic2hhMjU2IiwidmFsdWUiOiJiODA4YTdiNWUyYzFjOGQz"
    "ZGNjMzNmOGYwN2QyNTU2NmY1Y2YxODRhZTExNWQ4ZDE3YzIzZmRjYTU2OWY2ZWZhIn19fX0="
)
REKOR_BODY = base64.b64decode(REKOR_BODY_B64)

BODY = b'{"apiVersion":"0.0.1","kind":"hashedrekord"}'


@pytest.fixture(params=KEY_TYPES)
def key(request: pytest.FixtureRequest) -> LogKey:
    return LogKey.generate(request.param)


def test_payload_is_rfc8785_with_sorted_keys_and_no_whitespace() -> None:
    log_id = "ab" * 32
    payload = set_payload(b"hello", 1700000000, log_id, 5)
    assert payload == (
        b'{"body":"aGVsbG8=","integratedTime":1700000000,"logID":"' + log_id.encode()
        + b'","logIndex":5}'
    )
    assert json.loads(payload)["body"] == base64.b64encode(b"hello").decode()


def test_rekor_production_set_verifies() -> None:
    pub = LogPublicKey.from_pem(REKOR_PUBLIC_KEY_PEM)
    assert pub.log_id().hex() == REKOR_LOG_ID
    verify_set(pub, REKOR_SET, REKOR_BODY, REKOR_INTEGRATED_TIME, REKOR_LOG_ID, REKOR_LOG_INDEX)


@pytest.mark.parametrize(
    "change",
    [
        {"body": REKOR_BODY + b" "},
        {"integrated_time": REKOR_INTEGRATED_TIME + 1},
        {"log_index": REKOR_LOG_INDEX + 1},
        {"set_sig": REKOR_SET[:-1] + bytes([REKOR_SET[-1] ^ 1])},
    ],
)
def test_rekor_production_set_fails_when_anything_changes(change: dict[str, Any]) -> None:
    args: dict[str, Any] = {
        "set_sig": REKOR_SET,
        "body": REKOR_BODY,
        "integrated_time": REKOR_INTEGRATED_TIME,
        "log_id_hex": REKOR_LOG_ID,
        "log_index": REKOR_LOG_INDEX,
    } | change
    with pytest.raises(VerificationError):
        verify_set(LogPublicKey.from_pem(REKOR_PUBLIC_KEY_PEM), **args)


def test_sign_and_verify_round_trip(key: LogKey) -> None:
    log_id = key.public_key.log_id().hex()
    sig = sign_set(key, BODY, 1700000000, log_id, 42)
    verify_set(key.public_key, sig, BODY, 1700000000, log_id, 42)
    # The signature is over exactly set_payload(...), checked with independent code paths.
    key.public_key.verify(sig, set_payload(BODY, 1700000000, log_id, 42))


def test_tampered_set_fails(key: LogKey) -> None:
    log_id = key.public_key.log_id().hex()
    sig = sign_set(key, BODY, 1700000000, log_id, 42)
    with pytest.raises(VerificationError, match="signed entry timestamp does not verify"):
        verify_set(key.public_key, sig, BODY + b"x", 1700000000, log_id, 42)
    with pytest.raises(VerificationError):
        verify_set(key.public_key, sig, BODY, 1700000001, log_id, 42)
    with pytest.raises(VerificationError):
        verify_set(key.public_key, sig, BODY, 1700000000, log_id, 43)
    with pytest.raises(VerificationError):
        verify_set(key.public_key, b"", BODY, 1700000000, log_id, 42)


def test_set_from_another_log_fails(key: LogKey) -> None:
    other = LogKey.generate(key.key_type)
    other_id = other.public_key.log_id().hex()
    sig = sign_set(other, BODY, 1, other_id, 0)
    with pytest.raises(VerificationError, match="not the pinned log key"):
        verify_set(key.public_key, sig, BODY, 1, other_id, 0)
    # Even claiming our logID, another key's signature does not verify.
    sig = other.sign(set_payload(BODY, 1, key.public_key.log_id().hex(), 0))
    with pytest.raises(VerificationError):
        verify_set(key.public_key, sig, BODY, 1, key.public_key.log_id().hex(), 0)


def test_sign_set_refuses_a_log_id_that_is_not_the_keys(key: LogKey) -> None:
    with pytest.raises(InvalidInput, match="signing key"):
        sign_set(key, BODY, 1, hashlib.sha256(b"x").hexdigest(), 0)


@pytest.mark.parametrize(
    ("integrated_time", "log_id", "log_index"),
    [
        (-1, "ab" * 32, 0),
        (1, "ab" * 32, -1),
        (True, "ab" * 32, 0),
        (1, "AB" * 32, 0),
        (1, "ab" * 31, 0),
        (1, "zz" * 32, 0),
        (1, "ab" * 32, 1 << 53),
        (1.0, "ab" * 32, 0),
    ],
)
def test_payload_rejects_bad_fields(integrated_time: int, log_id: str, log_index: int) -> None:
    with pytest.raises(InvalidInput):
        set_payload(BODY, integrated_time, log_id, log_index)


from hypothesis import given, strategies as st  # noqa: E402


@given(body=st.binary(max_size=300), t=st.integers(0, 2**53 - 1), i=st.integers(0, 2**53 - 1),
       log_id=st.binary(min_size=32, max_size=32))
def test_set_payload_is_exactly_rfc8785(body: bytes, t: int, i: int, log_id: bytes) -> None:
    import base64 as b64

    import rfc8785
    want = rfc8785.dumps({"body": b64.b64encode(body).decode(), "integratedTime": t,
                          "logID": log_id.hex(), "logIndex": i})
    assert set_payload(body, t, log_id.hex(), i) == want

"""RFC 3161 signed timestamps over a bundle's signature, as a source of signing time.

A Sigstore bundle may carry TimeStampResponses (protobuf-specs
`TimestampVerificationData.rfc3161_timestamps`) whose message imprint is the hash of the
signature bytes (the message signature, or the DSSE envelope's signature). Each must be
signed by a timestamp authority of the trusted root — the token's signer is that
authority's first certificate, its chain ends at the root listed last — and its
`genTime` must fall inside the authority's `validFor` window (a closed interval).

The ASN.1 (RFC 3161 §2.4.2, CMS RFC 5652) and the CMS signature check are the
`rfc3161-client` package's; choosing authorities and windows is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import rfc3161_client

from tlog.core.checks import CheckFailed
from tlog.core.sigstore_root import Authority

# sigstore-go and sigstore-python refuse bundles with more timestamps than this.
MAX_TIMESTAMPS = 32


def _verify_one(response: rfc3161_client.TimeStampResponse, message: bytes,
                authorities: Sequence[Authority]) -> datetime | None:
    for tsa in authorities:
        certs = tsa.certificates
        builder = rfc3161_client.VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
        for cert in certs[1:-1]:
            builder = builder.add_intermediate_certificate(cert)
        try:
            builder.build().verify_message(response, message)
        except (rfc3161_client.VerificationError, ValueError):
            continue
        when = response.tst_info.gen_time
        if tsa.valid_for.contains(when):
            return when
    return None


def verify_timestamps(responses: Sequence[bytes], message: bytes,
                      authorities: Sequence[Authority]) -> list[datetime]:
    """The verified `genTime` of every timestamp; CheckFailed("timestamp") if any does not
    verify against a timestamp authority valid at its time."""
    if len(responses) > MAX_TIMESTAMPS:
        raise CheckFailed("timestamp", f"more than {MAX_TIMESTAMPS} timestamps")
    if len(set(responses)) != len(responses):
        raise CheckFailed("timestamp", "the same timestamp appears twice")
    times = []
    for i, der in enumerate(responses):
        try:
            response = rfc3161_client.decode_timestamp_response(der)
        except (ValueError, rfc3161_client.VerificationError) as e:
            raise CheckFailed("timestamp", f"timestamp {i} is malformed: {e}") from None
        when = _verify_one(response, message, [a for a in authorities if len(a.certificates) >= 2])
        if when is None:
            raise CheckFailed("timestamp", f"timestamp {i} does not verify against a timestamp "
                                           "authority of the trusted root valid at its time")
        times.append(when)
    return times

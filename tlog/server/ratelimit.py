"""Per-client token buckets for submissions (issue 5: 429 with Retry-After).

Each client gets a bucket of `burst` tokens refilled at `rate` per second; a submission
takes one. A client is its peer address — an IPv4 address, or an IPv6 client's /64 (see
`client_key`). Buckets are kept for at most `max_clients` clients, least recently seen
dropped first, so memory stays bounded whatever the number of addresses.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

# The prefix one IPv6 subscriber gets at the least: a /64 is one LAN (RFC 4291 §2.5.4, RFC
# 6177), so anyone on it holds 2^64 addresses and a per-address bucket would limit nothing.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str) -> str:
    """The bucket of a peer address: an IPv4 address as is, an IPv6 address's /64, and an
    IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack socket shows an IPv4 peer) as
    its IPv4 address — else every IPv4 client would share the bucket of ::ffff:0:0/64. A string
    that is no address (a Unix socket's peer) is its own key."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # a link-local zone ID changes nothing
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


class TokenBuckets:
    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst ≥ 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> float:
        """Take a token for the client at `address` (its bucket: `client_key`): 0.0 if
        allowed, else seconds until one is available."""
        client = client_key(address)
        now = self._clock()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

"""A pinned log: its URL, its name (checkpoint origin) and its key — what every verifier checks
against (never the server's own word). Pure; the trust file that stores them is
tlog.client.trust."""

from __future__ import annotations

from dataclasses import dataclass

from tlog.core.keys import LogPublicKey
from tlog.errors import InvalidInput


@dataclass(frozen=True)
class TrustedLog:
    url: str  # base URL, no trailing slash
    name: str  # the log's origin: checkpoint origin and note key name
    public_key: LogPublicKey

    @property
    def log_id_hex(self) -> str:
        return self.public_key.log_id().hex()

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "name": self.name, "logID": self.log_id_hex,
                "publicKey": self.public_key.pem().decode()}


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"log URL must start with http:// or https://, got {url!r}")
    return url

"""An async client of the log's HTTP API (Rekor v1 routes and C2SP tiles), for the CLI,
monitors and witnesses. It returns what the server says; checking it is the caller's job,
always against a pinned key (tlog.client.trust)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json as jsonlib
from types import TracebackType
from typing import Any

import aiohttp

from tlog.core.tiles import TileRef
from tlog.errors import TlogError


class LogUnreachable(TlogError):
    """The network failed: no connection, timeout, or an answer that is not HTTP."""

    hint = ("check the log's URL (`tlog trust list` shows the pinned ones), that the log is up "
            "(its /healthz answers) and that this machine can reach it, then try again")


_GET_ATTEMPTS = 5  # tries of a GET the log answered 429/503
_MAX_RETRY_WAIT = 10.0  # seconds: never wait longer than this on one Retry-After


def _retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds; 1 s if absent or a date)."""
    try:
        return min(max(float(value or "1"), 0.0), _MAX_RETRY_WAIT)
    except ValueError:
        return 1.0


class LogAPIError(TlogError):
    """The log answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the log answered {status}: {message}")
        self.log_status = status  # the log's; `status` (TlogError's) is what our API would answer


class LogClient:
    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LogClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    async def _request(self, method: str, path: str, *, json: Any = None,
                       params: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
                       allow_404: bool = False) -> tuple[int, bytes, Any]:
        assert self._session is not None, "use `async with LogClient(...)`"
        url = f"{self.base_url}{path}"
        for attempt in range(_GET_ATTEMPTS):
            try:
                async with self._session.request(method, url, json=json, params=params) as r:
                    body = await r.read()
                    status, headers = r.status, r.headers
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                raise LogUnreachable(f"cannot reach the log at {self.base_url}: "
                                     f"{e.__class__.__name__}: {e}".rstrip(": ")) from e
            # A busy log sheds load with 429/503 + Retry-After (RFC 9110 §10.2.3): a read is
            # safe to repeat, so wait as asked (bounded) rather than fail a long audit.
            if method != "GET" or status not in (429, 503) or attempt == _GET_ATTEMPTS - 1:
                break
            await asyncio.sleep(_retry_after(headers.get("Retry-After")))
        if status in ok or (allow_404 and status == 404):
            return status, body, headers
        message = body[:300].decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            message = jsonlib.loads(body)["message"]
        raise LogAPIError(status, message)

    @staticmethod
    def _parse(status: int, body: bytes) -> object:
        try:
            return jsonlib.loads(body)
        except ValueError as e:
            raise LogAPIError(status, f"not JSON: {body[:100]!r}") from e

    @classmethod
    def _object(cls, status: int, body: bytes) -> dict[str, Any]:
        """The JSON object of a successful answer (its fields are the caller's to check)."""
        data = cls._parse(status, body)
        if not isinstance(data, dict):
            raise LogAPIError(status, f"not a JSON object: {body[:100]!r}")
        return data

    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        status, body, _ = await self._request(method, path, **kw)
        return self._object(status, body)

    async def submit(self, proposed: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Submit an entry: (LogEntry, created). A 409 duplicate is fetched and returned
        with created=False — the entry is in the log either way."""
        status, body, headers = await self._request("POST", "/api/v1/log/entries", json=proposed,
                                                    ok=(201, 409))
        if status == 409:
            location = headers.get("Location", "")
            uuid = location.rsplit("/", 1)[-1]
            if not uuid:
                raise LogAPIError(409, "duplicate entry, but the log gave no Location")
            return await self.entry_by_uuid(uuid), False
        return self._object(status, body), True

    async def entry_by_index(self, index: int) -> dict[str, Any]:
        return await self._json("GET", "/api/v1/log/entries", params={"logIndex": str(index)})

    async def entry_by_uuid(self, uuid: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/v1/log/entries/{uuid}")

    async def search(self, *, sha256: str | None = None, public_key_pem: bytes | None = None,
                     email: str | None = None, identity: str | None = None,
                     operator: str = "or") -> list[str]:
        """Every matching UUID, in log order. `email` is Rekor's SearchIndex field (a
        certificate's SAN email), `identity` tlog's (a SAN URI or email; a Rekor log
        ignores it). The log answers a page at a time, newest first (X-Tlog-Next-Before
        names the next page's `before`; a Rekor log sends no such header and one page):
        the pages are fetched in turn and put in log order."""
        query: dict[str, Any] = {"operator": operator}
        if sha256 is not None:
            query["hash"] = f"sha256:{sha256}"
        if public_key_pem is not None:
            query["publicKey"] = {"format": "x509", "content": base64.b64encode(public_key_pem).decode()}
        query |= {name: value for name, value in (("email", email), ("identity", identity))
                  if value is not None}
        pages: list[list[str]] = []
        params: dict[str, str] | None = None
        while True:
            status, body, headers = await self._request("POST", "/api/v1/index/retrieve", json=query,
                                                        params=params)
            uuids = self._parse(status, body)
            if not (isinstance(uuids, list) and all(isinstance(u, str) for u in uuids)):
                raise LogAPIError(status, f"not a JSON list of UUIDs: {body[:100]!r}")
            pages.append(uuids)
            before = headers.get("X-Tlog-Next-Before", "")
            # The cursor must go down, or the pages would never end.
            if not (before.isascii() and before.isdigit()) or (
                    params is not None and int(before) >= int(params["before"])):
                return [u for page in reversed(pages) for u in page]
            params = {"before": before}

    async def log_info(self) -> dict[str, Any]:
        return await self._json("GET", "/api/v1/log")

    async def consistency(self, first: int, last: int) -> dict[str, Any]:
        return await self._json("GET", "/api/v1/log/proof",
                                params={"firstSize": str(first), "lastSize": str(last)})

    async def public_key(self) -> bytes:
        return (await self._request("GET", "/api/v1/log/publicKey"))[1]

    async def checkpoint(self) -> bytes:
        return (await self._request("GET", "/checkpoint"))[1]

    async def tile(self, ref: TileRef) -> bytes | None:
        """A tile or entry bundle; None if the log does not have it (404)."""
        status, body, _ = await self._request("GET", "/" + ref.path(), allow_404=True)
        return None if status == 404 else body

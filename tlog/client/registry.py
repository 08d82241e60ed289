"""A small client of the OCI distribution API (distribution-spec v1.1), on aiohttp.

What signing and verifying images needs, and no more: manifests (get by tag or digest,
put), blobs (exists, get, monolithic upload: distribution-spec "Pushing a blob
monolithically", POST then PUT), and the referrers API (`GET /v2/<name>/referrers/<digest>`,
OCI 1.1). Every manifest fetched by digest is checked against that digest; one fetched by
tag is named by the SHA-256 of the bytes received.

Authentication is the registry's to ask for, with a 401 and a `WWW-Authenticate` challenge
(distribution "Token Authentication Specification"): `Basic` is answered with the
credentials, `Bearer realm=…,service=…,scope=…` by fetching a token from the realm (with the
credentials, if any: that is how Docker Hub, GHCR and others hand out tokens) and retrying
with it. Credentials come from the caller (flags or TLOG_REGISTRY_USERNAME/_PASSWORD), else
from Docker's config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
`auths.<host>.auth` = base64 "user:password", or `username`/`password`); credential helpers
(`credsStore`, `credHelpers`) are not run.

Why not the `oras` package: its Python client (0.2.x) has no referrers API, returns
manifests parsed rather than as bytes (so their digest cannot be checked), always sends
manifests as OCI image manifests re-serialized by `requests`, does not read
`$DOCKER_CONFIG`, has no type information, and is synchronous where the rest of tlog's
clients are aiohttp.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urljoin

import aiohttp

from tlog.core.cosign import MANIFEST_TYPES, sha256_digest
from tlog.core.image import DOCKER_HUB, registry_and_path
from tlog.errors import TlogError

# Docker Hub's API host (the reference name `index.docker.io` is not where /v2/ is served).
_HUB_API = "registry-1.docker.io"
_HUB_CONFIG_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(TlogError):
    """The registry could not be reached, refused a request, or answered nonsense."""

    hint = ("check the image reference and that the registry is up and reachable; "
            "--allow-http-registry for a plain-HTTP registry, --allow-insecure-registry for one "
            "whose TLS certificate cannot be verified")


class RegistryAuthError(RegistryError):
    """The registry wants credentials we do not have, or refused the ones we sent."""

    hint = ("give credentials with --registry-username/--registry-password (or "
            "TLOG_REGISTRY_USERNAME/TLOG_REGISTRY_PASSWORD), or log in with "
            "`docker login REGISTRY`, which writes ~/.docker/config.json")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: credentials (else Docker's config), plain HTTP, TLS checks."""

    credentials: Credentials | None = None
    allow_http: bool = False
    allow_insecure: bool = False


@dataclass(frozen=True)
class Manifest:
    data: bytes
    media_type: str
    digest: bytes  # SHA-256 of `data`

    @property
    def digest_str(self) -> str:
        return f"sha256:{self.digest.hex()}"


def docker_config_credentials(host: str, environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """Credentials for `host` in Docker's config file (`auths`), if any."""
    folder = environ.get("DOCKER_CONFIG")
    path = Path(folder) / "config.json" if folder else Path.home() / ".docker" / "config.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise RegistryAuthError(f"cannot read Docker's config {path}: {e}") from e
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        return None
    keys = _HUB_CONFIG_KEYS if host == DOCKER_HUB else (host, f"https://{host}", f"http://{host}")
    for key in keys:
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, colon, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise RegistryAuthError(f"{path}: auths.{key}.auth is not base64 of user:password") from None
            if colon:
                return Credentials(user, password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
    return None


class Registry:
    """One registry host, for one conversation (`async with Registry(host, options)`)."""

    def __init__(self, host: str, options: RegistryOptions, *, timeout: float = 60.0) -> None:
        self.host = host
        self.options = options
        api = _HUB_API if host == DOCKER_HUB else host
        self.base = f"{'http' if options.allow_http else 'https'}://{api}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._credentials = options.credentials
        self._looked_up = options.credentials is not None
        self._auth: dict[str, str] = {}  # scope → Authorization header value

    async def __aenter__(self) -> Registry:
        ssl_arg: ssl.SSLContext | bool = not self.options.allow_insecure
        self._session = aiohttp.ClientSession(timeout=self._timeout,
                                              connector=aiohttp.TCPConnector(ssl=ssl_arg))
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    # --- the API --------------------------------------------------------------------------

    async def get_manifest(self, path: str, reference: str) -> Manifest | None:
        """The manifest `reference` (a tag or `sha256:…`) names, or None if there is none."""
        status, body, headers = await self._call(
            "GET", path, f"/manifests/{reference}", ok=(200, 404),
            headers={"Accept": ", ".join(MANIFEST_TYPES)})
        if status == 404:
            return None
        digest = hashlib.sha256(body).digest()
        if reference.startswith("sha256:") and sha256_digest(body) != reference:
            raise RegistryError(f"{self.host}/{path}: the manifest served for {reference} has "
                                f"digest sha256:{digest.hex()}")
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        try:
            declared = json.loads(body).get("mediaType")
        except (ValueError, AttributeError):
            raise RegistryError(f"{self.host}/{path}:{reference}: the manifest is not a JSON "
                                "object") from None
        return Manifest(body, declared if isinstance(declared, str) else media_type, digest)

    async def put_manifest(self, path: str, reference: str, data: bytes,
                           media_type: str) -> Mapping[str, str]:
        """Store a manifest under a tag or its digest; the answer's headers (OCI-Subject…)."""
        _, _, headers = await self._call("PUT", path, f"/manifests/{reference}", ok=(201,), data=data,
                                         headers={"Content-Type": media_type}, push=True)
        return headers

    async def blob_exists(self, path: str, digest: str) -> bool:
        status, _, _ = await self._call("HEAD", path, f"/blobs/{digest}", ok=(200, 404))
        return status == 200

    async def get_blob(self, path: str, digest: str, *, limit: int = 4 << 20) -> bytes:
        """A (small) blob, checked against its digest."""
        _, body, _ = await self._call("GET", path, f"/blobs/{digest}", ok=(200,))
        if len(body) > limit or sha256_digest(body) != digest:
            raise RegistryError(f"{self.host}/{path}: blob {digest} is not what the registry served")
        return body

    async def put_blob(self, path: str, data: bytes) -> str:
        """Upload a blob unless it is there already; its digest."""
        digest = sha256_digest(data)
        if await self.blob_exists(path, digest):
            return digest
        _, _, headers = await self._call("POST", path, "/blobs/uploads/", ok=(202,), push=True)
        location = headers.get("Location")
        if not location:
            raise RegistryError(f"{self.host}/{path}: the blob upload answer has no Location")
        url = urljoin(self.base + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": digest})
        await self._call("PUT", path, "", ok=(201,), data=data, url=url, push=True,
                         headers={"Content-Type": "application/octet-stream"})
        return digest

    async def referrers(self, path: str, digest: str) -> bytes | None:
        """The referrers index of `digest` (OCI 1.1 referrers API); None if the registry does
        not serve the API (404), for the caller to try the referrers tag instead."""
        status, body, _ = await self._call("GET", path, f"/referrers/{digest}", ok=(200, 404, 400),
                                           headers={"Accept": "application/vnd.oci.image.index.v1+json"})
        return body if status == 200 else None

    # --- requests and authentication -------------------------------------------------------

    async def _call(self, method: str, path: str, tail: str, *, ok: tuple[int, ...],
                    data: bytes | None = None, headers: Mapping[str, str] | None = None,
                    url: str | None = None, push: bool = False) -> tuple[int, bytes, Mapping[str, str]]:
        scope = f"repository:{path}:{'pull,push' if push else 'pull'}"
        target = url or f"{self.base}/v2/{path}{tail}"
        status, body, answer = await self._send(method, target, data, headers, scope)
        if status == 401:
            await self._authenticate(answer.get("WWW-Authenticate", ""), scope)
            status, body, answer = await self._send(method, target, data, headers, scope)
            if status == 401:
                raise RegistryAuthError(f"{self.host} refused our credentials for {path} ({method} "
                                        f"{tail or 'upload'}): {_errors(body)}")
        if status == 403:
            raise RegistryAuthError(f"{self.host} denied {method} {path}{tail}: {_errors(body)}")
        if status not in ok:
            raise RegistryError(f"{self.host} answered {status} to {method} /v2/{path}{tail}: "
                                f"{_errors(body)}")
        return status, body, answer

    async def _send(self, method: str, url: str, data: bytes | None, headers: Mapping[str, str] | None,
                    scope: str) -> tuple[int, bytes, Mapping[str, str]]:
        assert self._session is not None, "use `async with Registry(...)`"
        sent = dict(headers or {})
        auth = self._auth.get(scope) or self._auth.get("*")
        if auth:
            sent["Authorization"] = auth
        try:
            async with self._session.request(method, url, data=data, headers=sent,
                                             allow_redirects=True) as r:
                return r.status, await r.read(), dict(r.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RegistryError(f"cannot reach the registry {self.host} ({url.split('/v2/')[0]}): "
                                f"{e.__class__.__name__}: {e}".rstrip(": ")) from e

    def _creds(self) -> Credentials | None:
        if not self._looked_up:
            self._credentials = docker_config_credentials(self.host)
            self._looked_up = True
        return self._credentials

    async def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, _, params_text = challenge.partition(" ")
        creds = self._creds()
        if scheme.lower() == "basic":
            if creds is None:
                raise RegistryAuthError(f"the registry {self.host} needs credentials and none were given")
            self._auth["*"] = f"Basic {_basic(creds)}"
            return
        if scheme.lower() != "bearer":
            raise RegistryAuthError(f"the registry {self.host} asks for {scheme or 'an unknown'} "
                                    "authentication; tlog answers Basic and Bearer")
        params = dict(_CHALLENGE.findall(params_text))
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(f"the registry {self.host} asks for a token but names no realm")
        query = {"service": params["service"]} if "service" in params else {}
        query["scope"] = scope
        sent = {}
        if creds is not None:
            sent["Authorization"] = f"Basic {_basic(creds)}"
        assert self._session is not None
        try:
            async with self._session.get(realm, params=query, headers=sent) as r:
                status, body = r.status, await r.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise RegistryError(f"cannot reach the token service {realm}: {e}") from e
        if status in (401, 403):
            what = "refused our credentials" if creds else "needs credentials and none were given"
            raise RegistryAuthError(f"the token service of {self.host} {what} (scope {scope})")
        token: object = None
        try:
            doc: Any = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            pass
        if status != 200 or not isinstance(token, str) or token == "":
            raise RegistryAuthError(f"the token service of {self.host} answered {status} without a token")
        self._auth[scope] = f"Bearer {token}"


def _basic(creds: Credentials) -> str:
    return base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode("ascii")


def _errors(body: bytes) -> str:
    """The distribution spec's error body (`{"errors":[{"code","message"}]}`) in one line."""
    try:
        errors = json.loads(body)["errors"]
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors) or "no detail"
    except (ValueError, KeyError, TypeError, AttributeError):
        return body[:200].decode("utf-8", "replace").strip() or "no detail"


def registry_for(repository: str, options: RegistryOptions) -> tuple[Registry, str]:
    """A client for the registry `repository` lives on, and its path there."""
    host, path = registry_and_path(repository)
    return Registry(host, options), path

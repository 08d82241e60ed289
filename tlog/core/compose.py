"""Compose files as nerdctl reads them for signing and verifying images (pure).

nerdctl's Compose extensions (nerdctl `docs/cosign.md`, "Cosign in Compose"): a service with
`x-nerdctl-verify: cosign` and `x-nerdctl-cosign-public-key: PATH` has its image verified
before it is pulled; one with `x-nerdctl-sign: cosign` and `x-nerdctl-cosign-private-key:
PATH` is signed when pushed. Values are interpolated as the Compose Specification says
("Interpolation"): `$$` is a literal `$`; `$VAR` and `${VAR}` are the variable (empty if
unset); `${VAR:-default}` / `${VAR-default}` give the default when it is unset or empty /
unset; `${VAR:?error}` / `${VAR?error}` fail with the message when it is unset or empty /
unset; `${VAR:+alt}` / `${VAR+alt}` give alt when it is set and non-empty / set.
Reading the YAML is the caller's; this module takes the parsed document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from tlog.errors import InvalidInput

# The file names `docker compose` and `nerdctl compose` look for, in their order.
DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TOKEN = re.compile(rf"\$(?:(\$)|({_NAME})|\{{({_NAME})(?:(:?[-?+])((?:[^{{}}]|\{{[^{{}}]*\}})*))?\}}|(.?))",
                    re.DOTALL)


def interpolate(text: str, env: Mapping[str, str], where: str = "") -> str:
    """One string with Compose's interpolation applied; InvalidInput for a `${VAR?err}`
    whose variable is missing, or a `$` that starts no valid expression."""
    def one(m: re.Match[str]) -> str:
        dollar, bare, name, op, arg, bad = m.groups()
        if dollar:
            return "$"
        if bare:
            return env.get(bare, "")
        if name is None:
            raise InvalidInput(f"{where}: invalid interpolation format in {text!r} "
                               f"(write $$ for a literal $)" + (f" at {bad!r}" if bad else ""))
        value = env.get(name)
        if op is None:
            return value or ""
        word = interpolate(arg, env, where)
        unset_or_empty = op.startswith(":")
        missing = value is None or (unset_or_empty and value == "")
        kind = op[-1]
        if kind == "-":
            return word if missing else str(value)
        if kind == "?":
            if missing:
                raise InvalidInput(f"{where}: required variable {name} is missing a value"
                                   + (f": {word}" if word else ""))
            return str(value)
        return "" if missing else word  # "+"

    return _TOKEN.sub(one, text)


def interpolate_tree(node: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Every string value of a parsed Compose document interpolated (keys are left alone)."""
    if isinstance(node, str):
        return interpolate(node, env, where)
    if isinstance(node, list):
        return [interpolate_tree(v, env, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
    return node


@dataclass(frozen=True)
class ServicePlan:
    """What `tlog compose` does with one service: verify or sign its image with a key, or
    skip it (and why)."""

    service: str
    image: str | None
    key: PurePath | None  # relative paths are relative to the Compose file's folder
    skipped: str | None


def plan(doc: object, action: str) -> list[ServicePlan]:
    """For `action` "verify" or "sign", what to do with each service of a parsed (and
    interpolated) Compose document, in file order."""
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise InvalidInput("the Compose file has no `services` mapping")
    flag, key_field = (("x-nerdctl-verify", "x-nerdctl-cosign-public-key") if action == "verify"
                       else ("x-nerdctl-sign", "x-nerdctl-cosign-private-key"))
    out = []
    for name, service in doc["services"].items():
        if not isinstance(service, dict):
            raise InvalidInput(f"services.{name}: expected a mapping")
        image = service.get("image")
        image = image if isinstance(image, str) and image else None
        mode = service.get(flag)
        key = service.get(key_field)
        if mode in (None, "none"):
            out.append(ServicePlan(name, image, None, f"no {flag}"))
        elif mode != "cosign":
            raise InvalidInput(f"services.{name}.{flag}: {mode!r} is not supported (only cosign)")
        elif not isinstance(key, str) or not key:
            raise InvalidInput(f"services.{name}: {flag}: cosign needs {key_field} (keyless "
                               "signing is not supported by tlog)")
        elif image is None:
            raise InvalidInput(f"services.{name}: {flag}: cosign needs an `image`")
        else:
            out.append(ServicePlan(name, image, PurePath(key), None))
    return out

"""The package layering the README's "Code map" promises, checked on the code itself.

The core is pure (formats and verification over bytes, no I/O framework), so a verifier or
another program can use it without the server; the client side (client, audit, witness) is
what a user runs and never needs the log's internals; the CLI is a thin shell, and only the
commands that run the log (or benchmark it) reach into the server. Imports are read with
`ast`, all of them: inside functions and `if TYPE_CHECKING:` blocks too, because a lazy
import still ties one package to the other.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tlog", "cli")
# What the server needs and a verifier must not pull in (DESIGN §4.7).
SERVER_ONLY = ("aiohttp", "aiosqlite", "asyncpg", "pymerkle")
# Third-party packages the core may use besides the standard library: cryptography, and
# PyNaCl for the secretbox of cosign's encrypted key format (tlog.core.userkeys), and
# rfc3161-client for RFC 3161 timestamps in Sigstore bundles (tlog.core.rfc3161).
CORE_THIRD_PARTY = ("cryptography", "nacl", "rfc8785", "rfc3161_client")
# The only commands that run the log or load it directly: `tlog serve`, `tlog bench` (and
# the load generator and PostgreSQL it runs), `tlog fsck` (which reads a log's database) and
# `tlog migrate` (which copies one).
CLI_SERVER_COMMANDS = ("cli.serve_cmd", "cli.bench_cmd", "cli.benchrun", "cli.benchpg",
                       "cli.fsck_cmd", "cli.migrate_cmd")


def _module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of tlog/ and cli/."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _module_files()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in the file, as dotted names. `from P import x`
    counts as importing P.x when that is one of our modules, else P."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@dataclass(frozen=True)
class Rule:
    """Modules matching `importer` must not import any module matching `forbidden`."""

    name: str
    importer: Callable[[str], bool]
    forbidden: Callable[[str], bool]


def _stdlib(module: str) -> bool:
    return module.partition(".")[0] in sys.stdlib_module_names


RULES = [
    Rule("tlog.core imports only tlog.core, tlog.errors, the standard library and crypto",
         lambda m: _within(m, "tlog.core"),
         lambda i: not (_within(i, "tlog.core", "tlog.errors", *CORE_THIRD_PARTY) or _stdlib(i))),
    Rule("tlog.errors, files, logs and runner (shared by every package) import no other tlog "
         "module but tlog.errors",
         lambda m: m in ("tlog.errors", "tlog.files", "tlog.logs", "tlog.runner"),
         lambda i: _within(i, *PACKAGES) and i != "tlog.errors"),
    Rule("tlog.client, tlog.audit and tlog.witness never import the log's server or bench",
         lambda m: _within(m, "tlog.client", "tlog.audit", "tlog.witness"),
         lambda i: _within(i, "tlog.server", "tlog.bench")),
    Rule("only `tlog serve`, `tlog bench`, `tlog fsck` and `tlog migrate` import tlog.server or tlog.bench",
         lambda m: _within(m, "cli") and m not in CLI_SERVER_COMMANDS,
         lambda i: _within(i, "tlog.server", "tlog.bench")),
    Rule("only `tlog witness` imports the witness's HTTP server",
         lambda m: _within(m, "cli") and m != "cli.witness_cmd",
         lambda i: _within(i, "tlog.witness.server")),
    Rule("the library never imports the CLI",
         lambda m: _within(m, "tlog"),
         lambda i: _within(i, "cli")),
    Rule("the server never imports tlog.bench or tlog.audit",
         lambda m: _within(m, "tlog.server"),
         lambda i: _within(i, "tlog.bench", "tlog.audit")),
]


def _violations(rule: Rule) -> Iterator[str]:
    for name, path in MODULES.items():
        if rule.importer(name):
            for imported in sorted(_imports(name, path)):
                if rule.forbidden(imported):
                    yield f"{name} imports {imported}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_import_rule(rule: Rule) -> None:
    assert list(_violations(rule)) == []


def test_the_checker_sees_lazy_type_only_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: every way a module can import another is found."""
    module = tmp_path / "cmd.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "from tlog import errors\n"
        "from . import common\n"
        "if TYPE_CHECKING:\n"
        "    from tlog.core.trusted import TrustedLog\n"
        "def run() -> None:\n"
        "    import tlog.server.log\n"
        "    from tlog.client.sign import submit_signature\n")
    assert _imports("cli.cmd", module) == {
        "typing", "tlog.errors", "cli.common", "tlog.core.trusted", "tlog.server.log",
        "tlog.client.sign"}


def test_core_loads_no_server_dependency() -> None:
    """Importing every tlog.core module, in a fresh interpreter, loads none of the server's
    I/O dependencies (and no tlog package but core): the core runs where they are absent."""
    core = sorted(m for m in MODULES if _within(m, "tlog.core"))
    forbidden = (*SERVER_ONLY, "tlog.server", "tlog.client", "tlog.audit", "tlog.witness",
                 "tlog.bench", "cli")
    script = ("import importlib, json, sys\n"
              f"for m in {core!r}: importlib.import_module(m)\n"
              "print(json.dumps(sorted(sys.modules)))\n")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = json.loads(r.stdout)
    assert set(core) <= set(loaded)
    assert [m for m in loaded if _within(m, *forbidden)] == []


def _repository_text_files() -> Iterator[Path]:
    """The repository's own code and documentation (not its vendored test vectors)."""
    for top in ("tlog", "cli", "tests", "docs", "deploy"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and \
                    not path.is_relative_to(ROOT / "tests" / "data"):
                yield path
    for name in ("README.md", "BENCHMARKS.md", "Makefile", "pyproject.toml"):
        yield ROOT / name


def test_every_design_reference_names_a_section_of_docs_design() -> None:
    """`DESIGN §n` / `DESIGN §n.m` anywhere in the repository is a heading of docs/DESIGN.md."""
    design = (ROOT / "docs" / "DESIGN.md").read_text()
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", design, re.MULTILINE))
    assert {"1", "2", "3", "4", "5", "4.7"} <= sections
    dangling = [f"{path.relative_to(ROOT)}: DESIGN §{n}"
                for path in _repository_text_files()
                for n in re.findall(r"DESIGN §(\d+(?:\.\d+)?)", path.read_text(errors="replace"))
                if n not in sections]
    assert dangling == []


def test_the_repository_needs_nothing_beside_it() -> None:
    """Tests, code and docs read only what the repository holds (the Merkle vectors are
    vendored in tests/data/), so the suite runs in a bare checkout."""
    # The sibling folder a checkout once read, as a relative path or as a quoted path part.
    outside = re.compile(r"\.\./shared|[\"']shared[\"']")
    this = Path(__file__).resolve()
    found = [str(path.relative_to(ROOT)) for path in _repository_text_files()
             if path != this and outside.search(path.read_text(errors="replace"))]
    assert found == []

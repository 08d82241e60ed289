"""The deploy/ files parse, meet their schemas and use only real `tlog` commands and flags.

No Docker engine, cluster or network is needed. The Compose file and the GitHub workflow are
checked against the JSON schemas check-jsonschema vendors (the Compose Specification's and
SchemaStore's), the Kubernetes manifests against Kubernetes' own (kubernetes-validate, strict:
an unknown field fails), the systemd units with `systemd-analyze verify` and `security` where
it is installed. Every `tlog …` command line in the files is read by click's own parser over
the real commands, and every TLOG_ setting is checked to reach tlog (`--print-config`), so a
renamed flag or variable breaks this test, not a deploy. The Compose services' scripts are
run for real on this machine, on loopback ports, with each volume a temporary folder.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import click
import jsonschema
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from cli.config import GLOBAL_ENV, configurable_commands, did_you_mean, known_env, suggest_env
from cli.main import main as tlog_main

from .cli_support import serve
from .support import Signer
from .test_serve import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
WORKFLOW = DEPLOY / "github-actions" / "sign-and-verify.yml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
HEALTHCHECK = DEPLOY / "healthcheck.py"
# Oldest Kubernetes the manifests are for, and the newest the schema package knows.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# Environment variables every tlog command reads; any other TLOG_X reaching a tlog server
# must be one of its settings (tlog refuses to start otherwise, cli/config.py).
CLIENT_VARIABLES = GLOBAL_ENV
# A name in tlog's namespace, as it appears in a file (`TLOG_` alone, or `TLOG_*`, is none).
TLOG_NAME = re.compile(r"\bTLOG_[A-Z0-9_]*[A-Z0-9]\b")


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def yaml_documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def vendored_schema(name: str) -> dict[str, Any]:
    """A JSON schema check-jsonschema ships (licenses beside it, in its vendor/licenses/)."""
    files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((files / name).read_text())
    return schema


def assert_meets_schema(document: Any, schema: dict[str, Any]) -> None:
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


# --- `tlog` command lines: where they are, and how click reads them ---------------------

@dataclass(frozen=True)
class Usage:
    """One `tlog …` command line in a deploy file, as the argument list tlog receives."""
    where: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Parsed:
    path: tuple[str, ...]  # ("witness", "serve")
    command: click.Command
    values: dict[str, Any]  # parameter name -> value(s) as written

    def value(self, flag: str) -> Any:
        return self.values.get(option_named(self.command, flag).name)


def option_named(command: click.Command, flag: str) -> click.Parameter:
    for p in command.params:
        if flag in getattr(p, "opts", ()):
            return p
    raise AssertionError(f"{command.name} has no option {flag}")


SHELL_OPERATORS = set("();<>|&")
SHELL_PREFIXES = {"exec", "if", "then", "else", "do", "!", "command"}


def shell_commands(script: str) -> Iterator[list[str]]:
    """The simple commands of a shell script, as words: enough for the short scripts in
    deploy/ (one command per line or between operators; no heredocs)."""
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        redirect = False
        for word in lexer:
            if redirect:  # the file of `> FILE`: not an argument
                redirect = False
            elif set(word) <= SHELL_OPERATORS and word[0] in "<>":
                redirect = True
                if words and words[-1].isdigit():  # the descriptor of `2>`
                    words.pop()
            elif set(word) <= SHELL_OPERATORS:  # ; && || | & ( ): the command ends
                if words:
                    yield words
                words = []
            else:
                words.append(word)
        if words:
            yield words


def tlog_argvs(argv: list[str]) -> Iterator[tuple[str, ...]]:
    """The argument lists given to `tlog` by a command: itself, or in its `sh -c` script."""
    if argv and PurePosixPath(argv[0]).name in ("sh", "bash") and argv[1:2] == ["-c"]:
        for words in shell_commands(argv[2]):
            while words and (words[0] in SHELL_PREFIXES or re.fullmatch(r"\w+=.*", words[0])):
                words = words[1:]
            yield from tlog_argvs(words)
    elif argv and PurePosixPath(argv[0]).name == "tlog":
        yield tuple(argv[1:])


def parse_tlog(argv: tuple[str, ...]) -> Parsed:
    """Read ARGV as `tlog` itself would, with click's parser over the real commands. Raises
    click.UsageError for an unknown command or flag, a missing required option, an extra
    argument, or a value outside a choice or range (values naming a variable are not checked)."""
    command: click.Command = tlog_main
    ctx = click.Context(command, info_name="tlog")
    args, path = list(argv), []
    while True:
        values, rest, _ = command.make_parser(ctx).parse_args(args)
        if not isinstance(command, click.Group):
            break
        if not rest:
            raise click.UsageError("a command is missing", ctx)
        sub = command.get_command(ctx, rest[0])
        if sub is None:
            raise click.UsageError(f"no such command {rest[0]!r}", ctx)
        path.append(rest[0])
        command, args = sub, rest[1:]
        ctx = click.Context(command, info_name=rest[0], parent=ctx)
    if rest:
        raise click.UsageError(f"unexpected extra arguments {rest}", ctx)
    for param in command.params:
        value = values.get(param.name)
        if value is None:
            if param.required:
                raise click.MissingParameter(ctx=ctx, param=param)
            continue
        if isinstance(param.type, (click.Choice, click.types.IntParamType, click.types.FloatParamType)):
            for v in value if param.multiple else [value]:
                if "$" not in str(v):
                    param.type.convert(v, param, ctx)
    return Parsed(tuple(path), command, values)


def setting_option(parsed: Parsed, variable: str) -> click.Parameter:
    """The option a TLOG_ variable sets: the one tlog reads it for. (A variable that only looks
    like a setting — TLOG_PORT for the witness, whose port is TLOG_WITNESS_PORT — stops tlog.)"""
    for p in parsed.command.params:
        if variable == getattr(p, "envvar", None):
            return p
    raise AssertionError(f"{variable} is not a setting of `tlog {' '.join(parsed.path)}`"
                         f"{suggest_env(variable, parsed.command)}")


def assert_settings_reach_tlog(argv: tuple[str, ...], env: dict[str, str]) -> None:
    """Each TLOG_ variable in ENV is read by the command ARGV runs — one of its settings, or a
    variable every command reads — and each setting is in effect: valid and not overridden by
    a flag (--print-config says where each value came from)."""
    parsed = parse_tlog(argv)
    settings = {k: v for k, v in env.items() if k.startswith("TLOG_") and k not in CLIENT_VARIABLES}
    for var in settings:
        setting_option(parsed, var)
    if not settings:
        return
    expanded = [re.sub(r"\$\((\w+)\)|\$\{(\w+)\}", lambda m: env[m.group(1) or m.group(2)], a) for a in argv]
    # Files that must exist where the command runs (a key in /var/lib/…) are not this test's
    # business: any existing file stands in for them.
    for param in parsed.command.params:
        value = parsed.values.get(param.name)
        if isinstance(param.type, click.Path) and param.type.exists and isinstance(value, str):
            expanded = [__file__ if a == value else a for a in expanded]
    unset = {k: None for k in os.environ if k.startswith("TLOG_")}
    result = CliRunner().invoke(tlog_main, [*expanded, "--print-config"], env={**unset, **settings})
    assert result.exit_code == 0, result.output
    sources = {v["from"] for v in json.loads(result.stdout).values()}
    for var in settings:
        assert f"env {var}" in sources, f"{var} is overridden: {result.stdout}"


# --- Dockerfile ---------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_one(instruction: str) -> str:
    found = [args for name, args in dockerfile_instructions() if name == instruction]
    assert len(found) == 1, f"expected one {instruction}, found {found}"
    return found[0]


def image_entrypoint() -> list[str]:
    words: list[str] = json.loads(dockerfile_one("ENTRYPOINT"))
    return words


def image_cmd() -> list[str]:
    words: list[str] = json.loads(dockerfile_one("CMD"))
    return words


def image_user() -> tuple[int, int]:
    uid, _, gid = dockerfile_one("USER").partition(":")
    return int(uid), int(gid)


def image_healthcheck_script() -> str:
    """Where the image puts deploy/healthcheck.py."""
    for name, args in dockerfile_instructions():
        words = args.split()
        if name == "COPY" and "deploy/healthcheck.py" in words:
            return words[-1]
    raise AssertionError("the Dockerfile does not copy deploy/healthcheck.py")


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps PATH out of the build context (Docker's rules: the last
    matching pattern wins, and a pattern matching a directory matches what is below it)."""
    def regex(pattern: str) -> re.Pattern[str]:
        parts = re.split(r"(\*\*/|\*|\?)", pattern.strip("/"))
        table = {"**/": "(.*/)?", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(table.get(p, re.escape(p)) for p in parts) + "(/.*)?")

    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if regex(line.lstrip("!")).fullmatch(path):
            excluded = not negate
    return excluded


def test_dockerfile_is_multi_stage_on_python_slim_and_runs_as_non_root() -> None:
    instructions = dockerfile_instructions()
    froms = [args for name, args in instructions if name == "FROM"]
    assert len(froms) >= 2 and froms[0].endswith(" AS builder"), froms
    image_arg = dockerfile_one("ARG")
    assert image_arg == "PYTHON_IMAGE=python:3.11-slim" and froms[-1] == "${PYTHON_IMAGE}"
    assert any(name == "COPY" and args.startswith("--from=builder ") for name, args in instructions)
    uid, gid = image_user()
    assert uid > 0 and gid > 0, "the image must run as a numeric non-root user (runAsNonRoot checks it)"
    assert dockerfile_one("VOLUME") == "/data"
    assert dockerfile_one("EXPOSE") == "3000"
    assert dockerfile_one("STOPSIGNAL") == "SIGTERM"


def test_dockerfile_runs_tlog_serve_on_the_volume_and_the_exposed_port() -> None:
    assert image_entrypoint() == ["tlog"]
    parsed = parse_tlog(tuple(image_cmd()))
    assert parsed.path == ("serve",)
    assert parsed.value("--data-dir") == dockerfile_one("VOLUME")
    assert parsed.value("--port") == dockerfile_one("EXPOSE")
    assert parsed.value("--host") == "0.0.0.0"


def test_dockerfile_cmd_flags_are_in_tlog_serve_help() -> None:
    # ENTRYPOINT runs the `tlog` console script: ask that very script.
    script = Path(sys.executable).with_name("tlog")
    help_text = subprocess.run([script, "serve", "--help"], capture_output=True, text=True,
                               check=True).stdout
    cmd = image_cmd()
    assert cmd[0] == "serve"
    for flag in (w for w in cmd if w.startswith("--")):
        assert re.search(rf"^\s+{re.escape(flag)}\b", help_text, re.MULTILINE), \
            f"{flag} not in tlog serve --help"


def test_dockerfile_healthcheck_asks_healthz_on_the_exposed_port() -> None:
    options, _, command = dockerfile_one("HEALTHCHECK").partition("CMD ")
    argv = json.loads(command)
    assert argv == [PurePosixPath(image_healthcheck_script()).name,
                    f"http://127.0.0.1:{dockerfile_one('EXPOSE')}/healthz"]
    assert "--interval=" in options and "--timeout=" in options


def test_docker_build_context_holds_what_the_build_copies_and_no_secrets() -> None:
    for name, args in dockerfile_instructions():
        words = [w for w in args.split() if not w.startswith("--")]
        if name != "COPY" or args.startswith("--from="):
            continue
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not dockerignore_excludes(source), f"COPY {source}: excluded by .dockerignore"
    for secret in ("tlog-data/log.key", "tlog-data/log.db", ".venv/bin/python", ".git/config",
                   "signer.key", "tlog/__pycache__/log.cpython-311.pyc"):
        assert dockerignore_excludes(secret), f"{secret} would be sent to the Docker daemon"
    # The build installs the packages pyproject.toml finds: all of them must be copied.
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()
                and any(re.fullmatch(i.replace("*", ".*"), p.name) for i in include)}
    copied = {w for name, args in dockerfile_instructions() if name == "COPY" for w in args.split()}
    assert packages <= copied, f"packages not copied into the image: {packages - copied}"


def test_healthcheck_script_passes_on_a_live_log_and_fails_on_a_closed_port(tmp_path: Path) -> None:
    server = serve(tmp_path / "log")
    try:
        ok = subprocess.run([sys.executable, HEALTHCHECK, f"{server.url}/healthz"],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        stop(server.proc)
    down = subprocess.run([sys.executable, HEALTHCHECK, f"http://127.0.0.1:{free_port()}/healthz"],
                          capture_output=True, text=True, timeout=30)
    assert down.returncode == 1 and down.stderr.startswith("unhealthy: "), down.stderr


# --- YAML files ------------------------------------------------------------------------------

YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


@pytest.mark.parametrize("path", YAML_FILES, ids=rel)
def test_yaml_file_parses(path: Path) -> None:
    assert yaml_documents(path), f"{rel(path)} is empty"


# --- Compose ----------------------------------------------------------------------------------

def compose_interpolate(value: Any) -> Any:
    """Compose's variable interpolation with no variable set: `${X:-default}` becomes the
    default, `$$` a `$`; `${X}` is kept (and so not type-checked)."""
    if isinstance(value, str):
        return re.sub(r"\$\$|\$\{(\w+):?-([^}]*)\}",
                      lambda m: "$" if m.group(0) == "$$" else m.group(2), value)
    if isinstance(value, list):
        return [compose_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: compose_interpolate(v) for k, v in value.items()}
    return value


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose_interpolate(compose()["services"])
    return services


def compose_argv(service: dict[str, Any]) -> list[str]:
    """What a service runs: Docker drops the image's CMD when the entrypoint is replaced."""
    if "entrypoint" in service:
        return [*service["entrypoint"], *service.get("command", [])]
    return [*image_entrypoint(), *service.get("command", image_cmd())]


def compose_parsed(name: str) -> list[Parsed]:
    return [parse_tlog(argv) for argv in tlog_argvs(compose_argv(compose_services()[name]))]


def compose_one(name: str, *path: str) -> Parsed:
    [parsed] = [p for p in compose_parsed(name) if p.path == path]
    return parsed


@dataclass(frozen=True)
class Mount:
    volume: str
    target: str
    subpath: str = ""


def service_mounts(service: dict[str, Any]) -> list[Mount]:
    """A service's volume mounts, short (`volume:/target`) or long syntax."""
    mounts = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target = v.split(":")[:2]
            mounts.append(Mount(source, target))
        else:
            mounts.append(Mount(v["source"], v["target"], v.get("volume", {}).get("subpath", "")))
    return mounts


def test_compose_file_meets_the_compose_specification() -> None:
    assert_meets_schema(compose(), vendored_schema("compose-spec.json"))


def test_compose_runs_a_log_a_witness_and_a_monitor_from_the_image() -> None:
    services = compose_services()
    commands = {name: {p.path for p in compose_parsed(name)} for name in services}
    assert ("serve",) in commands["log"]
    assert ("witness", "keygen") in commands["witness-keygen"]
    assert ("witness", "serve") in commands["witness"]
    assert ("monitor",) in commands["monitor"]
    for name, service in services.items():
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_witness_key_is_made_once_before_the_log_pushes_to_it() -> None:
    services = compose_services()
    keygen = compose_one("witness-keygen", "witness", "keygen")
    assert compose_one("witness", "witness", "serve").value("--key") == keygen.value("--out")
    assert services["witness-keygen"]["restart"] == "no"
    assert "if [ ! -e " + keygen.value("--out") + " ]" in services["witness-keygen"]["command"][0]
    for name in ("log", "monitor"):  # they see the public verifier key, not the private key
        [public] = [m for m in service_mounts(services[name]) if m.volume == "witness-data"]
        assert public.subpath == "public", name
    depends = services["log"]["depends_on"]["witness-keygen"]["condition"]
    assert depends == "service_completed_successfully"
    [witness] = compose_one("log", "serve").value("--witness")
    assert witness.startswith("http://witness:3100=")


def test_compose_settings_reach_tlog() -> None:
    for service in compose_services().values():
        for args in tlog_argvs(compose_argv(service)):
            assert_settings_reach_tlog(args, service.get("environment", {}))


def test_compose_monitor_checks_on_an_interval_and_keeps_its_state_in_a_volume() -> None:
    monitor = compose_one("monitor", "monitor")
    assert float(monitor.value("--interval")) >= 1
    assert monitor.value("--state") and not monitor.value("--once")


def test_compose_servers_have_health_checks_on_their_own_port() -> None:
    services = compose_services()
    script = PurePosixPath(image_healthcheck_script()).name
    for name in ("log", "witness"):
        [server] = [p for p in compose_parsed(name) if p.path[-1] == "serve"]
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", script, f"http://127.0.0.1:{server.value('--port')}/healthz"], name
        assert services[name]["ports"] == [f"{server.value('--port')}:{server.value('--port')}"]
    for name in ("witness", "monitor"):
        assert services[name]["depends_on"]["log"]["condition"] == "service_healthy", name


def test_compose_writes_only_to_its_named_volumes() -> None:
    spec = compose_interpolate(compose())
    for name, service in spec["services"].items():
        assert service["read_only"] is True, f"{name}: the root file system should be read-only"
        mounts = service_mounts(service)
        for m in mounts:
            assert m.volume in spec["volumes"], f"{name}: volume {m.volume} is not declared"
        for parsed in compose_parsed(name):
            assert_paths_are_mounted(parsed, [*(m.target for m in mounts), *service["tmpfs"]],
                                     f"{name}: tlog {' '.join(parsed.path)}")


def compose_script(name: str, volumes: Path, ports: dict[str, int]) -> str:
    """A service's `sh -c` script as Compose runs it, moved onto this machine: each named
    volume is a folder of VOLUMES, each service in PORTS listens on 127.0.0.1:PORT."""
    service = compose_services()[name]
    assert service["entrypoint"] == ["sh", "-c"], name
    script = service["command"][0]
    for m in service_mounts(service):
        script = re.sub(rf"(?<![\w/.]){re.escape(m.target)}(?=/|\b)",
                        str(volumes / m.volume / m.subpath).rstrip("/"), script)
    for other, port in ports.items():
        inside = compose_services()[other]["ports"][0].split(":")[-1]
        script = script.replace(f"http://{other}:{inside}", f"http://127.0.0.1:{port}")
        if other == name:
            script = script.replace(f"--port {inside}", f"--port {port}")
    return re.sub(r"--interval \d+", "--interval 1", script)


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def healthy(port: int) -> bool:
    url = f"http://127.0.0.1:{port}/healthz"
    return subprocess.run([sys.executable, HEALTHCHECK, url], capture_output=True).returncode == 0


def stop_script(proc: subprocess.Popen[str]) -> str:
    """SIGTERM, as `docker compose stop` sends; SIGKILL if it hangs. Its output."""
    proc.terminate()
    try:
        return proc.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0] + "\n(killed: did not stop on SIGTERM)"


def test_compose_scripts_run_as_written(tmp_path: Path, signer: Signer) -> None:
    """Every `sh -c` service in dependency order, on this machine: the witness key made once,
    the log pushing to the witness, the witness pinning the log, the monitor seeing the
    witness's cosignature on a new checkpoint."""
    volumes = tmp_path / "volumes"
    for name in compose()["volumes"]:
        (volumes / name).mkdir(parents=True)
    ports = {"log": free_port(), "witness": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLOG_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    running: dict[str, subprocess.Popen[str]] = {}

    def start(name: str) -> None:
        script = compose_script(name, volumes, ports)
        service_env = {**env, **compose_services()[name].get("environment", {})}
        running[name] = subprocess.Popen(["sh", "-c", script], env=service_env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    try:
        for attempt in ("first start", "restart"):
            done = subprocess.run(["sh", "-c", compose_script("witness-keygen", volumes, ports)],
                                  env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, f"witness-keygen, {attempt}: {done.stdout}{done.stderr}"
        start("log")
        wait_for(lambda: healthy(ports["log"]), "the log")
        start("witness")
        wait_for(lambda: healthy(ports["witness"]), "the witness")
        start("monitor")
        wait_for(lambda: (volumes / "monitor-data" / "monitor.json").exists(), "the monitor")
        vkey = (volumes / "witness-data" / "public" / "witness.vkey").read_text().strip()
        witness_name = vkey.split("+")[0]
        log_url = f"http://127.0.0.1:{ports['log']}"
        entry = json.dumps(signer.proposed()).encode()
        submit = urllib.request.Request(f"{log_url}/api/v1/log/entries", entry,
                                        {"Content-Type": "application/json"})
        assert urllib.request.urlopen(submit, timeout=10).status == 201
        cosigned = f"\u2014 {witness_name} ".encode()
        wait_for(lambda: cosigned in urllib.request.urlopen(f"{log_url}/checkpoint", timeout=10).read(),
                 "the witness's cosignature on the log's checkpoint")
        state = volumes / "monitor-data" / "monitor.json"
        wait_for(lambda: json.loads(state.read_text())["treeSize"] == 1, "the monitor's next round")
    finally:
        logs = {name: stop_script(proc) for name, proc in running.items()}
    for name, proc in running.items():
        assert proc.returncode == 0, f"{name} exited {proc.returncode}: {logs[name]}"
    assert vkey in logs["witness"], "the witness serves with the key witness-keygen made"
    assert f"cosigned by {witness_name}" in logs["monitor"], logs["monitor"]


def assert_paths_are_mounted(parsed: Parsed, mount_points: list[str], where: str) -> None:
    """Every absolute path given to a file or directory option lies in a mounted volume:
    the rest of a read-only image holds nothing of tlog's."""
    for param in parsed.command.params:
        value = parsed.values.get(param.name)
        if value is None or not isinstance(param.type, click.Path):
            continue
        for v in value if param.multiple else [value]:
            if v.startswith("/"):
                assert any(PurePosixPath(v).is_relative_to(m) for m in mount_points), \
                    f"{where}: {param.opts[0]} {v} is not in a volume ({mount_points})"


# --- Kubernetes --------------------------------------------------------------------------------

def k8s_objects() -> list[tuple[str, dict[str, Any]]]:
    return [(rel(path), doc) for path in sorted(K8S.glob("*.yaml"))
            if path.name != "kustomization.yaml" for doc in yaml_documents(path)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    [obj] = [o for _, o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def pod_containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def container_argv(container: dict[str, Any]) -> list[str]:
    """What a container runs: the image's CMD is dropped when `command` is given."""
    if "command" in container:
        return [*container["command"], *container.get("args", [])]
    return [*image_entrypoint(), *container.get("args", image_cmd())]


def container_env(container: dict[str, Any]) -> dict[str, str]:
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        env.update(k8s_object("ConfigMap", source["configMapRef"]["name"])["data"])
    return env


WORKLOADS = [(where, o) for where, o in k8s_objects() if o["kind"] in ("StatefulSet", "Deployment")]
WORKLOAD_IDS = [f"{where}:{o['metadata']['name']}" for where, o in WORKLOADS]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("where,obj", k8s_objects(),
                         ids=[f"{w}:{o['kind']}/{o['metadata']['name']}" for w, o in k8s_objects()])
def test_k8s_manifest_meets_the_kubernetes_schema(where: str, obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        pytest.fail(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")


def test_k8s_kustomization_lists_existing_manifests() -> None:
    [kustomization] = yaml_documents(K8S / "kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def test_k8s_log_is_one_statefulset_replica_with_its_volume_and_probes() -> None:
    log = k8s_object("StatefulSet", "tlog")
    spec = log["spec"]
    assert spec["replicas"] == 1, "one writer per log: two would fork it"
    [claim] = spec["volumeClaimTemplates"]
    [container] = spec["template"]["spec"]["containers"]
    [server] = [parse_tlog(a) for a in tlog_argvs(container_argv(container))]
    assert server.path == ("serve",)
    mount = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}[claim["metadata"]["name"]]
    assert PurePosixPath(server.value("--data-dir")).is_relative_to(mount)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(server.value("--port"))
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    headless = k8s_object("Service", spec["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"


@pytest.mark.parametrize("where,workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_k8s_pods_run_as_the_image_user_locked_down(where: str, workload: dict[str, Any]) -> None:
    pod = workload["spec"]["template"]["spec"]
    security = pod["securityContext"]
    uid, gid = image_user()
    version = pyproject()["project"]["version"]
    assert security["runAsNonRoot"] is True
    assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (uid, gid, gid)
    # Kubernetes gives the group read access to every file of a volume whose ownership it
    # changes, and tlog refuses a key file others can read: only the root may be changed.
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"
    # Service links would put TLOG_PORT=tcp://… (from the `tlog` Service) in the environment.
    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    for container in pod_containers(workload):
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["image"] == f"tlog:{version}", "the image tag is the release it runs"


@pytest.mark.parametrize("where,workload", WORKLOADS, ids=WORKLOAD_IDS)
def test_k8s_settings_reach_tlog_and_paths_are_on_volumes(where: str, workload: dict[str, Any]) -> None:
    for container in pod_containers(workload):
        env = container_env(container)
        argv = container_argv(container)
        # Kubernetes leaves an undefined $(VAR) as it is, silently.
        for var in re.findall(r"\$\((\w+)\)", " ".join(argv)):
            assert var in env, f"{container['name']}: $({var}) is not defined"
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        for args in tlog_argvs(argv):
            assert_settings_reach_tlog(args, env)
            assert_paths_are_mounted(parse_tlog(args), mounts, f"{where}: {container['name']}")


def test_k8s_services_select_pods_and_name_their_ports() -> None:
    for where, service in [(w, o) for w, o in k8s_objects() if o["kind"] == "Service"]:
        selector = service["spec"]["selector"]
        pods = [w for _, w in WORKLOADS
                if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert pods, f"{where}: Service {service['metadata']['name']} selects no pod"
        ports = {p["name"] for w in pods for c in w["spec"]["template"]["spec"]["containers"]
                 for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{where}: no container port {port['targetPort']}"


# --- systemd -------------------------------------------------------------------------------

def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file's sections as (key, value) lists: keys may repeat (SystemCallFilter=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    section = None
    for line in path.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            assert section is not None, f"{path.name}: {line} outside a section"
            section.append((key.strip(), value.strip()))
    return sections


def unit_values(path: Path, key: str) -> list[str]:
    return [v for k, v in unit_entries(path)["Service"] if k == key]


def unit_value(path: Path, key: str) -> str:
    [value] = unit_values(path, key)
    return value


def unit_env_file(unit: Path) -> Path:
    """The example environment file in deploy/systemd/ for the unit's EnvironmentFile=."""
    return SYSTEMD / PurePosixPath(unit_value(unit, "EnvironmentFile").lstrip("-")).name


def env_file_variables(path: Path, *, commented: bool = False) -> dict[str, str]:
    """VAR=value lines; with `commented`, also the `#TLOG_X=…` lines an operator uncomments."""
    found = re.findall(r"^(#TLOG_\w+|\w+)=(.*)$", path.read_text(), re.MULTILINE)
    return {k.lstrip("#"): v for k, v in found if commented or not k.startswith("#")}


def unit_argvs(unit: Path) -> Iterator[list[str]]:
    """The Exec*= command lines, as systemd passes them ($$ and %% unescaped; %S, %E
    resolved for a system unit; ${VAR} kept)."""
    specifiers = {"%%": "%", "%S": "/var/lib", "%E": "/etc"}
    for key, value in unit_entries(unit)["Service"]:
        if key.startswith("Exec"):
            line = re.sub(r"%[%SE]", lambda m: specifiers[m.group(0)], value.lstrip("-@:+!"))
            yield [word.replace("$$", "$") for word in shlex.split(line)]


HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "CapabilityBoundingSet": "", "MemoryDenyWriteExecute": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
    "LockPersonality": "yes", "SystemCallArchitectures": "native", "DynamicUser": "yes",
    "Restart": "on-failure", "KillSignal": "SIGTERM", "UMask": "0077",
}


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_is_hardened(unit: Path) -> None:
    for key, value in HARDENING.items():
        assert unit_values(unit, key) == [value], f"{unit.name}: {key}= should be {value!r}"
    assert "@system-service" in unit_values(unit, "SystemCallFilter")
    assert int(unit_value(unit, "TimeoutStopSec")) >= 10
    assert unit_value(unit, "StateDirectoryMode") == "0700"
    assert unit_entries(unit)["Install"] == [("WantedBy", "multi-user.target")]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_runs_tlog_with_its_settings_on_its_state_directory(unit: Path) -> None:
    env = env_file_variables(unit_env_file(unit))
    state = PurePosixPath("/var/lib", unit_value(unit, "StateDirectory"))
    [server] = [a for argv in unit_argvs(unit) if PurePosixPath(argv[0]).name == "tlog"
                for a in tlog_argvs(argv)]
    parsed = parse_tlog(server)
    assert parsed.path[-1] == "serve"
    assert PurePosixPath(parsed.value("--data-dir")).is_relative_to(state)
    assert_settings_reach_tlog(server, env_file_variables(unit_env_file(unit), commented=True))
    used = " ".join(" ".join(argv) for argv in unit_argvs(unit))
    for var in (v for v in env if not v.startswith("TLOG_")):
        assert f"${{{var}}}" in used, f"{unit_env_file(unit).name}: {var} is not used by {unit.name}"
    for var in re.findall(r"\$\{(\w+)\}", used):
        assert var in env or var == "STATE_DIRECTORY", f"{unit.name}: ${{{var}}} is not set"


def test_systemd_witness_key_is_made_once_on_the_state_directory() -> None:
    unit = SYSTEMD / "tlog-witness.service"
    parsed = [parse_tlog(a) for argv in unit_argvs(unit) for a in tlog_argvs(argv)]
    [keygen] = [p for p in parsed if p.path == ("witness", "keygen")]
    [witness] = [p for p in parsed if p.path == ("witness", "serve")]
    state = f"/var/lib/{unit_value(unit, 'StateDirectory')}"
    assert keygen.value("--out").replace("${STATE_DIRECTORY}", state) == witness.value("--key")
    assert "test -e" in unit_value(unit, "ExecStartPre"), "keygen must not run once the key exists"


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60)


def installed_copies(tmp_path: Path) -> list[Path]:
    """The units as installed: ExecStart's /opt/tlog/bin/tlog made this venv's `tlog`, so
    systemd-analyze checks a real executable."""
    tlog = Path(sys.executable).with_name("tlog")
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/tlog/bin/tlog", str(tlog)))
        copies.append(copy)
    return copies


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed")


@needs_systemd_analyze
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    copies = installed_copies(tmp_path)
    result = systemd_analyze("verify", *map(str, copies))
    # Unknown or misspelt keys are only warnings: any message about our files fails.
    ours = [line for line in result.stderr.splitlines() if any(c.name in line for c in copies)]
    assert result.returncode == 0 and not ours, result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize("name", [u.name for u in UNITS])
def test_systemd_unit_exposure_is_low(tmp_path: Path, name: str) -> None:
    [unit] = [u for u in installed_copies(tmp_path) if u.name == name]
    # --threshold is in tenths of the exposure level shown (0.0 safest … 10.0).
    result = systemd_analyze("security", "--offline=yes", "--threshold=20", str(unit))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


# --- GitHub Actions workflow -----------------------------------------------------------------

def workflow() -> dict[str, Any]:
    wf: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as true
        wf["on"] = wf.pop(True)
    return wf


def job_usages(job: str) -> list[Parsed]:
    steps = workflow()["jobs"][job]["steps"]
    return [parse_tlog(a) for s in steps if "run" in s for a in tlog_argvs(["sh", "-c", s["run"]])]


def test_workflow_meets_the_github_workflow_schema() -> None:
    assert_meets_schema(workflow(), vendored_schema("github-workflows.json"))


def test_workflow_signs_then_verifies_before_deploying() -> None:
    jobs = workflow()["jobs"]
    assert set(jobs) == {"sign", "verify"}
    needs = jobs["verify"]["needs"]
    assert "sign" in ([needs] if isinstance(needs, str) else needs)
    signed = [p for p in job_usages("sign") if p.path == ("sign",)]
    verified = [p for p in job_usages("verify") if p.path == ("verify",)]
    assert any(p.value("--image") for p in signed) and any(p.values.get("artifact") for p in signed)
    # Every bundle the sign job writes is checked by the verify job, and nothing else.
    assert {p.value("--bundle") for p in signed} == {p.value("--bundle") for p in verified}
    assert jobs["verify"]["steps"][-1]["name"] == "Deploy", "deploy last, once all is verified"
    assert step_artifacts("sign", "actions/upload-artifact") == \
        step_artifacts("verify", "actions/download-artifact")


def step_artifacts(job: str, action: str) -> list[str]:
    """The artifact names of a job's steps that use ACTION."""
    steps = workflow()["jobs"][job]["steps"]
    return [s["with"]["name"] for s in steps if s.get("uses", "").partition("@")[0] == action]


def test_workflow_pins_the_log_key_and_keeps_secrets_out_of_scripts() -> None:
    wf = workflow()
    for job in ("sign", "verify"):
        pins = [p for p in job_usages(job) if p.path == ("trust", "add")]
        assert pins and all(p.value("--log-key") for p in pins), f"{job}: pin the log key, no TOFU in CI"
    scopes = [wf, *wf["jobs"].values(), *(s for j in wf["jobs"].values() for s in j["steps"])]
    for scope in scopes:
        # ${{ }} in a script is pasted in before the shell runs: an injection. Use env.
        assert "${{" not in scope.get("run", ""), scope.get("name")
        for var in scope.get("env", {}):
            assert not var.startswith("TLOG_") or var in CLIENT_VARIABLES, \
                f"{var}: TLOG_ names are tlog's own settings"
    signing = [s for s in wf["jobs"]["sign"]["steps"] if "TLOG_PASSWORD" in s.get("env", {})]
    assert signing and all("secrets.TLOG_" in s["env"]["TLOG_PASSWORD"] for s in signing)


# --- Every `tlog …` in deploy/ -----------------------------------------------------------------

def all_usages() -> list[Usage]:
    usages = [Usage(rel(DOCKERFILE), a) for a in tlog_argvs([*image_entrypoint(), *image_cmd()])]
    for name, service in compose_services().items():
        usages += [Usage(f"{rel(COMPOSE)}: {name}", a) for a in tlog_argvs(compose_argv(service))]
    for where, workload in WORKLOADS:
        for c in pod_containers(workload):
            usages += [Usage(f"{where}: {c['name']}", a) for a in tlog_argvs(container_argv(c))]
    for unit in UNITS:
        usages += [Usage(rel(unit), a) for argv in unit_argvs(unit) for a in tlog_argvs(argv)]
    for name, job in workflow()["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                usages += [Usage(f"{rel(WORKFLOW)}: {name}: {step.get('name', '')}", a)
                           for a in tlog_argvs(["sh", "-c", step["run"]])]
    return usages


USAGES = all_usages()


@pytest.mark.parametrize("usage", USAGES, ids=lambda u: f"{u.where}: tlog {' '.join(u.argv[:2])}")
def test_every_tlog_command_in_deploy_files_is_a_real_command_with_real_flags(usage: Usage) -> None:
    try:
        parse_tlog(usage.argv)
    except click.UsageError as e:
        pytest.fail(f"{usage.where}: tlog {shlex.join(usage.argv)}: {e.format_message()}")


def test_usages_are_found_in_every_kind_of_deploy_file() -> None:
    # Guards the finder: a file whose commands it stopped seeing would pass the test above.
    sources = {u.where.split(":")[0] for u in USAGES}
    assert {rel(DOCKERFILE), rel(COMPOSE), rel(WORKFLOW), *map(rel, UNITS)} <= sources
    assert any(s.startswith("deploy/k8s/") for s in sources)
    paths = {u.argv[:2] if u.argv[0] in ("witness", "trust") else u.argv[:1] for u in USAGES}
    assert {("serve",), ("witness", "keygen"), ("witness", "serve"), ("monitor",),
            ("trust", "add"), ("sign",), ("verify",)} <= paths


def test_shell_command_finder_reads_operators_redirections_and_exec() -> None:
    script = ('set -eu\ntest -e /k || exec tlog witness keygen --name "a b" --out /k > /v\n'
              'A=1 tlog trust add http://x 2>/dev/null --trust /t && echo done  # tlog not-this\n')
    assert list(tlog_argvs(["/bin/sh", "-c", script])) == [
        ("witness", "keygen", "--name", "a b", "--out", "/k"),
        ("trust", "add", "http://x", "--trust", "/t"),
    ]


def test_parse_tlog_refuses_what_tlog_would() -> None:
    with pytest.raises(click.UsageError, match="No such option"):
        parse_tlog(("serve", "--no-such-flag"))
    with pytest.raises(click.UsageError):
        parse_tlog(("serve", "--key-type", "rsa"))
    with pytest.raises(click.UsageError):
        parse_tlog(("witness", "serve", "--log", "a=b"))  # --key is required
    assert parse_tlog(("serve", "--port", "$(TLOG_PORT)")).value("--port") == "$(TLOG_PORT)"


def test_settings_check_wants_each_setting_read_by_tlog() -> None:
    witness = ("witness", "serve", "--key", "/var/lib/w/witness.key", "--log", "a=${ORIGIN}")
    assert_settings_reach_tlog(witness, {"TLOG_WITNESS_PORT": "1", "TLOG_URL": "u", "ORIGIN": "x"})
    # Each command has its own settings: the log's port is not the witness's.
    with pytest.raises(AssertionError, match="TLOG_PORT is not a setting of `tlog witness serve` "
                                             r"\(did you mean TLOG_WITNESS_PORT\?\)"):
        assert_settings_reach_tlog(witness, {"TLOG_PORT": "1"})
    with pytest.raises(AssertionError, match="TLOG_BATCH_SIZE is not a setting of `tlog monitor`"):
        assert_settings_reach_tlog(("monitor",), {"TLOG_BATCH_SIZE": "1"})
    with pytest.raises(AssertionError, match="did you mean TLOG_WITNESS"):
        assert_settings_reach_tlog(("serve",), {"TLOG_WITNESSES": "http://w=k"})
    assert_settings_reach_tlog(("serve",), {"TLOG_PORT": "3001"})
    with pytest.raises(AssertionError, match="is overridden"):
        assert_settings_reach_tlog(("serve", "--port", "3000"), {"TLOG_PORT": "3001"})
    with pytest.raises(AssertionError, match="not a valid integer"):
        assert_settings_reach_tlog(("serve",), {"TLOG_PORT": "http"})


def test_every_tlog_name_in_deploy_files_is_a_variable_tlog_reads() -> None:
    """Issue 11: `TLOG_WITNESSES` (for TLOG_WITNESS) sat in tlog.env and witness.yaml, ready
    to be uncommented into a log that never pushed to its witness. Every TLOG_ name in deploy/
    — settings, comments, Compose interpolation, CI secrets — is one a tlog command reads."""
    known = GLOBAL_ENV.union(*(known_env(c) for c in configurable_commands()))
    seen = set()
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for name in TLOG_NAME.findall(line):
                assert name in known, f"{rel(path)}:{n}: {name} is read by no tlog command" \
                                      f"{did_you_mean(name, known)}"
                seen.add(name)
    # The scan reads comments and every kind of file: names only found there were seen.
    assert {"TLOG_WITNESS", "TLOG_RATE_LIMIT", "TLOG_WITNESS_PORT", "TLOG_URL", "TLOG_PORT"} <= seen


def test_every_way_of_running_the_log_limits_submissions_by_default() -> None:
    """Issue 11, item 12: a log deployed as shipped answers a flood from one client with 429."""
    log = k8s_object("StatefulSet", "tlog")
    [log_container] = log["spec"]["template"]["spec"]["containers"]
    compose_log = compose_services()["log"]
    runs = {
        rel(DOCKERFILE): (tuple(image_cmd()), {}),
        rel(COMPOSE): (next(tlog_argvs(compose_argv(compose_log))), compose_log.get("environment", {})),
        rel(K8S / "statefulset.yaml"): (next(tlog_argvs(container_argv(log_container))),
                                        container_env(log_container)),
        rel(SYSTEMD / "tlog.service"): (next(a for argv in unit_argvs(SYSTEMD / "tlog.service")
                                             for a in tlog_argvs(argv)),
                                        env_file_variables(SYSTEMD / "tlog.env")),
    }
    for where, (argv, env) in runs.items():
        parsed = parse_tlog(argv)
        assert parsed.path == ("serve",), where
        rate, burst = (parsed.value(f) or env.get(v) for f, v in
                       (("--rate-limit", "TLOG_RATE_LIMIT"), ("--rate-burst", "TLOG_RATE_BURST")))
        assert rate is not None and 0 < float(rate) <= 100, f"{where}: rate limit {rate}"
        assert burst is not None and int(burst) >= 1, f"{where}: burst {burst}"

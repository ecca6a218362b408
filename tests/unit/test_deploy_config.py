"""Static checks of the demo stack: docker-compose.yml, the Dockerfile and config/.

No Docker engine is needed (none runs where these tests run). What can be checked
offline is checked: the compose file against the Compose Specification (with the
`compose-spec` package), image pinning, loopback-only ports, and that the compose
file, the Dockerfile, the Collector config and the Jaeger config agree with each other,
and that config/wait-for-http.py (the demo's wait for the collector) behaves. Nothing
here can prove that the Collector or Jaeger accept their config files semantically;
for that, see config/README.md (`otelcol-contrib validate`).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CONFIG_DIR = ROOT / "config"
COLLECTOR_CONFIG = CONFIG_DIR / "otel-collector.yaml"
JAEGER_CONFIG = CONFIG_DIR / "jaeger.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKERFILE = ROOT / "Dockerfile"
WAIT_SCRIPT = CONFIG_DIR / "wait-for-http.py"

PROJECT_NAME = "promptrecorder"
COLLECTOR = "otel-collector"
JAEGER = "jaeger"
DEMO = "demo"
BIND_VARIABLE = "PROMPTRECORDER_BIND"
LOOPBACK = "127.0.0.1"
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
JAEGER_UI_PORT = 16686
HEALTH_CHECK_PORT = 13133

# A tag names an exact release: at least major.minor, optionally with a suffix
# such as "-slim". Floating tags ("latest", "stable", "2") do not match.
PINNED_TAG = re.compile(r"v?\d+(?:\.\d+){1,3}(?:[-_.+][A-Za-z0-9][A-Za-z0-9._-]*)?")


# --------------------------------------------------------------------------------------
# Compose variable interpolation.
#
# `docker compose` substitutes ${VAR:-default} and friends *before* it validates the
# file against the specification; compose-spec does not (it rejects
# "${PROMPTRECORDER_BIND:-127.0.0.1}:4317:4317" as an invalid host IP). So the tests
# interpolate first, like Compose does, with an explicit environment: an empty one
# stands for "the defaults a user gets when nothing is set".
# --------------------------------------------------------------------------------------

_DOLLAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^{}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<bad>))"
)
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.DOTALL)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Return `value` with Compose interpolation applied to every string in it.

    Supports `$$`, `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
    `${VAR:+a}` and `${VAR+a}`; anything else (nested expressions included) raises
    ValueError rather than being guessed at. Mapping keys are left alone, as in Compose.
    """
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, str):
        return _DOLLAR.sub(lambda match: _substitute(match, env, value), value)
    return value


def _substitute(match: re.Match[str], env: dict[str, str], text: str) -> str:
    if match["escaped"]:
        return "$"
    if match["named"] is not None:
        return env.get(match["named"], "")
    braced = match["braced"]
    parsed = _BRACED.fullmatch(braced) if braced is not None else None
    if parsed is None:
        raise ValueError(f"unsupported interpolation at offset {match.start()} in {text!r}")
    name, op, arg = parsed["name"], parsed["op"], parsed["arg"]
    current = env.get(name)
    if op is None:
        return current or ""
    missing = current is None or (op.startswith(":") and current == "")
    if op.endswith("-"):
        return arg if missing else str(current)
    if op.endswith("?"):
        if missing:
            raise ValueError(f"required variable {name} is missing: {arg}")
        return str(current)
    return "" if missing else arg  # the "+" forms


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The compose file as Compose sees it after interpolation in `env`."""
    raw = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(raw, dict), "docker-compose.yml must be a mapping"
    resolved = interpolate(raw, env if env is not None else {})
    assert isinstance(resolved, dict)
    return resolved


# --------------------------------------------------------------------------------------
# Small parsers for the compose fields the tests look at.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedPort:
    host_ip: str
    host_port: int | None
    container_port: int
    protocol: str


def _port_number(text: str, entry: object) -> int:
    assert text.isdigit(), f"port {text!r} in {entry!r} is not a single port number"
    return int(text)


def parse_port(entry: object) -> PublishedPort:
    """Parse a `ports:` entry, short ("IP:HOST:CONTAINER/proto") or long syntax."""
    if isinstance(entry, dict):
        published = str(entry.get("published", ""))
        return PublishedPort(
            host_ip=str(entry.get("host_ip", "")),
            host_port=_port_number(published, entry) if published else None,
            container_port=_port_number(str(entry["target"]), entry),
            protocol=str(entry.get("protocol", "tcp")),
        )
    text, _, protocol = str(entry).partition("/")
    host_ip = ""
    if text.startswith("["):  # "[::1]:16686:16686"
        host_ip, _, text = text[1:].partition("]:")
    parts = text.split(":")
    if not host_ip and len(parts) == 3:
        host_ip = parts.pop(0)
    assert 1 <= len(parts) <= 2, f"cannot parse port entry {entry!r}"
    host_port = _port_number(parts[0], entry) if len(parts) == 2 else None
    return PublishedPort(host_ip, host_port, _port_number(parts[-1], entry), protocol or "tcp")


def published_ports(service: dict[str, Any]) -> list[PublishedPort]:
    return [parse_port(entry) for entry in service.get("ports", [])]


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str


def bind_mounts(service: dict[str, Any]) -> list[BindMount]:
    """The service's bind mounts (named volumes are skipped)."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            if entry.get("type") == "bind":
                mounts.append(BindMount(str(entry["source"]), str(entry["target"])))
            continue
        source, _, rest = str(entry).partition(":")
        target = rest.split(":")[0]
        if source.startswith((".", "/", "~")):
            mounts.append(BindMount(source, target))
    return mounts


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def option_value(args: list[str], option: str) -> str:
    """The value of `--option VALUE` or `--option=VALUE` in a command line."""
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{option} not found in command {args!r}")


def split_wrapper(args: list[str]) -> tuple[list[str], list[str]]:
    """Split `wrapper ARGS -- COMMAND` into (wrapper part, command); no `--`: ([], args)."""
    if "--" not in args:
        return [], args
    split = args.index("--")
    return args[:split], args[split + 1 :]


def image_tag(reference: str) -> str | None:
    """The tag of an image reference, or None when it has none (`repo` or `repo@digest`)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def dockerfile_base_images(dockerfile: Path) -> list[str]:
    """The images named in FROM lines, leaving out references to earlier build stages."""
    stages: set[str] = set()
    images = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0].upper() != "FROM":
            continue
        args = [word for word in words[1:] if not word.startswith("--")]
        assert args, f"FROM without an image in {dockerfile.name}: {line!r}"
        if args[0].lower() not in stages:
            images.append(args[0])
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    return images


def host_and_port(address: str) -> tuple[str, int]:
    """Split "host:port" or "scheme://host:port/path" into (host, port)."""
    parts = urlsplit(address if "://" in address else f"//{address}")
    assert parts.hostname is not None, f"no host in {address!r}"
    assert parts.port is not None, f"no port in {address!r}"
    return parts.hostname, parts.port


def component_type(component_id: str) -> str:
    """`otlp_grpc/jaeger` -> `otlp_grpc`: the type part of a collector component ID."""
    return component_id.split("/", 1)[0]


# The Collector (and Jaeger v2, built on it) expands `${env:NAME:-default}` in its config;
# config/ uses it for addresses and limits so that tests/backends can run the same files
# on free 127.0.0.1 ports. Every such variable has a default: compose sets none of them.
_COLLECTOR_ENV = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def collector_defaults(text: str) -> str:
    """`text` with each `${env:NAME:-default}` replaced by its default, as the Collector does with NAME unset.

    Comment lines are left alone: their commented-out examples name secrets on purpose.
    """

    def default(match: re.Match[str]) -> str:
        assert match["default"] is not None, f"{match[0]} has no default: compose would have to set it"
        return match["default"]

    return "".join(
        line if line.lstrip().startswith("#") else _COLLECTOR_ENV.sub(default, line)
        for line in text.splitlines(keepends=True)
    )


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(collector_defaults(path.read_text(encoding="utf-8")))
    assert isinstance(data, dict), f"{path.name} must be a YAML mapping"
    return data


def mounted_config(service: dict[str, Any]) -> Path:
    """The host file that is mounted where the service's `--config` option points."""
    in_container = option_value(command_args(service), "--config").removeprefix("file:")
    sources = [mount.source for mount in bind_mounts(service) if mount.target == in_container]
    assert len(sources) == 1, f"no single bind mount provides {in_container}"
    return (COMPOSE_FILE.parent / sources[0]).resolve()


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict), "docker-compose.yml has no services mapping"
    for expected in (JAEGER, COLLECTOR, DEMO):
        assert expected in found, f"service {expected!r} is missing from docker-compose.yml"
    return found


@pytest.fixture(scope="module")
def collector_config() -> dict[str, Any]:
    return load_yaml(COLLECTOR_CONFIG)


@pytest.fixture(scope="module")
def jaeger_config() -> dict[str, Any]:
    return load_yaml(JAEGER_CONFIG)


# --------------------------------------------------------------------------------------
# The interpolation helper the other tests rely on
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${BIND:-127.0.0.1}:80:80", {}, "127.0.0.1:80:80"),
        ("${BIND:-127.0.0.1}:80:80", {"BIND": ""}, "127.0.0.1:80:80"),
        ("${BIND-127.0.0.1}:80:80", {"BIND": ""}, ":80:80"),
        ("${BIND:-127.0.0.1}:80:80", {"BIND": "0.0.0.0"}, "0.0.0.0:80:80"),
        ("$BIND/${BIND}", {"BIND": "x"}, "x/x"),
        ("${KEY:+set}|${MISSING:+set}", {"KEY": "1"}, "set|"),
        ("cost $$5", {}, "cost $5"),
    ],
)
def test_interpolation_resolves_variables_the_way_compose_does(
    text: str, env: dict[str, str], expected: str
) -> None:
    """The test helper substitutes variables with Compose's default/alternative rules."""
    assert interpolate(text, env) == expected


@pytest.mark.parametrize("text", ["${REQUIRED:?set it}", "${A:-${B}}", "$1"])
def test_interpolation_refuses_what_it_cannot_resolve(text: str) -> None:
    """Missing required variables and unsupported syntax raise instead of passing silently."""
    with pytest.raises(ValueError, match=r"REQUIRED|unsupported"):
        interpolate(text, {})


# --------------------------------------------------------------------------------------
# docker-compose.yml
# --------------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    """After interpolation, docker-compose.yml parses and validates as a Compose file.

    compose-spec checks every key, type and enum of the current specification (an
    unknown key, a bad duration, restart policy or depends_on condition is an error)
    and that referenced networks, volumes, configs and secrets are defined.
    """
    compose_spec = pytest.importorskip(
        "compose_spec", reason="compose-spec (a dev dependency) is not installed"
    )
    parsed = compose_spec.PyCompose.from_yaml(yaml.safe_dump(compose, sort_keys=False))
    parsed.validate()
    assert parsed.name == PROJECT_NAME
    assert set(parsed.service_names()) == set(compose["services"])


def test_compose_file_has_a_project_name_and_no_obsolete_version_key(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The file names its project, omits `version:`, and depends only on defined services.

    compose-spec accepts the obsolete `version:` key and does not resolve depends_on
    targets, so both are checked here.
    """
    assert compose.get("name") == PROJECT_NAME
    assert "version" not in compose, "`version:` is obsolete in the Compose Specification"
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        targets = depends_on if isinstance(depends_on, list) else list(depends_on)
        unknown = set(targets) - set(services)
        assert not unknown, f"service {name!r} depends on undefined services {unknown}"


def test_every_image_is_pinned_to_an_explicit_version(
    services: dict[str, dict[str, Any]],
) -> None:
    """Every image, including the Dockerfile's base image, names an exact version tag."""
    images: dict[str, str] = {}
    for name, service in services.items():
        if "image" in service:
            images[f"service {name}"] = str(service["image"])
        else:
            assert "build" in service, f"service {name!r} has neither image nor build"
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile_name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            dockerfile = COMPOSE_FILE.parent / context / (dockerfile_name or "Dockerfile")
            assert dockerfile.is_file(), f"service {name!r} builds from missing {dockerfile}"
            for base in dockerfile_base_images(dockerfile):
                images[f"{dockerfile.name} FROM (service {name})"] = base
    assert images
    for where, reference in images.items():
        assert "$" not in reference, f"{where}: {reference!r} is not a literal image"
        tag = image_tag(reference)
        assert tag is not None, f"{where}: {reference!r} has no tag"
        assert PINNED_TAG.fullmatch(tag), f"{where}: tag {tag!r} is not an exact version"


def test_every_published_port_binds_to_loopback_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    """With no variables set, every published port listens on 127.0.0.1 only."""
    ports = {name: published_ports(service) for name, service in services.items()}
    assert any(ports.values()), "nothing is published: the UI would be unreachable"
    for name, service_ports in ports.items():
        for port in service_ports:
            assert port.host_ip == LOOPBACK, f"{name} publishes {port} beyond loopback"
            assert port.host_port == port.container_port, f"{name}: {port} remaps the port"


def test_the_bind_address_variable_moves_every_published_port() -> None:
    """Setting PROMPTRECORDER_BIND changes the host address of every published port."""
    moved = load_compose({BIND_VARIABLE: "0.0.0.0"})["services"]
    for name, service in moved.items():
        for port in published_ports(service):
            assert port.host_ip == "0.0.0.0", f"{name}: {port} ignores {BIND_VARIABLE}"


def test_healthchecks_need_no_shell_and_the_collector_has_none(
    services: dict[str, dict[str, Any]],
) -> None:
    """No healthcheck needs a shell, the distroless collector has none, none is awaited.

    The collector image has no shell, curl or wget: a healthcheck there could never
    pass, and a `service_healthy` dependency on it would stall the stack forever.
    """
    assert "healthcheck" not in services[COLLECTOR]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        if test is not None:
            assert isinstance(test, list), f"{name}: use the exec form [CMD, ...]"
            assert test[0] == "CMD", f"{name}: use the exec form [CMD, ...], not {test[0]}"
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, dict) and COLLECTOR in depends_on:
            condition = depends_on[COLLECTOR].get("condition")
            assert condition != "service_healthy", f"{name} waits for a check that cannot run"


def test_demo_sends_otlp_http_to_the_collector_service(
    services: dict[str, dict[str, Any]], collector_config: dict[str, Any]
) -> None:
    """The demo exports OTLP/HTTP to otel-collector:4318, names its service, runs once."""
    demo = services[DEMO]
    _, args = split_wrapper(command_args(demo))
    assert args[:2] == ["promptrecorder", "demo"]
    endpoint = option_value(args, "--endpoint")
    assert urlsplit(endpoint).scheme == "http"
    host, port = host_and_port(endpoint)
    http_receiver = collector_config["receivers"]["otlp"]["protocols"]["http"]
    assert (host, port) == (COLLECTOR, host_and_port(http_receiver["endpoint"])[1])
    assert port == OTLP_HTTP_PORT
    assert option_value(args, "--protocol") == "http/protobuf"
    assert demo["environment"]["OTEL_SERVICE_NAME"] == "promptrecorder-demo"
    assert COLLECTOR in demo["depends_on"]
    assert demo.get("restart") == "no"


def test_demo_waits_for_the_collector_health_check_installed_by_the_dockerfile(
    services: dict[str, dict[str, Any]], collector_config: dict[str, Any]
) -> None:
    """The demo first polls otel-collector's health_check port with a script the image has."""
    wrapper, _ = split_wrapper(command_args(services[DEMO]))
    assert wrapper, "the demo starts without waiting for the collector"
    program, url = wrapper[0], wrapper[1]
    health_port = host_and_port(collector_config["extensions"]["health_check"]["endpoint"])[1]
    assert host_and_port(url) == (COLLECTOR, health_port)
    copies = [
        line.split()[1:]
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.startswith("COPY ") and not line.split()[1].startswith("--")
    ]
    source = WAIT_SCRIPT.relative_to(ROOT).as_posix()
    destinations = [words[-1] for words in copies if words[:-1] == [source]]
    assert destinations, f"the Dockerfile does not COPY {source}"
    assert destinations[0].startswith("/usr/local/bin/")
    assert Path(destinations[0]).name == program
    assert WAIT_SCRIPT.is_file()


def test_docker_build_context_leaves_out_local_state() -> None:
    """.dockerignore keeps the virtualenv, git metadata, caches and .env files out."""
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for required in (".venv", ".git", ".env", "**/__pycache__", ".pytest_cache"):
        assert required in patterns, f".dockerignore does not exclude {required}"


# --------------------------------------------------------------------------------------
# config/otel-collector.yaml
# --------------------------------------------------------------------------------------


def _pipeline_problems(config: dict[str, Any]) -> list[str]:
    connectors = set(config.get("connectors") or {})
    problems = []
    pipelines = config["service"]["pipelines"]
    for pipeline_id, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            defined = set(config.get(kind) or {})
            if kind != "processors":
                defined |= connectors  # a connector is an exporter of one pipeline
            for component_id in pipeline.get(kind, []):  # and a receiver of another
                if component_id not in defined:
                    problems.append(f"{pipeline_id}: {kind[:-1]} {component_id!r} is undefined")
    return problems


@pytest.mark.parametrize("path", [COLLECTOR_CONFIG, JAEGER_CONFIG], ids=["collector", "jaeger"])
def test_every_environment_variable_in_the_configs_has_a_default(path: Path) -> None:
    """Each `${env:...}` in config/ has a `:-default` (compose sets none), and no other `$` form is used."""
    text = path.read_text(encoding="utf-8")
    settings = "".join(line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#"))
    found = _COLLECTOR_ENV.findall(settings)
    assert found, f"{path.name} reads no variables: tests/backends could not move its ports"
    assert all(default for _, default in found)
    resolved = collector_defaults(text).splitlines()
    assert not [line for line in resolved if "$" in line and not line.lstrip().startswith("#")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("endpoint: ${env:A_B:-0.0.0.0:4317}", "endpoint: 0.0.0.0:4317"),
        ("size: ${env:X:-16} and ${env:Y:-jaeger:4317}", "size: 16 and jaeger:4317"),
        ("plain: 1", "plain: 1"),
        ("# key: ${env:SECRET}", "# key: ${env:SECRET}"),
    ],
)
def test_collector_defaults_resolves_like_a_collector_with_the_variables_unset(
    text: str, expected: str
) -> None:
    """`collector_defaults` gives each variable's default, colons and all."""
    assert collector_defaults(text) == expected


def test_collector_defaults_refuses_a_variable_without_a_default() -> None:
    """A `${env:NAME}` without a default would need compose to set it: refused."""
    with pytest.raises(AssertionError, match="has no default"):
        collector_defaults("endpoint: ${env:NAME}")


def test_collector_pipelines_use_only_defined_components(
    collector_config: dict[str, Any],
) -> None:
    """Every receiver, processor and exporter a pipeline names is defined in its section."""
    pipelines = collector_config["service"]["pipelines"]
    assert "traces" in pipelines
    for pipeline in pipelines.values():
        assert pipeline.get("receivers")
        assert pipeline.get("exporters")
    assert _pipeline_problems(collector_config) == []


def test_collector_service_extensions_are_defined(collector_config: dict[str, Any]) -> None:
    """Each extension in service.extensions is configured, including health_check on 13133."""
    enabled = collector_config["service"].get("extensions", [])
    defined = collector_config.get("extensions") or {}
    assert set(enabled) <= set(defined), f"undefined: {set(enabled) - set(defined)}"
    assert "health_check" in enabled
    assert host_and_port(defined["health_check"]["endpoint"]) == ("0.0.0.0", 13133)


def test_memory_limiter_comes_first_and_batch_after_it(collector_config: dict[str, Any]) -> None:
    """In every pipeline, memory_limiter is the first processor and batch comes later."""
    for pipeline_id, pipeline in collector_config["service"]["pipelines"].items():
        processors = [component_type(p) for p in pipeline.get("processors", [])]
        assert processors[:1] == ["memory_limiter"], f"{pipeline_id}: {processors}"
        assert "batch" in processors[1:], f"{pipeline_id}: no batch after memory_limiter"
    limiter = collector_config["processors"]["memory_limiter"]
    assert limiter.get("check_interval")
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] <= 100


def test_collector_receiver_ports_are_the_ports_compose_publishes(
    services: dict[str, dict[str, Any]], collector_config: dict[str, Any]
) -> None:
    """The OTLP receivers listen on 4317/4318 on all interfaces, and compose publishes both."""
    protocols = collector_config["receivers"]["otlp"]["protocols"]
    listening = {name: host_and_port(protocols[name]["endpoint"]) for name in ("grpc", "http")}
    assert listening == {"grpc": ("0.0.0.0", OTLP_GRPC_PORT), "http": ("0.0.0.0", OTLP_HTTP_PORT)}
    published = {port.container_port for port in published_ports(services[COLLECTOR])}
    assert published == {port for _, port in listening.values()}


def test_collector_exports_to_the_jaeger_service_over_otlp_grpc(
    services: dict[str, dict[str, Any]],
    collector_config: dict[str, Any],
    jaeger_config: dict[str, Any],
) -> None:
    """The Jaeger exporter targets the compose service `jaeger` at its OTLP/gRPC port."""
    exporters = collector_config["exporters"]
    jaeger_exporters = [
        exporter_id
        for exporter_id in collector_config["service"]["pipelines"]["traces"]["exporters"]
        if component_type(exporter_id) in {"otlp_grpc", "otlp"}
        and exporter_id in exporters
        and host_and_port(exporters[exporter_id]["endpoint"])[0] == JAEGER
    ]
    assert len(jaeger_exporters) == 1, "the traces pipeline must export to jaeger once"
    exporter = exporters[jaeger_exporters[0]]
    assert JAEGER in services
    assert exporter["tls"]["insecure"] is True  # plain gRPC inside the compose network
    jaeger_grpc = jaeger_config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert host_and_port(exporter["endpoint"])[1] == host_and_port(jaeger_grpc)[1]
    assert host_and_port(exporter["endpoint"])[1] == OTLP_GRPC_PORT


def test_requests_to_jaeger_are_bounded_in_bytes_below_a_stock_grpc_limit(
    collector_config: dict[str, Any],
) -> None:
    """The Jaeger exporter batches by bytes up to less than 4 MiB: the batch processor counts spans.

    A request Jaeger refuses as too large is dropped by the Collector for good
    (config/README.md, measured), so the exporter must split what the batch processor makes.
    """
    [jaeger_exporter] = [
        exporter
        for exporter_id, exporter in collector_config["exporters"].items()
        if component_type(exporter_id) in {"otlp_grpc", "otlp"}
        and host_and_port(exporter["endpoint"])[0] == JAEGER
    ]
    batch = jaeger_exporter["sending_queue"]["batch"]
    assert batch["sizer"] == "bytes"
    assert 0 < batch["min_size"] <= batch["max_size"] < 4 * 1024 * 1024


# --------------------------------------------------------------------------------------
# config/jaeger.yaml and the jaeger service
# --------------------------------------------------------------------------------------


def test_jaeger_ui_is_published_and_its_otlp_ports_are_not(
    services: dict[str, dict[str, Any]], jaeger_config: dict[str, Any]
) -> None:
    """Jaeger publishes its UI on 16686 and nothing else; telemetry enters via the collector."""
    published = {port.container_port for port in published_ports(services[JAEGER])}
    assert published == {JAEGER_UI_PORT}
    query_endpoint = jaeger_config["extensions"]["jaeger_query"]["http"]["endpoint"]
    assert host_and_port(query_endpoint)[1] == JAEGER_UI_PORT


def test_jaeger_config_is_internally_consistent(jaeger_config: dict[str, Any]) -> None:
    """Jaeger's pipelines and extensions are defined, all naming one bounded memory store."""
    assert _pipeline_problems(jaeger_config) == []
    enabled = set(jaeger_config["service"]["extensions"])
    assert enabled <= set(jaeger_config["extensions"])
    assert {"jaeger_storage", "jaeger_query", "healthcheckv2"} <= enabled
    backends = jaeger_config["extensions"]["jaeger_storage"]["backends"]
    query_store = jaeger_config["extensions"]["jaeger_query"]["storage"]["traces"]
    exporter_store = jaeger_config["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert query_store == exporter_store
    assert query_store in backends
    assert backends[query_store]["memory"]["max_traces"] > 0


# --------------------------------------------------------------------------------------
# Files mounted into the containers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_name", "expected"), [(COLLECTOR, COLLECTOR_CONFIG), (JAEGER, JAEGER_CONFIG)]
)
def test_each_service_loads_the_config_file_tested_here(
    services: dict[str, dict[str, Any]], service_name: str, expected: Path
) -> None:
    """The file mounted where the service's --config points exists and is the one in config/."""
    source = mounted_config(services[service_name])
    assert source.is_file(), f"{service_name} mounts missing file {source}"
    assert source.parent == CONFIG_DIR
    assert source == expected


def test_every_bind_mounted_file_exists(services: dict[str, dict[str, Any]]) -> None:
    """Every relative bind-mount source in the compose file exists in the repository."""
    for name, service in services.items():
        for mount in bind_mounts(service):
            if mount.source.startswith("."):
                source = COMPOSE_FILE.parent / mount.source
                assert source.exists(), f"{name} mounts missing {mount.source}"


# --------------------------------------------------------------------------------------
# config/wait-for-http.py, run as the demo container runs it
# --------------------------------------------------------------------------------------


class _Status(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


def _serve(status: int) -> Iterator[str]:
    handler = type("Handler", (_Status,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def ready_url() -> Iterator[str]:
    yield from _serve(200)


@pytest.fixture
def starting_url() -> Iterator[str]:
    yield from _serve(503)  # what the health_check extension says while starting


def _wait_for_http(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WAIT_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_wait_for_http_runs_the_command_once_the_url_answers(ready_url: str) -> None:
    """With the URL answering 200, the script becomes the command (output and exit code)."""
    command = [sys.executable, "-c", "print('demo ran'); raise SystemExit(3)"]
    result = _wait_for_http(ready_url, "--timeout", "5", "--", *command)
    assert result.stdout.strip() == "demo ran"
    assert result.returncode == 3


def test_wait_for_http_does_not_run_the_command_before_the_url_is_ready(
    starting_url: str,
) -> None:
    """While the URL answers 503, the command never runs and the script fails with a reason."""
    command = [sys.executable, "-c", "print('demo ran')"]
    result = _wait_for_http(starting_url, "--timeout", "0", "--", *command)
    assert result.returncode == 1
    assert "demo ran" not in result.stdout
    assert "HTTP 503" in result.stderr

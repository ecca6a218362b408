"""The backends tier: a real Jaeger v2 and a real OpenTelemetry Collector on 127.0.0.1.

``bash backends/build.sh`` builds both from their Go modules into backends/bin/ (a cold
build takes minutes, a warm one a second; config/README.md has the figures). They run with
the config/ files docker-compose.yml mounts, unmodified: addresses and limits come in
through the ``${env:...}`` variables those files read. One Jaeger and one Collector (with
the Collector's stock limits: 4 MiB per gRPC message, 20 MiB per HTTP body) serve the whole
session; tests that restart or re-limit a program start their own.

Without the binaries the tier is skipped, with that reason, unless ``PROMPTRECORDER_BACKENDS=1``
(``.ci/run`` sets it): then missing binaries are a failure, not a skip.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .processes import (
    COLLECTOR_BIN,
    JAEGER_BIN,
    STOCK_LIMITS,
    Collector,
    Jaeger,
    make_collector,
    make_jaeger,
)

_HERE = Path(__file__).parent
REQUIRED = "PROMPTRECORDER_BACKENDS"


def _missing() -> list[str]:
    return [str(path) for path in (JAEGER_BIN, COLLECTOR_BIN) if not path.is_file()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    ours = [item for item in items if item.path.is_relative_to(_HERE)]
    for item in ours:
        item.add_marker(pytest.mark.backends)
    if not _missing() or os.environ.get(REQUIRED) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"no Jaeger/Collector binaries ({', '.join(_missing())}): run `bash backends/build.sh` "
        f"(or set {REQUIRED}=1 to make their absence a failure)"
    )
    for item in ours:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def backend_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backends")


@pytest.fixture(scope="session")
def _binaries() -> None:
    missing = _missing()
    if missing:
        pytest.fail(f"{REQUIRED}=1 but the binaries are missing: {missing}; run `bash backends/build.sh`")


@pytest.fixture(scope="session")
def jaeger(_binaries: None, backend_logs: Path) -> Iterator[Jaeger]:
    """One Jaeger v2 (in-memory store) for the session."""
    started = make_jaeger(backend_logs)
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def collector(jaeger: Jaeger, backend_logs: Path) -> Iterator[Collector]:
    """One Collector for the session, in front of `jaeger`, with the stock receiver limits."""
    started = make_collector(backend_logs, jaeger, **STOCK_LIMITS)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def start_collector(
    jaeger: Jaeger, backend_logs: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Collector]]:
    """Starts a Collector of the test's own (in front of the session's Jaeger); stops it after."""
    started: list[Collector] = []

    def start(stock_limits: bool = True, **limits: str) -> Collector:
        """`limits` override PROMPTRECORDER_COLLECTOR_* variables; without `stock_limits` the config's own defaults apply."""
        name = f"collector-{request.node.name}-{len(started)}".replace("/", "_")
        base = STOCK_LIMITS if stock_limits else {}
        collector = make_collector(backend_logs, jaeger, name=name, **{**base, **limits})
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()


def wait_for_trace(
    jaeger: Jaeger,
    trace_id: str,
    done: Callable[[Any], bool],
    timeout: float = 30.0,
) -> Any:
    """Jaeger's /api/v3 answer for `trace_id` once `done(answer)` holds (the Collector batches for 1 s)."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        status, answer = jaeger.get_json(f"/api/v3/traces/{trace_id}")
        if status == 200 and done(answer):
            return answer
        time.sleep(0.3)
    raise AssertionError(
        f"trace {trace_id} not complete in Jaeger within {timeout:.0f} s; last answer: {answer!r:.500}"
    )


def v3_spans(answer: Any) -> list[dict[str, Any]]:
    """Every span of an /api/v3 answer, each with its resource's attributes under "_resource"."""
    spans = []
    for resource_spans in answer["result"]["resourceSpans"]:
        resource = {a["key"]: a["value"] for a in resource_spans["resource"].get("attributes", [])}
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                spans.append({**span, "_resource": resource})
    return spans


def any_value(value: dict[str, Any]) -> Any:
    """The Python value of an OTLP JSON AnyValue (ints arrive as strings, per the JSON mapping)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return value["boolValue"]
    if "arrayValue" in value:
        return [any_value(item) for item in value["arrayValue"].get("values", [])]
    return value


def attributes(item: dict[str, Any]) -> dict[str, Any]:
    return {a["key"]: any_value(a["value"]) for a in item.get("attributes", [])}


@pytest.fixture
def own_stack(
    backend_logs: Path, _binaries: None, request: pytest.FixtureRequest
) -> Iterator[tuple[Jaeger, Collector]]:
    """A Jaeger and a Collector of the test's own, for tests that restart them."""
    log_dir = backend_logs / request.node.name.replace("/", "_")
    log_dir.mkdir()
    jaeger = make_jaeger(log_dir)
    jaeger.start()
    collector = make_collector(log_dir, jaeger, **STOCK_LIMITS)
    try:
        collector.start()
        yield jaeger, collector
    finally:
        collector.stop()
        jaeger.stop()

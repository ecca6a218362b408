"""configure(), flush(), shutdown() and delivery accounting, with in-process exporters."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptrecorder import (
    PromptRecorder,
    autorecord,
    configure,
    delivery_stats,
    flush,
    settings,
    shutdown,
)
from promptrecorder.export import telemetry
from promptrecorder.export.delivery_processor import DeliveryProcessor
from promptrecorder.export.telemetry import destinations

pytestmark = pytest.mark.usefixtures("global_tracing")


class ScriptedExporter(SpanExporter):
    """Answers each export with the next scripted result (the last one repeats)."""

    def __init__(self, *results: SpanExportResult | Exception, block: threading.Event | None = None) -> None:
        self.results = list(results) or [SpanExportResult.SUCCESS]
        self.exported: list[ReadableSpan] = []
        self.block = block
        self.shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.block is not None:
            self.block.wait(10)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        if result is SpanExportResult.SUCCESS:
            self.exported.extend(spans)
        return result

    def shutdown(self) -> None:
        self.shut_down = True
        if self.block is not None:
            self.block.set()


def _record_one(name: str = "work") -> None:
    """One span: a block with no pair (a pair would add its call span)."""
    with PromptRecorder(name, attributes={"prompt": "p", "response": "r"}):
        pass


# --- configure() ------------------------------------------------------------------------


def test_configure_sets_a_global_provider_that_recorders_export_to() -> None:
    """After configure(exporter=...), a recorder made without a provider exports there on flush()."""
    exporter = InMemorySpanExporter()
    provider = configure(service_name="svc", exporter=exporter)
    assert provider is trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    _record_one()
    assert flush(timeout=5)
    (span,) = exporter.get_finished_spans()
    assert span.name == "invoke_workflow work"
    assert span.resource.attributes["service.name"] == "svc"
    assert [stats.exported_spans for stats in delivery_stats()] == [1]


def test_a_recorder_made_before_configure_still_exports() -> None:
    """Recorders use the global provider through the API's proxy, so order does not matter."""
    recorder = PromptRecorder("early")
    exporter = InMemorySpanExporter()
    configure(exporter=exporter)
    with recorder:
        autorecord("p", "r")
    flush(timeout=5)
    assert [span.name for span in exporter.get_finished_spans()] == ["chat", "invoke_workflow early"]


def test_resource_comes_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES shape the resource when no argument is given."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=ml")
    provider = configure(exporter="none")
    assert isinstance(provider, TracerProvider)
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "from-env"
    assert attributes["deployment.environment"] == "test"
    assert attributes["team"] == "ml"


def test_an_explicit_service_name_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(service_name=...) takes precedence over OTEL_SERVICE_NAME."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    provider = configure(service_name="explicit", exporter="none")
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "explicit"


def test_sdk_disabled_sets_nothing_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true: configure() returns None and recording stays in memory."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert configure(service_name="x") is None
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    with PromptRecorder("memory") as recorder:
        autorecord("p", "r")
    assert len(recorder) == 1


def test_an_application_provider_is_used_and_left_alone(caplog: pytest.LogCaptureFixture) -> None:
    """If the app already set a TracerProvider, configure() returns it, adds nothing, and says so once."""
    app_exporter = InMemorySpanExporter()
    app_provider = TracerProvider(shutdown_on_exit=False)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    trace.set_tracer_provider(app_provider)
    ours = ScriptedExporter()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        assert configure(exporter=ours) is app_provider
        assert configure(exporter=ours) is app_provider
    _record_one()
    assert [span.name for span in app_exporter.get_finished_spans()] == ["invoke_workflow work"]
    assert ours.exported == []
    assert sum("already set a TracerProvider" in message for message in caplog.messages) == 1
    app_provider.shutdown()


def test_a_recorder_made_before_the_global_provider_exports_to_it() -> None:
    """Built while only the API's proxy provider exists, a recorder follows the provider set later."""
    recorder = PromptRecorder("early")
    app_exporter = InMemorySpanExporter()
    app_provider = TracerProvider(shutdown_on_exit=False)
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    trace.set_tracer_provider(app_provider)
    with recorder:
        autorecord("p", "r")
    assert [span.name for span in app_exporter.get_finished_spans()] == ["chat", "invoke_workflow early"]
    app_provider.shutdown()


def test_configure_twice_replaces_the_pipeline_on_the_same_provider() -> None:
    """A second configure() keeps the provider, routes new spans to the new exporter and stops the old one."""
    first, second = ScriptedExporter(), ScriptedExporter()
    provider = configure(exporter=first)
    _record_one("one")
    assert configure(exporter=second) is provider
    assert first.shut_down
    _record_one("two")
    flush(timeout=5)
    assert [span.name for span in first.exported] == ["invoke_workflow one"]
    assert [span.name for span in second.exported] == ["invoke_workflow two"]


def test_console_exporter_prints_compact_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """exporter='console' prints one line per span and per event, with the prompt text."""
    configure(exporter="console")
    with PromptRecorder("shown"):
        autorecord("p", "r")
    out = capsys.readouterr().out
    assert "[span] invoke_workflow shown" in out
    assert "[span] chat " in out  # the pair's call span
    assert "[event] promptrecorder.prompt  'p'" in out
    assert destinations() == ["the console"]


def test_traces_exporter_variable_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_EXPORTER=none means no exporter at all; unknown names are refused."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    configure()
    assert destinations() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER must name exporters among"):
        configure()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"protocol": "http/json"}, ValueError, "`protocol` must be one of"),
        ({"endpoint": "localhost:4317"}, ValueError, "`endpoint` must be a URL"),
        ({"exporter": 3}, TypeError, "`exporter` must be"),
        ({"headers": "no-equals-sign"}, ValueError, "`headers` must be"),
        ({"headers": 5}, TypeError, "`headers` must be"),
        ({"timeout": 0}, ValueError, "`timeout` must be"),
        ({"service_name": ""}, ValueError, "`service_name`"),
    ],
)
def test_configure_refuses_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    """Each bad argument fails at once with a message naming it."""
    with pytest.raises(error, match=match):
        configure(**kwargs)  # type: ignore[arg-type]


def test_the_default_pipeline_speaks_otlp_http_to_localhost() -> None:
    """With no arguments and no variables, spans go over OTLP/HTTP to localhost:4318/v1/traces."""
    configure()
    assert destinations() == ["http://localhost:4318/v1/traces (OTLP/HTTP)"]


@pytest.mark.parametrize(
    ("endpoint", "protocol", "env", "expected"),
    [
        (None, "grpc", {}, "http://localhost:4317"),
        (None, "http/protobuf", {}, "http://localhost:4318/v1/traces"),
        ("http://collector:4318", "http/protobuf", {}, "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http/protobuf", {}, "http://collector:4318/v1/traces"),
        ("https://otlp.example/v1/traces", "http/protobuf", {}, "https://otlp.example/v1/traces"),
        (
            None,
            "http/protobuf",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318"},
            "http://base:4318/v1/traces",
        ),
        (
            None,
            "http/protobuf",
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:2",
            },
            "http://t:1/custom",
        ),
        (None, "grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4317"}, "http://base:4317"),
        ("http://arg:1", "grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:2"}, "http://arg:1"),
    ],
)
def test_endpoint_resolution_follows_the_otlp_rules(
    monkeypatch: pytest.MonkeyPatch, endpoint: str | None, protocol: str, env: dict[str, str], expected: str
) -> None:
    """A signal-specific URL is used as is; a base URL gets /v1/traces over HTTP; arguments win."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    configure(endpoint=endpoint, protocol=protocol)
    assert destinations() == [f"{expected} ({'OTLP/gRPC' if protocol == 'grpc' else 'OTLP/HTTP'})"]


def test_protocol_falls_back_to_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL wins over OTEL_EXPORTER_OTLP_PROTOCOL."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    configure()
    assert destinations() == ["http://localhost:4317 (OTLP/gRPC)"]


# --- delivery accounting ----------------------------------------------------------------------


def test_an_outage_is_logged_once_plainly_and_its_recovery_once(caplog: pytest.LogCaptureFixture) -> None:
    """Failures: one warning without a traceback for the whole outage, then one line when it recovers."""
    inner = ScriptedExporter(
        SpanExportResult.FAILURE,
        SpanExportResult.FAILURE,
        RuntimeError("socket gone"),
        SpanExportResult.SUCCESS,
    )
    configure(exporter=inner)
    with caplog.at_level(logging.WARNING):
        for batch in range(4):
            for index in range(5):
                _record_one(f"b{batch}-{index}")
            flush(timeout=5)
    warnings = [record for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(warnings) == 2
    assert "could not deliver 5 spans to ScriptedExporter: ScriptedExporter reported a failure" in (
        warnings[0].getMessage()
    )
    assert "recovered; 15 spans were not delivered during the outage" in warnings[1].getMessage()
    assert all(record.exc_info is None for record in caplog.records)
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.failed_spans, stats.failed_exports) == (5, 15, 3)
    assert stats.last_error == "RuntimeError: socket gone"


def test_after_shutdown_begins_a_dead_collector_is_not_waited_on_again() -> None:
    """Once shutting down and failing, queued batches are given up at once and counted."""
    inner = ScriptedExporter(SpanExportResult.FAILURE)
    configure(exporter=inner)
    _record_one()
    assert flush(timeout=5) is False
    inner.block = threading.Event()  # an export reaching the collector now would hang
    for _ in range(3):
        _record_one()
    started = time.monotonic()
    shutdown(timeout=5)
    assert time.monotonic() - started < 1
    assert delivery_stats()[0].failed_spans == 4
    inner.block.set()


def test_flush_reports_failed_delivery() -> None:
    """flush() is True when everything was delivered, False when an export failed."""
    inner = ScriptedExporter(SpanExportResult.SUCCESS, SpanExportResult.FAILURE)
    configure(exporter=inner)
    _record_one()
    assert flush(timeout=5) is True
    _record_one()
    assert flush(timeout=5) is False
    assert delivery_stats()[0].failed_spans == 1


def test_flush_and_shutdown_are_bounded_when_the_exporter_hangs() -> None:
    """A collector that never answers holds flush() and shutdown() only as long as their timeouts."""
    hang = threading.Event()
    configure(exporter=ScriptedExporter(block=hang))
    _record_one()
    started = time.monotonic()
    assert flush(timeout=0.3) is False
    shutdown(timeout=0.3)
    assert time.monotonic() - started < 3  # generous: the bound is 0.6 s plus thread scheduling
    hang.set()


def test_shutdown_twice_is_harmless_and_configure_after_shutdown_exports_again() -> None:
    """shutdown() may be called repeatedly; a later configure() sets exporting up again."""
    first = ScriptedExporter()
    configure(exporter=first)
    shutdown()
    shutdown()
    assert first.shut_down
    second = ScriptedExporter()
    configure(exporter=second)
    _record_one("after")
    flush(timeout=5)
    assert [span.name for span in second.exported] == ["invoke_workflow after"]


def _processors() -> list[DeliveryProcessor]:
    state = telemetry._state
    assert state is not None
    return [p for p in state.switch.pipeline.processors if isinstance(p, DeliveryProcessor)]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_both_protocols_and_an_exporter_instance_get_byte_bounded_batches(protocol: str) -> None:
    """configure() puts our own processor, bounded at 4 MiB - 64 KiB per request, in front of every
    destination but the console (deliberately: the SDK's BatchSpanProcessor is gone)."""
    configure(endpoint="http://127.0.0.1:9", protocol=protocol)  # nothing is exported in this test
    (processor,) = _processors()
    assert processor.max_request_bytes == settings.DEFAULT_MAX_REQUEST_BYTES == 4 * 1024 * 1024 - 64 * 1024
    assert (processor.max_queue_spans, processor.max_batch_spans) == (2048, 512)
    configure(exporter=InMemorySpanExporter(), max_request_bytes=1000)
    (processor,) = _processors()
    assert processor.max_request_bytes == 1000

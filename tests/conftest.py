"""Fixtures every test shares: an in-memory tracing set-up and a leak check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptrecorder import _diagnostics, current_recorder
from promptrecorder.export import telemetry


@dataclass
class Tracing:
    """A TracerProvider of a test's own, exporting to memory."""

    provider: TracerProvider
    exporter: InMemorySpanExporter

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        matching = [span for span in self.spans() if span.name == name]
        assert len(matching) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return matching[0]


@pytest.fixture
def tracing() -> Iterator[Tracing]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, exporter)
    provider.shutdown()


@pytest.fixture
def global_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Lets a test call configure() as if the process were new, and undoes it afterwards.

    OpenTelemetry allows the global TracerProvider to be set once per process; the API
    keeps that state in two module attributes, which this resets for the test's duration.
    """
    from opentelemetry.util._once import Once

    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(telemetry, "_state", None)
    yield
    telemetry.shutdown(timeout=2.0)


@pytest.fixture(autouse=True)
def _nothing_left_current() -> Iterator[None]:
    """Every test must leave no recorder active and no span current behind it.

    It also lets each test see the log lines promptrecorder says only once per process.
    """
    _diagnostics._said.clear()
    yield
    assert current_recorder() is None, "a test left a PromptRecorder active"
    assert not trace.get_current_span().get_span_context().is_valid, "a test left a span current"

"""A long block at production size: 40,000 pairs of 1 kB in one recorder, every span under budget.

In process, through the SDK and our OTLP encoder (what configure()'s exporters send); the
``acceptance`` tests deliver the same to real receivers.
"""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder, autorecord, settings
from promptrecorder.export.otlp_encode import EncodedSpan, encode_span
from promptrecorder.recording import semconv


class SizeOfEachSpan(SpanProcessor):
    """Encodes each span as it ends and keeps only its size and how many pairs it holds (of the
    spans carrying events; the pairs' call spans, one pair each, are only counted)."""

    def __init__(self) -> None:
        self.spans: list[tuple[int, int]] = []
        self.calls = 0

    def on_end(self, span: ReadableSpan) -> None:
        encoded = encode_span(span)
        assert isinstance(encoded, EncodedSpan)
        if span.kind is SpanKind.CLIENT:
            self.calls += 1
            assert len(encoded.payload) <= settings.DEFAULT_MAX_SPAN_BYTES
            return
        pairs = sum(1 for event in span.events if event.name == semconv.EVENT_PROMPT)
        self.spans.append((len(encoded.payload), pairs))


def record_long_block(event_limit: int | None, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    sizes = SizeOfEachSpan()
    # The event limit is set as the recorder reads it (and the SDK's SpanLimits() does).
    if event_limit is not None:
        monkeypatch.setenv(settings.OTEL_SPAN_EVENT_COUNT_LIMIT, str(event_limit))
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(sizes)
    with PromptRecorder("long", tracer_provider=provider, max_records=100):
        for _ in range(40_000):
            autorecord("p" * 1024, "r" * 1024)
    provider.shutdown()
    assert sizes.calls == 40_000
    return sizes.spans


def test_forty_thousand_pairs_with_the_stock_event_limit_make_spans_under_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the SDK's 128 events per span, each segment holds 63 pairs, far under 1 MiB; none is lost."""
    spans = record_long_block(None, monkeypatch)
    assert sum(pairs for _, pairs in spans) == 40_000
    assert max(size for size, _ in spans) <= settings.DEFAULT_MAX_SPAN_BYTES


def test_forty_thousand_pairs_with_no_event_limit_are_cut_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the event count does not bound a span (a provider allowing 100,000 events), bytes do: 1 MiB each."""
    spans = record_long_block(100_000, monkeypatch)
    assert sum(pairs for _, pairs in spans) == 40_000
    assert max(size for size, _ in spans) <= settings.DEFAULT_MAX_SPAN_BYTES
    assert len(spans) < 200  # the segments are filled, not one pair each

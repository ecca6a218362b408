"""OTLP bytes to SDK spans and back: what the spool re-sends is what was spooled."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.errors import UndecodableBatchError
from promptrecorder.export.otlp_codec import decode_batch, encode_batch


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> list[ReadableSpan]:
    """Real SDK spans from a recorder session: events, a segment with a link, an error, a CLIENT span."""
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "8")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "spool-test", "deployment.environment": "ci"}),
        span_limits=SpanLimits(max_span_attributes=6),  # max_events: the variable's 8
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    recorder = PromptRecorder("session", tracer_provider=provider, attributes={"tags": ["a", "b"]})
    with pytest.raises(ValueError, match="boom"), recorder:
        for index in range(6):  # past max_events: continues on a linked segment span
            autorecord(f"prompt {index}", f"response {index}", model="m", input_tokens=index)
        tracer = provider.get_tracer("other", "1.2.3", schema_url="https://opentelemetry.io/schemas/1.30.0")
        parent = tracer.start_span("parent")
        with tracer.start_span(
            "client",
            kind=SpanKind.CLIENT,
            links=[Link(parent.get_span_context(), {"why": "because"})],
            attributes={f"k{n}": n for n in range(9)},  # 3 past the limit: dropped, counted
        ):
            pass
        parent.end()
        raise ValueError("boom")
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_a_decoded_batch_encodes_back_to_the_same_bytes(spans: list[ReadableSpan]) -> None:
    """What the exporter re-sends from the spool is byte for byte what was spooled."""
    assert {span.kind for span in spans} == {SpanKind.INTERNAL, SpanKind.CLIENT}
    assert any(span.dropped_attributes for span in spans)
    assert any(span.links for span in spans)
    payload = encode_batch(spans)
    decoded = decode_batch(payload)
    assert encode_batch(decoded) == payload
    # A request groups spans by scope, so the pairs' call spans (scope promptrecorder), which
    # end between spans of scope "other", come back grouped: compare span by span id.
    assert {span.context.span_id: span.name for span in decoded} == {  # type: ignore[union-attr]
        span.context.span_id: span.name  # type: ignore[union-attr]
        for span in spans
    }
    assert len(decoded) == len(spans)
    assert sum(len(span.events) for span in decoded) == 13  # 12 prompt/response events + the exception


def test_bytes_that_are_not_otlp_are_refused() -> None:
    """decode_batch raises UndecodableBatchError on garbage, never anything else."""
    with pytest.raises(UndecodableBatchError):
        decode_batch(b"\xff\xff\xff not protobuf")

"""Every span a recorder makes stays under its byte budget: one rollover rule, two limits."""

from __future__ import annotations

import json
import logging
import timeit

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder, autorecord, settings
from promptrecorder.export.otlp_encode import EncodedSpan, encode_span
from promptrecorder.recording import semconv
from promptrecorder.recording.events import attributes_size, prompt_event_attributes
from tests.conftest import Tracing


def encoded_size(span: ReadableSpan) -> int:
    """The span's OTLP ``Span`` message size, as configure()'s exporters send it."""
    encoded = encode_span(span)
    assert isinstance(encoded, EncodedSpan), "the span could not be encoded"
    return len(encoded.payload)


def pairs_on(span: ReadableSpan) -> int:
    return sum(1 for event in span.events if event.name == semconv.EVENT_PROMPT)


def test_pairs_continue_on_a_new_segment_before_the_span_passes_its_byte_budget(tracing: Tracing) -> None:
    """With a 50 kB budget, 1 kB pairs fill several segments, each under 50 kB, in order, none lost."""
    recorder = PromptRecorder("budget", tracer_provider=tracing.provider, max_span_bytes=50_000)
    with recorder:
        for index in range(100):
            autorecord(f"{index:04d}" + "p" * 1020, "r" * 1024)
    spans = [span for span in tracing.spans() if span.kind is SpanKind.INTERNAL]  # the carriers of events
    assert len(tracing.spans()) == len(spans) + 100  # and a call span per pair
    assert len(spans) > 5  # the event-count limit alone (128) would have needed 2
    assert all(encoded_size(span) <= 50_000 for span in spans)
    prompts = [
        str(event.attributes[semconv.PROMPT_TEXT])[:4]  # type: ignore[index]
        for span in sorted(spans, key=lambda s: s.attributes.get(semconv.SEGMENT_INDEX, 0))  # type: ignore[union-attr]
        for event in span.events
        if event.name == semconv.EVENT_PROMPT
    ]
    assert prompts == [f"{index:04d}" for index in range(100)]
    main = tracing.span("invoke_workflow budget")
    assert main.attributes[semconv.SEGMENT_COUNT] == len(spans)  # type: ignore[index]
    # The records name the span their events went to.
    assert {r.span_id for r in recorder.records} == {format(s.context.span_id, "016x") for s in spans}


def test_a_pair_bigger_than_the_budget_goes_alone_on_a_fresh_segment(tracing: Tracing) -> None:
    """A pair over the budget is never refused: it gets a segment of its own, and the next pair another."""
    with PromptRecorder("big", tracer_provider=tracing.provider, max_span_bytes=10_000):
        autorecord("small", "small")
        autorecord("x" * 20_000, "y")
        autorecord("small again", "small")
    carriers = [span for span in tracing.spans() if span.kind is SpanKind.INTERNAL]
    spans = sorted(carriers, key=lambda s: s.attributes.get(semconv.SEGMENT_INDEX, 0))  # type: ignore[union-attr]
    assert [pairs_on(span) for span in spans] == [1, 1, 1]
    assert encoded_size(spans[1]) > 10_000
    assert encoded_size(spans[0]) <= 10_000
    assert encoded_size(spans[2]) <= 10_000


def test_the_event_count_limit_and_the_byte_budget_are_one_rule(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever limit a segment reaches first ends it: tiny pairs roll over on count, big ones on bytes."""
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "10")
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("mixed", tracer_provider=provider, max_span_bytes=30_000):
        for index in range(12):
            autorecord(f"p{index}", "r")  # count: 4 pairs on the recorder span, then 5 per segment
        for _ in range(6):
            autorecord("b" * 6_000, "r")  # bytes: about two per segment
    spans = exporter.get_finished_spans()
    assert all(span.dropped_events == 0 and len(span.events) <= 10 for span in spans)
    assert all(encoded_size(span) <= 30_000 for span in spans)
    assert sum(pairs_on(span) for span in spans) == 18
    provider.shutdown()


def test_a_failing_block_still_fits_its_exception_in_the_budget(tracing: Tracing) -> None:
    """The recorder span keeps room for the exception event: with it, the span stays under budget."""
    with (
        pytest.raises(RuntimeError),
        PromptRecorder("fails", tracer_provider=tracing.provider, max_span_bytes=60_000),
    ):
        for _ in range(40):
            autorecord("p" * 1_000, "r" * 1_000)
        raise RuntimeError("e" * 100_000)
    main = tracing.span("invoke_workflow fails")
    assert main.events[-1].name == "exception"
    assert all(encoded_size(span) <= 60_000 for span in tracing.spans())


def test_the_budget_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PROMPTRECORDER_MAX_SPAN_BYTES sets the default budget; the argument wins over it."""
    assert PromptRecorder("default").max_span_bytes == settings.DEFAULT_MAX_SPAN_BYTES == 1024 * 1024
    monkeypatch.setenv("PROMPTRECORDER_MAX_SPAN_BYTES", "300000")
    assert PromptRecorder("env").max_span_bytes == 300_000
    assert PromptRecorder("arg", max_span_bytes=5_000).max_span_bytes == 5_000
    assert settings.PROMPTRECORDER_MAX_SPAN_BYTES in settings.ENVIRONMENT


@pytest.mark.parametrize("text", ["lots", "0", "-3"])
def test_a_bad_budget_in_the_environment_is_logged_and_the_default_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    """A wrong value in the environment must not stop the application: one warning, then 1 MiB."""
    monkeypatch.setenv("PROMPTRECORDER_MAX_SPAN_BYTES", text)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        assert PromptRecorder("env").max_span_bytes == settings.DEFAULT_MAX_SPAN_BYTES
    assert "PROMPTRECORDER_MAX_SPAN_BYTES must be a positive int" in caplog.text


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), ("1MiB", TypeError), (True, TypeError)],
)
def test_a_bad_budget_argument_is_refused(value: object, error: type[Exception]) -> None:
    """`max_span_bytes` must be a positive int or None: a wrong type is a TypeError, a wrong int a ValueError."""
    with pytest.raises(error, match="`max_span_bytes` must be a positive int or None"):
        PromptRecorder("bad", max_span_bytes=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["plain ascii", "é" * 500, "漢字" * 300, "🙂" * 200, "a\x00b"])
def test_the_size_estimate_is_never_below_the_encoded_bytes(tracing: Tracing, text: str) -> None:
    """The estimate of a pair is an upper bound of what the encoder writes for its events."""
    with PromptRecorder("size", tracer_provider=tracing.provider):
        autorecord(text, text, model=text[:50], metadata={"k": text, "n": 1, "l": [text, text]})
    span = tracing.span("invoke_workflow size")
    bare = ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=(),
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
    events_bytes = encoded_size(span) - encoded_size(bare)
    estimate = sum(48 + attributes_size(event.attributes) for event in span.events)
    assert events_bytes <= estimate <= 1.2 * events_bytes + 400


def test_estimating_a_pair_costs_little() -> None:
    """The estimate runs in every recorded pair: for a 4 kB ASCII pair it stays well under 10 µs."""
    attributes = prompt_event_attributes(
        record_id="0" * 16,
        prompt="p" * 4096,
        messages=None,
        model="gpt-4o-mini",
        input_tokens=10,
        metadata={"user": "alice"},
        limit=32_768,
    )
    best = min(timeit.repeat(lambda: attributes_size(attributes), number=2_000, repeat=5)) / 2_000
    assert best < 10e-6


def test_a_long_conversation_is_fitted_into_the_budget_on_the_event_and_the_call_span(
    tracing: Tracing,
) -> None:
    """500 messages of 4 kB (2 MB) with a 200 kB budget: each text is cut shorter, the JSON stays valid."""
    from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint, LLMCall

    history = tuple(
        {"role": "user" if i % 2 else "assistant", "content": f"{i:03d}" + "w" * 4_000} for i in range(500)
    )
    with PromptRecorder("chat", tracer_provider=tracing.provider, max_span_bytes=200_000) as recorder:
        call = LLMCall.start(CallRequest(Endpoint("openai"), "m", history))
        assert call is not None
        call.finish(
            CallResult(
                text="done",
                tool_calls=tuple(
                    {"id": str(i), "function": {"name": "f", "arguments": "a" * 4_000}} for i in range(100)
                ),
            )
        )
        autorecord(list(history), "done")
    assert recorder.records[0].messages == history  # memory keeps the conversation whole
    texts = [
        str(attributes[key])
        for span in tracing.spans()
        for attributes in [span.attributes or {}, *(event.attributes or {} for event in span.events)]
        for key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES)
        if key in attributes
    ]
    # The CLIENT span's two, each pair's prompt and response events, the plain pair's call
    # span's two; the recorder span has no room left for the turn's input and output.
    assert len(texts) == 8
    for text in texts:
        assert len(text.encode()) <= 100_000
        messages = json.loads(text)
        assert messages[0]["parts"][0]  # still a message list in the parts format
    inputs = [json.loads(text) for text in texts if '"role":"user"' in text]
    assert all(len(m) == 500 and m[1]["parts"][0]["content"].startswith("001w") for m in inputs)
    assert all(m[1]["parts"][0]["content"].endswith("…[truncated]") for m in inputs)
    assert all(encoded_size(span) <= 200_000 or pairs_on(span) == 1 for span in tracing.spans())

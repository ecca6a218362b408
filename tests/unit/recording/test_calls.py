"""LLMCall and describe_endpoint: one call's CLIENT span, metrics and record, without openai."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from promptrecorder import PromptRecorder
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import (
    CallRequest,
    CallResult,
    Endpoint,
    LLMCall,
    describe_endpoint,
    inside_call,
)
from tests.conftest import Tracing
from tests.fake_openai import http
from tests.unit.metrics_capture import capture_metrics
from tests.unit.recorded_calls import normalised

ENDPOINT = Endpoint("openai", "api.openai.com", 443)
MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"})
REQUEST = CallRequest(
    ENDPOINT, "gpt-4o-mini", MESSAGES, params={semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2}, stream=True
)
RESULT = CallResult(
    text="Paris.",
    response_model="gpt-4o-mini-2024-07-18",
    response_id="chatcmpl-1",
    finish_reasons=("stop",),
    input_tokens=12,
    output_tokens=3,
    cache_read_tokens=2,
    reasoning_tokens=0,
)


def _client_spans(tracing: Tracing) -> list[Any]:
    return [span for span in tracing.spans() if span.kind is SpanKind.CLIENT]


# --- describe_endpoint -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "client_type", "expected"),
    [
        ("https://api.openai.com/v1", "OpenAI", Endpoint("openai", "api.openai.com", 443)),
        (
            "https://contoso.openai.azure.com/openai/",
            "AzureOpenAI",
            Endpoint("azure.ai.openai", "contoso.openai.azure.com", 443),
        ),
        (
            "https://contoso.openai.azure.com/openai/",
            "OpenAI",
            Endpoint("azure.ai.openai", "contoso.openai.azure.com", 443),
        ),
        (
            "https://gateway.corp.example/llm/",
            "AsyncAzureOpenAI",
            Endpoint("azure.ai.openai", "gateway.corp.example", 443),
        ),
        ("http://localhost:8000/v1", "OpenAI", Endpoint("localhost", "localhost", 8000)),
        ("http://127.0.0.1:11434/v1/", "AsyncOpenAI", Endpoint("127.0.0.1", "127.0.0.1", 11434)),
        ("http://vllm.internal/v1", "OpenAI", Endpoint("vllm.internal", "vllm.internal", 80)),
        ("https://LLM.Example.com:8443/v1", "", Endpoint("llm.example.com", "llm.example.com", 8443)),
        ("http://llm.test:99999/v1", "OpenAI", Endpoint("llm.test", "llm.test", None)),
    ],
)
def test_describe_endpoint_names_the_provider_and_server(
    base_url: str, client_type: str, expected: Endpoint
) -> None:
    """api.openai.com is openai, Azure by client type or host, any other server by its host; ports default by scheme."""
    assert describe_endpoint(base_url, client_type) == expected


def test_describe_endpoint_takes_openais_url_objects() -> None:
    """openai's client.base_url is an httpx URL, not a str."""
    assert describe_endpoint(http.URL("https://api.openai.com/v1/"), "OpenAI") == ENDPOINT


# --- starting -------------------------------------------------------------------------------


def test_outside_any_recorder_a_call_is_not_recorded(tracing: Tracing) -> None:
    """LLMCall.start returns None and makes no span when no recorder is active."""
    assert LLMCall.start(REQUEST) is None
    assert tracing.spans() == []


def test_inside_a_recorded_call_a_second_call_is_not_recorded(tracing: Tracing) -> None:
    """inside_call() makes start return None, and only for the duration of the block."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        with inside_call():
            assert LLMCall.start(REQUEST) is None
        with pytest.raises(KeyError), inside_call():
            raise KeyError("the flag is reset on the way out")
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(RESULT)
    assert len(recorder) == 1
    assert len(_client_spans(tracing)) == 1


def test_a_call_starts_a_client_span_under_the_innermost_recorder(tracing: Tracing) -> None:
    """The span is named `chat {model}`, child of the inner recorder's span; the record reaches both recorders."""
    outer = PromptRecorder("outer", tracer_provider=tracing.provider)
    inner = PromptRecorder("inner", tracer_provider=tracing.provider)
    with outer, inner:
        call = LLMCall.start(REQUEST)
        assert call is not None
        assert call.span.is_recording()
        record = call.finish(RESULT)
    (span,) = _client_spans(tracing)
    assert span.name == "chat gpt-4o-mini"
    assert span.parent is not None
    assert span.parent.span_id == tracing.span("invoke_workflow inner").context.span_id
    assert outer.records == inner.records == [record]


def test_a_call_without_a_model_is_named_by_its_operation(tracing: Tracing) -> None:
    """No model known: the span is named `chat` and has no request model."""
    with PromptRecorder("session", tracer_provider=tracing.provider):
        call = LLMCall.start(CallRequest(ENDPOINT, None, MESSAGES))
        assert call is not None
        call.finish(CallResult(text="ok"))
    (span,) = _client_spans(tracing)
    assert span.name == "chat"
    assert semconv.GEN_AI_REQUEST_MODEL not in (span.attributes or {})


# --- finishing --------------------------------------------------------------------------------


def test_a_finished_call_sets_the_genai_attributes_and_keeps_the_record(tracing: Tracing) -> None:
    """The span carries request, response, usage and content; the record the pair and its outcome."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.first_chunk()
        call.first_chunk()  # only the first one counts
        record = call.finish(RESULT)
    (span,) = _client_spans(tracing)
    assert span.status.status_code is StatusCode.UNSET
    assert normalised(span) == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_REQUEST_STREAM: True,
        semconv.SERVER_ADDRESS: "api.openai.com",
        semconv.SERVER_PORT: 443,
        semconv.GEN_AI_INPUT_MESSAGES: [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]},
        ],
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 2,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: "<seconds>",
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: [
            {"role": "assistant", "parts": [{"type": "text", "content": "Paris."}], "finish_reason": "stop"}
        ],
    }
    assert recorder.records == [record]
    assert record is not None
    assert (record.prompt, record.response, record.model, record.provider) == (
        "Capital of France?",
        "Paris.",
        "gpt-4o-mini-2024-07-18",
        "openai",
    )
    assert record.started_at is not None
    assert record.started_at <= record.ended_at
    assert (record.input_tokens, record.output_tokens, record.complete, record.error) == (12, 3, True, None)


def test_a_call_ends_once_whatever_ends_it_again(tracing: Tracing) -> None:
    """A second finish, or a fail after finish, is ignored: one span, one record, the first outcome."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        assert call.finish(RESULT) is not None
        assert call.finish(CallResult(text="again"), complete=False) is None
        assert call.fail(RuntimeError("late")) is None
    assert [(record.response, record.complete, record.error) for record in recorder.records] == [
        ("Paris.", True, None)
    ]
    (span,) = _client_spans(tracing)
    assert span.status.status_code is StatusCode.UNSET


def test_concurrent_endings_record_the_call_once(tracing: Tracing) -> None:
    """Eight threads finishing the same call at once leave exactly one record and one span."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        barrier = threading.Barrier(8)
        results: list[object] = []

        def end() -> None:
            barrier.wait()
            results.append(call.finish(RESULT))

        threads = [threading.Thread(target=end) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert sum(result is not None for result in results) == 1
    assert len(recorder) == 1
    assert len(_client_spans(tracing)) == 1


def test_a_failed_call_marks_the_span_and_keeps_what_arrived(tracing: Tracing) -> None:
    """fail(): ERROR status, error.type and the exception on the span; the record has the error and the partial text."""
    error = ConnectionResetError("peer went away")
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.fail(error, CallResult(text="Par"))
    (span,) = _client_spans(tracing)
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ConnectionResetError: peer went away"
    attributes = normalised(span)
    assert attributes[semconv.ERROR_TYPE] == "ConnectionResetError"
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Par"}]}
    ]
    assert semconv.RESPONSE_COMPLETE not in attributes  # the error says why it is short
    assert [event.name for event in span.events] == ["exception"]
    (record,) = recorder.records
    assert (record.response, record.complete, record.error) == (
        "Par",
        False,
        "ConnectionResetError: peer went away",
    )


def test_a_call_finished_incomplete_says_so_on_span_and_record(tracing: Tracing) -> None:
    """finish(complete=False), a stream closed early: promptrecorder.response.complete is False."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(CallResult(text="Par"), complete=False)
    (span,) = _client_spans(tracing)
    assert normalised(span)[semconv.RESPONSE_COMPLETE] is False
    assert span.status.status_code is StatusCode.UNSET
    assert recorder.records[0].complete is False


def test_a_call_ended_after_its_recorder_exited_is_kept_and_its_span_ended(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A stream finished after the block: the record is kept in memory, the span ends, a warning says so."""
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
    call.finish(RESULT)
    assert [record.response for record in recorder.records] == ["Paris."]
    assert len(_client_spans(tracing)) == 1
    assert any("after its PromptRecorder" in r.getMessage() for r in caplog.records)


def test_an_unsampled_call_is_still_recorded_in_memory() -> None:
    """With a sampler that drops everything, no span is exported but the record is kept."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("session", tracer_provider=provider) as recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        assert not call.span.is_recording()
        call.finish(RESULT)
    assert [record.response for record in recorder.records] == ["Paris."]
    assert exporter.get_finished_spans() == ()
    provider.shutdown()


class _BrokenTracer:
    """A tracer whose spans cannot be started, as a misbehaving SDK or processor might."""

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer broken")


def test_a_span_that_cannot_start_is_logged_and_the_call_still_recorded(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """Telemetry failing never reaches the caller: a warning, no span, and the record kept."""
    recorder = PromptRecorder("session", tracer_provider=tracing.provider)
    with recorder:
        recorder._spans.tracer = _BrokenTracer()  # type: ignore[assignment]
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(RESULT)
    assert [record.response for record in recorder.records] == ["Paris."]
    assert _client_spans(tracing) == []
    # Without its CLIENT span the pair tries a call span of its own: that fails alike, said once.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "promptrecorder could not start a span for an LLM call: RuntimeError('tracer broken')",
        "promptrecorder could not record a pair as an LLM call: RuntimeError('tracer broken')",
    ]


def test_a_redaction_hook_that_raises_still_ends_the_client_span(tracing: Tracing) -> None:
    """Every span started is ended, even when the user's redact hook raises while the call ends."""

    def redact(text: str) -> str:
        raise RuntimeError("hook bug")

    with PromptRecorder("session", tracer_provider=tracing.provider, redact=redact):
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(RESULT)
    assert len(_client_spans(tracing)) == 1


# --- metrics -------------------------------------------------------------------------------


@pytest.fixture
def metrics() -> Iterator[Any]:
    with capture_metrics() as capture:
        yield capture


def test_instruments_made_at_import_record_into_a_provider_set_later(tracing: Tracing, metrics: Any) -> None:
    """calls.py made its histograms before any MeterProvider existed; they record into the one set since."""
    with PromptRecorder("session", tracer_provider=tracing.provider):
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(RESULT)
    common = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
        semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        semconv.SERVER_ADDRESS: "api.openai.com",
        semconv.SERVER_PORT: 443,
    }
    (duration,) = metrics.points(semconv.METRIC_INFERENCE_DURATION)
    assert (duration.attributes, duration.count, duration.unit) == (common, 1, "s")
    assert duration.bounds == (
        0.01,
        0.02,
        0.04,
        0.08,
        0.16,
        0.32,
        0.64,
        1.28,
        2.56,
        5.12,
        10.24,
        20.48,
        40.96,
        81.92,
    )
    # The per-direction counters (gen_ai.token.type is gone: one instrument per direction),
    # with the modality the conventions require, 0 for usage not received.
    counted = {**common, semconv.GEN_AI_TOKEN_MODALITY: "unknown"}
    counters = {
        p.name: (p.sum, p.unit, p.attributes)
        for p in metrics.points()
        if p.name.startswith("gen_ai.client.inference.usage.")
    }
    assert counters == {
        semconv.METRIC_USAGE_INPUT_TOKENS: (12, "{token}", counted),
        semconv.METRIC_USAGE_OUTPUT_TOKENS: (3, "{token}", counted),
        semconv.METRIC_USAGE_CACHE_READ_INPUT_TOKENS: (2, "{token}", counted),
        semconv.METRIC_USAGE_REASONING_OUTPUT_TOKENS: (0, "{token}", counted),
    }
    (inputs,) = metrics.points(semconv.METRIC_OPERATION_INPUT_TOKENS)
    (outputs,) = metrics.points(semconv.METRIC_OPERATION_OUTPUT_TOKENS)
    assert (inputs.sum, inputs.count, inputs.attributes, outputs.sum) == (12, 1, common, 3)
    assert inputs.bounds[:4] == (1, 4, 16, 64)
    assert not [
        p
        for p in metrics.points()
        if p.name in ("gen_ai.client.token.usage", "gen_ai.client.operation.duration")
    ]


def test_a_failed_call_records_its_duration_with_the_error_and_no_tokens(
    tracing: Tracing, metrics: Any
) -> None:
    """A call that raised before any usage arrived: a duration point with error.type; token
    counters and histograms at 0, as the conventions ask for failed operations (the counters
    without error.type)."""
    with PromptRecorder("session", tracer_provider=tracing.provider):
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.fail(TimeoutError("slow"))
    (duration,) = metrics.points(semconv.METRIC_INFERENCE_DURATION)
    assert duration.attributes[semconv.ERROR_TYPE] == "TimeoutError"
    assert semconv.GEN_AI_RESPONSE_MODEL not in duration.attributes
    (counted,) = metrics.points(semconv.METRIC_USAGE_INPUT_TOKENS)
    assert counted.sum == 0
    assert semconv.ERROR_TYPE not in counted.attributes
    (histogram,) = metrics.points(semconv.METRIC_OPERATION_INPUT_TOKENS)
    assert (histogram.sum, histogram.attributes[semconv.ERROR_TYPE]) == (0, "TimeoutError")


def test_an_unsampled_call_still_records_metrics(metrics: Any) -> None:
    """Metrics do not depend on trace sampling: a dropped span still counts its duration and tokens."""
    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    with PromptRecorder("session", tracer_provider=provider):
        call = LLMCall.start(REQUEST)
        assert call is not None
        call.finish(RESULT)
    assert len(metrics.points(semconv.METRIC_INFERENCE_DURATION)) == 1
    assert len(metrics.points(semconv.METRIC_USAGE_INPUT_TOKENS)) == 1
    assert len(metrics.points(semconv.METRIC_OPERATION_OUTPUT_TOKENS)) == 1
    provider.shutdown()

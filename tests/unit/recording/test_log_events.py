"""The opt-in log record per pair: ``gen_ai.client.inference.operation.details``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.llm.bots import ChatBot
from promptrecorder.recording import log_events, semconv
from tests.conftest import Tracing
from tests.fake_openai import MODEL, FakeOpenAI, completion


@pytest.fixture
def logs() -> Iterator[InMemoryLogRecordExporter]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log_events.enable(True, provider)
    yield exporter
    log_events.enable(False)
    provider.shutdown()


def test_each_pair_is_one_log_record_correlated_with_its_call_span(
    tracing: Tracing, logs: InMemoryLogRecordExporter
) -> None:
    """A plain pair and a bot call: one record each, in the call span's context, with the
    call span's attributes and the messages structured (not JSON text)."""
    bot = ChatBot("Be brief.", client=FakeOpenAI(completion("B.")).client(), conversation_id="c1")
    with PromptRecorder("logs", tracer_provider=tracing.provider):
        autorecord("a?", "A.", model="m", input_tokens=3, output_tokens=1)
        bot("b?")
    calls = [span for span in tracing.spans() if span.kind is SpanKind.CLIENT]
    records = [data.log_record for data in logs.get_finished_logs()]
    assert [record.event_name for record in records] == [semconv.EVENT_INFERENCE_DETAILS] * 2
    assert [(r.trace_id, r.span_id) for r in records] == [
        (call.context.trace_id, call.context.span_id)  # type: ignore[union-attr]
        for call in calls
    ]
    assert all(record.body is None for record in records)  # the conventions define no body
    plain, called = (dict(record.attributes or {}) for record in records)
    assert plain == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_INPUT_MESSAGES: ({"role": "user", "parts": ({"type": "text", "content": "a?"},)},),
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 3,
        semconv.GEN_AI_OUTPUT_MESSAGES: (
            {"role": "assistant", "parts": ({"type": "text", "content": "A."},)},
        ),
        semconv.GEN_AI_RESPONSE_MODEL: "m",
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
        semconv.RECORD_ID: plain[semconv.RECORD_ID],
    }
    assert called[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert called[semconv.GEN_AI_CONVERSATION_ID] == "c1"
    assert called[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 19
    assert called[semconv.GEN_AI_PROVIDER_NAME] == "openai"


def test_no_log_record_unless_asked(tracing: Tracing) -> None:
    """Off by default: span events only."""
    assert not log_events.enabled()
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with PromptRecorder("quiet", tracer_provider=tracing.provider):
        autorecord("a?", "A.")
    assert exporter.get_finished_logs() == ()
    provider.shutdown()


def test_without_call_spans_a_plain_pairs_record_is_correlated_with_the_span_of_its_events(
    tracing: Tracing, logs: InMemoryLogRecordExporter
) -> None:
    """call_spans=False: there is no call span, so the log record takes the recorder span's ids."""
    with PromptRecorder("logs", tracer_provider=tracing.provider, call_spans=False):
        autorecord("a?", "A.", model="m")
    (block,) = tracing.spans()
    (record,) = [data.log_record for data in logs.get_finished_logs()]
    assert (record.trace_id, record.span_id) == (block.context.trace_id, block.context.span_id)  # type: ignore[union-attr]
    assert record.event_name == semconv.EVENT_INFERENCE_DETAILS

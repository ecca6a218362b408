"""configure(log_events=True): each pair also arrives as an OTLP log record, over either protocol."""

from __future__ import annotations

import pytest

from promptrecorder import PromptRecorder, autorecord, configure, flush
from promptrecorder.recording import semconv

from .receivers import Receiver

pytestmark = pytest.mark.usefixtures("global_tracing")


def test_each_pair_arrives_as_a_log_record_beside_its_call_span(otlp_receiver: Receiver) -> None:
    """The receiver gets the spans as ever, and one gen_ai.client.inference.operation.details
    record per pair, with the call span's ids and the messages as structured values."""
    configure(endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol, log_events=True)  # type: ignore[arg-type]
    with PromptRecorder("logged", conversation_id="c-7") as recorder:
        autorecord("Summarise ticket 42", "Printer jam.", model="m", input_tokens=11, output_tokens=3)
    assert flush(timeout=10) is True
    (call,) = [span for span in otlp_receiver.spans() if span.name == "chat m"]
    (record,) = otlp_receiver.log_records()
    assert record.event_name == semconv.EVENT_INFERENCE_DETAILS
    assert (record.trace_id, record.span_id) == (call.trace_id, call.span_id)
    assert record.attributes == {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_INPUT_MESSAGES: [
            {"role": "user", "parts": [{"type": "text", "content": "Summarise ticket 42"}]}
        ],
        semconv.GEN_AI_REQUEST_MODEL: "m",
        semconv.GEN_AI_CONVERSATION_ID: "c-7",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 11,
        semconv.GEN_AI_OUTPUT_MESSAGES: [
            {"role": "assistant", "parts": [{"type": "text", "content": "Printer jam."}]}
        ],
        semconv.GEN_AI_RESPONSE_MODEL: "m",
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
        semconv.RECORD_ID: recorder.records[0].id,
    }


def test_the_variable_turns_log_records_on(otlp_receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROMPTRECORDER_LOG_EVENTS=true does what log_events=True does; unset, no log record is sent."""
    configure(endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)  # type: ignore[arg-type]
    with PromptRecorder("quiet"):
        autorecord("p", "r")
    assert flush(timeout=10) is True
    assert otlp_receiver.log_records() == []
    monkeypatch.setenv("PROMPTRECORDER_LOG_EVENTS", "true")
    configure(endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)  # type: ignore[arg-type]
    with PromptRecorder("loud"):
        autorecord("p", "r")
    assert flush(timeout=10) is True
    assert [record.event_name for record in otlp_receiver.log_records()] == [semconv.EVENT_INFERENCE_DETAILS]

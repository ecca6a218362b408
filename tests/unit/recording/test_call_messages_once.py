"""A recorded call passes its content through the content policy once, for span and record alike.

``LLMCall.start`` scrubs the request's messages and builds their ``gen_ai.input.messages``
JSON for the CLIENT span, and ``finish`` does the same for the reply's text and tool calls
(``gen_ai.output.messages``); storing the pair reuses both (and adds the counts of those
passes to the recorder's). What is exported and kept must be what a second pass would have
given.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint, LLMCall
from tests.conftest import Tracing

KEY = "sk-proj-" + "a1B2c3D4e5F6g7H8i9J0k1L2"
MESSAGES = (
    {"role": "system", "content": f"Use key {KEY}"},
    {"role": "user", "content": [{"type": "text", "text": "Mail ada@example.com the summary"}]},
)
REQUEST = CallRequest(Endpoint("openai", "api.openai.com", 443), "gpt-4o-mini", MESSAGES)
RESULT = CallResult(text=f"Sent to ada@example.com with {KEY}", finish_reasons=("stop",))


def _hide_emails(text: str) -> str:
    return text.replace("ada@example.com", "<email>")


def _record_one(recorder: PromptRecorder) -> Any:
    with recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        return call.finish(RESULT)


def test_span_event_and_record_carry_the_same_scrubbed_messages(tracing: Tracing) -> None:
    """The CLIENT span's input messages are exactly the prompt event's; the record holds them scrubbed."""
    recorder = PromptRecorder("once", tracer_provider=tracing.provider, redact=_hide_emails)
    record = _record_one(recorder)
    spans = tracing.spans()
    client = next(span for span in spans if span.kind is SpanKind.CLIENT)
    prompt_event = next(
        event for span in spans for event in span.events if event.name == semconv.EVENT_PROMPT
    )
    exported = client.attributes[semconv.GEN_AI_INPUT_MESSAGES]
    assert prompt_event.attributes[semconv.GEN_AI_INPUT_MESSAGES] == exported
    assert KEY not in exported
    assert "ada@example.com" not in exported
    assert "[REDACTED:openai_api_key]" in exported
    assert "<email>" in exported
    assert record.messages[0]["content"] == "Use key [REDACTED:openai_api_key]"
    assert record.prompt == "Mail <email> the summary"
    assert record.response == "Sent to <email> with [REDACTED:openai_api_key]"


def test_each_change_is_counted_once(tracing: Tracing) -> None:
    """One key in the messages and one in the response; one e-mail in each: counted once each."""
    recorder = PromptRecorder("once", tracer_provider=tracing.provider, redact=_hide_emails)
    _record_one(recorder)
    assert (recorder.redactions.secrets, recorder.redactions.redacted) == (2, 2)


def test_an_unsampled_call_scrubs_and_counts_its_messages_at_the_end() -> None:
    """No span recording, so no pass at the start: storing the pair makes it, counted the same."""
    recorder = PromptRecorder("once", tracer_provider=TracerProvider(sampler=ALWAYS_OFF), redact=_hide_emails)
    record = _record_one(recorder)
    assert record.messages[0]["content"] == "Use key [REDACTED:openai_api_key]"
    assert record.prompt == "Mail <email> the summary"
    assert (recorder.redactions.secrets, recorder.redactions.redacted) == (2, 2)


def test_a_limit_changed_during_the_call_is_honoured_by_the_event(tracing: Tracing) -> None:
    """The prompt event is cut at the recorder's limit when the pair is stored, as before the reuse."""
    recorder = PromptRecorder("once", tracer_provider=tracing.provider)
    with recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        recorder.max_content_length = 10
        call.finish(RESULT)
    prompt_event = next(
        event for span in tracing.spans() for event in span.events if event.name == semconv.EVENT_PROMPT
    )
    assert "Use key [R…[truncated]" in prompt_event.attributes[semconv.GEN_AI_INPUT_MESSAGES]


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "send", "arguments": f'{{"key": "{KEY}"}}'},
}


def test_span_and_response_event_carry_the_same_scrubbed_reply(tracing: Tracing) -> None:
    """The CLIENT span's output messages are exactly the response event's, scrubbed as the record is."""
    recorder = PromptRecorder("once", tracer_provider=tracing.provider, redact=_hide_emails)
    result = CallResult(text=RESULT.text, finish_reasons=("tool_calls",), tool_calls=(TOOL_CALL,))
    with recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        record = call.finish(result)
    spans = tracing.spans()
    client = next(span for span in spans if span.kind is SpanKind.CLIENT)
    response_event = next(
        event for span in spans for event in span.events if event.name == semconv.EVENT_RESPONSE
    )
    exported = client.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
    assert response_event.attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == exported
    assert KEY not in exported
    assert "ada@example.com" not in exported
    assert record is not None
    assert record.response == "Sent to <email> with [REDACTED:openai_api_key]"
    assert record.tool_calls is not None
    assert record.tool_calls[0]["function"]["arguments"] == '{"key": "[REDACTED:openai_api_key]"}'
    # One key each in the system message, the response and the tool call; one e-mail in each of
    # the user message and the response.
    assert (recorder.redactions.secrets, recorder.redactions.redacted) == (3, 2)


def test_the_reply_passes_the_redaction_hook_once(tracing: Tracing) -> None:
    """Span and record share one pass: a hook that answers differently each time still agrees."""
    calls: list[str] = []

    def numbered(text: str) -> str:
        calls.append(text)
        return f"{text} #{len(calls)}"

    recorder = PromptRecorder("once", tracer_provider=tracing.provider, redact=numbered)
    record = _record_one(recorder)
    assert record is not None
    client = next(span for span in tracing.spans() if span.kind is SpanKind.CLIENT)
    assert record.response in client.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
    assert [text for text in calls if text.startswith("Sent to")] == [
        "Sent to ada@example.com with [REDACTED:openai_api_key]"
    ]


def test_a_limit_changed_during_the_call_is_honoured_by_the_response_event(tracing: Tracing) -> None:
    """The response event is cut at the recorder's limit when the pair is stored."""
    recorder = PromptRecorder("once", tracer_provider=tracing.provider)
    with recorder:
        call = LLMCall.start(REQUEST)
        assert call is not None
        call._describe_outcome(RESULT, None, True)  # what finish does first, before storing
        recorder.max_content_length = 10
        call._store(RESULT, None, True, 0)
    response_event = next(
        event for span in tracing.spans() for event in span.events if event.name == semconv.EVENT_RESPONSE
    )
    assert "Sent to ad…[truncated]" in response_event.attributes[semconv.GEN_AI_OUTPUT_MESSAGES]

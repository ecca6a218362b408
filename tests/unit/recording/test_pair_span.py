"""Every pair is one LLM call span: whole normalised spans, per way of recording a pair.

A plain ``autorecord`` pair gets a call span ``chat <model>`` of its own; a bot or
``instrument_openai`` call keeps its CLIENT span and gets no second one. ``gen_ai.usage.*``
sits on call spans only, so a backend summing it over a trace counts each call once.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.llm.bots import ChatBot, SimpleBot
from promptrecorder.llm.instrument import instrument_openai
from promptrecorder.recording import semconv
from tests.conftest import Tracing
from tests.fake_openai import MODEL, RESPONSE_MODEL, FakeOpenAI, chunks, completion, error_reply, stream_reply

SYSTEM = "You are terse."
STARTED = datetime(2026, 12, 6, 5, 0, 0, tzinfo=timezone.utc)
ENDED = STARTED + timedelta(seconds=2)
_MESSAGES = (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES)


def normalised(span: ReadableSpan, names: dict[int, str]) -> dict[str, Any]:
    """A span as a plain dict: name, kind, parent's name, attributes (messages parsed, record
    ids and timings marked), events likewise."""

    def attrs(attributes: Any) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in (attributes or {}).items():
            if key in _MESSAGES:
                value = json.loads(value)
            elif key == semconv.RECORD_ID:
                value = "<id>"
            elif key == semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK:
                value = "<seconds>"
            elif isinstance(value, tuple):
                value = list(value)
            result[key] = value
        return result

    return {
        "name": span.name,
        "kind": span.kind.name,
        "parent": None if span.parent is None else names[span.parent.span_id],
        "attributes": attrs(span.attributes),
        "events": [
            (event.name, attrs(event.attributes)) for event in span.events if event.name != "exception"
        ],
    }


def shapes(tracing: Tracing) -> list[dict[str, Any]]:
    spans = tracing.spans()
    names = {span.context.span_id: span.name for span in spans}  # type: ignore[union-attr]
    return [normalised(span, names) for span in spans]


def user(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def assistant(text: str, finish: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish is not None:
        message["finish_reason"] = finish
    return message


def test_a_plain_pair_is_a_chat_span_under_the_recorder_span(tracing: Tracing) -> None:
    """autorecord: a CLIENT span `chat <model>` from started_at to ended_at with the GenAI
    attributes and usage; the recorder span keeps the transcript events, usage under our keys."""
    with PromptRecorder("triage", tracer_provider=tracing.provider, conversation_id="ticket-42"):
        autorecord(
            "Summarise ticket 42",
            "Printer jams.",
            model="m",
            started_at=STARTED,
            ended_at=ENDED,
            input_tokens=12,
            output_tokens=3,
            channel="email",
        )
    call, block = tracing.spans()
    assert (call.start_time, call.end_time) == (
        int(STARTED.timestamp() * 1e9),
        int(ENDED.timestamp() * 1e9),
    )
    assert shapes(tracing) == [
        {
            "name": "chat m",
            "kind": "CLIENT",
            "parent": "invoke_workflow triage",
            "attributes": {
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_INPUT_MESSAGES: [user("Summarise ticket 42")],
                semconv.GEN_AI_REQUEST_MODEL: "m",
                semconv.GEN_AI_CONVERSATION_ID: "ticket-42",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
                semconv.GEN_AI_OUTPUT_MESSAGES: [assistant("Printer jams.")],
                semconv.GEN_AI_RESPONSE_MODEL: "m",
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
                semconv.RECORD_ID: "<id>",
                # Phoenix shows no output messages without a finish_reason: OpenInference's text.
                semconv.OPENINFERENCE_OUTPUT_VALUE: "Printer jams.",
            },
            "events": [],
        },
        {
            "name": "invoke_workflow triage",
            "kind": "INTERNAL",
            "parent": None,
            "attributes": {
                semconv.GEN_AI_OPERATION_NAME: "invoke_workflow",
                semconv.GEN_AI_WORKFLOW_NAME: "triage",
                semconv.OPENINFERENCE_SPAN_KIND: "CHAIN",
                semconv.GEN_AI_CONVERSATION_ID: "ticket-42",
                semconv.RECORD_COUNT: 1,
                semconv.GEN_AI_INPUT_MESSAGES: [user("Summarise ticket 42")],
                semconv.GEN_AI_OUTPUT_MESSAGES: [assistant("Printer jams.")],
            },
            "events": [
                (
                    semconv.EVENT_PROMPT,
                    {
                        semconv.RECORD_ID: "<id>",
                        semconv.PROMPT_TEXT: "Summarise ticket 42",
                        semconv.GEN_AI_INPUT_MESSAGES: [user("Summarise ticket 42")],
                        semconv.GEN_AI_REQUEST_MODEL: "m",
                        semconv.GEN_AI_CONVERSATION_ID: "ticket-42",
                        semconv.USAGE_INPUT_TOKENS: 12,
                        "promptrecorder.metadata.channel": "email",
                    },
                ),
                (
                    semconv.EVENT_RESPONSE,
                    {
                        semconv.RECORD_ID: "<id>",
                        semconv.RESPONSE_TEXT: "Printer jams.",
                        semconv.GEN_AI_OUTPUT_MESSAGES: [assistant("Printer jams.")],
                        semconv.GEN_AI_RESPONSE_MODEL: "m",
                        semconv.USAGE_OUTPUT_TOKENS: 3,
                    },
                ),
            ],
        },
    ]
    assert block.attributes is not None


def test_a_bot_call_keeps_its_one_client_span_and_gets_no_second(tracing: Tracing) -> None:
    """A ChatBot call: its CLIENT span carries usage and its conversation id; no pair span is added."""
    bot = ChatBot(SYSTEM, client=FakeOpenAI(completion("Jams.")).client(), conversation_id="conv-1")
    with PromptRecorder("desk", tracer_provider=tracing.provider):
        response = bot("Why?")
    assert response.record is not None
    assert response.record.conversation_id == "conv-1"
    call, block = shapes(tracing)
    assert call == {
        "name": f"chat {MODEL}",
        "kind": "CLIENT",
        "parent": "invoke_workflow desk",
        "attributes": {
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_PROVIDER_NAME: "openai",
            semconv.GEN_AI_REQUEST_MODEL: MODEL,
            semconv.SERVER_ADDRESS: "api.openai.com",
            semconv.SERVER_PORT: 443,
            semconv.GEN_AI_CONVERSATION_ID: "conv-1",
            semconv.GEN_AI_INPUT_MESSAGES: [user(SYSTEM, "system"), user("Why?")],
            semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
            semconv.GEN_AI_RESPONSE_ID: call["attributes"][semconv.GEN_AI_RESPONSE_ID],
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 19,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
            semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
            semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
            semconv.GEN_AI_OUTPUT_MESSAGES: [assistant("Jams.", "stop")],
        },
        "events": [],
    }
    assert block["name"] == "invoke_workflow desk"
    assert semconv.GEN_AI_CONVERSATION_ID not in block["attributes"]  # the recorder has none of its own
    (prompt, response) = block["events"]
    assert prompt[1][semconv.GEN_AI_CONVERSATION_ID] == "conv-1"
    assert prompt[1][semconv.USAGE_INPUT_TOKENS] == 19
    assert response[1][semconv.USAGE_OUTPUT_TOKENS] == 10
    assert not any(key.startswith("gen_ai.usage.") for _, event in block["events"] for key in event)


def test_an_instrumented_call_and_a_stream_keep_one_span_each(tracing: Tracing) -> None:
    """instrument_openai, whole and streamed: one CLIENT span per call, none for their pairs."""
    client = FakeOpenAI(completion("A."), stream_reply(chunks("B."))).client()
    with instrument_openai(client), PromptRecorder("io", tracer_provider=tracing.provider) as recorder:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a?"}])
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "b?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "B."
    spans = shapes(tracing)
    assert [span["name"] for span in spans] == [f"chat {MODEL}", f"chat {MODEL}", "invoke_workflow io"]
    whole, streamed = spans[0]["attributes"], spans[1]["attributes"]
    assert semconv.GEN_AI_REQUEST_STREAM not in whole
    assert streamed[semconv.GEN_AI_REQUEST_STREAM] is True
    assert streamed[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] == "<seconds>"
    assert streamed[semconv.GEN_AI_OUTPUT_MESSAGES] == [assistant("B.", "stop")]
    assert [r.output_tokens for r in recorder.records] == [10, 10]
    assert spans[2]["attributes"][semconv.GEN_AI_OUTPUT_MESSAGES] == [assistant("B.", "stop")]
    assert spans[2]["attributes"][semconv.GEN_AI_INPUT_MESSAGES] == [user("a?")]


def test_a_failed_call_is_one_client_span_with_its_error(tracing: Tracing) -> None:
    """An API error: the CLIENT span has error.type and status ERROR; the pair adds no span."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(error_reply(429)).client(max_retries=0))
    with PromptRecorder("errors", tracer_provider=tracing.provider), pytest.raises(openai.RateLimitError):
        bot("a?")
    call, block = tracing.spans()
    assert call.kind is SpanKind.CLIENT
    assert (call.attributes or {})[semconv.ERROR_TYPE] == "RateLimitError"
    assert call.status.status_code.name == "ERROR"
    assert [event.name for event in block.events] == [semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE]
    assert (block.events[1].attributes or {})[semconv.ERROR_TYPE] == "RateLimitError"


def test_a_pairs_call_span_is_a_child_of_the_segment_carrying_its_events(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the event budget pairs go on segments; each call span follows its pair's events."""
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "4")
    with PromptRecorder("seg", tracer_provider=tracing.provider) as recorder:
        for index in range(5):
            autorecord(f"p{index}", f"r{index}", model="m", input_tokens=1)
    spans = tracing.spans()
    by_id = {span.context.span_id: span for span in spans}  # type: ignore[union-attr]
    calls = [span for span in spans if span.kind is SpanKind.CLIENT]
    assert len(calls) == 5
    for call, record in zip(calls, recorder.records, strict=True):
        assert call.parent is not None
        carrier = by_id[call.parent.span_id]
        assert format(carrier.context.span_id, "016x") == record.span_id  # type: ignore[union-attr]
        assert (call.attributes or {})[semconv.RECORD_ID] == record.id
    assert sorted({by_id[c.parent.span_id].name for c in calls}) == [  # type: ignore[union-attr]
        "invoke_workflow seg",
        "seg segment 1",
        "seg segment 2",
    ]


def test_conversation_ids_go_where_the_conventions_put_them(tracing: Tracing) -> None:
    """The recorder's id on its span, its plain pairs' spans and records; a ChatBot's own id
    on its calls; a SimpleBot's calls take the recorder's; none is made up for a recorder."""
    chat = ChatBot(SYSTEM, client=FakeOpenAI().client())
    simple = SimpleBot(SYSTEM, client=FakeOpenAI().client())
    assert len(chat.conversation_id) == 32
    with PromptRecorder("conv", tracer_provider=tracing.provider, conversation_id="c-9") as recorder:
        autorecord("p", "r")
        chat("a?")
        simple("b?")
    with PromptRecorder("none", tracer_provider=tracing.provider) as bare:
        autorecord("p", "r")
    assert [r.conversation_id for r in recorder.records] == ["c-9", chat.conversation_id, "c-9"]
    assert [r.conversation_id for r in bare.records] == [None]
    ids = [
        (span.name, (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID)) for span in tracing.spans()
    ]
    assert ids == [
        ("chat", "c-9"),
        (f"chat {MODEL}", chat.conversation_id),
        (f"chat {MODEL}", "c-9"),
        ("invoke_workflow conv", "c-9"),
        ("chat", None),
        ("invoke_workflow none", None),
    ]
    chat.conversation_id = "renamed"
    assert chat.conversation_id == "renamed"
    with pytest.raises(TypeError, match="`conversation_id` must be a non-empty str"):
        chat.conversation_id = 7  # type: ignore[assignment]
    with pytest.raises(ValueError, match="`conversation_id`"):
        PromptRecorder("bad", conversation_id="")


def test_a_nested_recorder_without_a_conversation_id_takes_the_outer_ones(tracing: Tracing) -> None:
    """A nested block is part of the same conversation: its span, segments, call spans, bot
    calls and records carry the outer id; a nested recorder's own id wins; none is invented."""
    simple = SimpleBot(SYSTEM, client=FakeOpenAI().client())
    inner = PromptRecorder("inner", tracer_provider=tracing.provider, max_span_bytes=1)  # a segment per pair
    own = PromptRecorder("own", tracer_provider=tracing.provider, conversation_id="own-1")
    with PromptRecorder("outer", tracer_provider=tracing.provider, conversation_id="turn-7") as outer:
        with inner:
            autorecord("p1", "r1")
            autorecord("p2", "r2")
            simple("b?")
        with own:
            autorecord("p3", "r3")
    with inner:  # not nested: nothing to take
        autorecord("p4", "r4")
    assert [r.conversation_id for r in outer.records] == ["turn-7", "turn-7", "turn-7", "own-1"]
    assert [r.conversation_id for r in inner.records] == ["turn-7", "turn-7", "turn-7", None]
    ids = [
        (span.name, (span.attributes or {}).get(semconv.GEN_AI_CONVERSATION_ID)) for span in tracing.spans()
    ]
    assert ids == [
        ("chat", "turn-7"),
        ("chat", "turn-7"),
        (f"chat {MODEL}", "turn-7"),  # the bot's CLIENT span ends before its pair rolls over
        ("inner segment 1", "turn-7"),
        ("inner segment 2", "turn-7"),
        ("invoke_workflow inner", "turn-7"),
        ("chat", "own-1"),
        ("invoke_workflow own", "own-1"),
        ("invoke_workflow outer", "turn-7"),
        ("chat", None),
        ("invoke_workflow inner", None),
    ]


def test_metadata_capture_puts_no_messages_on_the_call_or_recorder_span(tracing: Tracing) -> None:
    """capture='metadata': the call span has model and usage but no messages, as the events have no text."""
    with PromptRecorder("meta", tracer_provider=tracing.provider, capture="metadata"):
        autorecord("secret", "answer", model="m", input_tokens=2, output_tokens=1)
    call, block = tracing.spans()
    assert dict(call.attributes or {}).keys() == {
        semconv.GEN_AI_OPERATION_NAME,
        semconv.GEN_AI_REQUEST_MODEL,
        semconv.GEN_AI_RESPONSE_MODEL,
        semconv.GEN_AI_USAGE_INPUT_TOKENS,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
        semconv.RECORD_ID,
    }
    assert semconv.GEN_AI_INPUT_MESSAGES not in (block.attributes or {})


def test_usage_summed_over_every_span_and_event_is_each_calls_once(tracing: Tracing) -> None:
    """A session of nested recorders, bots, a stream, an error and segments: summing
    gen_ai.usage.* over all spans and all events gives the recorded usage exactly once."""
    server = FakeOpenAI(completion("A."), stream_reply(chunks("B.")), error_reply(500))
    bot = ChatBot(SYSTEM, client=server.client(max_retries=0))
    with PromptRecorder("outer", tracer_provider=tracing.provider) as outer:
        for index in range(70):  # past 128 events: segments
            autorecord(f"p{index}", "r", model="m", input_tokens=index, output_tokens=2)
        with PromptRecorder("inner", tracer_provider=tracing.provider):
            bot("a?")
            "".join(bot.stream("b?"))
            with pytest.raises(openai.InternalServerError):
                bot("c?")
            autorecord("late", "r", input_tokens=5)
    recorded = {
        "input": sum(r.input_tokens or 0 for r in outer.records),
        "output": sum(r.output_tokens or 0 for r in outer.records),
    }
    summed = {"input": 0, "output": 0}
    for span in tracing.spans():
        for attributes in [span.attributes or {}, *(event.attributes or {} for event in span.events)]:
            summed["input"] += int(attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, 0))  # type: ignore[arg-type]
            summed["output"] += int(attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, 0))  # type: ignore[arg-type]
    assert recorded == {"input": sum(range(70)) + 19 + 19 + 5, "output": 140 + 10 + 10}
    assert summed == recorded
    assert len(outer.records) == 74


def test_call_spans_off_leaves_a_plain_pair_as_its_events(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """call_spans=False (or PROMPTRECORDER_CALL_SPANS=false): a plain pair is its two events
    and its record, no `chat` span; a bot call keeps its CLIENT span; bad values are refused."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(completion("Jams.")).client())
    with PromptRecorder("quiet", tracer_provider=tracing.provider, call_spans=False) as recorder:
        autorecord("p", "r", model="m")
        bot("b?")
    monkeypatch.setenv("PROMPTRECORDER_CALL_SPANS", "false")
    with PromptRecorder("env-off", tracer_provider=tracing.provider):
        autorecord("p", "r", model="m")
    with PromptRecorder("explicit-on", tracer_provider=tracing.provider, call_spans=True):
        autorecord("p", "r", model="m")
    monkeypatch.setenv("PROMPTRECORDER_CALL_SPANS", "maybe")
    with caplog.at_level("WARNING"), PromptRecorder("bad-env", tracer_provider=tracing.provider):
        autorecord("p", "r", model="m")
    assert [span.name for span in tracing.spans()] == [
        f"chat {MODEL}",
        "invoke_workflow quiet",
        "invoke_workflow env-off",
        "chat m",
        "invoke_workflow explicit-on",
        "chat m",  # an unreadable value keeps the default, said once
        "invoke_workflow bad-env",
    ]
    assert "PROMPTRECORDER_CALL_SPANS must be `true` or `false`, got 'maybe'" in caplog.text
    quiet = tracing.span("invoke_workflow quiet")
    assert [event.name for event in quiet.events] == [semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE] * 2
    assert len(recorder.records) == 2
    with pytest.raises(TypeError, match="`call_spans` must be a bool or None, got 'no'"):
        PromptRecorder("bad", call_spans="no")  # type: ignore[arg-type]


def test_a_long_conversation_id_taken_from_the_outer_recorder_is_cut_as_the_outer_one_is(
    tracing: Tracing,
) -> None:
    """The nested recorder span exports the inherited id exactly as the outer span does."""
    long_id = "c" * 3_000
    with (
        PromptRecorder("outer", tracer_provider=tracing.provider, conversation_id=long_id),
        PromptRecorder("inner", tracer_provider=tracing.provider) as inner,
    ):
        autorecord("p", "r")
    outer_span, inner_span = tracing.span("invoke_workflow outer"), tracing.span("invoke_workflow inner")
    keys = [key for key in outer_span.attributes or {} if "conversation" in key]
    assert len(keys) == 3  # the id cut, its original length and its sha256
    assert {key: (inner_span.attributes or {})[key] for key in keys} == {
        key: (outer_span.attributes or {})[key] for key in keys
    }
    assert inner.records[0].conversation_id == long_id  # the record keeps it whole

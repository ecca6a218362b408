"""Property-based tests: any input is either recorded faithfully or refused clearly, never corrupting.

"Corrupting" is checked the way a collector would notice it: every exported span must encode
to OTLP protobuf, and every JSON attribute must parse.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.export.otlp_encode import EncodedSpan, encode_span
from promptrecorder.recording import semconv
from tests.conftest import Tracing

# Any Unicode text, lone surrogates and NUL included (hypothesis avoids surrogates by default).
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=20,
)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": any_text}),
    st.dictionaries(
        st.sampled_from(["type", "text", "image_url", "input_audio", "x"]), json_value, max_size=3
    ),
)
content = st.one_of(st.none(), any_text, st.lists(part, max_size=3))
tool_call = st.fixed_dictionaries(
    {
        "id": any_text,
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": any_text, "arguments": st.one_of(any_text, json_value.map(json.dumps))}
        ),
    }
)
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool"]), "content": content},
        optional={"tool_calls": st.lists(tool_call, max_size=2), "tool_call_id": any_text, "name": any_text},
    ),
    st.dictionaries(any_text, json_value, max_size=3),  # odd dicts: missing or strange roles
)
messages = st.lists(message, min_size=0, max_size=6)
wrong_type = st.one_of(
    st.integers(), st.binary(), st.none(), st.floats(), st.dictionaries(any_text, st.integers())
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _assert_exportable(spans: Sequence[ReadableSpan]) -> None:
    encode_spans(spans).SerializeToString()  # raises on anything protobuf cannot carry
    for span in spans:
        for event in span.events:
            for key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES):
                if event.attributes and key in event.attributes:
                    assert isinstance(json.loads(str(event.attributes[key])), list)


@PROPERTY_SETTINGS
@given(prompt=any_text, response=any_text)
def test_any_text_is_recorded_faithfully_and_exports(tracing: Tracing, prompt: str, response: str) -> None:
    """Any str prompt and response, surrogates and NUL included, is kept exactly and exports."""
    tracing.exporter.clear()
    with PromptRecorder("text", tracer_provider=tracing.provider, scrub_secrets=False):
        record = autorecord(prompt, response)
    assert record is not None
    assert (record.prompt, record.response) == (prompt, response)
    _assert_exportable(tracing.spans())


@PROPERTY_SETTINGS
@given(prompt=messages, response=any_text)
def test_any_message_list_is_recorded_or_refused_cleanly(
    tracing: Tracing, prompt: list[Any], response: str
) -> None:
    """A message list is either recorded (and exports) or refused with TypeError/ValueError; the store stays usable."""
    tracing.exporter.clear()
    with PromptRecorder("messages", tracer_provider=tracing.provider, scrub_secrets=False) as recorder:
        refusal: Exception | None = None
        try:
            record = autorecord(prompt, response)
        except (TypeError, ValueError) as error:
            refusal, record = error, None
        after = autorecord("still fine", "yes")
    if refusal is not None:
        assert "`prompt" in str(refusal)
    else:
        assert record is not None
        assert record.messages == tuple(prompt)
    assert after is not None
    assert recorder.records[-1] is after
    assert len(recorder) == (2 if record is not None else 1)
    _assert_exportable(tracing.spans())


@PROPERTY_SETTINGS
@given(prompt=wrong_type)
def test_wrong_prompt_types_are_refused_with_a_type_error(tracing: Tracing, prompt: object) -> None:
    """Anything but a str or a list of messages is a TypeError naming the type; nothing is kept."""
    with (
        PromptRecorder("wrong", tracer_provider=tracing.provider) as recorder,
        pytest.raises(TypeError, match="`prompt` must be a str or a list of chat messages"),
    ):
        autorecord(prompt, "r")  # type: ignore[arg-type]
    assert len(recorder) == 0


@PROPERTY_SETTINGS
@given(metadata=st.dictionaries(st.text(max_size=20), json_value, max_size=5))
def test_any_json_metadata_is_kept_and_exports(tracing: Tracing, metadata: dict[str, Any]) -> None:
    """Metadata of any JSON shape is kept as given and exported as attributes that encode."""
    tracing.exporter.clear()
    with PromptRecorder("meta", tracer_provider=tracing.provider):
        record = autorecord("p", "r", metadata=metadata)
    assert record is not None
    assert dict(record.metadata) == metadata
    _assert_exportable(tracing.spans())


def test_a_ten_megabyte_prompt_is_kept_whole_and_exported_cut(tracing: Tracing) -> None:
    """10 MB of text: whole in memory, cut to the export limit on the span, and still encodable."""
    big = "é" * 10_000_000
    with PromptRecorder("huge", tracer_provider=tracing.provider):
        record = autorecord(big, big)
    assert record is not None
    assert len(record.prompt) == 10_000_000
    span = tracing.span("invoke_workflow huge")
    prompt_event = span.events[0]
    assert prompt_event.attributes is not None
    assert len(str(prompt_event.attributes[semconv.PROMPT_TEXT])) < 40_000
    assert prompt_event.attributes[semconv.PROMPT_ORIGINAL_LENGTH] == 10_000_000
    assert len(encode_spans([span]).SerializeToString()) < 500_000
    _assert_exportable([span])


def test_empty_strings_are_recorded(tracing: Tracing) -> None:
    """Empty prompt and response are valid and kept as such."""
    with PromptRecorder("empty", tracer_provider=tracing.provider):
        record = autorecord("", "")
    assert record is not None
    assert (record.prompt, record.response) == ("", "")
    _assert_exportable(tracing.spans())


# --- the bots' inputs ----------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(message=any_text, reply=any_text, system=any_text)
def test_any_text_through_a_bot_is_sent_recorded_and_exports(
    tracing: Tracing, message: str, reply: str, system: str
) -> None:
    """Any Unicode message, system prompt and reply (NUL, empty, any plane) goes to the server
    as JSON, comes back unchanged to the caller, and is recorded in an exportable span; text
    with a lone surrogate, which has no UTF-8 form, is refused with a ValueError naming it."""
    from promptrecorder import SimpleBot
    from tests.fake_openai import FakeOpenAI, completion

    def sendable(text: str) -> bool:
        return not any("\ud800" <= char <= "\udfff" for char in text)

    tracing.exporter.clear()
    server = FakeOpenAI(completion(reply))
    if not sendable(system):
        with pytest.raises(ValueError, match="`system_prompt` must be valid Unicode text"):
            SimpleBot(system, client=server.client())
        return
    bot = SimpleBot(system, client=server.client())
    if not sendable(message):
        with pytest.raises(ValueError, match="`message` must be valid Unicode text"):
            bot(message)
        assert server.requests == []
        return
    with PromptRecorder("bot", tracer_provider=tracing.provider, scrub_secrets=False) as recorder:
        response = bot(message)
    sent = server.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert response.content == json.loads(json.dumps(reply))  # what a JSON round trip gives
    (record,) = recorder.records
    assert record.prompt == sent[-1]["content"]
    _assert_exportable(tracing.spans())


@PROPERTY_SETTINGS
@given(message=wrong_type)
def test_a_bot_refuses_non_text_messages_before_sending(tracing: Tracing, message: object) -> None:
    """A message that is not a str is a TypeError naming it; nothing reaches the server or the recorder."""
    from promptrecorder import SimpleBot
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI()
    bot = SimpleBot("system", client=server.client())
    with (
        PromptRecorder("bot", tracer_provider=tracing.provider) as recorder,
        pytest.raises(TypeError, match="`message` must be a str"),
    ):
        bot(message)  # type: ignore[arg-type]
    assert server.requests == []
    assert len(recorder) == 0


long_text = st.tuples(any_text, st.integers(1, 80)).map(lambda pair: pair[0] * pair[1])
pair = st.tuples(long_text, long_text, st.dictionaries(st.text(max_size=20), json_value, max_size=3))


@PROPERTY_SETTINGS
@given(pairs=st.lists(pair, min_size=1, max_size=8), budget=st.integers(1_000, 60_000))
def test_any_recorded_pairs_spans_stay_under_the_byte_budget_and_encode(
    tracing: Tracing, pairs: list[tuple[str, str, dict[str, Any]]], budget: int
) -> None:
    """Whatever is recorded, every span is within `max_span_bytes` (or holds a single pair) and encodes."""
    tracing.exporter.clear()
    with PromptRecorder("budget", tracer_provider=tracing.provider, max_span_bytes=budget) as recorder:
        for prompt, response, metadata in pairs:
            autorecord(prompt, response, model=prompt[:30], metadata=metadata)
    spans = tracing.spans()
    assert sum(len(span.events) for span in spans) == 2 * len(pairs)
    assert all(record.trace_id is not None for record in recorder.records)
    for span in spans:
        encoded = encode_span(span)
        assert isinstance(encoded, EncodedSpan)
        pairs_here = sum(1 for event in span.events if event.name == semconv.EVENT_PROMPT)
        if span.kind is SpanKind.CLIENT:  # a pair's call span: one pair
            pairs_here = 1
        assert len(encoded.payload) <= budget or pairs_here == 1
    _assert_exportable(spans)

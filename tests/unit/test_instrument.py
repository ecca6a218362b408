"""instrument_openai(): real openai clients on a mock transport, recorded inside recorders."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import weakref
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from promptrecorder import PromptRecorder, semconv
from promptrecorder.calls import describe_endpoint
from promptrecorder.instrument import Instrumentation, instrument_openai
from promptrecorder.openai_adapter import CHAT
from promptrecorder.openai_calls import RecordedAsyncStream, RecordedStream, record_create
from tests.conftest import Tracing

from .canned_openai import (
    MODEL,
    SERVED_MODEL,
    Reply,
    async_client,
    azure_client,
    chat_completion,
    chunk,
    client,
    error_reply,
    has_responses_api,
    http,
    json_reply,
    response_events,
    response_object,
    sse,
    stream_reply,
    text_chunks,
    tool_call,
)
from .metrics_capture import capture_metrics

QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": QUESTION}]
SPAN = f"chat {MODEL}"
needs_responses = pytest.mark.skipif(not has_responses_api(), reason="this openai has no Responses API")


def _resource_classes() -> list[type]:
    from openai.resources.chat.completions import AsyncCompletions, Completions

    classes: list[type] = [Completions, AsyncCompletions]
    if has_responses_api():
        from openai.resources.responses import AsyncResponses, Responses

        classes += [Responses, AsyncResponses]
    return classes


@pytest.fixture(autouse=True)
def _openai_left_as_found() -> Iterator[None]:
    """Every test leaves openai's classes as it found them (and repairs them if not)."""
    before = {cls: vars(cls)["create"] for cls in _resource_classes()}
    yield
    left = [cls.__name__ for cls, create in before.items() if vars(cls).get("create") is not create]
    for cls, create in before.items():
        cls.create = create  # type: ignore[attr-defined]
    assert not left, f"the test left {left} instrumented"


@pytest.fixture
def every_client() -> Iterator[Instrumentation]:
    with instrument_openai() as handle:
        yield handle


def _recorder(tracing: Tracing, name: str = "session") -> PromptRecorder:
    return PromptRecorder(name, tracer_provider=tracing.provider)


def _normalised(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes with the JSON messages parsed, tuples as lists and timings marked."""
    attributes: dict[str, Any] = {}
    for key, value in (span.attributes or {}).items():
        if key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES):
            value = json.loads(str(value))
        elif key == semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK:
            assert isinstance(value, float)
            assert value >= 0
            value = "<seconds>"
        elif isinstance(value, tuple):
            value = list(value)
        attributes[key] = value
    return attributes


def _call_span(tracing: Tracing, recorder_name: str = "session") -> ReadableSpan:
    """The one CLIENT span, checked to be finished and a child of the recorder's finished span."""
    calls = [span for span in tracing.spans() if span.kind is SpanKind.CLIENT]
    assert len(calls) == 1, [span.name for span in tracing.spans()]
    parent = tracing.span(recorder_name)
    assert calls[0].parent is not None
    assert calls[0].parent.span_id == parent.context.span_id
    return calls[0]


def _client_spans(tracing: Tracing) -> list[ReadableSpan]:
    return [span for span in tracing.spans() if span.kind is SpanKind.CLIENT]


def _request_attributes(stream: bool = False, host: str = "llm.test", port: int = 80) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: host,
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: host,
        semconv.SERVER_PORT: port,
        semconv.GEN_AI_INPUT_MESSAGES: [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}],
    }
    if stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    return attributes


def _paris_output(finish: str = "stop", text: str = "Paris.") -> list[dict[str, Any]]:
    return [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish}]


# --- scopes: one client, every client -------------------------------------------------


def test_one_client_is_recorded_and_another_client_is_not(tracing: Tracing) -> None:
    """instrument_openai(client) records that client's calls only; other clients stay untouched."""
    mine, _ = client()
    other, other_server = client()
    with instrument_openai(mine), _recorder(tracing) as recorder:
        mine.chat.completions.create(model=MODEL, messages=MESSAGES)
        other.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert "create" not in vars(other.chat.completions)
    assert len(other_server.requests) == 1
    assert [record.prompt for record in recorder.records] == [QUESTION]
    assert len(_client_spans(tracing)) == 1


def test_a_whole_chat_call_gets_a_client_span_under_the_recorder_and_a_record(tracing: Tracing) -> None:
    """The CLIENT span carries the GenAI request, response and usage attributes; the record the pair."""
    instrumented, server = client()
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        reply = instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, seed=7)
    assert isinstance(reply, openai.types.chat.ChatCompletion)
    assert reply.choices[0].message.content == "Paris."
    span = _call_span(tracing)
    assert span.name == SPAN
    assert span.status.status_code is StatusCode.UNSET
    assert _normalised(span) == {
        **_request_attributes(),
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_RESPONSE_MODEL: SERVED_MODEL,
        semconv.GEN_AI_RESPONSE_ID: "chatcmpl-1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: _paris_output(),
    }
    (record,) = recorder.records
    assert (record.prompt, record.response, record.model) == (QUESTION, "Paris.", SERVED_MODEL)
    assert (record.input_tokens, record.output_tokens, record.provider) == (12, 3, "llm.test")
    assert record.finish_reasons == ("stop",)
    assert record.complete
    assert record.error is None
    assert record.messages == tuple(MESSAGES)
    assert server.bodies()[0]["temperature"] == 0.2


def test_every_client_is_recorded_including_clients_made_after_instrumenting(
    tracing: Tracing, every_client: Instrumentation
) -> None:
    """instrument_openai() patches the resource classes, so any client, old or new, is recorded."""
    made_after, _ = client()
    azure, _ = azure_client()
    with _recorder(tracing) as recorder:
        made_after.chat.completions.create(model=MODEL, messages=MESSAGES)
        azure.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert [record.provider for record in recorder.records] == ["llm.test", "azure.ai.openai"]
    azure_span = _client_spans(tracing)[1]
    assert azure_span.attributes is not None
    assert azure_span.attributes[semconv.SERVER_ADDRESS] == "contoso.openai.azure.com"
    assert azure_span.attributes[semconv.SERVER_PORT] == 443


def test_an_async_client_is_recorded_in_both_scopes(tracing: Tracing) -> None:
    """AsyncOpenAI calls are recorded whether that client or every client is instrumented."""
    one, _ = async_client()
    another, _ = async_client()

    async def ask() -> None:
        with _recorder(tracing) as recorder:
            reply = await one.chat.completions.create(model=MODEL, messages=MESSAGES)
            assert isinstance(reply, openai.types.chat.ChatCompletion)
            with instrument_openai():
                await another.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert [record.response for record in recorder.records] == ["Paris.", "Paris."]

    with instrument_openai(one):
        asyncio.run(ask())
    assert [span.name for span in _client_spans(tracing)] == [SPAN, SPAN]


def test_calls_outside_any_recorder_pass_through_untouched(
    tracing: Tracing, every_client: Instrumentation
) -> None:
    """With no recorder active, the call reaches the server, returns openai's own objects, records nothing."""
    plain, server = client(json_reply(chat_completion()), stream_reply(sse(text_chunks(["Par", "is."]))))
    reply = plain.chat.completions.create(model=MODEL, messages=MESSAGES)
    stream = plain.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert isinstance(reply, openai.types.chat.ChatCompletion)
    assert isinstance(stream, openai.Stream)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Paris."
    assert len(server.requests) == 2
    assert tracing.spans() == []


def test_an_azure_client_is_provider_azure(tracing: Tracing) -> None:
    """An AzureOpenAI client's calls say gen_ai.provider.name azure.ai.openai and its host."""
    azure, server = azure_client()
    with instrument_openai(azure), _recorder(tracing):
        azure.chat.completions.create(model="my-deployment", messages=MESSAGES)
    span = _call_span(tracing)
    assert span.attributes is not None
    assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert span.attributes[semconv.SERVER_ADDRESS] == "contoso.openai.azure.com"
    assert "/deployments/my-deployment/" in str(server.requests[0].url)


def test_a_client_not_openai_is_refused_with_the_rule() -> None:
    """Anything but an openai client (or None) fails at once with a message naming the rule."""
    with pytest.raises(TypeError, match=r"`client` must be an openai.OpenAI or openai.AsyncOpenAI client"):
        instrument_openai("https://api.openai.com")


# --- idempotence and undo ---------------------------------------------------------------


def test_undoing_every_client_restores_the_original_class_functions(tracing: Tracing) -> None:
    """uninstrument() puts back the very function objects that were on openai's classes."""
    originals = {cls: vars(cls)["create"] for cls in _resource_classes()}
    handle = instrument_openai()
    assert all(vars(cls)["create"] is not original for cls, original in originals.items())
    assert len(handle.targets) == len(originals)
    handle.uninstrument()
    assert all(vars(cls)["create"] is original for cls, original in originals.items())
    plain, _ = client()
    with _recorder(tracing) as recorder:
        plain.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(recorder) == 0


def test_undoing_one_client_removes_the_instance_attributes(tracing: Tracing) -> None:
    """After undo the client's resources have no `create` of their own and calls are not recorded."""
    instrumented, _ = client()
    with instrument_openai(instrumented) as handle:
        assert "create" in vars(instrumented.chat.completions)
        assert handle.active
    assert not handle.active
    assert "create" not in vars(instrumented.chat.completions)
    if has_responses_api():
        assert "create" not in vars(instrumented.responses)
    with _recorder(tracing) as recorder:
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(recorder) == 0


def test_a_with_block_undoes_the_instrumentation_when_it_raises() -> None:
    """Leaving the handle's block by an exception still restores openai, and the exception passes."""
    original = vars(openai.resources.chat.completions.Completions)["create"]
    with pytest.raises(KeyError), instrument_openai():
        raise KeyError("boom")
    assert vars(openai.resources.chat.completions.Completions)["create"] is original


def test_instrumenting_twice_wraps_once_and_restores_with_the_last_handle(tracing: Tracing) -> None:
    """A second instrument_openai() shares the first patch; the original returns when both are undone."""
    cls = openai.resources.chat.completions.Completions
    original = vars(cls)["create"]
    first = instrument_openai()
    wrapper = vars(cls)["create"]
    second = instrument_openai()
    assert vars(cls)["create"] is wrapper
    assert wrapper.__wrapped__ is original
    plain, _ = client()
    with _recorder(tracing) as recorder:
        plain.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert len(recorder) == 1
    first.uninstrument()
    first.uninstrument()  # a handle lets go once, however often it is undone
    assert vars(cls)["create"] is wrapper
    second.close()
    assert vars(cls)["create"] is original


def test_instrumenting_one_client_twice_wraps_once(tracing: Tracing) -> None:
    """The same client instrumented twice has one wrapper, records once, and is restored at the end."""
    instrumented, _ = client()
    with instrument_openai(instrumented):
        wrapper = vars(instrumented.chat.completions)["create"]
        with instrument_openai(instrumented), _recorder(tracing) as recorder:
            assert vars(instrumented.chat.completions)["create"] is wrapper
            instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert vars(instrumented.chat.completions)["create"] is wrapper
    assert "create" not in vars(instrumented.chat.completions)
    assert len(recorder) == 1
    assert len(_client_spans(tracing)) == 1


def test_a_client_instrumented_alone_and_with_every_client_records_each_call_once(tracing: Tracing) -> None:
    """Both scopes cover the call, in either order of undoing; it is recorded once, with one span."""
    instrumented, _ = client()
    with instrument_openai(instrumented), instrument_openai(), _recorder(tracing) as recorder:
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
        with instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
            assert isinstance(stream, RecordedStream)
            assert not isinstance(stream._stream, RecordedStream)
            list(stream)
    assert len(recorder) == 2
    assert len(_client_spans(tracing)) == 2


def test_a_bot_calling_an_instrumented_client_records_once(tracing: Tracing) -> None:
    """record_create (the bots' path) over an instrumented client makes one record and one span."""
    instrumented, _ = client()
    endpoint = describe_endpoint(instrumented.base_url, type(instrumented).__name__)
    kwargs = {"model": MODEL, "messages": MESSAGES}
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        record_create(instrumented.chat.completions.create, (), kwargs, api=CHAT, endpoint=endpoint)
    assert len(recorder) == 1
    assert len(_client_spans(tracing)) == 1


def test_a_wrapper_still_held_after_undo_passes_calls_through(tracing: Tracing) -> None:
    """A with_raw_response accessor built while instrumented calls openai plainly once undone."""
    instrumented, _ = client()
    with instrument_openai(instrumented):
        raw = instrumented.chat.completions.with_raw_response
    with _recorder(tracing) as recorder:
        reply = raw.create(model=MODEL, messages=MESSAGES)
    assert reply.parse().choices[0].message.content == "Paris."
    assert len(recorder) == 0
    assert tracing.spans() == [tracing.span("session")]


def test_undo_leaves_a_later_wrapper_of_someone_else_in_place(tracing: Tracing) -> None:
    """If another library wrapped our wrapper, undo keeps theirs, and ours then passes through."""
    instrumented, _ = client()
    handle = instrument_openai(instrumented)
    ours = instrumented.chat.completions.create
    seen: list[str] = []

    def theirs(*args: Any, **kwargs: Any) -> Any:
        seen.append("theirs")
        return ours(*args, **kwargs)

    instrumented.chat.completions.create = theirs  # type: ignore[method-assign]
    handle.uninstrument()
    assert vars(instrumented.chat.completions)["create"] is theirs
    with _recorder(tracing) as recorder:
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert seen == ["theirs"]
    assert len(recorder) == 0


def test_instrumenting_a_client_does_not_keep_it_alive() -> None:
    """The patch holds the client weakly: a dropped client is collected while its handle lives."""
    instrumented, _ = client()
    handle = instrument_openai(instrumented)
    gone = weakref.ref(instrumented)
    del instrumented
    gc.collect()
    assert gone() is None
    handle.uninstrument()  # undoing for a collected client is harmless


def test_the_handle_names_what_it_instruments() -> None:
    """targets and repr say which methods are patched and whether the handle is active."""
    instrumented, _ = client()
    with instrument_openai(instrumented) as handle:
        assert handle.targets[0].startswith("OpenAI.chat.completions.create of client 0x")
        assert repr(handle).startswith("<Instrumentation active: OpenAI.chat.completions.create")
    assert repr(handle).startswith("<Instrumentation undone:")
    with instrument_openai() as every:
        assert "openai.resources.chat.completions.Completions.create" in every.targets


def test_the_class_wrapper_looks_like_the_method_it_wraps(every_client: Instrumentation) -> None:
    """help() and introspection still show openai's create: name, docstring, __wrapped__."""
    create = openai.resources.chat.completions.Completions.create
    assert create.__name__ == "create"
    assert create.__doc__ == create.__wrapped__.__doc__


# --- tool calls --------------------------------------------------------------------------


def test_tool_calls_and_tool_results_are_recorded_as_message_parts(tracing: Tracing) -> None:
    """History with an assistant tool call and a tool result, and a reply calling a tool, become parts."""
    call = tool_call("call_1", "get_weather", '{"city": "Paris"}')
    reply_call = tool_call("call_2", "get_time", '{"tz": "CET"}')
    instrumented, _ = client(
        json_reply(chat_completion(None, tool_calls=[reply_call], finish_reason="tool_calls"))
    )
    history = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        instrumented.chat.completions.create(model=MODEL, messages=history)
    attributes = _normalised(_call_span(tracing))
    assert attributes[semconv.GEN_AI_INPUT_MESSAGES] == [
        {"role": "system", "parts": [{"type": "text", "content": "Use tools."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather and time in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C, sunny"}]},
    ]
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_2", "name": "get_time", "arguments": {"tz": "CET"}}],
            "finish_reason": "tool_calls",
        }
    ]
    (record,) = recorder.records
    assert record.prompt == "Weather and time in Paris?"
    assert record.tool_calls == (reply_call,)
    assert record.finish_reasons == ("tool_calls",)


def test_streamed_tool_call_deltas_are_merged_into_one_call(tracing: Tracing) -> None:
    """A tool call streamed in pieces is recorded whole: id, name and the joined arguments."""
    pieces = [
        chunk(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    instrumented, _ = client(stream_reply(sse(pieces)))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        for _ in instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass
    (record,) = recorder.records
    assert record.tool_calls == (tool_call("call_9", "get_weather", '{"city": "Paris"}'),)
    assert _normalised(_call_span(tracing))[semconv.GEN_AI_OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_9", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]


# --- streams ---------------------------------------------------------------------------


def test_a_stream_read_to_its_end_is_recorded_whole_with_its_usage(tracing: Tracing) -> None:
    """The proxy yields openai's chunks unchanged; at the end the span has usage and time to first chunk."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Par", "is."]))))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        stream = instrumented.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, RecordedStream)
        assert stream.response.status_code == 200  # attributes forward to openai's Stream
        chunks = list(stream)
    assert all(isinstance(item, openai.types.chat.ChatCompletionChunk) for item in chunks)
    assert len(chunks) == 5
    assert _normalised(_call_span(tracing)) == {
        **_request_attributes(stream=True),
        semconv.GEN_AI_RESPONSE_MODEL: SERVED_MODEL,
        semconv.GEN_AI_RESPONSE_ID: "chatcmpl-2",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: "<seconds>",
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: _paris_output(),
    }
    (record,) = recorder.records
    assert (record.response, record.input_tokens, record.output_tokens, record.complete) == (
        "Paris.",
        12,
        3,
        True,
    )


def test_a_stream_without_a_usage_chunk_is_recorded_without_usage(tracing: Tracing) -> None:
    """No usage chunk (many compatible servers send none): text and finish reason, no token counts."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Par", "is."], with_usage=False))))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        text = "".join(
            c.choices[0].delta.content or ""
            for c in instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        )
    assert text == "Paris."
    attributes = _normalised(_call_span(tracing))
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == _paris_output()
    (record,) = recorder.records
    assert (record.response, record.input_tokens, record.output_tokens, record.complete) == (
        "Paris.",
        None,
        None,
        True,
    )


def test_a_stream_left_early_and_dropped_is_recorded_incomplete(tracing: Tracing) -> None:
    """Breaking out of the loop and dropping the stream ends the span with what arrived, marked incomplete."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Par", "is", "."]))))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        stream = instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        for item in stream:
            if item.choices[0].delta.content == "Par":
                break
        del stream, item
        gc.collect()
    attributes = _normalised(_call_span(tracing))
    assert attributes[semconv.RESPONSE_COMPLETE] is False
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Par"}]}
    ]
    (record,) = recorder.records
    assert (record.response, record.complete, record.error) == ("Par", False, None)


def test_closing_a_stream_early_records_it_incomplete_and_closes_the_response(tracing: Tracing) -> None:
    """close() before the end closes openai's response and ends the span, marked incomplete."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Par", "is."]))))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        stream = instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        next(stream)
        stream.close()
        assert stream.response.is_closed
        assert len(_client_spans(tracing)) == 1  # ended at close(), inside the block
    assert recorder.records[0].complete is False
    assert _normalised(_call_span(tracing))[semconv.RESPONSE_COMPLETE] is False


def test_a_stream_in_a_with_block_is_complete_when_read_and_incomplete_when_left(tracing: Tracing) -> None:
    """`with stream:` read to its end records it whole; left early, records it incomplete."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Paris."]))))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        with instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as whole:
            list(whole)
        with instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as left:
            next(left)
    assert [(record.response, record.complete) for record in recorder.records] == [
        ("Paris.", True),
        ("", False),
    ]
    assert len(_client_spans(tracing)) == 2


def test_a_stream_that_fails_midway_is_recorded_with_the_error_and_what_arrived(tracing: Tracing) -> None:
    """A connection dropped mid-stream reaches the caller as openai raised it; the span says what failed."""
    head = sse(text_chunks(["Par"], with_usage=False)[:2], done=False)
    instrumented, _ = client(Reply(broken_after=head))
    received: list[Any] = []
    with (
        instrument_openai(instrumented),
        _recorder(tracing) as recorder,
        pytest.raises(openai.APIConnectionError) as raised,
    ):
        for item in instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            received.append(item)
    assert len(received) == 2
    span = _call_span(tracing)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == "APIConnectionError"
    assert [event.name for event in span.events] == ["exception"]
    (record,) = recorder.records
    assert record.response == "Par"
    assert record.error == f"APIConnectionError: {raised.value}"
    assert not record.complete


def test_an_error_event_in_a_stream_is_recorded_as_the_api_error(tracing: Tracing) -> None:
    """A server that reports an error inside the stream: openai raises APIError, the record keeps it."""
    body = sse(
        [text_chunks(["Par"])[1], {"error": {"message": "overloaded", "type": "server_error"}}], done=False
    )
    instrumented, _ = client(stream_reply(body))
    with (
        instrument_openai(instrumented),
        _recorder(tracing) as recorder,
        pytest.raises(openai.APIError, match="overloaded"),
    ):
        list(instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))
    assert recorder.records[0].error == "APIError: overloaded"
    assert _call_span(tracing).status.status_code is StatusCode.ERROR


def test_async_streams_are_recorded_read_whole_left_early_closed_or_failed(tracing: Tracing) -> None:
    """The async proxy ends its call on exhaustion, close(), `async with` and a mid-stream failure."""
    whole = sse(text_chunks(["Par", "is."]))
    instrumented, _ = async_client(
        stream_reply(whole),
        stream_reply(whole),
        stream_reply(whole),
        Reply(broken_after=sse(text_chunks(["Par"])[:2], done=False)),
    )

    async def use() -> PromptRecorder:
        with _recorder(tracing) as recorder:
            stream = await instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            assert isinstance(stream, RecordedAsyncStream)
            assert [c async for c in stream][-1].usage.total_tokens == 15
            stream = await instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            await stream.__anext__()
            await stream.close()
            async with await instrumented.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True
            ) as left:
                await left.__anext__()
            with pytest.raises(openai.APIConnectionError):
                async for _ in await instrumented.chat.completions.create(
                    model=MODEL, messages=MESSAGES, stream=True
                ):
                    pass
        return recorder

    with instrument_openai(instrumented):
        recorder = asyncio.run(use())
    outcomes = [
        (record.response, record.complete, (record.error or "").split(":")[0]) for record in recorder.records
    ]
    assert outcomes == [
        ("Paris.", True, ""),
        ("", False, ""),
        ("", False, ""),
        ("Par", False, "APIConnectionError"),
    ]
    assert len(_client_spans(tracing)) == 4


def test_an_async_stream_left_early_and_dropped_is_recorded_incomplete(tracing: Tracing) -> None:
    """An async stream abandoned after a break is recorded when collected, inside the block."""
    instrumented, _ = async_client(stream_reply(sse(text_chunks(["Par", "is."]))))

    async def use() -> PromptRecorder:
        with _recorder(tracing) as recorder:
            stream = await instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            async for item in stream:
                if item.choices and item.choices[0].delta.content == "Par":
                    break
            del stream, item
            gc.collect()
        return recorder

    with instrument_openai(instrumented):
        recorder = asyncio.run(use())
    assert [(record.response, record.complete) for record in recorder.records] == [("Par", False)]
    assert _normalised(_call_span(tracing))[semconv.RESPONSE_COMPLETE] is False


# --- API errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, openai.AuthenticationError), (429, openai.RateLimitError), (500, openai.InternalServerError)],
)
def test_an_api_error_reaches_the_caller_unchanged_and_is_recorded(
    tracing: Tracing, status: int, error_type: type[openai.APIStatusError]
) -> None:
    """401, 429 and 500 raise openai's own error; the span is ERROR with error.type; the record keeps it."""
    instrumented, server = client(error_reply(status, "no can do"))
    with instrument_openai(instrumented), _recorder(tracing) as recorder, pytest.raises(error_type) as raised:
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert type(raised.value) is error_type
    assert raised.value.status_code == status
    assert len(server.requests) == 1
    span = _call_span(tracing)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes[semconv.ERROR_TYPE] == error_type.__qualname__
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["exception.type"].endswith(error_type.__name__)
    (record,) = recorder.records
    assert record.error == f"{error_type.__name__}: {raised.value}"
    assert (record.response, record.complete) == ("", False)


def test_a_timeout_is_recorded_as_apitimeouterror(tracing: Tracing) -> None:
    """A read timeout reaches the caller as openai's APITimeoutError, and the span says so."""
    instrumented, _ = client(Reply(raises=http.ReadTimeout("timed out")))
    with (
        instrument_openai(instrumented),
        _recorder(tracing) as recorder,
        pytest.raises(openai.APITimeoutError),
    ):
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=0.5)
    assert _call_span(tracing).attributes[semconv.ERROR_TYPE] == "APITimeoutError"  # type: ignore[index]
    assert recorder.records[0].error is not None
    assert recorder.records[0].error.startswith("APITimeoutError")


def test_a_refused_connection_is_recorded_as_apiconnectionerror(tracing: Tracing) -> None:
    """A real TCP connection refused on 127.0.0.1 propagates as APIConnectionError and is recorded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test", max_retries=0)
    with instrument_openai(refused), _recorder(tracing) as recorder, pytest.raises(openai.APIConnectionError):
        refused.chat.completions.create(model=MODEL, messages=MESSAGES)
    refused.close()
    attributes = _normalised(_call_span(tracing))
    assert (attributes[semconv.SERVER_ADDRESS], attributes[semconv.SERVER_PORT]) == ("127.0.0.1", port)
    assert attributes[semconv.ERROR_TYPE] == "APIConnectionError"
    assert recorder.records[0].error == "APIConnectionError: Connection error."


# --- raw and streaming-response accessors ------------------------------------------------


def test_with_raw_response_returns_the_raw_response_and_records_the_parsed_reply(tracing: Tracing) -> None:
    """with_raw_response still hands back openai's raw response; its parse() is the object recorded."""
    instrumented, _ = client()
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        raw = instrumented.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.headers["x-request-id"] == "req_1"
    parsed = raw.parse()
    assert isinstance(parsed, openai.types.chat.ChatCompletion)
    assert parsed.choices[0].message.content == "Paris."
    assert [(record.response, record.complete) for record in recorder.records] == [("Paris.", True)]
    assert _normalised(_call_span(tracing))[semconv.GEN_AI_OUTPUT_MESSAGES] == _paris_output()


def test_async_with_raw_response_is_recorded(tracing: Tracing) -> None:
    """The async raw accessor works the same way."""
    instrumented, _ = async_client()

    async def ask() -> Any:
        with _recorder(tracing) as recorder:
            raw = await instrumented.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        return raw, recorder

    with instrument_openai(instrumented):
        raw, recorder = asyncio.run(ask())
    assert raw.parse().choices[0].message.content == "Paris."
    assert recorder.records[0].response == "Paris."


def test_raw_and_streaming_responses_whose_body_the_caller_reads_are_recorded_incomplete(
    tracing: Tracing,
) -> None:
    """A raw stream and with_streaming_response keep their body for the caller; the record says incomplete."""
    instrumented, _ = client(stream_reply(sse(text_chunks(["Paris."]))), json_reply(chat_completion()))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        raw = instrumented.chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, stream=True
        )
        assert isinstance(raw.parse(), openai.Stream)
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Paris."
        with instrumented.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES
        ) as response:
            assert response.parse().choices[0].message.content == "Paris."
    assert [(record.response, record.complete) for record in recorder.records] == [("", False), ("", False)]
    assert len(_client_spans(tracing)) == 2


def test_a_reply_that_cannot_be_read_is_logged_once_and_returned(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A raw reply whose body is not JSON: the caller still gets it, promptrecorder warns once."""
    instrumented, _ = client(Reply(raw_body=b"<html>gateway</html>"))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        first = instrumented.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        instrumented.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert first.text == "<html>gateway</html>"
    with pytest.raises(json.JSONDecodeError):
        first.parse()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "could not read" in r.getMessage()
    ]
    assert len(warnings) == 1
    assert [record.response for record in recorder.records] == ["", ""]


# --- Responses API -----------------------------------------------------------------------


@needs_responses
def test_a_responses_call_with_instructions_and_text_input_is_recorded(tracing: Tracing) -> None:
    """responses.create(input=str, instructions=...) records system and user input, output text and usage."""
    instrumented, server = client(json_reply(response_object()))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        reply = instrumented.responses.create(
            model=MODEL, input=QUESTION, instructions="Be brief.", max_output_tokens=50
        )
    assert reply.output_text == "Paris."
    assert server.requests[0].url.path == "/v1/responses"
    assert _normalised(_call_span(tracing)) == {
        **_request_attributes(),
        semconv.GEN_AI_INPUT_MESSAGES: [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
        ],
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 50,
        semconv.GEN_AI_RESPONSE_MODEL: SERVED_MODEL,
        semconv.GEN_AI_RESPONSE_ID: "resp_1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 20,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: _paris_output(),
    }
    (record,) = recorder.records
    assert (record.prompt, record.response, record.input_tokens, record.output_tokens) == (
        QUESTION,
        "Paris.",
        20,
        5,
    )


@needs_responses
def test_a_responses_call_with_function_calls_records_them_as_parts(tracing: Tracing) -> None:
    """Input items with a function call and its output, and a reply calling a function, become parts."""
    asked = {"call_id": "call_2", "name": "get_time", "arguments": '{"tz": "CET"}'}
    instrumented, _ = client(json_reply(response_object(None, function_call=asked)))
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    ]
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        instrumented.responses.create(model=MODEL, input=items)
    attributes = _normalised(_call_span(tracing))
    assert attributes[semconv.GEN_AI_INPUT_MESSAGES] == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "18C"}]},
    ]
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["tool_calls"]
    (record,) = recorder.records
    assert record.prompt == "Weather in Paris?"
    assert record.tool_calls == (
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    )


@needs_responses
def test_a_streamed_responses_call_is_recorded_with_the_completed_response(tracing: Tracing) -> None:
    """response.created, text deltas and response.completed: the text, usage and id of the completed response."""
    instrumented, _ = client(stream_reply(sse(response_events(["Par", "is."]), done=False, named=True)))
    with instrument_openai(instrumented), _recorder(tracing) as recorder:
        events = list(instrumented.responses.create(model=MODEL, input=QUESTION, stream=True))
    assert [event.type for event in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.completed",
    ]
    attributes = _normalised(_call_span(tracing))
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 20
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == _paris_output()
    (record,) = recorder.records
    assert (record.response, record.output_tokens, record.complete) == ("Paris.", 5, True)


@needs_responses
def test_a_responses_stream_left_early_keeps_the_deltas_that_arrived(tracing: Tracing) -> None:
    """Closed after the first delta, a Responses stream is recorded with that text, incomplete."""
    instrumented, _ = client(stream_reply(sse(response_events(["Par", "is."]), done=False, named=True)))
    with (
        instrument_openai(instrumented),
        _recorder(tracing) as recorder,
        instrumented.responses.create(model=MODEL, input=QUESTION, stream=True) as stream,
    ):
        next(stream)
        next(stream)
    assert [(record.response, record.complete) for record in recorder.records] == [("Par", False)]


@needs_responses
def test_an_async_responses_call_is_recorded(tracing: Tracing) -> None:
    """AsyncResponses.create under every-client instrumentation, whole and streamed."""
    instrumented, _ = async_client(
        json_reply(response_object()), stream_reply(sse(response_events(["Paris."]), done=False, named=True))
    )

    async def ask() -> PromptRecorder:
        with _recorder(tracing) as recorder:
            reply = await instrumented.responses.create(model=MODEL, input=QUESTION)
            assert reply.output_text == "Paris."
            async for _ in await instrumented.responses.create(model=MODEL, input=QUESTION, stream=True):
                pass
        return recorder

    with instrument_openai():
        recorder = asyncio.run(ask())
    assert [(record.response, record.complete) for record in recorder.records] == [
        ("Paris.", True),
        ("Paris.", True),
    ]


# --- metrics -------------------------------------------------------------------------------


def test_token_usage_and_duration_histograms_are_recorded_per_call(tracing: Tracing) -> None:
    """With a MeterProvider set, each call records its duration and its input and output tokens."""
    instrumented, _ = client(json_reply(chat_completion()), error_reply(429, "slow down"))
    with capture_metrics() as metrics, instrument_openai(instrumented), _recorder(tracing):
        instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
        with pytest.raises(openai.RateLimitError):
            instrumented.chat.completions.create(model=MODEL, messages=MESSAGES)
        points = metrics.points()
    common = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "llm.test",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "llm.test",
        semconv.SERVER_PORT: 80,
    }
    answered = {**common, semconv.GEN_AI_RESPONSE_MODEL: SERVED_MODEL}
    durations = {
        json.dumps(p.attributes, sort_keys=True): p
        for p in points
        if p.name == semconv.METRIC_OPERATION_DURATION
    }
    assert set(durations) == {
        json.dumps(answered, sort_keys=True),
        json.dumps({**common, semconv.ERROR_TYPE: "RateLimitError"}, sort_keys=True),
    }
    assert all(p.unit == "s" and p.count == 1 and p.sum > 0 for p in durations.values())
    assert next(iter(durations.values())).bounds[:3] == (0.01, 0.02, 0.04)
    tokens = sorted(
        (p.attributes[semconv.GEN_AI_TOKEN_TYPE], p.sum, p.unit)
        for p in points
        if p.name == semconv.METRIC_TOKEN_USAGE
    )
    assert tokens == [("input", 12, "{token}"), ("output", 3, "{token}")]


def test_no_metrics_are_recorded_outside_a_recorder(every_client: Instrumentation) -> None:
    """Calls that pass through unrecorded add no metric points either."""
    plain, _ = client()
    with capture_metrics() as metrics:
        plain.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert metrics.points() == []


def test_the_base_url_is_read_at_each_call(tracing: Tracing, every_client: Instrumentation) -> None:
    """A client whose base_url changes is described by the URL the call went to."""
    moved, server = client()
    with _recorder(tracing):
        moved.chat.completions.create(model=MODEL, messages=MESSAGES)
        moved.base_url = "https://api.openai.com/v1"  # type: ignore[assignment]
        moved.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert [str(request.url.host) for request in server.requests] == ["llm.test", "api.openai.com"]
    providers = [span.attributes[semconv.GEN_AI_PROVIDER_NAME] for span in _client_spans(tracing)]  # type: ignore[index]
    assert providers == ["llm.test", "openai"]

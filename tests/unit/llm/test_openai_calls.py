"""What a recorded openai call leaves behind: streams on every ending, API errors, tool calls,
the Responses API. Calls go through an instrumented real client on a mock transport.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from promptrecorder import PromptRecorder
from promptrecorder.llm.instrument import instrument_openai
from promptrecorder.llm.openai_calls import RecordedAsyncStream, RecordedStream
from promptrecorder.recording import semconv
from tests.conftest import Tracing
from tests.fake_openai import (
    COMPLETION_ID,
    MIDSTREAM_ERRORS,
    MODEL,
    RESPONSE_MODEL,
    FakeOpenAI,
    chunks,
    completion,
    error_reply,
    http,
    raising,
    stream_reply,
    tool_call,
)
from tests.unit.recorded_calls import (
    call_span,
    chat_usage_details,
    client_spans,
    has_responses_api,
    normalised,
    openai_left_as_found,
    recorder,
    request_attributes,
    response_events,
    response_object,
    text_output,
)

QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": QUESTION}]
MIDSTREAM_ERROR = "APIConnectionError" if "httpx2" in http.__name__ else "ReadError"
needs_responses = pytest.mark.skipif(not has_responses_api(), reason="this openai has no Responses API")


@pytest.fixture(autouse=True)
def _openai_left_as_found() -> Iterator[None]:
    with openai_left_as_found():
        yield


def _instrumented(*replies: Any) -> tuple[openai.OpenAI, FakeOpenAI]:
    server = FakeOpenAI(*replies)
    client = server.client()
    return client, server


def _stream(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, **kwargs)


def _outcomes(session: PromptRecorder) -> list[tuple[str, bool, str | None]]:
    """Each record's response text, completeness and error type."""
    return [
        (record.response, record.complete, record.error.partition(":")[0] if record.error else None)
        for record in session.records
    ]


# --- streams -------------------------------------------------------------------------------


def test_a_stream_read_to_its_end_is_recorded_whole_with_its_usage(tracing: Tracing) -> None:
    """The proxy yields openai's chunks unchanged; at the end the span has usage and time to first chunk."""
    client, _ = _instrumented(stream_reply(chunks(["Par", "is."])))
    with instrument_openai(client), recorder(tracing) as session:
        stream = _stream(client, stream_options={"include_usage": True})
        assert type(stream) is RecordedStream
        assert stream.response.status_code == 200  # other attributes are openai's Stream's
        received = list(stream)
    assert [type(item) for item in received] == [openai.types.chat.ChatCompletionChunk] * 5
    assert normalised(call_span(tracing)) == {
        **request_attributes(QUESTION, stream=True),
        semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
        semconv.GEN_AI_RESPONSE_ID: COMPLETION_ID,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 19,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        **chat_usage_details(cached=0, reasoning=0),
        semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: "<seconds>",
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: text_output("Paris."),
    }
    (record,) = session.records
    assert (record.response, record.input_tokens, record.output_tokens, record.complete) == (
        "Paris.",
        19,
        10,
        True,
    )


def test_a_stream_without_a_usage_chunk_is_recorded_without_usage(tracing: Tracing) -> None:
    """No usage chunk (many compatible servers send none): the text and finish reason, no token counts."""
    client, _ = _instrumented(stream_reply(chunks(["Par", "is."], include_usage=False)))
    with instrument_openai(client), recorder(tracing) as session:
        text = "".join(c.choices[0].delta.content or "" for c in _stream(client))
    assert text == "Paris."
    attributes = normalised(call_span(tracing))
    assert not [key for key in attributes if key.startswith("gen_ai.usage.")]
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == text_output("Paris.")
    (record,) = session.records
    assert (record.response, record.input_tokens, record.output_tokens, record.complete) == (
        "Paris.",
        None,
        None,
        True,
    )


def test_a_stream_left_early_and_dropped_is_recorded_incomplete_inside_the_block(tracing: Tracing) -> None:
    """Breaking out of the loop and dropping the stream ends the span with what arrived, marked incomplete."""
    client, _ = _instrumented(stream_reply(chunks(["Par", "is", "."])))
    with instrument_openai(client), recorder(tracing) as session:
        stream = _stream(client)
        for item in stream:
            if item.choices[0].delta.content == "Par":
                break
        del stream, item
        gc.collect()
        assert len(client_spans(tracing)) == 1
    attributes = normalised(call_span(tracing))
    assert attributes[semconv.RESPONSE_COMPLETE] is False
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == text_output("Par", finish=None)
    assert _outcomes(session) == [("Par", False, None)]


def test_closing_a_stream_early_records_it_incomplete_and_closes_the_body(tracing: Tracing) -> None:
    """close() before the end closes openai's response and ends the span at once, marked incomplete."""
    client, server = _instrumented(stream_reply(chunks(["Par", "is."])))
    with instrument_openai(client), recorder(tracing) as session:
        stream = _stream(client)
        next(stream)
        stream.close()
        assert server.closed_streams == 1
        assert len(client_spans(tracing)) == 1
    assert _outcomes(session) == [("", False, None)]
    assert normalised(call_span(tracing))[semconv.RESPONSE_COMPLETE] is False


def test_a_stream_in_a_with_block_is_whole_when_read_and_incomplete_when_left(tracing: Tracing) -> None:
    """`with stream:` read to its end records it whole (the exit changes nothing); left early, incomplete."""
    client, _ = _instrumented(stream_reply(chunks(["Paris."])))
    with instrument_openai(client), recorder(tracing) as session:
        with _stream(client) as whole:
            list(whole)
        with _stream(client) as left:
            next(left)
    assert _outcomes(session) == [("Paris.", True, None), ("", False, None)]
    assert len(client_spans(tracing)) == 2


def test_a_stream_that_fails_midway_is_recorded_with_the_error_and_what_arrived(tracing: Tracing) -> None:
    """A connection dropped mid-stream reaches the caller as openai raised it; span and record say what failed."""
    client, _ = _instrumented(stream_reply(chunks(["Par", "is."]), fail_after=2))
    received: list[Any] = []
    with (
        instrument_openai(client),
        recorder(tracing) as session,
        pytest.raises(MIDSTREAM_ERRORS) as raised,
    ):
        for item in _stream(client):
            received.append(item)
    error_type = type(raised.value).__name__
    assert len(received) == 2
    span = call_span(tracing)
    assert span.status.status_code is StatusCode.ERROR
    assert normalised(span)[semconv.ERROR_TYPE] == error_type
    assert [event.name for event in span.events] == ["exception"]
    (record,) = session.records
    assert (record.response, record.complete) == ("Par", False)
    assert record.error == f"{error_type}: {raised.value}"


def test_an_error_event_inside_a_stream_is_recorded_as_the_api_error(tracing: Tracing) -> None:
    """A server reporting an error inside the stream: openai raises APIError and the record keeps it."""
    events = [
        *chunks(["Par"], include_usage=False)[:2],
        {"error": {"message": "overloaded", "type": "server_error"}},
    ]
    client, _ = _instrumented(stream_reply(events))
    with (
        instrument_openai(client),
        recorder(tracing) as session,
        pytest.raises(openai.APIError, match="overloaded"),
    ):
        list(_stream(client))
    assert _outcomes(session) == [("Par", False, "APIError")]
    assert call_span(tracing).status.status_code is StatusCode.ERROR


def test_async_streams_are_recorded_on_every_ending(tracing: Tracing) -> None:
    """The async proxy ends its call on exhaustion, close(), `async with` left early, and a failure."""
    whole = stream_reply(chunks(["Par", "is."]))
    server = FakeOpenAI(whole, whole, whole, stream_reply(chunks(["Par", "is."]), fail_after=2))
    client = server.async_client()

    async def create() -> Any:
        return await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)

    async def use() -> PromptRecorder:
        with recorder(tracing) as session:
            stream = await create()
            assert type(stream) is RecordedAsyncStream
            assert [c async for c in stream][-1].usage.total_tokens == 29
            stream = await create()
            await stream.__anext__()
            await stream.close()
            async with await create() as left:
                await left.__anext__()
            with pytest.raises(MIDSTREAM_ERRORS):
                async for _ in await create():
                    pass
        return session

    with instrument_openai(client):
        session = asyncio.run(use())
    assert _outcomes(session) == [
        ("Paris.", True, None),
        ("", False, None),
        ("", False, None),
        ("Par", False, MIDSTREAM_ERROR),
    ]
    assert len(client_spans(tracing)) == 4


class _StallingBody(http.AsyncByteStream):  # type: ignore[misc]
    """An SSE body that sends its first events and then waits for ever, like a stalled model."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        await asyncio.Event().wait()


def test_a_consumer_cancelled_mid_stream_ends_the_call_with_the_cancellation(tracing: Tracing) -> None:
    """A task cancelled while waiting for the next chunk: CancelledError propagates, the span ends incomplete, not failed."""
    head = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks(["Par", "is."])[:2]).encode()

    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, stream=_StallingBody(head))

    client = openai.AsyncOpenAI(
        base_url="https://api.openai.com/v1",
        api_key="test",
        max_retries=0,
        http_client=http.AsyncClient(transport=http.MockTransport(handler)),
    )

    async def use() -> PromptRecorder:
        with recorder(tracing) as session:
            stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in stream:
                    first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return session

    with instrument_openai(client):
        session = asyncio.run(use())
    assert _outcomes(session) == [("Par", False, "CancelledError")]
    span = call_span(tracing)
    # As the API's use_span: a cancellation ends the span unfinished, not failed.
    assert span.status.status_code is StatusCode.UNSET
    assert semconv.ERROR_TYPE not in normalised(span)
    assert normalised(span)[semconv.RESPONSE_COMPLETE] is False


def test_an_async_stream_left_early_and_dropped_is_recorded_incomplete(tracing: Tracing) -> None:
    """An async stream abandoned after a break is recorded when collected, inside the block."""
    client = FakeOpenAI(stream_reply(chunks(["Par", "is."]))).async_client()

    async def use() -> PromptRecorder:
        with recorder(tracing) as session:
            stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            async for item in stream:
                if item.choices and item.choices[0].delta.content == "Par":
                    break
            del stream, item
            gc.collect()
        return session

    with instrument_openai(client):
        session = asyncio.run(use())
    assert _outcomes(session) == [("Par", False, None)]
    assert normalised(call_span(tracing))[semconv.RESPONSE_COMPLETE] is False


# --- API errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, openai.AuthenticationError), (429, openai.RateLimitError), (500, openai.InternalServerError)],
)
def test_an_api_error_reaches_the_caller_unchanged_and_is_recorded(
    tracing: Tracing, status: int, error_type: type[openai.APIStatusError]
) -> None:
    """401, 429 and 500 raise openai's own error; the span is ERROR with error.type; the record keeps it."""
    client, server = _instrumented(error_reply(status))
    with instrument_openai(client), recorder(tracing) as session, pytest.raises(error_type) as raised:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert type(raised.value) is error_type
    assert raised.value.status_code == status
    assert len(server.requests) == 1
    span = call_span(tracing)
    assert span.status.status_code is StatusCode.ERROR
    assert normalised(span)[semconv.ERROR_TYPE] == error_type.__qualname__
    assert span.events[0].attributes is not None
    assert str(span.events[0].attributes["exception.type"]).endswith(error_type.__name__)
    (record,) = session.records
    assert record.error == f"{error_type.__name__}: {raised.value}"
    assert (record.response, record.complete) == ("", False)


def test_a_timeout_is_recorded_as_openais_timeout_error(tracing: Tracing) -> None:
    """A read timeout reaches the caller as APITimeoutError, and the span says so."""
    client, _ = _instrumented(raising(http.ReadTimeout("timed out")))
    with instrument_openai(client), recorder(tracing) as session, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, timeout=0.5)
    assert normalised(call_span(tracing))[semconv.ERROR_TYPE] == "APITimeoutError"
    assert _outcomes(session) == [("", False, "APITimeoutError")]


def test_a_refused_connection_is_recorded_as_openais_connection_error(tracing: Tracing) -> None:
    """A real TCP connection refused on 127.0.0.1 propagates as APIConnectionError and is recorded."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = openai.OpenAI(
        base_url=f"http://127.0.0.1:{port}/v1", api_key="test", max_retries=0, http_client=http.Client()
    )
    with (
        client,
        instrument_openai(client),
        recorder(tracing) as session,
        pytest.raises(openai.APIConnectionError),
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    attributes = normalised(call_span(tracing))
    assert (attributes[semconv.SERVER_ADDRESS], attributes[semconv.SERVER_PORT]) == ("127.0.0.1", port)
    assert attributes[semconv.ERROR_TYPE] == "APIConnectionError"
    assert session.records[0].error == "APIConnectionError: Connection error."


# --- tool calls ----------------------------------------------------------------------------


def test_tool_calls_and_tool_results_are_recorded_as_message_parts(tracing: Tracing) -> None:
    """History with an assistant tool call and its result, and a reply calling a tool, become parts."""
    asked = tool_call("get_weather", {"city": "Paris"}, "call_1")
    answered = tool_call("get_time", {"tz": "CET"}, "call_2")
    client, _ = _instrumented(completion(None, tool_calls=[answered]))
    history = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [asked]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
    ]
    with instrument_openai(client), recorder(tracing) as session:
        client.chat.completions.create(model=MODEL, messages=history)
    attributes = normalised(call_span(tracing))
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
    (record,) = session.records
    assert record.prompt == "Weather and time in Paris?"
    assert record.tool_calls == (answered,)
    assert record.finish_reasons == ("tool_calls",)


def test_a_history_holding_openais_own_message_objects_is_recorded(tracing: Tracing) -> None:
    """The common loop appends the reply's ChatCompletionMessage to the history; it is read like a dict."""
    called = tool_call("get_weather", {"city": "Paris"}, "call_1")
    client, _ = _instrumented(completion(None, tool_calls=[called]), completion("18C in Paris."))
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    with instrument_openai(client), recorder(tracing) as session:
        first = client.chat.completions.create(model=MODEL, messages=history)
        history += [first.choices[0].message, {"role": "tool", "tool_call_id": "call_1", "content": "18C"}]
        client.chat.completions.create(model=MODEL, messages=history)
    second = normalised(client_spans(tracing)[1])[semconv.GEN_AI_INPUT_MESSAGES]
    assert [message["role"] for message in second] == ["user", "assistant", "tool"]
    assert second[1]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert [record.prompt for record in session.records] == ["Weather in Paris?", "Weather in Paris?"]


def test_streamed_tool_call_fragments_are_merged_into_one_call(tracing: Tracing) -> None:
    """A tool call streamed in pieces is recorded whole: its id, name and joined arguments."""
    called = tool_call("get_weather", {"city": "Paris"}, "call_9")
    client, _ = _instrumented(stream_reply(chunks([], tool_calls=[called])))
    with instrument_openai(client), recorder(tracing) as session:
        list(_stream(client))
    (record,) = session.records
    assert record.tool_calls == (called,)
    assert record.finish_reasons == ("tool_calls",)
    assert normalised(call_span(tracing))[semconv.GEN_AI_OUTPUT_MESSAGES] == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "call_9", "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]


# --- Responses API -----------------------------------------------------------------------


@needs_responses
def test_a_responses_call_with_instructions_and_text_input_is_recorded(tracing: Tracing) -> None:
    """responses.create(input=str, instructions=...): system and user input, output text, usage."""
    client, server = _instrumented(response_object("Paris."))
    with instrument_openai(client), recorder(tracing) as session:
        reply = client.responses.create(
            model=MODEL, input=QUESTION, instructions="Be brief.", max_output_tokens=50
        )
    assert reply.output_text == "Paris."
    assert server.requests[0].url.endswith("/v1/responses")
    assert normalised(call_span(tracing)) == {
        **request_attributes(QUESTION),
        semconv.GEN_AI_INPUT_MESSAGES: [
            {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
            {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
        ],
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 50,
        semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
        semconv.GEN_AI_RESPONSE_ID: "resp_1",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 20,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 1,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: text_output("Paris."),
    }
    (record,) = session.records
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
    client, _ = _instrumented(response_object(None, function_call=asked))
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
    with instrument_openai(client), recorder(tracing) as session:
        client.responses.create(model=MODEL, input=items)
    attributes = normalised(call_span(tracing))
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
    (record,) = session.records
    assert record.prompt == "Weather in Paris?"
    assert record.tool_calls == (
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    )


@needs_responses
def test_a_streamed_responses_call_is_recorded_from_the_completed_response(tracing: Tracing) -> None:
    """response.created, text deltas, response.completed: the text, usage and id of the completed response."""
    client, _ = _instrumented(stream_reply(response_events(["Par", "is."])))
    with instrument_openai(client), recorder(tracing) as session:
        events = list(client.responses.create(model=MODEL, input=QUESTION, stream=True))
    assert [event.type for event in events] == [
        "response.created",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.completed",
    ]
    attributes = normalised(call_span(tracing))
    assert attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert (attributes[semconv.GEN_AI_RESPONSE_ID], attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS]) == (
        "resp_1",
        20,
    )
    assert attributes[semconv.GEN_AI_OUTPUT_MESSAGES] == text_output("Paris.")
    (record,) = session.records
    assert (record.response, record.output_tokens, record.complete) == ("Paris.", 5, True)


@needs_responses
def test_a_responses_stream_left_early_keeps_the_deltas_that_arrived(tracing: Tracing) -> None:
    """Closed after the first delta, a Responses stream is recorded with that text, incomplete."""
    client, _ = _instrumented(stream_reply(response_events(["Par", "is."])))
    with (
        instrument_openai(client),
        recorder(tracing) as session,
        client.responses.create(model=MODEL, input=QUESTION, stream=True) as stream,
    ):
        next(stream)
        next(stream)
    assert _outcomes(session) == [("Par", False, None)]


@needs_responses
def test_async_responses_calls_are_recorded_whole_and_streamed(tracing: Tracing) -> None:
    """AsyncResponses.create under every-client instrumentation, whole and streamed."""
    client = FakeOpenAI(response_object("Paris."), stream_reply(response_events(["Paris."]))).async_client()

    async def ask() -> PromptRecorder:
        with recorder(tracing) as session:
            reply = await client.responses.create(model=MODEL, input=QUESTION)
            assert reply.output_text == "Paris."
            async for _ in await client.responses.create(model=MODEL, input=QUESTION, stream=True):
                pass
        return session

    with instrument_openai():
        session = asyncio.run(ask())
    assert _outcomes(session) == [("Paris.", True, None), ("Paris.", True, None)]

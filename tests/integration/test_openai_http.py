"""The real openai client, over real HTTP to a real OpenAI-compatible server, recorded and
exported to a real OTLP receiver; every assertion is on what the receiver got.

The calls are made as users make them: ``client.chat.completions.create`` on a client
given to ``instrument_openai``, and the bots. The server is fakellm on 127.0.0.1
(``llm_server.py``: its rules script the replies and the errors); the receivers are
oteltest's sinks, over gRPC and HTTP/protobuf.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from promptrecorder import ChatBot, PromptRecorder, SimpleBot, configure, flush, instrument_openai
from promptrecorder.recording import semconv

from .llm_server import (
    ANSWER,
    CAPITAL_QUESTION,
    FOLLOW_UP,
    FOLLOW_UP_ANSWER,
    INTERNAL_ERROR,
    RATE_LIMIT,
    TOOL_ARGUMENTS,
    TOOL_NAME,
    TOOL_TRIGGER,
    FakeLLMServer,
)
from .receivers import ReceivedEvent, ReceivedSpan, Receiver, unused_port

pytestmark = pytest.mark.usefixtures("global_tracing")

MODEL = "gpt-4o-mini"
SYSTEM = "Answer in one sentence."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": CAPITAL_QUESTION}]
INPUT_MESSAGES = [
    {"role": "system", "parts": [{"type": "text", "content": SYSTEM}]},
    {"role": "user", "parts": [{"type": "text", "content": CAPITAL_QUESTION}]},
]


@pytest.fixture
def client(llm_server: FakeLLMServer) -> Iterator[openai.OpenAI]:
    """A plain sync client of the LLM server, closed after the test."""
    with llm_server.openai_client() as client:
        yield client


@pytest.fixture
def receiver(otlp_receiver: Receiver) -> Receiver:
    """A real OTLP receiver (once per protocol) that configure() exports to."""
    configure(endpoint=otlp_receiver.endpoint, protocol=otlp_receiver.protocol)
    return otlp_receiver


def _exported_calls(
    receiver: Receiver, recorder_name: str, count: int
) -> tuple[ReceivedSpan, list[ReceivedSpan]]:
    """Flush; the recorder's span and the CLIENT spans of the calls made in it, oldest first.

    Each CLIENT span must be a child of the recorder's span, in its trace.
    """
    assert flush(timeout=10)
    spans = receiver.wait_for_spans(count + 1)
    session = receiver.span_named("invoke_workflow " + recorder_name)
    calls = sorted(
        (span for span in spans if span.kind == "CLIENT"), key=lambda span: span.start_time_unix_nano
    )
    assert len(calls) == count, [span.name for span in spans]
    assert len(spans) == count + 1, [span.name for span in spans]
    for call in calls:
        assert call.name == f"chat {MODEL}"
        assert (call.trace_id, call.parent_span_id) == (session.trace_id, session.span_id)
        assert session.start_time_unix_nano <= call.start_time_unix_nano
        assert call.end_time_unix_nano <= session.end_time_unix_nano
    return session, calls


def _exported(receiver: Receiver, recorder_name: str) -> tuple[ReceivedSpan, ReceivedSpan]:
    """Flush; the recorder's span and the one CLIENT span of the call made in it."""
    session, (call,) = _exported_calls(receiver, recorder_name, 1)
    return session, call


def _pairs(span: ReceivedSpan) -> list[tuple[ReceivedEvent, ReceivedEvent]]:
    """The prompt and response events recorded on ``span``, pair by pair."""
    events = [event for event in span.events if event.name.startswith("promptrecorder.")]
    pairs = list(zip(events[::2], events[1::2], strict=True))
    for prompt, response in pairs:
        assert (prompt.name, response.name) == (semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE)
        assert prompt.attributes[semconv.RECORD_ID] == response.attributes[semconv.RECORD_ID]
    return pairs


def _pair(span: ReceivedSpan) -> tuple[ReceivedEvent, ReceivedEvent]:
    """The prompt and response events of the one pair recorded on ``span``."""
    [pair] = _pairs(span)
    return pair


def _request_attributes(server: FakeLLMServer) -> dict[str, Any]:
    return {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "127.0.0.1",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "127.0.0.1",
        semconv.SERVER_PORT: server.port,
        semconv.GEN_AI_INPUT_MESSAGES: INPUT_MESSAGES,
    }


def _decoded(attributes: dict[str, Any]) -> dict[str, Any]:
    """The span's attributes with its JSON message lists parsed, for whole-dict comparison."""
    decoded = dict(attributes)
    for key in (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES):
        if key in decoded:
            decoded[key] = json.loads(str(decoded[key]))
    return decoded


def _whole_call_attributes(
    server: FakeLLMServer, completion: Any, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What the CLIENT span of a whole (not streamed) reply of ANSWER carries, and nothing else."""
    return {
        **_request_attributes(server),
        **(params or {}),
        semconv.GEN_AI_RESPONSE_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_ID: completion.id,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_USAGE_INPUT_TOKENS: completion.usage.prompt_tokens,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: completion.usage.completion_tokens,
        semconv.GEN_AI_OUTPUT_MESSAGES: _text_output(ANSWER),
    }


def _text_output(text: str, finish_reason: str = "stop") -> list[dict[str, Any]]:
    return [
        {"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish_reason}
    ]


# --- instrument_openai(client): the user calls client.chat.completions.create -------------


def test_a_chat_call_arrives_as_a_client_span_under_the_recorder_span(
    llm_server: FakeLLMServer, client: openai.OpenAI, receiver: Receiver
) -> None:
    """The CLIENT span `chat {model}` is the recorder span's child and says what the server said."""
    with instrument_openai(client), PromptRecorder("capitals") as recorder:
        completion = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, temperature=0.0, max_tokens=50
        )
    assert isinstance(completion, openai.types.chat.ChatCompletion)  # what the caller gets is openai's
    assert completion.choices[0].message.content == ANSWER
    assert completion.usage is not None

    session, call = _exported(receiver, "capitals")
    assert call.status_code == 0
    assert _decoded(call.attributes) == _whole_call_attributes(
        llm_server,
        completion,
        {semconv.GEN_AI_REQUEST_TEMPERATURE: 0.0, semconv.GEN_AI_REQUEST_MAX_TOKENS: 50},
    )
    prompt, response = _pair(session)
    assert prompt.attributes[semconv.PROMPT_TEXT] == CAPITAL_QUESTION
    assert json.loads(str(prompt.attributes[semconv.GEN_AI_INPUT_MESSAGES])) == INPUT_MESSAGES
    assert prompt.attributes[semconv.GEN_AI_PROVIDER_NAME] == "127.0.0.1"
    assert prompt.attributes[semconv.USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER
    assert response.attributes[semconv.GEN_AI_RESPONSE_MODEL] == MODEL
    assert response.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
    assert response.attributes[semconv.USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    assert call.start_time_unix_nano <= prompt.time_unix_nano < response.time_unix_nano
    assert response.time_unix_nano <= call.end_time_unix_nano
    [record] = recorder.records
    assert (record.trace_id, record.span_id) == (session.trace_id, session.span_id)


def test_an_async_chat_call_arrives_the_same_way(llm_server: FakeLLMServer, receiver: Receiver) -> None:
    """AsyncOpenAI over HTTP: the same CLIENT span under the recorder span, the same pair."""

    async def ask() -> Any:
        async with llm_server.async_openai_client() as client:
            with instrument_openai(client), PromptRecorder("async-capitals"):
                return await client.chat.completions.create(model=MODEL, messages=MESSAGES)

    completion = asyncio.run(ask())

    session, call = _exported(receiver, "async-capitals")
    assert _decoded(call.attributes) == _whole_call_attributes(llm_server, completion)
    prompt, response = _pair(session)
    assert (prompt.attributes[semconv.PROMPT_TEXT], response.attributes[semconv.RESPONSE_TEXT]) == (
        CAPITAL_QUESTION,
        ANSWER,
    )


def test_every_client_is_recorded_after_instrument_openai_without_a_client(
    llm_server: FakeLLMServer, receiver: Receiver
) -> None:
    """instrument_openai() covers a client made afterwards; undone, nothing more is recorded."""
    with instrument_openai(), llm_server.openai_client() as client, PromptRecorder("everyone"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    with llm_server.openai_client() as client, PromptRecorder("undone"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    assert flush(timeout=10)
    assert sorted(span.name for span in receiver.spans()) == [
        f"chat {MODEL}",
        "invoke_workflow everyone",
        "invoke_workflow undone",
    ]
    assert (
        receiver.span_named(f"chat {MODEL}").parent_span_id
        == receiver.span_named("invoke_workflow everyone").span_id
    )
    assert _pairs(receiver.span_named("invoke_workflow undone")) == []


def test_calls_outside_any_recorder_pass_through_unrecorded(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    """An instrumented client used outside `with recorder:` exports nothing."""
    with instrument_openai(client):
        completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        text = "".join(
            chunk.choices[0].delta.content or ""
            for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
            if chunk.choices
        )
    assert (completion.choices[0].message.content, text) == (ANSWER, ANSWER)
    assert flush(timeout=10)
    assert receiver.spans() == []


def test_tool_calls_arrive_as_message_parts(client: openai.OpenAI, receiver: Receiver) -> None:
    """A reply that calls a tool: finish reason tool_calls and the call, with its arguments, as a part."""
    tools = [{"type": "function", "function": {"name": TOOL_NAME, "parameters": {"type": "object"}}}]
    with instrument_openai(client), PromptRecorder("tools"):
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"{TOOL_TRIGGER} Paris?"}], tools=tools
        )
    [tool_call] = completion.choices[0].message.tool_calls or []

    session, call = _exported(receiver, "tools")
    assert call.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["tool_calls"]
    assert json.loads(str(call.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": tool_call.id, "name": TOOL_NAME, "arguments": TOOL_ARGUMENTS}
            ],
            "finish_reason": "tool_calls",
        }
    ]
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ""
    assert response.attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["tool_calls"]


def test_a_stream_records_the_whole_text(
    llm_server: FakeLLMServer, client: openai.OpenAI, receiver: Receiver
) -> None:
    """A stream read to its end: the text the caller assembled is the text recorded; no usage is made up."""
    with instrument_openai(client), PromptRecorder("stream"):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert "".join(pieces) == ANSWER
    assert len([piece for piece in pieces if piece]) == len(ANSWER.split())  # one chunk per word

    session, call = _exported(receiver, "stream")
    attributes = _decoded(call.attributes)
    first_chunk_s = attributes.pop(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    assert 0 < first_chunk_s < 10
    assert str(attributes.pop(semconv.GEN_AI_RESPONSE_ID)).startswith("chatcmpl-")
    # fakellm sends no usage chunk, so no gen_ai.usage.* may appear.
    assert attributes == {
        **_request_attributes(llm_server),
        semconv.GEN_AI_REQUEST_STREAM: True,
        semconv.GEN_AI_RESPONSE_MODEL: MODEL,
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: _text_output(ANSWER),
    }
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER
    assert semconv.RESPONSE_COMPLETE not in response.attributes


def test_an_async_stream_records_the_whole_text(llm_server: FakeLLMServer, receiver: Receiver) -> None:
    """An async stream read to its end is recorded whole, under the recorder span."""

    async def ask() -> str:
        async with llm_server.async_openai_client() as client:
            with instrument_openai(client), PromptRecorder("async-stream"):
                stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
                return "".join(
                    [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
                )

    assert asyncio.run(ask()) == ANSWER

    session, call = _exported(receiver, "async-stream")
    assert call.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert json.loads(str(call.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == _text_output(ANSWER)
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER


def test_a_stream_left_early_records_what_arrived_as_incomplete(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    """Breaking out after the first word and closing the stream: one word recorded, marked incomplete."""
    with (
        instrument_openai(client),
        PromptRecorder("early"),
        client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream,
    ):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break

    session, call = _exported(receiver, "early")
    assert call.status_code == 0
    assert call.attributes[semconv.RESPONSE_COMPLETE] is False
    assert semconv.GEN_AI_RESPONSE_FINISH_REASONS not in call.attributes
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER.split()[0]
    assert response.attributes[semconv.RESPONSE_COMPLETE] is False


def test_a_stream_dropped_unfinished_is_recorded_when_collected(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    """A stream read in part and then dropped (no close, no break out of a loop) ends its call when collected."""
    with instrument_openai(client), PromptRecorder("dropped") as recorder:
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        chunks = iter(stream)
        next(chunks), next(chunks)  # the role chunk, then the first word
        del stream, chunks
        gc.collect()
        assert [record.response for record in recorder.records] == [ANSWER.split()[0]]

    session, call = _exported(receiver, "dropped")
    assert call.attributes[semconv.RESPONSE_COMPLETE] is False
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_COMPLETE] is False


@pytest.mark.parametrize(
    ("trigger", "error_type", "message"),
    [
        (RATE_LIMIT, openai.RateLimitError, "Rate limit exceeded (scripted)"),
        (INTERNAL_ERROR, openai.InternalServerError, "The server had an error (scripted)"),
    ],
    ids=["429", "500"],
)
def test_an_api_error_propagates_and_arrives_as_an_error_client_span(
    llm_server: FakeLLMServer,
    client: openai.OpenAI,
    receiver: Receiver,
    trigger: str,
    error_type: type[openai.APIStatusError],
    message: str,
) -> None:
    """A scripted 429/500 reaches the caller unchanged (one request, no retry) and is recorded with the error."""
    messages = [{"role": "user", "content": f"{trigger} {CAPITAL_QUESTION}"}]
    before = llm_server.request_count
    with (
        instrument_openai(client),
        PromptRecorder("failing"),
        pytest.raises(error_type, match=re.escape(message)) as raised,
    ):
        client.chat.completions.create(model=MODEL, messages=messages)
    assert llm_server.request_count == before + 1

    session, call = _exported(receiver, "failing")
    name = error_type.__name__
    assert call.status_code == 2
    assert call.status_message.startswith(f"{name}: Error code: {raised.value.status_code}")
    assert call.attributes[semconv.ERROR_TYPE] == name
    assert [event.name for event in call.events] == ["exception"]
    assert message in str(call.events[0].attributes["exception.message"])
    assert semconv.GEN_AI_RESPONSE_MODEL not in call.attributes
    prompt, response = _pair(session)
    assert prompt.attributes[semconv.PROMPT_TEXT] == messages[0]["content"]
    assert response.attributes[semconv.ERROR_TYPE] == name
    assert message in str(response.attributes[semconv.RESPONSE_ERROR])
    assert response.attributes[semconv.RESPONSE_TEXT] == ""
    assert response.attributes[semconv.RESPONSE_COMPLETE] is False


def test_a_refused_connection_propagates_and_is_recorded(receiver: Receiver) -> None:
    """Nothing listening: openai's APIConnectionError reaches the caller and the span says so."""
    port = unused_port()
    with (
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test", max_retries=0) as client,
        instrument_openai(client),
        PromptRecorder("refused"),
        pytest.raises(openai.APIConnectionError),
    ):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)

    session, call = _exported(receiver, "refused")
    assert call.status_code == 2
    assert call.attributes[semconv.ERROR_TYPE] == "APIConnectionError"
    assert call.attributes[semconv.SERVER_PORT] == port
    _, response = _pair(session)
    assert response.attributes[semconv.ERROR_TYPE] == "APIConnectionError"
    assert "Connection error" in str(response.attributes[semconv.RESPONSE_ERROR])


# --- the bots ------------------------------------------------------------------------


def test_a_simple_bot_call_arrives_like_a_direct_one(
    llm_server: FakeLLMServer, client: openai.OpenAI, receiver: Receiver
) -> None:
    """SimpleBot: system + user sent, the reply returned, the same CLIENT span and pair exported."""
    bot = SimpleBot(SYSTEM, model=MODEL, client=client, temperature=0.0)
    with PromptRecorder("simple-bot") as recorder:
        reply = bot(CAPITAL_QUESTION)
    assert reply.content == ANSWER
    assert reply.record is not None
    assert reply.record == recorder.records[0]

    session, call = _exported(receiver, "simple-bot")
    assert _decoded(call.attributes) == _whole_call_attributes(
        llm_server, reply.completion, {semconv.GEN_AI_REQUEST_TEMPERATURE: 0.0}
    )
    prompt, response = _pair(session)
    assert prompt.attributes[semconv.RECORD_ID] == reply.record.id
    assert json.loads(str(prompt.attributes[semconv.GEN_AI_INPUT_MESSAGES])) == INPUT_MESSAGES
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER


def test_a_chat_bot_sends_and_records_the_whole_history(client: openai.OpenAI, receiver: Receiver) -> None:
    """ChatBot, two turns: the second request (and its record) holds the first question and answer."""
    bot = ChatBot(SYSTEM, model=MODEL, client=client)
    with PromptRecorder("chat-bot"):
        first, second = bot(CAPITAL_QUESTION), bot(FOLLOW_UP)
    assert (first.content, second.content) == (ANSWER, FOLLOW_UP_ANSWER)

    session, (_, call) = _exported_calls(receiver, "chat-bot", 2)
    history = [
        *INPUT_MESSAGES,
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}]},
        {"role": "user", "parts": [{"type": "text", "content": FOLLOW_UP}]},
    ]
    assert json.loads(str(call.attributes[semconv.GEN_AI_INPUT_MESSAGES])) == history
    pairs = _pairs(session)
    assert [(p.attributes[semconv.PROMPT_TEXT], r.attributes[semconv.RESPONSE_TEXT]) for p, r in pairs] == [
        (CAPITAL_QUESTION, ANSWER),
        (FOLLOW_UP, FOLLOW_UP_ANSWER),
    ]
    assert json.loads(str(pairs[1][0].attributes[semconv.GEN_AI_INPUT_MESSAGES])) == history


def test_a_bot_over_an_instrumented_client_records_each_call_once(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    """A bot whose client is instrumented too: one CLIENT span and one pair per call."""
    bot = SimpleBot(SYSTEM, model=MODEL, client=client)
    with instrument_openai(client), PromptRecorder("once") as recorder:
        bot(CAPITAL_QUESTION)
        "".join(bot.stream(CAPITAL_QUESTION))

    session, _ = _exported_calls(receiver, "once", 2)
    assert len(_pairs(session)) == 2
    assert len(recorder.records) == 2


def test_a_bot_awaited_with_acall_arrives_the_same_way(llm_server: FakeLLMServer, receiver: Receiver) -> None:
    """`await bot.acall(...)` over an AsyncOpenAI client: the same span and pair."""

    async def ask() -> Any:
        async with llm_server.async_openai_client() as async_client:
            bot = SimpleBot(SYSTEM, model=MODEL, async_client=async_client)
            with PromptRecorder("acall"):
                return await bot.acall(CAPITAL_QUESTION)

    reply = asyncio.run(ask())
    assert reply.content == ANSWER

    session, call = _exported(receiver, "acall")
    assert _decoded(call.attributes) == _whole_call_attributes(llm_server, reply.completion)
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER


def test_a_bot_stream_yields_the_text_and_records_it_whole(client: openai.OpenAI, receiver: Receiver) -> None:
    """`bot.stream(...)` yields the words as they come; the record holds them all."""
    bot = SimpleBot(SYSTEM, model=MODEL, client=client)
    with PromptRecorder("bot-stream"):
        pieces = list(bot.stream(CAPITAL_QUESTION))
    assert len(pieces) == len(ANSWER.split())
    assert "".join(pieces) == ANSWER

    session, call = _exported(receiver, "bot-stream")
    assert call.attributes[semconv.GEN_AI_REQUEST_STREAM] is True
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in call.attributes  # fakellm streams no usage
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER
    assert semconv.RESPONSE_COMPLETE not in response.attributes


def test_a_bot_astream_yields_the_text_and_records_it_whole(
    llm_server: FakeLLMServer, receiver: Receiver
) -> None:
    """`bot.astream(...)` over an AsyncOpenAI client: the whole text, recorded once it ends."""

    async def ask() -> str:
        async with llm_server.async_openai_client() as async_client:
            bot = ChatBot(SYSTEM, model=MODEL, async_client=async_client)
            with PromptRecorder("bot-astream"):
                return "".join([piece async for piece in bot.astream(CAPITAL_QUESTION)])

    assert asyncio.run(ask()) == ANSWER

    session, call = _exported(receiver, "bot-astream")
    assert json.loads(str(call.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])) == _text_output(ANSWER)
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER


def test_a_bot_stream_left_early_is_recorded_incomplete_and_not_remembered(
    client: openai.OpenAI, receiver: Receiver
) -> None:
    """Breaking out of `bot.stream(...)`: the words so far, marked incomplete; the ChatBot keeps no turn."""
    bot = ChatBot(SYSTEM, model=MODEL, client=client)
    with PromptRecorder("bot-early"):
        for _ in bot.stream(CAPITAL_QUESTION):
            break
    assert bot.history == []

    session, call = _exported(receiver, "bot-early")
    assert call.attributes[semconv.RESPONSE_COMPLETE] is False
    _, response = _pair(session)
    assert response.attributes[semconv.RESPONSE_TEXT] == ANSWER.split()[0]
    assert response.attributes[semconv.RESPONSE_COMPLETE] is False


def test_a_bot_error_propagates_and_is_recorded(client: openai.OpenAI, receiver: Receiver) -> None:
    """A 429 behind a ChatBot reaches the caller as RateLimitError; the history stays empty."""
    bot = ChatBot(SYSTEM, model=MODEL, client=client)
    with PromptRecorder("bot-error"), pytest.raises(openai.RateLimitError):
        bot(f"{RATE_LIMIT} {CAPITAL_QUESTION}")
    assert bot.history == []

    session, call = _exported(receiver, "bot-error")
    assert call.status_code == 2
    assert call.attributes[semconv.ERROR_TYPE] == "RateLimitError"
    _, response = _pair(session)
    assert response.attributes[semconv.ERROR_TYPE] == "RateLimitError"

"""SimpleBot and ChatBot, on real openai clients over a mock transport (tests/fake_openai.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from promptrecorder import PromptRecorder
from promptrecorder.llm import bots
from promptrecorder.llm.bots import BotResponse, ChatBot, SimpleBot
from tests.conftest import Tracing
from tests.fake_openai import (
    BASE_URL,
    COMPLETION_ID,
    MIDSTREAM_ERRORS,
    MODEL,
    RESPONSE_MODEL,
    CapturedRequest,
    FakeOpenAI,
    chunks,
    completion,
    error_body,
    error_reply,
    http,
    raising,
    stream_reply,
    token_usage,
    tool_call,
)

SYSTEM = "You are a terse assistant."
QUESTION = "Summarise ticket 42"
ANSWER = "Printer on floor 3 jams."
SENT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


def client_spans(tracing: Tracing) -> list[ReadableSpan]:
    return [span for span in tracing.spans() if span.kind == SpanKind.CLIENT]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as plain data (sequences as lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
    }


def parts(text: str, role: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": text}]}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# --- construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"system_prompt": 5}, TypeError, "`system_prompt` must be a str, got 5"),
        ({"system_prompt": None}, TypeError, "`system_prompt` must be a str, got None"),
        ({"model": ""}, ValueError, "`model` must be a non-empty str, got ''"),
        ({"model": "  "}, ValueError, "`model` must be a non-empty str, got '  '"),
        ({"model": None}, TypeError, "`model` must be a non-empty str, got None"),
        ({"stream": True}, TypeError, "`stream` must not be a bot parameter (call bot.stream(message)"),
        ({"messages": []}, TypeError, "`messages` must not be a bot parameter"),
    ],
)
@pytest.mark.parametrize("bot_class", [SimpleBot, ChatBot])
def test_bad_arguments_fail_at_construction(
    bot_class: type[SimpleBot], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """A wrong system prompt, model or reserved parameter raises at once, naming the parameter."""
    arguments = {"system_prompt": SYSTEM, **kwargs}
    system_prompt = arguments.pop("system_prompt")
    with pytest.raises(error) as raised:
        bot_class(system_prompt, client=FakeOpenAI().client(), **arguments)
    assert str(raised.value).startswith(message)


def test_an_async_client_given_as_client_is_refused_with_the_fix() -> None:
    """client= takes an openai.OpenAI; an AsyncOpenAI there is a TypeError saying to use async_client=."""
    server = FakeOpenAI()
    with pytest.raises(
        TypeError, match=r"`client` must be an openai.OpenAI client.*AsyncOpenAI.*`async_client=`"
    ):
        SimpleBot(SYSTEM, client=server.async_client())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`async_client` must be an openai.AsyncOpenAI client.*`client=`"):
        SimpleBot(SYSTEM, async_client=server.client())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"`client` must be an openai.OpenAI client or None, got 'sk-test'$"):
        SimpleBot(SYSTEM, client="sk-test")  # type: ignore[arg-type]


def test_a_message_that_is_not_a_str_is_refused_before_anything_is_sent(tracing: Tracing) -> None:
    """bot(), stream() and astream() check the message when called (not on iteration), acall when awaited."""
    server = FakeOpenAI()
    bot = SimpleBot(SYSTEM, client=server.client(), async_client=server.async_client())
    refused = pytest.raises(TypeError, match=r"^`message` must be a str, got list: \['hi'\]$")
    with PromptRecorder("r", tracer_provider=tracing.provider) as recorder:
        for call in (bot, bot.stream, bot.astream):
            with refused:
                call(["hi"])  # type: ignore[arg-type]
        with refused:
            run(bot.acall(["hi"]))  # type: ignore[arg-type]
    assert server.requests == []
    assert len(recorder) == 0


# --- a whole reply ------------------------------------------------------------------------


def test_a_reply_comes_back_as_a_frozen_bot_response() -> None:
    """bot(message) returns content, the raw ChatCompletion and (outside a recorder) no record."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(completion(ANSWER)).client())
    response = bot(QUESTION)
    assert isinstance(response, BotResponse)
    assert (response.content, str(response), response.record) == (ANSWER, ANSWER, None)
    assert isinstance(response.completion, openai.types.chat.ChatCompletion)
    assert response.completion.id == COMPLETION_ID
    with pytest.raises(AttributeError):
        response.content = "changed"  # type: ignore[misc]


def test_the_server_gets_exactly_system_and_user_and_the_params() -> None:
    """The request body is the model, [system, user] and the bot's params, nothing else."""
    server = FakeOpenAI(completion(ANSWER))
    bot = SimpleBot(
        SYSTEM, model="gpt-4.1-nano", client=server.client(), temperature=0.2, max_tokens=50, seed=7
    )
    bot(QUESTION)
    (request,) = server.requests
    assert (request.method, request.url) == ("POST", f"{BASE_URL}/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json == {
        "model": "gpt-4.1-nano",
        "messages": SENT,
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 7,
    }


def test_a_call_in_a_recorder_is_a_client_span_under_the_recorder_span(tracing: Tracing) -> None:
    """The CLIENT span `chat {model}` carries the GenAI attributes; the recorder span carries the pair."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(completion(ANSWER)).client(), temperature=0.2)
    with PromptRecorder("triage", tracer_provider=tracing.provider):
        bot(QUESTION)
    (span,) = client_spans(tracing)
    recorder_span = tracing.span("invoke_workflow triage")
    assert span.name == f"chat {MODEL}"
    assert span.parent is not None
    assert span.parent.span_id == recorder_span.context.span_id
    assert span.status.status_code == StatusCode.UNSET
    assert attributes(span) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.2,
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.input.messages": json.dumps(
            [parts(SYSTEM, "system"), parts(QUESTION, "user")], separators=(",", ":")
        ),
        "gen_ai.response.model": RESPONSE_MODEL,
        "gen_ai.response.id": COMPLETION_ID,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 19,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "gen_ai.output.messages": json.dumps(
            [{**parts(ANSWER, "assistant"), "finish_reason": "stop"}], separators=(",", ":")
        ),
    }
    assert [event.name for event in recorder_span.events] == [
        "promptrecorder.prompt",
        "promptrecorder.response",
    ]


def test_the_record_is_the_call_as_sent_and_answered(tracing: Tracing) -> None:
    """response.record is the recorder's record: prompt, whole messages, served model, usage, times."""
    server = FakeOpenAI(completion(ANSWER, usage=token_usage(27, 8, cached_tokens=16)))
    bot = SimpleBot(SYSTEM, client=server.client())
    with PromptRecorder("triage", tracer_provider=tracing.provider) as recorder:
        response = bot(QUESTION)
    (record,) = recorder.records
    assert response.record is record
    assert (record.prompt, record.response, record.messages) == (QUESTION, ANSWER, tuple(SENT))
    assert (record.model, record.provider, record.finish_reasons) == (RESPONSE_MODEL, "openai", ("stop",))
    assert (record.input_tokens, record.output_tokens, record.error, record.complete) == (27, 8, None, True)
    assert record.started_at is not None
    assert record.started_at <= record.ended_at
    assert record.span_id == format(tracing.span("invoke_workflow triage").context.span_id, "016x")
    assert attributes(client_spans(tracing)[0])["gen_ai.usage.cache_read.input_tokens"] == 16


def test_outside_a_recorder_nothing_is_recorded(tracing: Tracing) -> None:
    """With no recorder active a bot is a plain openai call: no span, no record."""
    server = FakeOpenAI(completion(ANSWER), stream_reply(chunks(["a", "b"])))
    bot = SimpleBot(SYSTEM, client=server.client())
    assert bot(QUESTION).record is None
    assert list(bot.stream(QUESTION)) == ["a", "b"]
    assert tracing.spans() == []
    assert server.closed_streams == 1


def test_each_thread_gets_its_own_record(tracing: Tracing) -> None:
    """Calls sharing one bot and one recorder from threads each get the record of their own call."""

    def echo(request: CapturedRequest) -> dict[str, Any]:
        return completion("re: " + request.json["messages"][-1]["content"])

    bot = SimpleBot(SYSTEM, client=FakeOpenAI(echo).client())
    questions = [f"question {n}" for n in range(24)]
    with PromptRecorder("pool", tracer_provider=tracing.provider) as recorder, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(recorder.wrap(bot), questions))
    assert len(recorder) == 24
    for question, response in zip(questions, responses, strict=True):
        assert response.record is not None
        assert (response.record.prompt, response.record.response) == (question, "re: " + question)


def test_a_record_is_its_own_calls_even_when_another_call_ends_in_between(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another thread's call recorded after this reply arrived but before bot() returned does not swap records."""

    def echo(request: CapturedRequest) -> dict[str, Any]:
        return completion("re: " + request.json["messages"][-1]["content"])

    first_recorded, other_done = threading.Event(), threading.Event()
    read_reply = bots.chat_result

    def slow_reader(reply: Any) -> Any:
        # Runs after record_create has recorded the call and before bot() looks for the record.
        if reply.choices[0].message.content == "re: first":
            first_recorded.set()
            assert other_done.wait(5)
        return read_reply(reply)

    monkeypatch.setattr(bots, "chat_result", slow_reader)
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(echo).client())
    with PromptRecorder("race", tracer_provider=tracing.provider) as recorder, ThreadPoolExecutor(2) as pool:
        first = pool.submit(recorder.wrap(bot), "first")
        assert first_recorded.wait(5)
        second = recorder.wrap(bot)("second")
        other_done.set()
        assert first.result(5).record is not None
    assert [r.response for r in recorder.records] == ["re: first", "re: second"]
    assert (first.result().record.response, second.record.response) == ("re: first", "re: second")  # type: ignore[union-attr]


# --- async ----------------------------------------------------------------------------------


def test_acall_goes_through_the_async_client_and_is_recorded(tracing: Tracing) -> None:
    """await bot.acall(message) sends the same request through AsyncOpenAI and records it."""
    server = FakeOpenAI(completion(ANSWER))
    bot = SimpleBot(SYSTEM, async_client=server.async_client(), max_tokens=50)

    async def main() -> BotResponse:
        async with PromptRecorder("async", tracer_provider=tracing.provider):
            return await bot.acall(QUESTION)

    response = run(main())
    assert response.content == ANSWER
    assert server.bodies == [{"model": MODEL, "messages": SENT, "max_tokens": 50}]
    assert response.record is not None
    assert response.record.response == ANSWER
    (span,) = client_spans(tracing)
    assert span.parent is not None
    assert span.parent.span_id == tracing.span("invoke_workflow async").context.span_id
    assert attributes(span)["gen_ai.usage.output_tokens"] == 10


def test_concurrent_tasks_each_get_their_own_record(tracing: Tracing) -> None:
    """asyncio tasks inherit the recorder; gathered calls are each recorded once, with their own text."""

    def echo(request: CapturedRequest) -> dict[str, Any]:
        return completion("re: " + request.json["messages"][-1]["content"])

    bot = SimpleBot(SYSTEM, async_client=FakeOpenAI(echo).async_client())

    async def main() -> list[BotResponse]:
        async with PromptRecorder("tasks", tracer_provider=tracing.provider):
            return list(await asyncio.gather(*(bot.acall(f"q{n}") for n in range(10))))

    responses = run(main())
    assert [r.record.response if r.record else None for r in responses] == [f"re: q{n}" for n in range(10)]
    assert len(client_spans(tracing)) == 10


# --- streams ---------------------------------------------------------------------------------


def test_a_stream_yields_text_and_records_it_whole_with_usage(tracing: Tracing) -> None:
    """bot.stream() yields each piece; the record holds the whole text and the usage chunk's counts."""
    server = FakeOpenAI(stream_reply(chunks(["Printer ", "jams", "."], usage=token_usage(21, 3))))
    bot = SimpleBot(SYSTEM, client=server.client(), temperature=0)
    with PromptRecorder("stream", tracer_provider=tracing.provider) as recorder:
        pieces = list(bot.stream(QUESTION))
    assert pieces == ["Printer ", "jams", "."]
    assert server.bodies == [
        {
            "model": MODEL,
            "messages": SENT,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ]
    (record,) = recorder.records
    assert (record.response, record.input_tokens, record.output_tokens) == ("Printer jams.", 21, 3)
    assert (record.complete, record.error, record.finish_reasons) == (True, None, ("stop",))
    (span,) = client_spans(tracing)
    span_attributes = attributes(span)
    assert span_attributes.pop("gen_ai.response.time_to_first_chunk") > 0
    assert span_attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0,
        "gen_ai.request.stream": True,
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.input.messages": json.dumps(
            [parts(SYSTEM, "system"), parts(QUESTION, "user")], separators=(",", ":")
        ),
        "gen_ai.response.model": RESPONSE_MODEL,
        "gen_ai.response.id": COMPLETION_ID,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 21,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 0,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "gen_ai.output.messages": json.dumps(
            [{**parts("Printer jams.", "assistant"), "finish_reason": "stop"}], separators=(",", ":")
        ),
    }
    assert server.closed_streams == 1


def test_a_stream_without_a_usage_chunk_is_recorded_without_usage(tracing: Tracing) -> None:
    """A server that sends no usage chunk: the text is recorded whole, the token counts stay unknown."""
    server = FakeOpenAI(stream_reply(chunks(["Hi", "!"], include_usage=False)))
    with PromptRecorder("stream", tracer_provider=tracing.provider) as recorder:
        assert "".join(SimpleBot(SYSTEM, client=server.client()).stream(QUESTION)) == "Hi!"
    (record,) = recorder.records
    assert (record.response, record.input_tokens, record.output_tokens, record.complete) == (
        "Hi!",
        None,
        None,
        True,
    )
    assert not any(key.startswith("gen_ai.usage.") for key in attributes(client_spans(tracing)[0]))


@pytest.mark.parametrize(
    ("params", "sent"),
    [
        ({}, {"include_usage": True}),
        ({"stream_options": {"include_usage": False}}, {"include_usage": False}),
        ({"stream_options": None}, None),
    ],
    ids=["default", "given", "none"],
)
def test_stream_options_can_be_overridden_or_left_out(params: dict[str, Any], sent: Any) -> None:
    """stream_options asks for usage by default, is sent as given, or not at all with None; never on whole calls."""
    server = FakeOpenAI(stream_reply(chunks(["x"])), completion())
    bot = SimpleBot(SYSTEM, client=server.client(), **params)
    list(bot.stream(QUESTION))
    bot(QUESTION)
    streamed, whole = server.bodies
    assert streamed.get("stream_options") == sent
    assert ("stream_options" in streamed) == (sent is not None)
    assert "stream_options" not in whole
    assert "stream" not in whole
    assert bot.params == params


def test_breaking_out_early_records_what_arrived_and_closes_the_response(tracing: Tracing) -> None:
    """A consumer that stops after two chunks: the record has those, complete=False; the HTTP body is closed."""
    server = FakeOpenAI(stream_reply(chunks(["one ", "two ", "three"])))
    bot = SimpleBot(SYSTEM, client=server.client())
    with PromptRecorder("early", tracer_provider=tracing.provider) as recorder:
        for index, _ in enumerate(bot.stream(QUESTION)):
            if index == 1:
                break
    (record,) = recorder.records
    assert (record.response, record.complete, record.error) == ("one two ", False, None)
    assert server.closed_streams == 1
    span_attributes = attributes(client_spans(tracing)[0])
    assert span_attributes["promptrecorder.response.complete"] is False
    assert client_spans(tracing)[0].status.status_code == StatusCode.UNSET


def test_closing_the_stream_records_it_incomplete_at_once(tracing: Tracing) -> None:
    """stream.close() after one chunk ends the call there and then, not at garbage collection."""
    server = FakeOpenAI(stream_reply(chunks(["one ", "two"])))
    with PromptRecorder("closed", tracer_provider=tracing.provider) as recorder:
        stream = SimpleBot(SYSTEM, client=server.client()).stream(QUESTION)
        assert next(stream) == "one "
        assert len(recorder) == 0
        stream.close()  # type: ignore[attr-defined]
        assert [(r.response, r.complete) for r in recorder.records] == [("one ", False)]
    assert server.closed_streams == 1
    assert len(client_spans(tracing)) == 1


def test_a_stream_never_started_sends_nothing(tracing: Tracing) -> None:
    """The request goes out on the first next(); a stream dropped unstarted makes no call."""
    server = FakeOpenAI(stream_reply(chunks(["x"])))
    with PromptRecorder("lazy", tracer_provider=tracing.provider) as recorder:
        stream = SimpleBot(SYSTEM, client=server.client()).stream(QUESTION)
        del stream
    assert (server.requests, len(recorder), client_spans(tracing)) == ([], 0, [])


def test_a_server_failing_mid_stream_is_recorded_and_raised(tracing: Tracing) -> None:
    """The connection drops after two chunks: openai's error reaches the caller; the record has it and the text so far."""
    server = FakeOpenAI(stream_reply(chunks(["one ", "two ", "three"]), fail_after=3))
    received: list[str] = []
    with (
        PromptRecorder("dropped", tracer_provider=tracing.provider) as recorder,
        pytest.raises(MIDSTREAM_ERRORS) as raised,
    ):
        for text in SimpleBot(SYSTEM, client=server.client()).stream(QUESTION):
            received.append(text)
    kind = type(raised.value).__name__
    assert received == ["one ", "two "]
    (record,) = recorder.records
    assert (record.response, record.complete) == ("one two ", False)
    assert record.error == f"{kind}: {raised.value}"
    (span,) = client_spans(tracing)
    assert span.status.status_code == StatusCode.ERROR
    assert attributes(span)["error.type"] == kind
    assert server.closed_streams == 1


def test_astream_yields_text_and_records_it(tracing: Tracing) -> None:
    """async for over bot.astream() yields the pieces; the record is complete with usage."""
    server = FakeOpenAI(stream_reply(chunks(["a", "b"])))
    bot = SimpleBot(SYSTEM, async_client=server.async_client())

    async def main() -> list[str]:
        async with PromptRecorder("astream", tracer_provider=tracing.provider):
            return [text async for text in bot.astream(QUESTION)]

    assert run(main()) == ["a", "b"]
    assert server.bodies[0]["stream_options"] == {"include_usage": True}
    (span,) = client_spans(tracing)
    assert attributes(span)["gen_ai.usage.input_tokens"] == 19
    assert server.closed_streams == 1


def test_astream_left_early_is_recorded_incomplete_and_closed(tracing: Tracing) -> None:
    """An async stream closed after one chunk (aclosing) records what arrived and closes the response."""
    server = FakeOpenAI(stream_reply(chunks(["one ", "two"])))
    bot = SimpleBot(SYSTEM, async_client=server.async_client())

    async def main() -> PromptRecorder:
        async with PromptRecorder("aearly", tracer_provider=tracing.provider) as recorder:
            async with aclosing(bot.astream(QUESTION)) as stream:  # type: ignore[type-var]
                async for _ in stream:
                    break
            return recorder

    recorder = run(main())
    assert [(r.response, r.complete) for r in recorder.records] == [("one ", False)]
    assert server.closed_streams == 1


def test_astream_failing_midway_is_recorded_and_raised(tracing: Tracing) -> None:
    """An async stream whose connection drops raises openai's error and records it."""
    server = FakeOpenAI(stream_reply(chunks(["one ", "two"]), fail_after=2))
    bot = SimpleBot(SYSTEM, async_client=server.async_client())

    async def main() -> None:
        async with PromptRecorder("afail", tracer_provider=tracing.provider):
            async for _ in bot.astream(QUESTION):
                pass

    with pytest.raises(MIDSTREAM_ERRORS) as raised:
        run(main())
    (span,) = client_spans(tracing)
    assert (span.status.status_code, attributes(span)["error.type"]) == (
        StatusCode.ERROR,
        type(raised.value).__name__,
    )
    assert json.loads(attributes(span)["gen_ai.output.messages"])[0]["parts"][0]["content"] == "one "


# --- API errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (error_reply(401), openai.AuthenticationError),
        (error_reply(429), openai.RateLimitError),
        (error_reply(500), openai.InternalServerError),
    ],
    ids=["401", "429", "500"],
)
def test_an_api_error_reaches_the_caller_and_is_recorded(
    tracing: Tracing, reply: Any, error_type: type[openai.APIStatusError]
) -> None:
    """An error status raises openai's own error unchanged; the record and the CLIENT span say what failed."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(reply).client())
    with (
        PromptRecorder("errors", tracer_provider=tracing.provider) as recorder,
        pytest.raises(error_type) as raised,
    ):
        bot(QUESTION)
    error = raised.value
    assert type(error) is error_type
    assert error.status_code == reply.status
    assert error.body == error_body(reply.status)["error"]
    (record,) = recorder.records
    assert record.error == f"{error_type.__name__}: {error}"
    assert (record.response, record.complete, record.prompt) == ("", False, QUESTION)
    (span,) = client_spans(tracing)
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == f"{error_type.__name__}: {error}"
    assert attributes(span)["error.type"] == error_type.__name__
    assert [event.name for event in span.events] == ["exception"]
    assert (
        tracing.span("invoke_workflow errors").status.status_code == StatusCode.UNSET
    )  # caught inside the block


@pytest.mark.parametrize(
    ("transport_error", "error_type"),
    [
        (http.ReadTimeout("timed out"), openai.APITimeoutError),
        (http.ConnectError("[Errno 111] Connection refused"), openai.APIConnectionError),
    ],
    ids=["timeout", "refused"],
)
def test_a_timeout_or_refused_connection_reaches_the_caller_and_is_recorded(
    tracing: Tracing, transport_error: Exception, error_type: type[openai.APIConnectionError]
) -> None:
    """openai's connection error, caused by the transport's very exception, propagates; the span says which."""
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(raising(transport_error)).client())
    with (
        PromptRecorder("network", tracer_provider=tracing.provider) as recorder,
        pytest.raises(error_type) as raised,
    ):
        bot(QUESTION)
    assert type(raised.value) is error_type
    assert raised.value.__cause__ is transport_error
    (record,) = recorder.records
    assert record.error == f"{error_type.__name__}: {raised.value}"
    (span,) = client_spans(tracing)
    assert (span.status.status_code, attributes(span)["error.type"]) == (
        StatusCode.ERROR,
        error_type.__name__,
    )


def test_an_async_api_error_reaches_the_caller_and_is_recorded(tracing: Tracing) -> None:
    """acall raises the async client's error unchanged and records the failed call."""
    bot = SimpleBot(SYSTEM, async_client=FakeOpenAI(error_reply(429)).async_client())

    async def main() -> PromptRecorder:
        async with PromptRecorder("aerrors", tracer_provider=tracing.provider) as recorder:
            with pytest.raises(openai.RateLimitError):
                await bot.acall(QUESTION)
        return recorder

    (record,) = run(main()).records
    assert record.error is not None
    assert record.error.startswith("RateLimitError: Error code: 429")
    assert attributes(client_spans(tracing)[0])["error.type"] == "RateLimitError"


def test_an_error_outside_a_recorder_propagates_and_records_nothing(tracing: Tracing) -> None:
    """Without a recorder an API error is simply openai's error."""
    with pytest.raises(openai.InternalServerError):
        SimpleBot(SYSTEM, client=FakeOpenAI(error_reply(500)).client())(QUESTION)
    assert tracing.spans() == []


# --- ChatBot ----------------------------------------------------------------------------------


def test_a_chatbot_sends_the_whole_history_and_records_it(tracing: Tracing) -> None:
    """Each call sends system, every earlier turn and the new message; the record keeps that list."""
    server = FakeOpenAI(completion("First answer."), completion("Second answer."))
    bot = ChatBot(SYSTEM, client=server.client())
    with PromptRecorder("chat", tracer_provider=tracing.provider) as recorder:
        bot("First question?")
        bot("Second question?")
    history = [
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question?"},
        {"role": "assistant", "content": "Second answer."},
    ]
    assert bot.history == history
    assert server.bodies[1]["messages"] == [{"role": "system", "content": SYSTEM}, *history[:3]]
    assert recorder.records[1].messages == tuple(server.bodies[1]["messages"])
    assert recorder.records[1].prompt == "Second question?"


def test_history_is_a_copy_and_reset_forgets_it() -> None:
    """Changing the returned history changes nothing; reset() empties it and keeps the system prompt."""
    server = FakeOpenAI(completion("A."))
    bot = ChatBot(SYSTEM, client=server.client())
    bot("Q?")
    bot.history.clear()
    bot.history[0]["content"] = "tampered"
    assert len(bot.history) == 2
    assert bot.history[0]["content"] == "Q?"
    bot.reset()
    assert bot.history == []
    bot("Again?")
    assert server.bodies[1]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Again?"},
    ]


def test_a_failed_call_leaves_the_history_unchanged() -> None:
    """A call that raises adds neither the message nor a reply to the history."""
    server = FakeOpenAI(completion("A."), error_reply(500), completion("B."))
    bot = ChatBot(SYSTEM, client=server.client())
    bot("Q1")
    with pytest.raises(openai.InternalServerError):
        bot("Q2")
    assert [turn["content"] for turn in bot.history] == ["Q1", "A."]
    bot("Q3")
    assert [m["content"] for m in server.bodies[2]["messages"]] == [SYSTEM, "Q1", "A.", "Q3"]


def test_a_chatbot_remembers_a_stream_only_when_it_completes() -> None:
    """A stream read to its end joins the history; one left early or failed does not."""
    server = FakeOpenAI(
        stream_reply(chunks(["Whole ", "answer."])),
        stream_reply(chunks(["Cut ", "short."])),
        stream_reply(chunks(["Dropped ", "line."]), fail_after=2),
    )
    bot = ChatBot(SYSTEM, client=server.client())
    assert "".join(bot.stream("Q1")) == "Whole answer."
    for _ in bot.stream("Q2"):
        break
    with pytest.raises(MIDSTREAM_ERRORS):
        list(bot.stream("Q3"))
    assert bot.history == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "Whole answer."},
    ]


def test_a_chatbot_remembers_async_calls_and_streams() -> None:
    """acall and astream extend the history exactly as their sync twins do."""
    server = FakeOpenAI(completion("A1."), stream_reply(chunks(["A2", "."])))
    bot = ChatBot(SYSTEM, async_client=server.async_client())

    async def main() -> None:
        await bot.acall("Q1")
        assert [text async for text in bot.astream("Q2")] == ["A2", "."]

    run(main())
    assert [turn["content"] for turn in bot.history] == ["Q1", "A1.", "Q2", "A2."]
    assert [m["content"] for m in server.bodies[1]["messages"]] == [SYSTEM, "Q1", "A1.", "Q2"]


# --- tool calls -------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_tool_calls_in_a_reply_are_recorded_as_tool_call_parts(tracing: Tracing) -> None:
    """A reply asking for a tool: record.tool_calls holds it; gen_ai.output.messages has a tool_call part."""
    call = tool_call("get_weather", {"city": "Paris"})
    server = FakeOpenAI(completion(None, tool_calls=[call]))
    bot = SimpleBot(SYSTEM, client=server.client(), tools=[WEATHER_TOOL])
    with PromptRecorder("tools", tracer_provider=tracing.provider) as recorder:
        response = bot("Weather in Paris?")
    assert server.bodies[0]["tools"] == [WEATHER_TOOL]
    assert response.content == ""
    (record,) = recorder.records
    assert record.tool_calls == (call,)
    assert record.finish_reasons == ("tool_calls",)
    output = json.loads(attributes(client_spans(tracing)[0])["gen_ai.output.messages"])
    assert output == [
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": call["id"], "name": "get_weather", "arguments": {"city": "Paris"}}
            ],
            "finish_reason": "tool_calls",
        }
    ]


def test_tool_calls_in_a_stream_are_assembled_and_recorded(tracing: Tracing) -> None:
    """Tool-call fragments across chunks are joined into one call on the record."""
    call = tool_call("get_weather", {"city": "Paris"})
    server = FakeOpenAI(stream_reply(chunks([], tool_calls=[call])))
    with PromptRecorder("stream-tools", tracer_provider=tracing.provider) as recorder:
        assert list(SimpleBot(SYSTEM, client=server.client()).stream("Weather?")) == []
    (record,) = recorder.records
    assert record.tool_calls == (call,)
    assert record.finish_reasons == ("tool_calls",)


# --- clients ----------------------------------------------------------------------------------


def _settings(client: openai.OpenAI | openai.AsyncOpenAI) -> dict[str, Any]:
    return {
        "api_key": client.api_key,
        "organization": client.organization,
        "project": client.project,
        "base_url": str(client.base_url),
        "timeout": client.timeout,
        "max_retries": client.max_retries,
        "x-team": client.default_headers.get("x-team"),
    }


def test_the_missing_async_client_is_built_from_the_sync_clients_settings() -> None:
    """Given only client=, async_client is an AsyncOpenAI with the same key, URL, org, timeout, retries, headers."""
    client = openai.OpenAI(
        api_key="sk-one",
        organization="org-1",
        project="proj-1",
        base_url="http://127.0.0.1:8000/v1",
        timeout=12.5,
        max_retries=4,
        default_headers={"x-team": "support"},
    )
    bot = SimpleBot(SYSTEM, client=client)
    assert bot.client is client
    twin = bot.async_client
    assert isinstance(twin, openai.AsyncOpenAI)
    assert _settings(twin) == _settings(client)
    assert bot.async_client is twin


def test_the_missing_sync_client_is_built_from_the_async_clients_settings() -> None:
    """Given only async_client=, client is an OpenAI with the same settings."""
    async_client = openai.AsyncOpenAI(api_key="sk-two", base_url="http://127.0.0.1:9/v1", max_retries=0)
    bot = ChatBot(SYSTEM, async_client=async_client)
    assert isinstance(bot.client, openai.OpenAI)
    assert _settings(bot.client) == _settings(async_client)


def test_with_no_client_openai_builds_one_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """client=None: OPENAI_API_KEY and OPENAI_BASE_URL choose the server, on first use, not at construction."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    bot = SimpleBot(SYSTEM)  # no key yet: nothing is built, nothing fails
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert (bot.client.api_key, str(bot.client.base_url)) == ("sk-env", "http://127.0.0.1:11434/v1/")
    assert (bot.async_client.api_key, str(bot.async_client.base_url)) == (
        "sk-env",
        "http://127.0.0.1:11434/v1/",
    )


def test_with_no_client_and_no_key_openai_says_so_on_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without OPENAI_API_KEY the first call raises openai's own missing-credentials error."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    bot = SimpleBot(SYSTEM)
    with pytest.raises(openai.OpenAIError, match=r"api_key|API key|credentials"):
        bot(QUESTION)


def test_an_azure_client_alone_cannot_serve_async_calls() -> None:
    """An AzureOpenAI client's settings are not copied: acall asks for async_client= instead of guessing."""
    azure = openai.AzureOpenAI(
        api_key="k", api_version="2024-10-21", azure_endpoint="https://x.openai.azure.com"
    )
    bot = SimpleBot(SYSTEM, client=azure)
    with pytest.raises(TypeError, match=r"`async_client` must be given.*AzureOpenAI"):
        run(bot.acall(QUESTION))


def test_a_bots_provider_and_server_come_from_its_clients_base_url(tracing: Tracing) -> None:
    """A local OpenAI-compatible server is named by its host, with its port."""
    server = FakeOpenAI(completion(ANSWER))
    bot = SimpleBot(SYSTEM, client=server.client(base_url="http://127.0.0.1:8080/v1"))
    with PromptRecorder("local", tracer_provider=tracing.provider) as recorder:
        bot(QUESTION)
    span_attributes = attributes(client_spans(tracing)[0])
    assert (span_attributes["gen_ai.provider.name"], span_attributes["server.port"]) == ("127.0.0.1", 8080)
    assert recorder.records[0].provider == "127.0.0.1"


def test_the_record_is_handed_back_even_when_scrubbing_changed_its_text(tracing: Tracing) -> None:
    """response.record is the call's own record, also when a secret in the reply was scrubbed."""
    key = "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789"
    bot = SimpleBot(SYSTEM, client=FakeOpenAI(completion(f"Your key is {key}")).client())
    with PromptRecorder("scrubbed", tracer_provider=tracing.provider) as recorder:
        response = bot(QUESTION)
    assert response.content == f"Your key is {key}"  # what the caller gets is never changed
    assert response.record is not None
    assert response.record is recorder.records[0]
    assert response.record.response == "Your key is [REDACTED:openai_api_key]"

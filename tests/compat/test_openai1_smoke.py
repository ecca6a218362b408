"""promptrecorder on an httpx-based openai (1.x, 2.x): whole, async and streamed calls.

``run_openai1.py`` runs this module in a throwaway venv holding the openai under test; the
default suite does not collect it (``conftest.py``), since openai 3.x is built on httpx2
and an ``httpx.MockTransport`` intercepts nothing there. The server is a handler on
``httpx.MockTransport`` that answers like the Chat Completions API.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import promptrecorder
from promptrecorder import ChatBot, PromptRecorder, SimpleBot, instrument_openai
from promptrecorder.llm.openai_adapter import CHAT
from promptrecorder.llm.openai_calls import arecord_create, record_create
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import describe_endpoint

BASE_URL = "http://llm.test:8000/v1"
MODEL = "gpt-4o-mini"
SERVED_MODEL = "gpt-4o-mini-2024-07-18"
ANSWER = "Paris is the capital of France."
RATE_LIMIT = "[[429]]"
MESSAGES = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
# With the details api.openai.com sends; openai 1.x before ~1.50 has no types for them and
# keeps them as plain dicts.
USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 7,
    "total_tokens": 19,
    "prompt_tokens_details": {"cached_tokens": 3},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


# --- the fake API --------------------------------------------------------------------


def _completion() -> dict[str, Any]:
    return {
        "id": "chatcmpl-compat",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": SERVED_MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
        ],
        "usage": USAGE,
    }


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-compat",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": SERVED_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _sse() -> bytes:
    chunks = [_chunk({"role": "assistant", "content": ""})]
    chunks += [_chunk({"content": word}) for word in ANSWER.split(" ")[:1]]
    chunks += [_chunk({"content": " " + word}) for word in ANSWER.split(" ")[1:]]
    chunks.append(_chunk({}, "stop"))
    # The usage-only chunk openai sends last when asked with stream_options.
    chunks.append({**_chunk({}), "choices": [], "usage": USAGE})
    lines = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


class FakeAPI:
    """A Chat Completions handler for ``httpx.MockTransport``; keeps the request bodies."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        if RATE_LIMIT in json.dumps(body["messages"]):
            error = {"error": {"message": "Rate limit reached (scripted)", "type": "requests", "code": None}}
            return httpx.Response(429, json=error)
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_sse())
        return httpx.Response(200, json=_completion())


@pytest.fixture
def api() -> FakeAPI:
    return FakeAPI()


@pytest.fixture
def client(api: FakeAPI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=BASE_URL,
        api_key="test",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(api)),
    ) as client:
        yield client


def _async_client(api: FakeAPI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=BASE_URL,
        api_key="test",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api)),
    )


# --- recording -----------------------------------------------------------------------


class Spans:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def recorder(self, name: str = "compat") -> PromptRecorder:
        return PromptRecorder(name, tracer_provider=self.provider)

    def call_and_recorder(self) -> tuple[ReadableSpan, ReadableSpan]:
        """The one CLIENT span and the recorder span it must sit under."""
        spans = list(self.exporter.get_finished_spans())
        [call] = [span for span in spans if span.kind is SpanKind.CLIENT]
        [session] = [span for span in spans if span.kind is SpanKind.INTERNAL]
        assert call.parent is not None
        assert call.parent.span_id == session.context.span_id
        return call, session


@pytest.fixture
def spans() -> Iterator[Spans]:
    spans = Spans()
    yield spans
    spans.provider.shutdown()


def _create(client: openai.OpenAI, **kwargs: Any) -> Any:
    endpoint = describe_endpoint(client.base_url, type(client).__name__)
    return record_create(client.chat.completions.create, (), kwargs, api=CHAT, endpoint=endpoint)


async def _acreate(client: openai.AsyncOpenAI, **kwargs: Any) -> Any:
    endpoint = describe_endpoint(client.base_url, type(client).__name__)
    return await arecord_create(client.chat.completions.create, (), kwargs, api=CHAT, endpoint=endpoint)


def _assert_whole_call(spans: Spans, *, stream: bool = False) -> None:
    call, session = spans.call_and_recorder()
    attributes = dict(call.attributes or {})
    assert call.name == f"chat {MODEL}"
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "llm.test"
    assert (attributes[semconv.SERVER_ADDRESS], attributes[semconv.SERVER_PORT]) == ("llm.test", 8000)
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == MODEL
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == SERVED_MODEL
    assert attributes[semconv.GEN_AI_RESPONSE_ID] == "chatcmpl-compat"
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == USAGE["prompt_tokens"]
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == USAGE["completion_tokens"]
    assert attributes[semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 3
    assert attributes[semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 2
    assert attributes.get(semconv.GEN_AI_REQUEST_STREAM, False) is stream
    prompt, response = session.events
    assert (prompt.name, response.name) == (semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE)
    assert (prompt.attributes or {})[semconv.PROMPT_TEXT] == MESSAGES[-1]["content"]
    assert (response.attributes or {})[semconv.RESPONSE_TEXT] == ANSWER


# --- the tests -----------------------------------------------------------------------


def test_this_openai_is_built_on_httpx(client: openai.OpenAI) -> None:
    """The tier tests what it claims: an openai before 3.x, whose client is an httpx.Client,
    and promptrecorder installed in this venv, not a source tree on the path."""
    assert int(openai.__version__.split(".")[0]) in (1, 2)
    assert isinstance(client._client, httpx.Client)
    assert Path(promptrecorder.__file__).is_relative_to(sys.prefix)


def test_a_whole_call_is_recorded(client: openai.OpenAI, spans: Spans) -> None:
    """Sync, not streamed: the caller gets openai's object; span and pair say what came back."""
    with spans.recorder() as recorder:
        completion = _create(client, model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == ANSWER
    _assert_whole_call(spans)
    [record] = recorder.records
    assert (record.response, record.model, record.input_tokens) == (ANSWER, SERVED_MODEL, 12)


def test_a_stream_is_recorded_whole_with_its_usage(client: openai.OpenAI, spans: Spans) -> None:
    """Sync stream with a usage chunk: the whole text and the usage are recorded when it ends."""
    with spans.recorder():
        stream = _create(
            client, model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == ANSWER
    _assert_whole_call(spans, stream=True)


def test_async_whole_and_streamed_calls_are_recorded(api: FakeAPI, spans: Spans) -> None:
    """AsyncOpenAI: the same records, whole and streamed."""

    async def run() -> tuple[str, str]:
        async with _async_client(api) as client:
            with spans.recorder():
                whole = await _acreate(client, model=MODEL, messages=MESSAGES)
            _assert_whole_call(spans)
            spans.exporter.clear()
            with spans.recorder():
                stream = await _acreate(
                    client,
                    model=MODEL,
                    messages=MESSAGES,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text = "".join(
                    [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
                )
            _assert_whole_call(spans, stream=True)
            return whole.choices[0].message.content, text

    assert asyncio.run(run()) == (ANSWER, ANSWER)


def test_an_api_error_propagates_and_is_recorded(client: openai.OpenAI, spans: Spans) -> None:
    """A 429 reaches the caller as openai.RateLimitError; the CLIENT span and the pair carry it."""
    with spans.recorder(), pytest.raises(openai.RateLimitError):
        _create(client, model=MODEL, messages=[{"role": "user", "content": RATE_LIMIT}])
    call, session = spans.call_and_recorder()
    assert call.status.status_code is StatusCode.ERROR
    assert (call.attributes or {})[semconv.ERROR_TYPE] == "RateLimitError"
    _, response = session.events
    assert (response.attributes or {})[semconv.ERROR_TYPE] == "RateLimitError"


# --- instrument_openai -------------------------------------------------------------------


def test_an_instrumented_client_records_whole_and_streamed_calls(client: openai.OpenAI, spans: Spans) -> None:
    """instrument_openai(client): the user's own create calls are recorded, whole and streamed."""
    with instrument_openai(client):
        with spans.recorder():
            completion = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert isinstance(completion, openai.types.chat.ChatCompletion)
        _assert_whole_call(spans)
        spans.exporter.clear()
        with spans.recorder():
            stream = client.chat.completions.create(
                model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            assert (
                "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == ANSWER
            )
        _assert_whole_call(spans, stream=True)


def test_instrumenting_every_client_covers_async_clients_and_is_undone(api: FakeAPI, spans: Spans) -> None:
    """instrument_openai(): an AsyncOpenAI made afterwards is recorded; after undo, create is openai's again."""
    completions = openai.resources.chat.completions.AsyncCompletions
    original = completions.create
    handle = instrument_openai()
    try:
        assert completions.create is not original
        # An openai before the Responses API (1.66) has no responses targets; chat is enough.
        assert any("chat.completions.AsyncCompletions.create" in target for target in handle.targets)

        async def run() -> str:
            async with _async_client(api) as client:
                with spans.recorder():
                    stream = await client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                    )
                    return "".join(
                        [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
                    )

        assert asyncio.run(run()) == ANSWER
        _assert_whole_call(spans, stream=True)
    finally:
        handle.uninstrument()
    assert completions.create is original


# --- the bots ------------------------------------------------------------------------------


def test_a_bot_records_whole_and_streamed_replies(client: openai.OpenAI, spans: Spans) -> None:
    """SimpleBot: bot(message) and bot.stream(message) are recorded like direct calls."""
    bot = SimpleBot(MESSAGES[0]["content"], model=MODEL, client=client)
    with spans.recorder():
        reply = bot(MESSAGES[1]["content"])
    assert reply.content == ANSWER
    assert reply.record is not None
    _assert_whole_call(spans)
    spans.exporter.clear()
    with spans.recorder():
        assert "".join(bot.stream(MESSAGES[1]["content"])) == ANSWER
    _assert_whole_call(spans, stream=True)


def test_a_bot_records_acall_and_astream(api: FakeAPI, spans: Spans) -> None:
    """ChatBot on an AsyncOpenAI: acall and astream are recorded, and the history grows."""

    async def run() -> None:
        async with _async_client(api) as async_client:
            bot = ChatBot(MESSAGES[0]["content"], model=MODEL, async_client=async_client)
            with spans.recorder():
                assert (await bot.acall(MESSAGES[1]["content"])).content == ANSWER
            _assert_whole_call(spans)
            spans.exporter.clear()
            with spans.recorder():
                assert "".join([text async for text in bot.astream(MESSAGES[1]["content"])]) == ANSWER
            _assert_whole_call(spans, stream=True)
            assert len(bot.history) == 4

    asyncio.run(run())
    assert [len(request["messages"]) for request in api.requests] == [2, 4]

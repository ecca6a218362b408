"""Helpers for tests of recorded openai calls: spans read back, Responses API bodies, a guard.

Chat Completions bodies and the fake server come from ``tests/fake_openai.py``; the
Responses API bodies here follow what api.openai.com sends.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from promptrecorder import PromptRecorder
from promptrecorder.recording import semconv
from tests.conftest import Tracing
from tests.fake_openai import BASE_URL, MODEL, RESPONSE_MODEL, FakeOpenAI, http

RECORDER = "session"
HOST = "api.openai.com"
CREATED = 1_767_225_600


def chat_usage_details(cached: int, reasoning: int) -> dict[str, Any]:
    """The span attributes of a chat reply's usage details (typed in newer openai, plain
    dicts in older 1.x: both are read)."""
    return {
        semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
        semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: reasoning,
    }


def has_responses_api() -> bool:
    """openai gained the Responses API during 1.x."""
    try:
        import openai.resources.responses  # noqa: F401
    except ImportError:
        return False
    return True


def resource_classes() -> list[type]:
    """The openai classes whose ``create`` every-client instrumentation patches."""
    from openai.resources.chat.completions import AsyncCompletions, Completions

    classes: list[type] = [Completions, AsyncCompletions]
    if has_responses_api():
        from openai.resources.responses import AsyncResponses, Responses

        classes += [Responses, AsyncResponses]
    return classes


@contextmanager
def openai_left_as_found() -> Iterator[None]:
    """Fail a block that leaves openai's classes patched, after repairing them."""
    before = {cls: vars(cls)["create"] for cls in resource_classes()}
    yield
    left = [cls.__name__ for cls, create in before.items() if vars(cls).get("create") is not create]
    for cls, create in before.items():
        cls.create = create  # type: ignore[attr-defined]
    assert not left, f"the test left {left} instrumented"


def recorder(tracing: Tracing) -> PromptRecorder:
    return PromptRecorder(RECORDER, tracer_provider=tracing.provider)


def azure_client(server: FakeOpenAI) -> openai.AzureOpenAI:
    """An Azure client (deployment URLs, api-version) talking to ``server``."""
    return openai.AzureOpenAI(
        azure_endpoint="https://contoso.openai.azure.com",
        api_version="2024-10-21",
        api_key="test",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(server.handle)),
    )


# --- spans read back -----------------------------------------------------------------


def normalised(span: ReadableSpan) -> dict[str, Any]:
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


def client_spans(tracing: Tracing) -> list[ReadableSpan]:
    return [span for span in tracing.spans() if span.kind is SpanKind.CLIENT]


def call_span(tracing: Tracing) -> ReadableSpan:
    """The one CLIENT span, checked to be ended and a child of the recorder's ended span."""
    calls = client_spans(tracing)
    assert len(calls) == 1, [span.name for span in tracing.spans()]
    parent = tracing.span(semconv.WORKFLOW_SPAN_PREFIX + RECORDER)
    assert calls[0].parent is not None
    assert calls[0].parent.span_id == parent.context.span_id
    return calls[0]


def request_attributes(question: str, *, stream: bool = False) -> dict[str, Any]:
    """The attributes a chat request to ``BASE_URL`` with one user message sets on its span."""
    assert BASE_URL.startswith(f"https://{HOST}/")
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: HOST,
        semconv.SERVER_PORT: 443,
        semconv.GEN_AI_INPUT_MESSAGES: [{"role": "user", "parts": [{"type": "text", "content": question}]}],
    }
    if stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    return attributes


def text_output(text: str, finish: str | None = "stop") -> list[dict[str, Any]]:
    """``gen_ai.output.messages`` for an assistant text."""
    message: dict[str, Any] = {"role": "assistant", "parts": [{"type": "text", "content": text}]}
    if finish is not None:
        message["finish_reason"] = finish
    return [message]


# --- Responses API bodies ---------------------------------------------------------------


def response_object(
    text: str | None = "Paris.", *, function_call: dict[str, Any] | None = None, status: str = "completed"
) -> dict[str, Any]:
    """A ``response`` body: a message with ``text`` and/or a function call, and usage."""
    output: list[dict[str, Any]] = []
    if text is not None:
        content = [{"type": "output_text", "text": text, "annotations": []}]
        output.append(
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": content}
        )
    if function_call is not None:
        output.append({"type": "function_call", "id": "fc_1", "status": "completed", **function_call})
    done = status != "in_progress"
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": RESPONSE_MODEL,
        "output": output if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": 20,
            "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 25,
        }
        if done
        else None,
    }


def response_events(pieces: list[str]) -> list[dict[str, Any]]:
    """The events of a streamed Responses reply: created, text deltas, completed with usage."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(status="in_progress")}
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in pieces
    ]
    events.append({"type": "response.completed", "response": response_object("".join(pieces))})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]

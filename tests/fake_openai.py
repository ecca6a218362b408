"""A fake OpenAI server for unit tests: canned replies served on the openai client's own mock transport.

The real ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client is used, on an HTTP client whose
transport is ``MockTransport`` (httpx2's under openai 3.x, httpx's under 1.x: see
``promptrecorder.cli.demo.openai_http_module``), so everything between the caller and the socket
(request building, retries, SSE parsing, error mapping) is openai's own code. No socket is
opened; nothing leaves the process.

A ``FakeOpenAI`` answers the requests it gets with the replies it was given, in order (the
last one answers every request after it), and keeps each request as a ``CapturedRequest``::

    server = FakeOpenAI(completion("Hello!"), error_reply(429))
    client = server.client()                      # openai.OpenAI, max_retries=0
    client.chat.completions.create(model=MODEL, messages=[...])   # -> "Hello!"
    client.chat.completions.create(model=MODEL, messages=[...])   # -> openai.RateLimitError
    server.requests[0].json["messages"]           # what reached the server

A reply is one of:

- a ``dict``: a 200 JSON body, e.g. ``completion(...)``;
- ``stream_reply(chunks(...))``: a ``text/event-stream`` body ending with ``data: [DONE]``;
  ``fail_after=n`` makes the connection drop (``ReadError``) after ``n`` events;
- ``error_reply(status)``: an error status with the body OpenAI sends for it;
- ``raising(error)``: the transport raises ``error`` (``http.ConnectError``,
  ``http.ReadTimeout``...) instead of answering;
- a function of the ``CapturedRequest`` returning any of the above.

The canned bodies follow what api.openai.com sends (ids, ``usage`` with
``prompt_tokens_details`` and ``completion_tokens_details``, ``service_tier``,
``system_fingerprint``, ``usage: null`` on every chunk of a stream that asked for usage);
instrumentations that read those fields must find them.

Threading: a server may serve several clients and threads; requests are appended under a lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from promptrecorder.cli.demo import openai_http_module

__all__ = [
    "BASE_URL",
    "COMPLETION_ID",
    "MODEL",
    "RESPONSE_MODEL",
    "CapturedRequest",
    "FakeOpenAI",
    "Reply",
    "chunks",
    "completion",
    "error_body",
    "error_reply",
    "http",
    "raising",
    "sse",
    "stream_reply",
    "token_usage",
    "tool_call",
]

http: Any = openai_http_module()

# openai 3.x wraps a connection dropped mid-stream in APIConnectionError; 1.x and 2.x let
# the HTTP library's ReadError through.
MIDSTREAM_ERRORS: tuple[type[BaseException], ...] = (openai.APIConnectionError, http.ReadError)
"""The HTTP library the installed openai is built on (httpx2 or httpx): use its exception classes."""

BASE_URL = "https://api.openai.com/v1"
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
COMPLETION_ID = "chatcmpl-Bq7fX2mKz9LwP4sN8vT1uY6rE3aQd"
_CREATED = 1_767_225_600
_FINGERPRINT = "fp_560af6e559"


# --- bodies ------------------------------------------------------------------------------


def token_usage(
    prompt_tokens: int = 19, completion_tokens: int = 10, *, cached_tokens: int = 0, reasoning_tokens: int = 0
) -> dict[str, Any]:
    """A ``usage`` object as OpenAI sends it, details included."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(
    name: str, arguments: Mapping[str, Any] | str, call_id: str = "call_9pQ2xL4mN7bV1cZ8"
) -> dict[str, Any]:
    """One entry of a message's ``tool_calls`` (``arguments`` is sent as a JSON string)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def completion(
    content: str | None = "Hello! How can I help you today?",
    *,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    finish_reason: str | None = None,
    model: str = RESPONSE_MODEL,
    usage: Mapping[str, Any] | None = None,
    completion_id: str = COMPLETION_ID,
) -> dict[str, Any]:
    """A ``chat.completion`` body with one choice.

    ``finish_reason`` defaults to ``tool_calls`` when there are tool calls, else ``stop``;
    ``usage`` defaults to ``token_usage()`` (19 prompt tokens, 10 completion tokens).
    """
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = [dict(call) for call in tool_calls]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": dict(usage) if usage is not None else token_usage(),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def chunks(
    pieces: Sequence[str],
    *,
    include_usage: bool = True,
    usage: Mapping[str, Any] | None = None,
    tool_calls: Sequence[Mapping[str, Any]] | None = None,
    finish_reason: str | None = None,
    model: str = RESPONSE_MODEL,
    completion_id: str = COMPLETION_ID,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` events of a streamed reply, as OpenAI sends them.

    A role chunk, one chunk per text piece, the tool calls (name first, then the arguments
    in two fragments, as OpenAI splits them), a finish chunk, and, when ``include_usage``
    (what ``stream_options={"include_usage": True}`` asks for), a last chunk with empty
    ``choices`` and the usage; every chunk before it then carries ``"usage": null``.
    """

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in pieces]
    for index, call in enumerate(tool_calls or ()):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        events.append(
            chunk({"tool_calls": [{**head, "function": {"name": function["name"], "arguments": ""}}]})
        )
        arguments = function["arguments"]
        for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    events.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
    if include_usage:
        last = chunk({})
        last["choices"] = []
        last["usage"] = dict(usage) if usage is not None else token_usage()
        events.append(last)
    return events


def sse(events: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """``events`` as server-sent-event frames, one per event, then ``data: [DONE]``."""
    return [f"data: {json.dumps(event)}\n\n".encode() for event in events] + [b"data: [DONE]\n\n"]


_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request.", None),
    401: (
        "invalid_request_error",
        "Incorrect API key provided: sk-test. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_api_key",
    ),
    403: ("invalid_request_error", "Project does not have access to this model.", "model_not_found"),
    404: (
        "invalid_request_error",
        "The model `no-such-model` does not exist or you do not have access to it.",
        "model_not_found",
    ),
    429: (
        "requests",
        "Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
        "rate_limit_exceeded",
    ),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
}


def error_body(status: int, message: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The ``{"error": {...}}`` body OpenAI sends with an error status."""
    kind, default_message, default_code = _ERRORS.get(status, ("server_error", f"HTTP {status}", None))
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": None,
            "code": code or default_code,
        }
    }


# --- replies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CapturedRequest:
    """A request as it reached the server: method, URL, headers, and the parsed JSON body."""

    method: str
    url: str
    headers: Mapping[str, str]
    json: Any


@dataclass(frozen=True)
class Reply:
    """How the server answers one request. Build one with the functions below."""

    status: int = 200
    body: Any = None
    events: Sequence[bytes] | None = None
    fail_after: int | None = None
    error: Exception | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def stream_reply(events: Sequence[Mapping[str, Any]], *, fail_after: int | None = None) -> Reply:
    """A streamed 200 reply; with ``fail_after=n`` the connection drops after ``n`` events."""
    return Reply(events=sse(events), fail_after=fail_after)


def error_reply(status: int, message: str | None = None, code: str | None = None) -> Reply:
    """An error status with OpenAI's error body for it."""
    return Reply(status=status, body=error_body(status, message, code))


def raising(error: Exception) -> Reply:
    """The transport raises ``error`` instead of answering (openai maps it to its own error)."""
    return Reply(error=error)


ReplySource = Reply | Mapping[str, Any] | Callable[[CapturedRequest], "Reply | Mapping[str, Any]"]


class _EventStream(http.SyncByteStream, http.AsyncByteStream):  # type: ignore[misc]
    """A response body that yields SSE frames, sync or async, and may drop midway.

    Both base classes, so that a sync and an async client both accept it as a body.
    """

    def __init__(self, frames: Sequence[bytes], fail_after: int | None, server: FakeOpenAI) -> None:
        self._frames = frames
        self._fail_after = fail_after
        self._server = server

    def _frames_to_send(self) -> Iterator[bytes]:
        for index, frame in enumerate(self._frames):
            if index == self._fail_after:
                raise http.ReadError("peer closed connection without sending complete message body")
            yield frame

    def __iter__(self) -> Iterator[bytes]:
        yield from self._frames_to_send()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self._frames_to_send():
            yield frame

    def close(self) -> None:
        self._server._closed_streams += 1

    async def aclose(self) -> None:
        self.close()


class FakeOpenAI:
    """An OpenAI-compatible server answering from a script; see the module docstring.

    Args:
        replies: the answers, in order; the last one answers every later request.
            With none, every request gets ``completion()``.
    """

    def __init__(self, *replies: ReplySource) -> None:
        self._replies: list[ReplySource] = list(replies) or [completion()]
        self._lock = threading.Lock()
        self.requests: list[CapturedRequest] = []
        self._closed_streams = 0

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of each request received, in order."""
        return [request.json for request in self.requests]

    @property
    def closed_streams(self) -> int:
        """How many streamed response bodies the client has closed."""
        return self._closed_streams

    def handle(self, request: Any) -> Any:
        """The ``MockTransport`` handler: record the request, answer with the next reply."""
        content = request.content
        captured = CapturedRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            json=json.loads(content) if content else None,
        )
        with self._lock:
            self.requests.append(captured)
            source = self._replies[min(len(self.requests), len(self._replies)) - 1]
        reply = source(captured) if callable(source) else source
        if not isinstance(reply, Reply):
            reply = Reply(body=reply)
        if reply.error is not None:
            raise reply.error
        headers = {
            "x-request-id": f"req_{len(self.requests):032x}",
            "openai-processing-ms": "212",
            **reply.headers,
        }
        if reply.events is not None:
            stream = _EventStream(reply.events, reply.fail_after, self)
            return http.Response(
                reply.status, headers={**headers, "content-type": "text/event-stream"}, stream=stream
            )
        # Escaped as a real server escapes it: a lone surrogate in a reply has no UTF-8 form
        # (httpx2's json= encodes with ensure_ascii=False, and fails on one).
        body = json.dumps(reply.body).encode("ascii")
        return http.Response(
            reply.status, headers={**headers, "content-type": "application/json"}, content=body
        )

    def client(self, **options: Any) -> openai.OpenAI:
        """An ``openai.OpenAI`` client talking to this server (``max_retries=0`` unless given)."""
        options = {"api_key": "sk-test", "base_url": BASE_URL, "max_retries": 0, **options}
        return openai.OpenAI(http_client=http.Client(transport=http.MockTransport(self.handle)), **options)

    def async_client(self, **options: Any) -> openai.AsyncOpenAI:
        """An ``openai.AsyncOpenAI`` client talking to this server (``max_retries=0`` unless given)."""
        options = {"api_key": "sk-test", "base_url": BASE_URL, "max_retries": 0, **options}
        return openai.AsyncOpenAI(
            http_client=http.AsyncClient(transport=http.MockTransport(self.handle)), **options
        )

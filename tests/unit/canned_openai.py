"""Real openai clients on a mock HTTP transport, fed canned replies shaped like the real API's.

openai 3.x is built on httpx2 and 1.x on httpx; ``http`` is whichever this openai uses, so
the same tests run against either. A ``Server`` answers each request with the next scripted
reply (a JSON body, an SSE stream, an error, or an exception raised by the transport) and
keeps the requests it got.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import openai._base_client

# The HTTP library this openai is built on (its private module is the only sure way to tell).
http: Any = getattr(openai._base_client, "httpx2", None) or openai._base_client.httpx

BASE_URL = "http://llm.test/v1"
MODEL = "gpt-4o-mini"
SERVED_MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1_700_000_000


def has_responses_api() -> bool:
    """openai gained the Responses API during 1.x."""
    try:
        import openai.resources.responses  # noqa: F401
    except ImportError:
        return False
    return True


# --- Chat Completions bodies -------------------------------------------------------


def usage(
    prompt_tokens: int = 12, completion_tokens: int = 3, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_completion(
    content: str | None = "Paris.",
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
    with_usage: bool = True,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": CREATED,
        "model": SERVED_MODEL,
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": usage() if with_usage else None,
    }


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": SERVED_MODEL,
        "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def text_chunks(texts: Iterable[str], *, with_usage: bool = True) -> list[dict[str, Any]]:
    """The chunks of a streamed text reply; the usage-only chunk last when asked for."""
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": text}) for text in texts]
    chunks.append(chunk({}, "stop"))
    if with_usage:
        chunks.append({**chunk({}), "choices": [], "usage": usage(12, 3)})
    return chunks


# --- Responses bodies --------------------------------------------------------------


def response_object(
    text: str | None = "Paris.",
    *,
    function_call: dict[str, Any] | None = None,
    status: str = "completed",
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if text is not None:
        output.append(
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    if function_call is not None:
        output.append({"type": "function_call", "id": "fc_1", "status": "completed", **function_call})
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "model": SERVED_MODEL,
        "output": output if status != "in_progress" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": 20,
            "input_tokens_details": {"cached_tokens": 4},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 1},
            "total_tokens": 25,
        }
        if status != "in_progress"
        else None,
    }


def response_events(texts: Iterable[str]) -> list[dict[str, Any]]:
    """The events of a streamed Responses reply: created, text deltas, completed with usage."""
    texts = list(texts)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(status="in_progress")}
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": text,
        }
        for text in texts
    ]
    events.append({"type": "response.completed", "response": response_object("".join(texts))})
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


# --- the transport -----------------------------------------------------------------


def sse(items: Iterable[dict[str, Any]], *, done: bool = True, named: bool = False) -> bytes:
    """Server-sent events; ``named`` adds the ``event:`` line the Responses API sends."""
    lines = []
    for item in items:
        event = f"event: {item['type']}\n" if named else ""
        lines.append(f"{event}data: {json.dumps(item)}\n\n")
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


class _BrokenBody(http.SyncByteStream, http.AsyncByteStream):  # type: ignore[misc]
    """A body that sends ``head`` and then fails as a dropped connection does."""

    def __init__(self, head: bytes) -> None:
        self._head = head

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        raise http.ReadError("connection reset mid-stream")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        raise http.ReadError("connection reset mid-stream")


@dataclass
class Reply:
    """One scripted answer: a status and JSON body, SSE bytes, a broken stream, or an exception."""

    status: int = 200
    json_body: Any = None
    sse_body: bytes | None = None
    broken_after: bytes | None = None
    raises: Exception | None = None
    raw_body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status=status, json_body=body)


def stream_reply(body: bytes) -> Reply:
    return Reply(sse_body=body)


def error_reply(status: int, message: str) -> Reply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return Reply(status=status, json_body=body)


@dataclass
class Server:
    """Answers requests with scripted replies, in order; the last one repeats."""

    replies: list[Reply]
    requests: list[Any] = field(default_factory=list)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    def handle(self, request: Any) -> Any:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if reply.raises is not None:
            raise reply.raises
        headers = {"x-request-id": "req_1", **reply.headers}
        if reply.sse_body is not None:
            headers["content-type"] = "text/event-stream"
            return http.Response(reply.status, headers=headers, content=reply.sse_body)
        if reply.broken_after is not None:
            headers["content-type"] = "text/event-stream"
            return http.Response(reply.status, headers=headers, stream=_BrokenBody(reply.broken_after))
        if reply.raw_body is not None:
            headers["content-type"] = "application/json"
            return http.Response(reply.status, headers=headers, content=reply.raw_body)
        return http.Response(reply.status, headers=headers, json=reply.json_body)


def client(*replies: Reply, base_url: str = BASE_URL) -> tuple[openai.OpenAI, Server]:
    """A sync openai client whose requests the returned server answers; no retries."""
    server = Server(list(replies) or [json_reply(chat_completion())])
    made = openai.OpenAI(
        base_url=base_url,
        api_key="test",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(server.handle)),
    )
    return made, server


def async_client(*replies: Reply, base_url: str = BASE_URL) -> tuple[openai.AsyncOpenAI, Server]:
    """The async twin of ``client``."""
    server = Server(list(replies) or [json_reply(chat_completion())])
    made = openai.AsyncOpenAI(
        base_url=base_url,
        api_key="test",
        max_retries=0,
        http_client=http.AsyncClient(transport=http.MockTransport(server.handle)),
    )
    return made, server


def azure_client(*replies: Reply) -> tuple[openai.AzureOpenAI, Server]:
    """An Azure client (deployment URLs, api-version) on the same kind of server."""
    server = Server(list(replies) or [json_reply(chat_completion())])
    made = openai.AzureOpenAI(
        azure_endpoint="https://contoso.openai.azure.com",
        api_version="2024-10-21",
        api_key="test",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(server.handle)),
    )
    return made, server

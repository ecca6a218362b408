"""Reading openai's requests and replies: Chat Completions and Responses, whole or streamed.

Only attribute access is used on openai's objects, never their classes, so the same code
reads openai 1.x (httpx) and 3.x (httpx2) objects, and any compatible server's replies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from promptrecorder.recording import semconv
from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint

CHAT = "chat.completions"
RESPONSES = "responses"

_CHAT_PARAMS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "seed": semconv.GEN_AI_REQUEST_SEED,
    "stop": semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "n": semconv.GEN_AI_REQUEST_CHOICE_COUNT,
}
_RESPONSES_PARAMS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}
# Responses API statuses and incomplete reasons, as chat-style finish reasons.
_RESPONSE_FINISH = {"completed": "stop", "failed": "error", "cancelled": "cancelled"}


def given(value: object) -> bool:
    """False for None and openai's "not given" sentinels (NotGiven, Omit)."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def _params(kwargs: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, AttributeValue]:
    params: dict[str, AttributeValue] = {}
    for name, key in names.items():
        if name not in kwargs:  # most are: a request sets few of these, and `in` is cheapest
            continue
        value: Any = kwargs[name]
        if not given(value):
            continue
        if key == semconv.GEN_AI_REQUEST_STOP_SEQUENCES:
            value = [value] if isinstance(value, str) else [str(item) for item in value]
        if isinstance(value, (str, bool, int, float, list)):
            params[key] = value
    return params


def _dump(value: Any) -> Any:
    """A plain-data copy of an openai object (pydantic model, TypedDict or plain value)."""
    # The common case first, what every chat request's messages are: plain dicts of str.
    kind = type(value)
    if kind is str:
        return value
    if kind is dict:
        return {key: item if type(item) is str else _dump(item) for key, item in value.items()}
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    if isinstance(value, Mapping):
        return {key: _dump(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    return value


# --- Chat Completions ----------------------------------------------------------------


def chat_request(kwargs: dict[str, Any], endpoint: Endpoint) -> CallRequest:
    """The request of ``chat.completions.create(**kwargs)``.

    ``kwargs["messages"]`` is replaced by a list when it was another iterable (a generator
    would otherwise be consumed here and reach the server empty).
    """
    messages: Any = kwargs.get("messages")
    if given(messages) and not isinstance(messages, (list, tuple)):
        messages = kwargs["messages"] = list(messages)
    model = kwargs.get("model")
    return CallRequest(
        endpoint=endpoint,
        model=model if isinstance(model, str) else None,
        messages=tuple(_dump(m) for m in messages) if given(messages) else (),
        params=_params(kwargs, _CHAT_PARAMS),
        stream=kwargs.get("stream") is True,
    )


def chat_result(completion: Any) -> CallResult:
    """What a ``ChatCompletion`` says: the first choice's text and tool calls, usage."""
    choices = getattr(completion, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    result = CallResult(
        text=(getattr(message, "content", None) or "") if message is not None else "",
        response_model=getattr(completion, "model", None),
        response_id=getattr(completion, "id", None),
        finish_reasons=tuple(str(c.finish_reason) for c in choices if getattr(c, "finish_reason", None)),
        tool_calls=tuple(_dump(call) for call in (getattr(message, "tool_calls", None) or ())),
    )
    _read_chat_usage(result, getattr(completion, "usage", None))
    return result


def _field(value: Any, name: str) -> Any:
    """``value.name``, or ``value[name]`` for a dict: older openai 1.x leaves newer
    fields (the usage details) as plain dicts."""
    # The attribute first: openai's models are the common case, and an isinstance check
    # against the Mapping ABC costs more than the attribute lookup.
    found = getattr(value, name, _MISSING)
    if found is not _MISSING:
        return found
    return value.get(name) if isinstance(value, Mapping) else None


_MISSING = object()


def _read_chat_usage(result: CallResult, usage: Any) -> None:
    if usage is None:
        return
    result.input_tokens = _field(usage, "prompt_tokens")
    result.output_tokens = _field(usage, "completion_tokens")
    result.cache_read_tokens = _field(_field(usage, "prompt_tokens_details"), "cached_tokens")
    result.reasoning_tokens = _field(_field(usage, "completion_tokens_details"), "reasoning_tokens")


def chunk_text(chunk: Any) -> str:
    """The text a streamed item adds: a chat chunk's first choice, or a Responses text delta."""
    if getattr(chunk, "type", None) == "response.output_text.delta":
        return getattr(chunk, "delta", "") or ""
    choices = getattr(chunk, "choices", None) or ()
    for choice in choices:
        if (getattr(choice, "index", 0) or 0) == 0:
            return getattr(getattr(choice, "delta", None), "content", None) or ""
    return ""


class ChatStreamReader:
    """Accumulates ``ChatCompletionChunk`` objects into the call's result."""

    def __init__(self) -> None:
        self.result = CallResult()
        self._texts: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._finish: dict[int, str] = {}

    def add(self, chunk: Any) -> str:
        """Take one chunk; return the text it adds to the first choice."""
        result = self.result
        result.response_model = result.response_model or getattr(chunk, "model", None)
        result.response_id = result.response_id or getattr(chunk, "id", None)
        _read_chat_usage(result, getattr(chunk, "usage", None))
        added = ""
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0) or 0
            if getattr(choice, "finish_reason", None):
                self._finish[index] = str(choice.finish_reason)
            if index != 0:
                continue
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None)
            if text:
                self._texts.append(text)
                added += text
            for call in getattr(delta, "tool_calls", None) or ():
                self._merge_tool_call(call)
        return added

    def _merge_tool_call(self, delta: Any) -> None:
        entry = self._calls.setdefault(
            getattr(delta, "index", 0) or 0,
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        entry["id"] = entry["id"] or getattr(delta, "id", None)
        function = getattr(delta, "function", None)
        if function is not None:
            entry["function"]["name"] += getattr(function, "name", None) or ""
            entry["function"]["arguments"] += getattr(function, "arguments", None) or ""

    def finish(self) -> CallResult:
        """The result so far (also for a stream that ended early)."""
        self.result.text = "".join(self._texts)
        self.result.finish_reasons = tuple(self._finish[index] for index in sorted(self._finish))
        self.result.tool_calls = tuple(self._calls[index] for index in sorted(self._calls))
        return self.result


# --- Responses -----------------------------------------------------------------------


def responses_request(kwargs: dict[str, Any], endpoint: Endpoint) -> CallRequest:
    """The request of ``responses.create(**kwargs)``, its input as chat-format messages."""
    messages: list[dict[str, Any]] = []
    instructions = kwargs.get("instructions")
    if given(instructions) and isinstance(instructions, str):
        messages.append({"role": "system", "content": instructions})
    raw_input: Any = kwargs.get("input")
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
    elif given(raw_input):
        if not isinstance(raw_input, (list, tuple)):
            raw_input = kwargs["input"] = list(raw_input)
        messages.extend(_input_item_message(_dump(item)) for item in raw_input)
    model = kwargs.get("model")
    return CallRequest(
        endpoint=endpoint,
        model=model if isinstance(model, str) else None,
        messages=tuple(messages),
        params=_params(kwargs, _RESPONSES_PARAMS),
        stream=kwargs.get("stream") is True,
    )


def _input_item_message(item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        return {"role": "user", "content": str(item)}
    kind = item.get("type")
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": str(item.get("output", ""))}
    if kind == "function_call":
        call = {"id": item.get("call_id"), "type": "function", "function": _function(item)}
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    content = item.get("content")
    if isinstance(content, list):
        content = [
            {"type": "text", "text": part["text"]} if isinstance(part, Mapping) and "text" in part else part
            for part in content
        ]
    # Items with a type but no role (reasoning, web_search_call...) come from the model's
    # earlier output, passed back as `input += response.output`: they are the assistant's.
    role = item.get("role") or ("assistant" if kind not in (None, "message") else "user")
    return {"role": str(role), "content": content}


def _function(item: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": item.get("name"), "arguments": item.get("arguments") or ""}


def response_result(response: Any) -> CallResult:
    """What a Responses API ``Response`` says: output text, function calls, status, usage."""
    output = getattr(response, "output", None) or ()
    tool_calls = tuple(
        {"id": getattr(item, "call_id", None), "type": "function", "function": _function(_dump(item))}
        for item in output
        if getattr(item, "type", None) == "function_call"
    )
    status = getattr(response, "status", None)
    reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
    finish = reason or _RESPONSE_FINISH.get(str(status)) if status else None
    if tool_calls and finish == "stop":
        finish = "tool_calls"
    usage = getattr(response, "usage", None)
    return CallResult(
        text=_output_text(response, output),
        response_model=getattr(response, "model", None),
        response_id=getattr(response, "id", None),
        finish_reasons=(finish,) if finish else (),
        tool_calls=tool_calls,
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
        cache_read_tokens=getattr(getattr(usage, "input_tokens_details", None), "cached_tokens", None),
        reasoning_tokens=getattr(getattr(usage, "output_tokens_details", None), "reasoning_tokens", None),
    )


def _output_text(response: Any, output: Iterable[Any]) -> str:
    text = getattr(response, "output_text", None)
    if isinstance(text, str):
        return text
    return "".join(
        getattr(part, "text", "") or ""
        for item in output
        if getattr(item, "type", None) == "message"
        for part in getattr(item, "content", None) or ()
    )


class ResponsesStreamReader:
    """Accumulates Responses API stream events into the call's result."""

    def __init__(self) -> None:
        self.result = CallResult()
        self._texts: list[str] = []
        self._final: Any = None

    def add(self, event: Any) -> str:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            delta = getattr(event, "delta", "") or ""
            self._texts.append(delta)
            return delta
        if kind in ("response.created", "response.completed", "response.incomplete", "response.failed"):
            self._final = getattr(event, "response", None)
        return ""

    def finish(self) -> CallResult:
        if self._final is not None:
            self.result = response_result(self._final)
        if not self.result.text:
            self.result.text = "".join(self._texts)
        return self.result

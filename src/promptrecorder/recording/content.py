"""Turning prompts and responses into GenAI messages, and making content safe to export.

What a caller passes to ``autorecord`` is validated and normalised here; the JSON that
goes into ``gen_ai.input.messages`` / ``gen_ai.output.messages`` is built here too, in the
"parts" format of the GenAI conventions::

    [{"role": "user", "parts": [{"type": "text", "content": "..."}]}]

Export safety: text longer than the export limit is cut (the JSON built from it stays
valid, and the original length and SHA-256 are reported), and lone surrogates, which
protobuf refuses to encode and which would make a whole export batch fail, are replaced
with U+FFFD. The in-memory record always keeps the text whole and unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring  # the C-accelerated str encoder
from typing import Any

# Default cap, in characters, on each exported text (the in-memory record is never cut).
# A collector's default gRPC limit is 4 MiB per request and a batch holds many spans, so
# a few hundred kilobytes of prompt in one event would make the whole batch bounce.
DEFAULT_MAX_CONTENT_LENGTH = 32_768
TRUNCATION_MARKER = "…[truncated]"
# Cap, in characters, on exported names: model, provider, error type, span names. A name
# longer than this is a mistake or an attack, and a trace view shows it on every line.
MAX_NAME_LENGTH = 1024

# openai content parts that carry base64 data inline: their size, not their bytes, is exported.
_INLINE_DATA_PARTS = {"input_audio": "audio", "file": "file"}
_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_prompt(prompt: object) -> tuple[str, tuple[Mapping[str, Any], ...] | None]:
    """Return ``(prompt_text, messages)`` for a prompt, or raise a clear error.

    A str prompt is its own text. A chat message list (as the openai client takes it)
    gives the text of its last user message, and is kept as a tuple (tool call arguments
    given as a dict become their JSON text, in the record as in the export).
    """
    if isinstance(prompt, str):
        return prompt, None
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise ValueError("`prompt` must be a non-empty list of chat messages, got []")
        for index, message in enumerate(prompt):
            _check_message(message, index)
        messages = normalise_messages(tuple(prompt))
        return last_user_text(messages), messages
    raise TypeError(
        "`prompt` must be a str or a list of chat messages "
        f'({{"role": ..., "content": ...}} dicts), got {type(prompt).__name__}: {_describe(prompt)}'
    )


def check_response(response: object) -> str:
    """Return the response text, or raise ``TypeError`` naming what is accepted."""
    if isinstance(response, str):
        return response
    raise TypeError(f"`response` must be a str, got {type(response).__name__}: {_describe(response)}")


def check_conversation_id(value: object) -> str:
    """Return a conversation id, or raise naming what is accepted (a non-empty str)."""
    if not isinstance(value, str):
        raise TypeError(
            f"`conversation_id` must be a non-empty str, got {type(value).__name__}: {_describe(value)}"
        )
    if not value:
        raise ValueError("`conversation_id` must be a non-empty str, got ''")
    return value


def _check_message(message: object, index: int) -> None:
    if not isinstance(message, Mapping):
        raise TypeError(
            f"`prompt[{index}]` must be a chat message dict with 'role' and 'content', "
            f"got {type(message).__name__}: {_describe(message)}"
        )
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise TypeError(f"`prompt[{index}]['role']` must be a non-empty str, got {_describe(role)}")
    _check_tool_calls(message.get("tool_calls"), index)
    content = message.get("content")
    if content is None or isinstance(content, str):
        return
    if isinstance(content, (list, tuple)):
        for part_index, part in enumerate(content):
            if not isinstance(part, Mapping):
                raise TypeError(
                    f"`prompt[{index}]['content'][{part_index}]` must be a content part dict "
                    f"such as {{'type': 'text', 'text': ...}}, got {type(part).__name__}"
                )
        return
    raise TypeError(
        f"`prompt[{index}]['content']` must be a str, a list of content parts or None, "
        f"got {type(content).__name__}: {_describe(content)}"
    )


def _check_tool_calls(calls: object, index: int) -> None:
    if calls is None:
        return
    if not isinstance(calls, (list, tuple)):
        raise TypeError(
            f"`prompt[{index}]['tool_calls']` must be a list of tool call dicts, "
            f"got {type(calls).__name__}: {_describe(calls)}"
        )
    for call_index, call in enumerate(calls):
        where = f"`prompt[{index}]['tool_calls'][{call_index}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping):
            raise TypeError(
                f"{where}` must be a dict with a 'function' dict "
                f"({{'name': ..., 'arguments': ...}}), got {_describe(call)}"
            )
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, (str, Mapping)):
            raise TypeError(
                f"{where}['function']['arguments']` must be JSON text or a dict, "
                f"got {type(arguments).__name__}: {_describe(arguments)}"
            )


def normalise_messages(messages: tuple[Mapping[str, Any], ...]) -> tuple[Mapping[str, Any], ...]:
    """``messages`` with tool call arguments given as a dict turned into JSON text.

    openai's format carries arguments as JSON text; callers who pass a dict get the same
    text in the record and in the export (it is what the scrubber and the export read).
    Messages without such arguments are returned as they are.
    """
    if not any(_has_dict_arguments(message) for message in messages):
        return messages
    return tuple(_with_text_arguments(message) for message in messages)


def _has_dict_arguments(message: Mapping[str, Any]) -> bool:
    return any(
        isinstance(call["function"].get("arguments"), Mapping) for call in message.get("tool_calls") or ()
    )


def _with_text_arguments(message: Mapping[str, Any]) -> Mapping[str, Any]:
    if not _has_dict_arguments(message):
        return message
    calls = []
    for index, call in enumerate(message["tool_calls"]):
        function = call["function"]
        arguments = function.get("arguments")
        if isinstance(arguments, Mapping):
            text = json_text(arguments, f"tool call {index}'s `arguments`")
            call = {**call, "function": {**function, "arguments": text}}
        calls.append(call)
    return {**message, "tool_calls": calls}


def json_text(value: object, what: str) -> str:
    """``value`` as compact JSON text (objects JSON does not know as their ``str()``),
    or a ``TypeError``/``ValueError`` that names ``what`` and says why it cannot be."""
    try:
        return _VALUE_ENCODER.encode(value)
    except RecursionError:
        raise ValueError(
            f"{what} must be nested less deeply, got {_describe_type(value)} nested too deep for JSON"
        ) from None
    except ValueError as error:  # "Circular reference detected"
        raise ValueError(f"{what} must not contain itself, got {_describe_type(value)}: {error}") from None
    except TypeError as error:  # a key that is not str, int, float, bool or None
        raise TypeError(f"{what} must be JSON-serialisable, got {_describe_type(value)}: {error}") from None
    except Exception as error:  # an object whose str() raised
        raise TypeError(
            f"{what} must be JSON-serialisable, got a value whose str() raised {type(error).__name__}: {error}"
        ) from None


def _describe_type(value: object) -> str:
    return type(value).__name__


def safe_str(value: object) -> str:
    """``str(value)``, or a description of ``value`` when its ``str()`` raises."""
    try:
        text = str(value)
    except Exception as error:
        return f"<{type(value).__name__} whose str() raised {type(error).__name__}>"
    return text if isinstance(text, str) else f"<{type(value).__name__}>"


def _safe_default(value: object) -> str:
    # json's `default`: anything it does not know, as its str(), which is allowed to fail.
    return str(value)


def content_text(content: object) -> str:
    """The plain text of an openai message ``content`` (a str or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message, or of the last message when no user spoke."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return content_text(messages[-1].get("content"))


# --- GenAI "parts" messages ----------------------------------------------------------


def to_genai_messages(messages: Sequence[Mapping[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """Convert openai chat messages to GenAI input messages, each text cut to ``limit``."""
    return [_to_genai_message(message, limit) for message in messages]


def _to_genai_message(message: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"
    parts: list[dict[str, Any]] = []
    content = message.get("content")
    if role == "tool":
        parts.append(
            {
                "type": "tool_call_response",
                "id": _name(message.get("tool_call_id")),
                "response": export_text(content_text(content), limit)[0],
            }
        )
    elif isinstance(content, str):
        parts.append({"type": "text", "content": export_text(content, limit)[0]})
    elif isinstance(content, (list, tuple)):
        parts.extend(_to_genai_part(part, limit) for part in content)
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):  # the checks of the call turned a dict into text
            arguments = _part_json(arguments)
        parts.append(
            {
                "type": "tool_call",
                "id": _name(call.get("id")),
                "name": _name(function.get("name")),
                "arguments": _maybe_json(export_text(arguments, limit)[0]),
            }
        )
    result: dict[str, Any] = {"role": role if role in _OPENAI_ROLES else str(role), "parts": parts}
    if isinstance(message.get("name"), str):
        result["name"] = message["name"]
    return result


def output_message(
    text: str,
    finish_reasons: Sequence[str] | None,
    tool_calls: Sequence[Mapping[str, Any]] | None,
    limit: int | None,
) -> dict[str, Any]:
    """The assistant's output message: its text and tool calls as parts, and why it ended."""
    message = _to_genai_message(
        {"role": "assistant", "content": text or None, "tool_calls": tool_calls}, limit
    )
    if finish_reasons:
        message["finish_reason"] = finish_reasons[0]
    return message


def _to_genai_part(part: Mapping[str, Any], limit: int | None) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text" or (kind is None and isinstance(part.get("text"), str)):
        return {"type": "text", "content": export_text(safe_str(part.get("text", "")), limit)[0]}
    if kind == "image_url":
        image = part.get("image_url") or {}
        url = image.get("url", "") if isinstance(image, Mapping) else image
        url = url if isinstance(url, str) else safe_str(url)
        if url.startswith("data:"):
            # Inline data can be megabytes; its size, not its bytes, belongs in a trace.
            return {"type": "blob", "modality": "image", "content": f"<inline data, {len(url)} chars>"}
        return {"type": "uri", "modality": "image", "uri": export_text(url, limit)[0]}
    if kind in _INLINE_DATA_PARTS:
        size = len(_part_json(part))
        return {
            "type": "blob",
            "modality": _INLINE_DATA_PARTS[kind],
            "content": f"<inline data, {size} chars>",
        }
    return {"type": safe_str(kind), "content": export_text(_part_json(part), limit)[0]}


def _name(value: object) -> str | None:
    """An id or a name from a message, as exported: text of at most ``MAX_NAME_LENGTH``."""
    if value is None:
        return None
    return export_text(value if isinstance(value, str) else safe_str(value), MAX_NAME_LENGTH)[0]


def _part_json(part: object) -> str:
    # The export only: a part the encoder cannot take is described, not allowed to fail it.
    try:
        return _VALUE_ENCODER.encode(part)
    except Exception as error:
        return f"<content part that is not JSON-serialisable: {type(error).__name__}>"


def _maybe_json(text: str) -> Any:
    try:
        # NaN and Infinity parse in Python but are not JSON: keep such text as a string.
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:
        return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# What json's str encoder escapes but "\n", as bytes: an ASCII text holding none of them is
# its JSON string between quotes once its line breaks are written as "\n".
_JSON_ESCAPED_BUT_NEWLINE = bytes(range(0x20)).replace(b"\n", b"") + b'"\\'
# From this length the check below costs less than json's own encoder (~2 ns a character).
_FAST_JSON_LENGTH = 512


def json_string(text: str) -> str:
    """``encode_basestring(text)``: ``text`` as a JSON string, non-ASCII kept as it is.

    A long ASCII text with nothing to escape but line breaks (most prompts) is written by
    two C passes at memory speed, ~2x faster at 10,000 characters; anything else goes to
    ``encode_basestring``.
    """
    if len(text) < _FAST_JSON_LENGTH or not text.isascii():
        return encode_basestring(text)
    data = text.encode("ascii")
    if len(data.translate(None, _JSON_ESCAPED_BUT_NEWLINE)) != len(data):
        return encode_basestring(text)
    return '"' + text.replace("\n", "\\n") + '"'


def user_message_json(text: str) -> str:
    """``gen_ai.input.messages`` for a single user text, built without ``json.dumps``.

    This is the common case on the hot path; the result equals
    ``json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])``
    with ``ensure_ascii=False``.
    """
    return '[{"role":"user","parts":[{"type":"text","content":' + json_string(text) + "}]}]"


def assistant_message_json(text: str) -> str:
    """``gen_ai.output.messages`` for a single assistant text."""
    return '[{"role":"assistant","parts":[{"type":"text","content":' + json_string(text) + "}]}]"


def input_messages_json(
    messages: Sequence[Mapping[str, Any]], limit: int | None, max_bytes: int | None = None
) -> str:
    """``gen_ai.input.messages`` for openai chat messages, each text cut to ``limit``.

    Equals ``messages_json(to_genai_messages(messages, limit))``. Messages that are only a
    system, user or assistant role and a str content (nearly every request) are built by
    hand: converting them to dicts and running the encoder cost ~3 µs per call. A long
    conversation whose JSON would pass ``max_bytes`` has each text cut shorter, so that it
    fits (``fit_json``).
    """
    return fit_json(lambda cut: _input_messages_json(messages, cut), limit, max_bytes)


def _input_messages_json(messages: Sequence[Mapping[str, Any]], limit: int | None) -> str:
    built = []
    for message in messages:
        content = message.get("content")
        role = message.get("role")
        prefix = _TEXT_MESSAGE_PREFIXES.get(role) if type(role) is str else None
        if prefix is None or type(content) is not str or len(message) != 2:
            return messages_json(to_genai_messages(messages, limit))
        built.append(prefix + json_string(export_text(content, limit)[0]) + "}]}")
    return "[" + ",".join(built) + "]"


def output_messages_json(
    text: str,
    finish_reasons: Sequence[str] | None,
    tool_calls: Sequence[Mapping[str, Any]] | None,
    limit: int | None,
    max_bytes: int | None = None,
) -> str:
    """``gen_ai.output.messages``: ``messages_json([output_message(...)])``, a text-only
    reply (the common case) built by hand; fitted into ``max_bytes`` as the input is."""
    return fit_json(
        lambda cut: _output_messages_json(text, finish_reasons, tool_calls, cut), limit, max_bytes
    )


def _output_messages_json(
    text: str,
    finish_reasons: Sequence[str] | None,
    tool_calls: Sequence[Mapping[str, Any]] | None,
    limit: int | None,
) -> str:
    if not text or tool_calls or (finish_reasons and type(finish_reasons[0]) is not str):
        return messages_json([output_message(text, finish_reasons, tool_calls, limit)])
    ending = ',"finish_reason":' + encode_basestring(finish_reasons[0]) + "}]" if finish_reasons else "}]"
    return (
        "[" + _TEXT_MESSAGE_PREFIXES["assistant"] + json_string(export_text(text, limit)[0]) + "}]" + ending
    )


# The shortest each text of a message list is cut to when the list is fitted into bytes.
MIN_FITTED_LENGTH = 64


def fit_json(build: Callable[[int | None], str], limit: int | None, max_bytes: int | None) -> str:
    """``build(limit)``, or, if its UTF-8 is over ``max_bytes``, ``build`` of a per-text
    limit low enough to fit (never below ``MIN_FITTED_LENGTH``: a list of very many
    messages may stay over). Each text is cut as ``export_text`` cuts it, so the JSON stays
    valid and the cut texts are marked."""
    built = build(limit)
    if max_bytes is None or len(built) * 4 <= max_bytes:  # the common case: no encoding
        return built
    size = text_size(built)
    cut = limit if limit is not None else len(built)
    for _ in range(4):
        if size <= max_bytes or cut <= MIN_FITTED_LENGTH:
            break
        cut = max(MIN_FITTED_LENGTH, int(cut * max_bytes / size * 0.9))
        built = build(cut)
        size = text_size(built)
    return built


def text_size(text: str) -> int:
    """The bytes of ``text`` in UTF-8: ``len`` for ASCII, else its encoded length."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


# What _to_genai_message and the encoder make of a message with only these roles and a str
# content, up to the content's JSON string.
_TEXT_MESSAGE_PREFIXES = {
    role: '{"role":"' + role + '","parts":[{"type":"text","content":'
    for role in ("system", "user", "assistant")
}


def messages_json(messages: list[dict[str, Any]]) -> str:
    """Serialise GenAI messages compactly, keeping non-ASCII text readable."""
    return _MESSAGES_ENCODER.encode(messages)


# What json.dumps(..., ensure_ascii=False, separators=(",", ":"), default=str) builds on
# every call, built once (encode() keeps no state between calls, so threads may share it).
_MESSAGES_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=safe_str)
# Caller values (metadata, tool arguments): ``json.dumps(value, ensure_ascii=False,
# default=str)``, built once; NaN and infinities are written as Python writes them (``NaN``, ``Infinity``).
_VALUE_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_safe_default)


# --- export safety -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truncation:
    """What was cut from one text on its way to the exporter."""

    original_length: int
    sha256: str


def export_text(text: str, limit: int | None) -> tuple[str, Truncation | None]:
    """Return ``text`` as it may be exported, and what was cut, if anything."""
    safe = text if text.isascii() else _replace_lone_surrogates(text)
    if limit is None or len(safe) <= limit:
        return safe, None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return safe[:limit] + TRUNCATION_MARKER, Truncation(len(text), digest)


def _replace_lone_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # surrogatepass keeps the surrogates as bytes; decoding them as UTF-16 turns each
        # one that has no partner into U+FFFD, and leaves every valid character alone.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text

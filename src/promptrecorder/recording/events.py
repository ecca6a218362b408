"""What one recorded pair looks like on a span: the attributes of its two events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from promptrecorder.recording import semconv
from promptrecorder.recording.content import (
    MAX_NAME_LENGTH,
    Truncation,
    assistant_message_json,
    export_text,
    input_messages_json,
    json_text,
    output_messages_json,
    safe_str,
    user_message_json,
)
from promptrecorder.recording.redaction import ContentPolicy, exception_details

_PRIMITIVES = (str, bool, int, float)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Bytes a span event and an attribute cost in OTLP beside their text, at most: tags and
# length prefixes, the event's timestamp and name. Used to keep spans under a byte budget.
EVENT_OVERHEAD = 48
ATTRIBUTE_OVERHEAD = 16
_NUMBER_SIZE = 10  # a varint int64, a fixed64 double and its tag


def prompt_event_attributes(
    *,
    record_id: str,
    prompt: str,
    messages: Sequence[Mapping[str, Any]] | None,
    model: str | None,
    input_tokens: int | None,
    metadata: Mapping[str, Any],
    limit: int | None,
    provider: str | None = None,
    input_messages: str | None = None,
    messages_bytes: int | None = None,
    conversation_id: str | None = None,
) -> dict[str, AttributeValue]:
    """Attributes of the prompt event: the text, the input messages, model and usage.

    Usage goes under ``promptrecorder.usage.*``: ``gen_ai.usage.*`` is the call span's alone.

    ``input_messages``, when given, is ``messages`` already built as
    ``gen_ai.input.messages`` at this ``limit`` (a call's span did it), used as it is;
    otherwise the messages' JSON is fitted into ``messages_bytes``.
    """
    text, cut = export_text(prompt, limit)
    attributes: dict[str, AttributeValue] = {semconv.RECORD_ID: record_id, semconv.PROMPT_TEXT: text}
    if messages is None:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = user_message_json(text)
    elif input_messages is not None:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = input_messages
    else:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = input_messages_json(messages, limit, messages_bytes)
    if cut is not None:
        _add_truncation(attributes, cut, semconv.PROMPT_ORIGINAL_LENGTH, semconv.PROMPT_SHA256)
    if model is not None:
        add_text(attributes, semconv.GEN_AI_REQUEST_MODEL, model, MAX_NAME_LENGTH)
    if provider is not None:
        add_text(attributes, semconv.GEN_AI_PROVIDER_NAME, provider, MAX_NAME_LENGTH)
    if conversation_id is not None:
        add_text(attributes, semconv.GEN_AI_CONVERSATION_ID, conversation_id, MAX_NAME_LENGTH)
    if input_tokens is not None:
        attributes[semconv.USAGE_INPUT_TOKENS] = input_tokens
    if metadata:
        attributes.update(metadata_attributes(metadata, limit))
    return attributes


def response_event_attributes(
    *,
    record_id: str,
    response: str,
    model: str | None,
    output_tokens: int | None,
    limit: int | None,
    finish_reasons: tuple[str, ...] | None = None,
    tool_calls: tuple[Mapping[str, Any], ...] | None = None,
    error: str | None = None,
    complete: bool = True,
    output_messages: str | None = None,
    messages_bytes: int | None = None,
) -> dict[str, AttributeValue]:
    """Attributes of the response event: the text, the output messages, model, usage, outcome.

    ``output_messages``, when given, is the reply already built as ``gen_ai.output.messages``
    at this ``limit`` (a call's span did it), used as it is.
    """
    text, cut = export_text(response, limit)
    if output_messages is not None:
        output = output_messages
    elif finish_reasons is None and tool_calls is None:
        output = assistant_message_json(text)
    else:
        output = output_messages_json(text, finish_reasons, tool_calls, limit, messages_bytes)
    attributes: dict[str, AttributeValue] = {
        semconv.RECORD_ID: record_id,
        semconv.RESPONSE_TEXT: text,
        semconv.GEN_AI_OUTPUT_MESSAGES: output,
    }
    if finish_reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [
            export_text(reason, MAX_NAME_LENGTH)[0] for reason in finish_reasons
        ]
    if error is not None:
        add_text(attributes, semconv.ERROR_TYPE, error.partition(":")[0], MAX_NAME_LENGTH)
        add_text(attributes, semconv.RESPONSE_ERROR, error, limit)
    if not complete:
        attributes[semconv.RESPONSE_COMPLETE] = False
    if cut is not None:
        _add_truncation(attributes, cut, semconv.RESPONSE_ORIGINAL_LENGTH, semconv.RESPONSE_SHA256)
    if model is not None:
        add_text(attributes, semconv.GEN_AI_RESPONSE_MODEL, model, MAX_NAME_LENGTH)
    if output_tokens is not None:
        attributes[semconv.USAGE_OUTPUT_TOKENS] = output_tokens
    return attributes


def _add_truncation(
    attributes: dict[str, AttributeValue], cut: Truncation, length_key: str, hash_key: str
) -> None:
    attributes[length_key] = cut.original_length
    attributes[hash_key] = cut.sha256


def add_text(attributes: dict[str, AttributeValue], key: str, text: str, limit: int | None) -> None:
    """Export ``text`` under ``key``, cut at ``limit`` with the truncation markers if longer."""
    exported, cut = export_text(text, limit)
    attributes[key] = exported
    if cut is not None:
        _add_truncation(attributes, cut, *semconv.truncation_keys(key))


def metadata_attributes(metadata: Mapping[str, Any], limit: int | None = None) -> dict[str, AttributeValue]:
    """Caller metadata as span attributes: primitives as they are, anything else as JSON,
    every text cut at ``limit`` with the truncation markers."""
    result: dict[str, AttributeValue] = {}
    for key, value in metadata.items():
        add_value(result, semconv.METADATA_PREFIX + key, value, limit)
    return result


def add_value(attributes: dict[str, AttributeValue], key: str, value: Any, limit: int | None) -> None:
    """Export ``value`` under ``key`` as ``as_attribute_value`` makes it, and no longer than
    ``limit`` characters: a text is cut with the truncation markers; a list whose items
    would together pass ``limit`` is exported as its JSON text, cut the same way."""
    exported = as_attribute_value(value)
    if isinstance(exported, str):
        add_text(attributes, key, exported, limit)
    elif isinstance(exported, list) and limit is not None and _list_length(exported) > limit:
        add_text(attributes, key, json_text(exported, f"`{key}`"), limit)
    else:
        attributes[key] = exported


def _list_length(items: list[Any]) -> int:
    # Characters of the list's items as exported, numbers counted as their widest text.
    return sum(len(item) + 3 if isinstance(item, str) else _NUMBER_SIZE for item in items)


def as_attribute_value(value: Any) -> AttributeValue:
    """``value`` if OpenTelemetry takes it as an attribute, else its JSON text.

    A value the JSON encoder cannot take (circular, nested beyond Python's recursion
    limit, keys JSON refuses, an object whose ``str()`` raises) is a ``TypeError`` or
    ``ValueError``: callers settle values with ``values.settle`` before they keep them.
    """
    if isinstance(value, str):
        return export_text(value, None)[0]
    if isinstance(value, int) and not isinstance(value, bool) and not _INT64_MIN <= value <= _INT64_MAX:
        return str(value)  # OTLP integers are int64; a bigger one would fail the whole batch
    if isinstance(value, _PRIMITIVES):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, str) for item in value):
        return [export_text(item, None)[0] for item in value]
    if (
        isinstance(value, (list, tuple))
        and value
        and len({type(item) for item in value}) == 1
        and isinstance(value[0], (bool, int, float))
        and all(isinstance(item, (bool, float)) or _INT64_MIN <= item <= _INT64_MAX for item in value)
    ):
        return list(value)
    return export_text(json_text(value, "the value"), None)[0]


def attributes_size(attributes: Mapping[str, AttributeValue] | None) -> int:
    """About how many bytes ``attributes`` take in OTLP, never fewer.

    On the hot path: ``len`` for ASCII text (nearly all), the UTF-8 length otherwise.
    """
    if not attributes:
        return 0
    size = 0
    for key, value in attributes.items():
        size += ATTRIBUTE_OVERHEAD + (
            len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass"))
        )
        if type(value) is str:
            size += len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, str):
                    size += 4 + (len(item) if item.isascii() else len(item.encode("utf-8", "surrogatepass")))
                else:
                    size += 4 + _NUMBER_SIZE
        else:
            size += _NUMBER_SIZE
    return size


def name_text(name: str) -> str:
    """A span name as exported: no longer than ``MAX_NAME_LENGTH``, no lone surrogates."""
    return export_text(name, MAX_NAME_LENGTH)[0]


def describe_exception(value: BaseException) -> str:
    """``"Type: message"`` for an error, whatever its ``str()`` does."""
    return f"{type(value).__name__}: {safe_str(value)}"


# An exception's message and stack trace are cut at this many characters each (or the
# recorder's content limit, if lower), so that a span's room for them is known ahead.
EXCEPTION_TEXT_LIMIT = 8192
# What a span keeps back for the `exception` event a failing block or call adds at its end.
EXCEPTION_EVENT_RESERVE = (
    EVENT_OVERHEAD + 6 * ATTRIBUTE_OVERHEAD + 2 * MAX_NAME_LENGTH + 2 * EXCEPTION_TEXT_LIMIT
)


def record_exception(span: Span, policy: ContentPolicy, error: BaseException, limit: int | None) -> None:
    """Mark ``span`` failed by ``error``: ``error.type``, an ``exception`` event, status ERROR.

    As the SDK's ``record_exception`` and ``set_status`` do, with the message and stack
    trace passed through ``policy`` and cut at ``EXCEPTION_TEXT_LIMIT`` (with the
    truncation markers), and without ever raising: an error whose ``str()`` raises, or a
    ``redact`` hook that fails on it, leaves only the error's type.
    """
    kind = type(error)
    try:
        description, details = exception_details(policy, error)
    except Exception:
        description, details = kind.__qualname__, {"exception.message": "", "exception.stacktrace": ""}
    text_limit = EXCEPTION_TEXT_LIMIT if limit is None else min(limit, EXCEPTION_TEXT_LIMIT)
    module = kind.__module__
    qualname = f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__
    attributes: dict[str, AttributeValue] = {}
    add_text(attributes, "exception.type", qualname, MAX_NAME_LENGTH)
    for key, text in details.items():
        add_text(attributes, key, text, text_limit)
    attributes["exception.escaped"] = "False"
    span.set_attribute(semconv.ERROR_TYPE, export_text(kind.__qualname__, MAX_NAME_LENGTH)[0])
    span.add_event("exception", attributes)
    span.set_status(Status(StatusCode.ERROR, export_text(description, MAX_NAME_LENGTH)[0]))

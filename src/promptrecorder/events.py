"""What one recorded pair looks like on a span: the attributes of its two events."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.util.types import AttributeValue

from promptrecorder import semconv
from promptrecorder.content import (
    Truncation,
    assistant_message_json,
    export_text,
    input_messages_json,
    output_messages_json,
    user_message_json,
)

_PRIMITIVES = (str, bool, int, float)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


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
) -> dict[str, AttributeValue]:
    """Attributes of the prompt event: the text, the input messages, model and usage.

    ``input_messages``, when given, is ``messages`` already built as
    ``gen_ai.input.messages`` at this ``limit`` (a call's span did it), used as it is.
    """
    text, cut = export_text(prompt, limit)
    attributes: dict[str, AttributeValue] = {semconv.RECORD_ID: record_id, semconv.PROMPT_TEXT: text}
    if messages is None:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = user_message_json(text)
    elif input_messages is not None:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = input_messages
    else:
        attributes[semconv.GEN_AI_INPUT_MESSAGES] = input_messages_json(messages, limit)
    if cut is not None:
        _add_truncation(attributes, cut, semconv.PROMPT_ORIGINAL_LENGTH, semconv.PROMPT_SHA256)
    if model is not None:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if provider is not None:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
    if input_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if metadata:
        attributes.update(metadata_attributes(metadata))
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
        output = output_messages_json(text, finish_reasons, tool_calls, limit)
    attributes: dict[str, AttributeValue] = {
        semconv.RECORD_ID: record_id,
        semconv.RESPONSE_TEXT: text,
        semconv.GEN_AI_OUTPUT_MESSAGES: output,
    }
    if finish_reasons:
        attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = list(finish_reasons)
    if error is not None:
        attributes[semconv.ERROR_TYPE] = error.partition(":")[0]
        attributes[semconv.RESPONSE_ERROR] = export_text(error, limit)[0]
    if not complete:
        attributes[semconv.RESPONSE_COMPLETE] = False
    if cut is not None:
        _add_truncation(attributes, cut, semconv.RESPONSE_ORIGINAL_LENGTH, semconv.RESPONSE_SHA256)
    if model is not None:
        attributes[semconv.GEN_AI_RESPONSE_MODEL] = model
    if output_tokens is not None:
        attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    return attributes


def _add_truncation(
    attributes: dict[str, AttributeValue], cut: Truncation, length_key: str, hash_key: str
) -> None:
    attributes[length_key] = cut.original_length
    attributes[hash_key] = cut.sha256


def metadata_attributes(metadata: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Caller metadata as span attributes: primitives as they are, anything else as JSON."""
    result: dict[str, AttributeValue] = {}
    for key, value in metadata.items():
        result[semconv.METADATA_PREFIX + key] = as_attribute_value(value)
    return result


def as_attribute_value(value: Any) -> AttributeValue:
    """``value`` if OpenTelemetry takes it as an attribute, else its JSON text."""
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
    return export_text(json.dumps(value, ensure_ascii=False, default=str), None)[0]

"""Reading recorded pairs back out of traces: OTLP JSON files and Jaeger's query API.

Engineers record in production; this turns what reached the backend into the same
``PromptRecord`` objects ``recorder.records`` gives, for a notebook to work on.

One pair is two span events on the recorder span (or one of its segment spans):
``promptrecorder.prompt`` and ``promptrecorder.response``, matched by
``promptrecorder.record.id`` (``events.py`` builds them). What comes back differs from the
in-memory record only where the export itself kept less (the README's "From production to
notebook" lists it):

* text longer than the recorder's ``max_content_length`` comes back as exported, ending with
  ``…[truncated]``; the original length and SHA-256 are in ``record.metadata`` under
  ``promptrecorder.prompt.original_length`` / ``.sha256`` (and ``promptrecorder.response.*``);
* ``messages`` are rebuilt in openai's chat format from ``gen_ai.input.messages``; a prompt
  given as a single user message reads back as that text with ``messages=None``,
  ``developer`` reads back as ``system``, inline data as its placeholder;
* tool call arguments come back as JSON re-serialised by ``json.dumps`` (same value), and
  only a call's ``id``, ``type`` and ``function`` are exported;
* metadata values that were not str, bool, int, float or a list of one of them come back as
  the JSON text they were exported as; lists come back as lists.

OTLP JSON as Jaeger answers it (``{"result": {"resourceSpans": [...]}}``, ids in hex) and as
the Collector's file exporter writes it (one ``{"resourceSpans": [...]}`` per line) are both
read; so is protobuf's JSON mapping (ids in base64).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from promptrecorder.errors import TraceReadError
from promptrecorder.recording import semconv
from promptrecorder.recording.records import PromptRecord

logger = logging.getLogger(__name__)

# Any text cut for export has its original length and hash beside it, under its own key
# with these suffixes (``promptrecorder.prompt.sha256``, ``promptrecorder.metadata.k.sha256``).
_TRUNCATION_SUFFIXES = (
    "." + semconv.PROMPT_ORIGINAL_LENGTH.rpartition(".")[2],
    "." + semconv.PROMPT_SHA256.rpartition(".")[2],
)
_HEX_ID = re.compile(r"[0-9a-fA-F]+")


# --- OTLP JSON -----------------------------------------------------------------------


def read_otlp_json(source: str | bytes | os.PathLike[str] | Mapping[str, Any]) -> list[PromptRecord]:
    """The recorded pairs in OTLP JSON trace data, as ``PromptRecord`` objects.

    Example:
        >>> records = read_otlp_json("traces.json")  # doctest: +SKIP
        >>> records[0].prompt, records[0].model  # doctest: +SKIP

    Args:
        source: a path to a file; or JSON text (str or bytes) starting with ``{``; or the
            parsed object. The text may hold several JSON objects, one after the other (the
            Collector's file exporter writes one per line); each is ``{"resourceSpans": ...}``
            or Jaeger's ``{"result": {"resourceSpans": ...}}``.

    Returns:
        One record per prompt/response pair, each pair once, in the order of their response
        timestamps (the order they were recorded in, unless ``ended_at`` was given).

    Raises:
        TraceReadError: the file cannot be read, or is not OTLP JSON trace data.
    """
    if isinstance(source, Mapping):
        documents: list[Any] = [source]
    else:
        text, where = _source_text(source)
        documents = list(json_documents(text, where))
    collector = _PairCollector()
    for document in documents:
        collector.add_document(document)
    return collector.records()


def _source_text(source: str | bytes | os.PathLike[str]) -> tuple[str, str]:
    if isinstance(source, bytes):
        return source.decode("utf-8", "replace"), "the data"
    if isinstance(source, str) and source.lstrip()[:1] in ("{", "["):
        return source, "the data"
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"`source` must be a path, JSON text or a dict, got {type(source).__name__}")
    path = os.fspath(source)
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read(), path
    except FileNotFoundError:
        raise TraceReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceReadError(f"{path} is a directory, not an OTLP JSON file") from None
    except OSError as error:
        raise TraceReadError(f"cannot read {path}: {error.strerror or error}") from None


def json_documents(text: str, where: str) -> Iterator[Any]:
    """Every JSON value in ``text``, however they are separated (newlines, nothing)."""
    decoder = json.JSONDecoder()
    position, end = 0, len(text)
    while True:
        while position < end and text[position].isspace():
            position += 1
        if position == end:
            return
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise TraceReadError(
                f"{where} is not OTLP JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
        yield value


def error_message(document: Mapping[str, Any]) -> str:
    """The message of an OTLP/Jaeger JSON error answer ``{"error": {"message": ...}}``,
    short and printable (it is the server's text, shown in a terminal)."""
    error = document.get("error")
    message = error.get("message") or error if isinstance(error, Mapping) else error
    return "".join(char if char.isprintable() else "?" for char in str(message)[:500])


@dataclass(slots=True)
class _Half:
    """One event of a pair, with the span it is on."""

    attributes: dict[str, Any]
    time_ns: int
    span: _SpanFacts


@dataclass(slots=True)
class _SpanFacts:
    trace_id: str
    span_id: str
    recorder: str
    order: int
    conversation_id: str | None = None


@dataclass(slots=True)
class _PairCollector:
    """Pairs prompt and response events by record id across every span it is given."""

    prompts: dict[str, _Half] = field(default_factory=dict)
    responses: dict[str, _Half] = field(default_factory=dict)
    spans: int = 0

    def add_document(self, document: Any) -> None:
        if isinstance(document, list):
            for item in document:
                self.add_document(item)
            return
        if not isinstance(document, Mapping):
            raise TraceReadError(f"expected a JSON object of OTLP trace data, got {type(document).__name__}")
        if "result" in document and isinstance(document["result"], Mapping):
            document = document["result"]
        if "error" in document and "resourceSpans" not in document:
            raise TraceReadError(f"the data is an error answer, not traces: {error_message(document)}")
        resource_spans = document.get("resourceSpans", document.get("resource_spans"))
        if not isinstance(resource_spans, list):
            keys = ", ".join(sorted(map(str, document))[:5]) or "none"
            raise TraceReadError(f"expected OTLP JSON trace data with `resourceSpans`, got keys: {keys}")
        for resource in resource_spans:
            for scope in _list(resource, "scopeSpans", "scope_spans"):
                for span in _list(scope, "spans"):
                    if isinstance(span, Mapping):
                        self._add_span(span)

    def _add_span(self, span: Mapping[str, Any]) -> None:
        events = [event for event in _list(span, "events") if isinstance(event, Mapping)]
        if not any(event.get("name") in (semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE) for event in events):
            return
        attributes = decode_attributes(span.get("attributes"))
        name = str(span.get("name", ""))
        facts = _SpanFacts(
            trace_id=_hex_id(span.get("traceId", span.get("trace_id")), 16),
            span_id=_hex_id(span.get("spanId", span.get("span_id")), 8),
            recorder=str(attributes.get(semconv.GEN_AI_WORKFLOW_NAME) or _recorder_name(name)),
            order=self.spans,
            conversation_id=_str(attributes.get(semconv.GEN_AI_CONVERSATION_ID)),
        )
        self.spans += 1
        for event in events:
            kind = event.get("name")
            halves = self.prompts if kind == semconv.EVENT_PROMPT else self.responses
            if kind not in (semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE):
                continue
            event_attributes = decode_attributes(event.get("attributes"))
            record_id = event_attributes.get(semconv.RECORD_ID)
            if not isinstance(record_id, str) or record_id in halves:
                continue  # the same span exported twice (a retried batch) counts once
            time_ns = _int(event.get("timeUnixNano", event.get("time_unix_nano"))) or 0
            halves[record_id] = _Half(event_attributes, time_ns, facts)

    def records(self) -> list[PromptRecord]:
        unmatched = len(self.prompts.keys() ^ self.responses.keys())
        if unmatched:
            logger.warning(
                "promptrecorder: %d prompt or response events had no partner event and were left out "
                "(a span event limit or a filter dropped the other)",
                unmatched,
            )
        # Within a span, pairs keep the order of their prompt events, which is the order
        # they were recorded in (Jaeger sorts events by name, stably: prompts stay in order).
        # Spans (nested recorders, segments) interleave by the time of each pair's response.
        by_span: dict[int, list[tuple[_Half, _Half]]] = {}
        for key, prompt in self.prompts.items():
            response = self.responses.get(key)
            if response is not None:
                by_span.setdefault(prompt.span.order, []).append((prompt, response))
        ordered = heapq.merge(*by_span.values(), key=lambda pair: pair[1].time_ns)
        return [
            _record(str(prompt.attributes[semconv.RECORD_ID]), prompt, response)
            for prompt, response in ordered
        ]


def _record(record_id: str, prompt: _Half, response: _Half) -> PromptRecord:
    asked, answered = prompt.attributes, response.attributes
    prompt_text = _str(asked.get(semconv.PROMPT_TEXT)) or ""
    metadata: dict[str, Any] = {}
    for attributes in (asked, answered):
        for key, value in attributes.items():
            if _is_truncation_fact(key, attributes):
                metadata[key] = value  # under its full key: it is ours, not the caller's
            elif key.startswith(semconv.METADATA_PREFIX) and attributes is asked:
                metadata[key[len(semconv.METADATA_PREFIX) :]] = value
    finish_reasons = _strings(answered.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS))
    return PromptRecord(
        prompt=prompt_text,
        response=_str(answered.get(semconv.RESPONSE_TEXT)) or "",
        ended_at=_datetime(response.time_ns),
        recorder=response.span.recorder,
        id=record_id,
        model=_str(answered.get(semconv.GEN_AI_RESPONSE_MODEL))
        or _str(asked.get(semconv.GEN_AI_REQUEST_MODEL)),
        # autorecord without started_at stamps both events at the end.
        started_at=None if prompt.time_ns == response.time_ns else _datetime(prompt.time_ns),
        # Exports before issue 14 carried usage under gen_ai.usage.* on the events.
        input_tokens=_int(
            asked.get(semconv.USAGE_INPUT_TOKENS, asked.get(semconv.GEN_AI_USAGE_INPUT_TOKENS))
        ),
        output_tokens=_int(
            answered.get(semconv.USAGE_OUTPUT_TOKENS, answered.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        ),
        trace_id=response.span.trace_id,
        span_id=response.span.span_id,
        messages=_input_messages(asked.get(semconv.GEN_AI_INPUT_MESSAGES), prompt_text),
        metadata=MappingProxyType(metadata),
        provider=_str(asked.get(semconv.GEN_AI_PROVIDER_NAME)),
        finish_reasons=tuple(finish_reasons) if finish_reasons else None,
        tool_calls=_tool_calls(answered.get(semconv.GEN_AI_OUTPUT_MESSAGES)),
        error=_str(answered.get(semconv.RESPONSE_ERROR)),
        complete=answered.get(semconv.RESPONSE_COMPLETE) is not False,
        conversation_id=_str(asked.get(semconv.GEN_AI_CONVERSATION_ID)) or prompt.span.conversation_id,
    )


def _recorder_name(span_name: str) -> str:
    """The recorder's name from its span's (``invoke_workflow <name>``, ``<name> segment N``)."""
    name = re.sub(r" segment \d+$", "", span_name)
    return name.removeprefix(semconv.WORKFLOW_SPAN_PREFIX)


def _is_truncation_fact(key: str, attributes: Mapping[str, Any]) -> bool:
    """Whether ``key`` is the original length or hash of a text cut for export."""
    if not key.startswith(semconv.INSTRUMENTATION_NAME + "."):
        return False
    for suffix in _TRUNCATION_SUFFIXES:
        if key.endswith(suffix):
            # Both facts are always exported together; a caller's own metadata key that
            # merely ends like one has no partner.
            partners = [key[: -len(suffix)] + other for other in _TRUNCATION_SUFFIXES]
            return all(partner in attributes for partner in partners)
    return False


def _datetime(time_ns: int) -> datetime:
    # The same conversion pairs.py and calls.py make, so equal nanoseconds give equal datetimes.
    return datetime.fromtimestamp(time_ns / 1e9, timezone.utc)


# --- OTLP JSON values ----------------------------------------------------------------


def decode_attributes(attributes: Any) -> dict[str, Any]:
    """OTLP JSON ``[{"key": ..., "value": {"stringValue": ...}}]`` as a plain dict."""
    result: dict[str, Any] = {}
    if isinstance(attributes, list):
        for item in attributes:
            if isinstance(item, Mapping) and isinstance(item.get("key"), str):
                result[item["key"]] = decode_any_value(item.get("value"))
    return result


def decode_any_value(value: Any) -> Any:
    """One OTLP JSON ``AnyValue``: int64 may be a string, a double may be ``"NaN"``."""
    if not isinstance(value, Mapping):
        return value
    for key, found in value.items():
        kind = key.replace("_", "").lower()
        if kind == "stringvalue":
            return found
        if kind == "boolvalue":
            return bool(found)
        if kind == "intvalue":
            return _int(found)
        if kind == "doublevalue":
            return float(found)
        if kind == "arrayvalue":
            return [decode_any_value(item) for item in _list(found, "values")]
        if kind == "kvlistvalue":
            return decode_attributes(_list(found, "values"))
        if kind == "bytesvalue":
            return base64.b64decode(found) if isinstance(found, str) else found
    return None  # an empty AnyValue


def _hex_id(value: Any, size: int) -> str:
    """A trace or span id as lowercase hex: OTLP JSON gives hex, protobuf's JSON base64."""
    text = value if isinstance(value, str) else ""
    if len(text) == 2 * size and _HEX_ID.fullmatch(text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise TraceReadError(f"a span id must be {2 * size} hex digits, got {value!r}")
    return raw.hex()


def _list(container: Any, *keys: str) -> list[Any]:
    if isinstance(container, Mapping):
        for key in keys:
            found = container.get(key)
            if isinstance(found, list):
                return found
    return []


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):  # a backend that flattened the array to its JSON text
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    if isinstance(value, list):
        return [str(item) for item in value]
    return None


# --- GenAI messages back to openai's chat format -------------------------------------


def _parse_messages(value: Any) -> list[Mapping[str, Any]] | None:
    if not isinstance(value, str):
        return None
    try:
        messages = json.loads(value)
    except ValueError:
        return None  # cut mid-way by a backend's own limit: nothing to rebuild
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        return None
    return messages


def _input_messages(value: Any, prompt_text: str) -> tuple[Mapping[str, Any], ...] | None:
    messages = _parse_messages(value)
    if messages is None:
        return None
    if len(messages) == 1 and messages[0] == {
        "role": "user",
        "parts": [{"type": "text", "content": prompt_text}],
    }:
        return None  # what a str prompt exports (events.py: user_message_json)
    return tuple(_chat_message(message) for message in messages)


def _chat_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``content._to_genai_message``, as far as the parts allow."""
    parts = [part for part in message.get("parts") or () if isinstance(part, Mapping)]
    result: dict[str, Any] = {"role": message.get("role")}
    calls = [part for part in parts if part.get("type") == "tool_call"]
    answers = [part for part in parts if part.get("type") == "tool_call_response"]
    content = [part for part in parts if part.get("type") not in ("tool_call", "tool_call_response")]
    if message.get("role") == "tool" and answers:
        result["tool_call_id"] = answers[0].get("id")
        result["content"] = answers[0].get("response")
    elif len(content) == 1 and content[0].get("type") == "text":
        result["content"] = content[0].get("content")
    elif content:
        result["content"] = [_chat_part(part) for part in content]
    else:
        result["content"] = None
    if calls:
        result["tool_calls"] = [_openai_tool_call(part) for part in calls]
    if isinstance(message.get("name"), str):
        result["name"] = message["name"]
    return result


def _chat_part(part: Mapping[str, Any]) -> Any:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "text": part.get("content")}
    if kind == "uri" and part.get("modality") == "image":
        return {"type": "image_url", "image_url": {"url": part.get("uri")}}
    content = part.get("content")
    if isinstance(content, str) and kind != "blob":
        try:
            original = json.loads(content)  # content.py exports unknown parts as their JSON
        except ValueError:
            return dict(part)
        if isinstance(original, Mapping):
            return dict(original)
    return dict(part)


def _openai_tool_call(part: Mapping[str, Any]) -> dict[str, Any]:
    arguments = part.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": part.get("id"),
        "type": "function",
        "function": {"name": part.get("name"), "arguments": arguments},
    }


def _tool_calls(value: Any) -> tuple[Mapping[str, Any], ...] | None:
    messages = _parse_messages(value)
    if not messages:
        return None
    calls = tuple(
        _openai_tool_call(part)
        for part in messages[0].get("parts") or ()
        if isinstance(part, Mapping) and part.get("type") == "tool_call"
    )
    return calls or None

"""Recording a pair: ``autorecord()`` for callers, ``store_pair()`` for the bots and calls.

A pair becomes two span events on the innermost recorder's span (or its current segment)
and one ``PromptRecord`` kept by every recorder in the active chain, after the innermost
recorder's content policy has decided what of its text may be kept.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry.util.types import AttributeValue

from promptrecorder._diagnostics import warn_once
from promptrecorder.recording import semconv
from promptrecorder.recording.activation import ACTIVE, Activation
from promptrecorder.recording.content import (
    MAX_NAME_LENGTH,
    check_prompt,
    check_response,
    export_text,
    last_user_text,
    safe_str,
)
from promptrecorder.recording.events import (
    EVENT_OVERHEAD,
    attributes_size,
    prompt_event_attributes,
    response_event_attributes,
)
from promptrecorder.recording.records import PromptRecord
from promptrecorder.recording.redaction import RedactionCounter
from promptrecorder.recording.values import apply_policy, check_key, settle

_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def _autorecord_signature(
    prompt: str | Sequence[Mapping[str, Any]],
    response: str,
    *,
    model: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    **more: Any,
) -> PromptRecord | None:
    """Record a prompt and its response into the active recorders, if there are any.

    With no recorder active this does nothing and returns None, at about the cost of one
    ContextVar lookup, so library code can call it unconditionally. With one, it adds a
    prompt event and a response event to the innermost recorder's span and keeps the
    record in every active recorder's memory. Arguments are checked only then.

    Example:
        >>> with PromptRecorder("notebook") as recorder:
        ...     record = autorecord("2+2?", "4", model="stand-in", input_tokens=3, output_tokens=1)
        >>> record.prompt, record.response, len(recorder)
        ('2+2?', '4', 1)

    Args:
        prompt: a str, or a list of chat messages (``{"role": ..., "content": ...}`` dicts,
            as the openai client takes them); then ``record.prompt`` is the last user
            message's text and ``record.messages`` keeps the whole list.
        response: the response text.
        model: the model name, when known.
        started_at, ended_at: timezone-aware datetimes of the call's start and end, from
            1970-01-01 UTC up to 2554-07-21 UTC (what OTLP's timestamps can hold); the
            prompt event is stamped at ``started_at``, the response event at ``ended_at``
            (now when not given).
        input_tokens, output_tokens: token usage, when known.
        metadata, **more: anything else to keep with the record (``more`` is merged into
            ``metadata``); exported as ``promptrecorder.metadata.<key>`` attributes. Values
            are str, numbers, bools, None, or lists and dicts of them (exported as JSON);
            any other object is kept and exported as its ``str()``; bytes, self-containing
            or very deep values are refused (see ``promptrecorder.recording.values``).

    Returns:
        The ``PromptRecord``, or None when no recorder is active (or the innermost one
        captures nothing: ``capture="none"``).

    Raises:
        TypeError, ValueError: an argument is not of the documented form (only checked
            with a recorder active). Telemetry failures are logged, never raised.
    """
    raise NotImplementedError  # only the signature and the docstring of ``autorecord``


if TYPE_CHECKING:
    autorecord = _autorecord_signature
else:
    # ``autorecord`` is called unconditionally by library code, so its cost with no recorder
    # active matters. Filling six keyword-only defaults takes ~35 of the ~85 ns such a call
    # costs; this front takes its options as one dict and fills them only with a recorder
    # active. It shows and type-checks as ``_autorecord_signature`` above.
    _get_active = ACTIVE.get

    def autorecord(prompt, response, **options):
        chain = _get_active()
        if not chain:
            return None
        return _autorecord(chain, prompt, response, **options)

    autorecord.__doc__ = _autorecord_signature.__doc__
    autorecord.__signature__ = inspect.signature(_autorecord_signature)
    autorecord.__annotations__ = _autorecord_signature.__annotations__


def _autorecord(
    chain: tuple[Activation, ...],
    prompt: str | Sequence[Mapping[str, Any]],
    response: str,
    /,
    *,
    model: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    **more: Any,
) -> PromptRecord | None:
    """``autorecord`` with a recorder active: check the arguments, then store the pair."""
    prompt_text, messages = check_prompt(prompt)
    response_text = check_response(response)
    if model is not None:
        check_text("model", model)
    _check_tokens("input_tokens", input_tokens)
    _check_tokens("output_tokens", output_tokens)
    if ended_at is None:
        ended_ns = time.time_ns()
        ended = datetime.fromtimestamp(ended_ns / 1e9, timezone.utc)
    else:
        ended_ns, ended = _timestamp("ended_at", ended_at)
    started_ns, started = _timestamp("started_at", started_at) if started_at is not None else (ended_ns, None)
    if started_ns > ended_ns:
        raise ValueError(f"`started_at` must not be after `ended_at`, got {started_at!r} > {ended!r}")
    return store_pair(
        chain,
        prompt=prompt_text,
        messages=messages,
        response=response_text,
        request_model=model,
        response_model=model,
        started_ns=started_ns,
        started_at=started,
        ended_ns=ended_ns,
        ended_at=ended,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        metadata=_merge_metadata(metadata, more),
    )


def store_pair(
    chain: tuple[Activation, ...],
    *,
    prompt: str,
    messages: tuple[Mapping[str, Any], ...] | None,
    response: str,
    request_model: str | None,
    response_model: str | None,
    started_ns: int,
    started_at: datetime | None,
    ended_ns: int,
    ended_at: datetime,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    metadata: Mapping[str, Any] = _NO_METADATA,
    provider: str | None = None,
    finish_reasons: tuple[str, ...] | None = None,
    tool_calls: tuple[Mapping[str, Any], ...] | None = None,
    error: str | None = None,
    complete: bool = True,
    prepared: PreparedMessages | None = None,
    prepared_output: PreparedOutput | None = None,
) -> PromptRecord | None:
    """Add a checked pair's events to the innermost span and keep its record in every recorder.

    The shared path of ``autorecord`` and of the bots and openai instrumentation, which
    build their arguments from API objects and so need no checking. The innermost
    recorder's content policy applies first (None when it captures nothing). ``prepared``
    is ``messages`` already passed through that policy, by the call's span, and
    ``prepared_output`` the response and tool calls: used as they are.
    """
    innermost = chain[-1]
    recorder = innermost.recorder
    policy = innermost.policy
    if not policy.records:
        return None
    if policy.scrubber is not None or policy.redact is not None:
        # Texts that are not content (kept in every capture mode): the same policy, here once.
        counter = recorder.redactions
        if request_model is not None:
            given, request_model = request_model, policy.text(request_model, counter)
            if response_model == given:  # the same name: scrubbed (and counted) once
                response_model = request_model
        if response_model is not None and response_model is not request_model:
            response_model = policy.text(response_model, counter)
        if metadata:
            metadata = MappingProxyType(apply_policy(policy, dict(metadata), counter))
    if policy.keeps_text:
        if policy.scrubber is not None or policy.redact is not None:
            counter = recorder.redactions
            if messages is None:
                prompt = policy.text(prompt, counter)
            elif prepared is not None:
                messages = prepared.messages
                counter.add(prepared.counts)
                prompt = last_user_text(messages)
            else:  # the prompt is a view of the messages: derive it, so nothing counts twice
                messages = policy.messages(messages, counter)
                prompt = last_user_text(messages)
            if prepared_output is not None:
                response = prepared_output.text
                counter.add(prepared_output.counts)
                tool_calls = prepared_output.tool_calls or None
            else:
                response = policy.text(response, counter)
                tool_calls = None if tool_calls is None else policy.tool_calls(tool_calls, counter)
            error = None if error is None else policy.text(error, counter)
    else:
        prompt = response = ""
        messages = None
        tool_calls = None if tool_calls is None else tuple(_without_arguments(call) for call in tool_calls)
        error = None if error is None else error.partition(":")[0]
    record_id = os.urandom(8).hex()
    ids: tuple[str, str] | None = None
    try:
        prompt_attributes = response_attributes = None
        size = 0
        if innermost.recording:
            prompt_attributes, response_attributes = _event_attributes(
                record_id,
                recorder.max_content_length,
                recorder.max_span_bytes // 2,
                prompt=prompt,
                messages=messages,
                request_model=request_model,
                provider=provider,
                input_tokens=input_tokens,
                metadata=metadata,
                prepared=prepared,
                response=response,
                response_model=response_model,
                output_tokens=output_tokens,
                finish_reasons=finish_reasons,
                tool_calls=tool_calls,
                error=error,
                complete=complete,
                prepared_output=prepared_output,
            )
            size = (
                2 * EVENT_OVERHEAD + attributes_size(prompt_attributes) + attributes_size(response_attributes)
            )
        ids = innermost.add_pair(prompt_attributes, started_ns, response_attributes, ended_ns, size)
        if innermost.closed:
            warn_once(
                "record-after-exit",
                "a prompt was recorded after its PromptRecorder %r exited (a thread or task "
                "outlived the block); it is kept in memory but not exported",
                recorder.name,
            )
    except Exception as failure:  # telemetry must never break the caller; the record is still kept
        warn_once("add-events", "promptrecorder could not add events to the span: %r", failure)

    record = PromptRecord(
        prompt=prompt,
        response=response,
        ended_at=ended_at,
        recorder=recorder.name,
        id=record_id,
        model=response_model or request_model,
        started_at=started_at,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        trace_id=ids[0] if ids else None,
        span_id=ids[1] if ids else None,
        messages=messages,
        metadata=metadata,
        provider=provider,
        finish_reasons=finish_reasons,
        tool_calls=tool_calls,
        error=error,
        complete=complete,
    )
    if len(chain) == 1:
        chain[0].store.append(record)
    else:
        # A recorder entered twice in the chain still keeps the record once.
        for store in {id(a.store): a.store for a in chain}.values():
            store.append(record)
    return record


def _event_attributes(
    record_id: str,
    limit: int | None,
    messages_bytes: int,
    *,
    prompt: str,
    messages: tuple[Mapping[str, Any], ...] | None,
    request_model: str | None,
    provider: str | None,
    input_tokens: int | None,
    metadata: Mapping[str, Any],
    prepared: PreparedMessages | None,
    response: str,
    response_model: str | None,
    output_tokens: int | None,
    finish_reasons: tuple[str, ...] | None,
    tool_calls: tuple[Mapping[str, Any], ...] | None,
    error: str | None,
    complete: bool,
    prepared_output: PreparedOutput | None,
) -> tuple[dict[str, AttributeValue], dict[str, AttributeValue]]:
    """The attributes of a pair's two events; never raises.

    Every value reaching here was checked at the call, so building them cannot fail; should
    it all the same (a bug of ours), the pair is still exported, as its record id and what
    went wrong, so that a record in memory always has its events on a span.
    """
    try:
        return (
            prompt_event_attributes(
                record_id=record_id,
                prompt=prompt,
                messages=messages,
                model=request_model,
                provider=provider,
                input_tokens=input_tokens,
                metadata=metadata,
                limit=limit,
                input_messages=(
                    prepared.json if prepared is not None and prepared.limit == limit and messages else None
                ),
                messages_bytes=messages_bytes,
            ),
            response_event_attributes(
                record_id=record_id,
                response=response,
                model=response_model,
                output_tokens=output_tokens,
                finish_reasons=finish_reasons,
                tool_calls=tool_calls,
                error=error,
                complete=complete,
                limit=limit,
                output_messages=(
                    prepared_output.json
                    if prepared_output is not None and prepared_output.limit == limit
                    else None
                ),
                messages_bytes=messages_bytes,
            ),
        )
    except Exception as failure:
        warn_once("event-attributes", "promptrecorder could not build a pair's events: %r", failure)
        stub: dict[str, AttributeValue] = {
            semconv.RECORD_ID: record_id,
            semconv.EXPORT_ERROR: export_text(safe_str(failure), MAX_NAME_LENGTH)[0],
        }
        return stub, dict(stub)


@dataclass(slots=True)
class PreparedMessages:
    """A call's messages as its span exported them: passed through the recorder's content
    policy (``counts``: what that changed) and built as ``gen_ai.input.messages`` (``json``,
    cut at ``limit``). The pair's record and prompt event reuse them instead of doing both
    again."""

    messages: tuple[Mapping[str, Any], ...]
    counts: RedactionCounter
    limit: int | None
    json: str


@dataclass(slots=True)
class PreparedOutput:
    """A call's response text and tool calls as its span exported them: passed through the
    recorder's content policy (``counts``: what that changed) and built as
    ``gen_ai.output.messages`` (``json``, cut at ``limit``), for the pair to reuse."""

    text: str
    tool_calls: tuple[Mapping[str, Any], ...]
    counts: RedactionCounter
    limit: int | None
    json: str


def _without_arguments(call: Mapping[str, Any]) -> Mapping[str, Any]:
    function = call.get("function")
    if isinstance(function, Mapping):
        return {**call, "function": {key: value for key, value in function.items() if key != "arguments"}}
    return call


# --- argument checks ----------------------------------------------------------------


def _check_tokens(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"`{name}` must be a non-negative int or None, got {value!r}")
    if value >= 2**63:  # OTLP integers are int64
        raise ValueError(f"`{name}` must be below 2**63, got {value!r}")


def _timestamp(name: str, value: object) -> tuple[int, datetime]:
    if not isinstance(value, datetime):
        raise TypeError(f"`{name}` must be a timezone-aware datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"`{name}` must be timezone-aware, got naive {value!r}; "
            "use datetime.now(timezone.utc) or attach a tzinfo"
        )
    try:
        delta = value - _EPOCH
    except OverflowError:  # an offset that takes it past year 1 or 9999 in UTC
        delta = None
    ns = (
        None
        if delta is None
        else (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    )
    if ns is None or not 0 <= ns < _OTLP_TIME_LIMIT_NS:
        # OTLP stamps events with unsigned 64-bit nanoseconds since 1970: an event outside
        # that range could not be encoded, and would take its whole export batch down.
        raise ValueError(
            f"`{name}` must be between {_EPOCH.isoformat()} and {_OTLP_TIME_LIMIT.isoformat()} "
            f"(what OTLP timestamps can hold), got {value!r}"
        )
    return ns, value


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_OTLP_TIME_LIMIT_NS = 2**64
_OTLP_TIME_LIMIT = _EPOCH + timedelta(microseconds=_OTLP_TIME_LIMIT_NS // 1000)


def check_text(name: str, value: object) -> None:
    """A ``TypeError`` naming ``name`` unless ``value`` is a str."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a str or None, got {type(value).__name__}: {value!r}")


def _merge_metadata(metadata: object, more: dict[str, Any]) -> Mapping[str, Any]:
    if metadata is None and not more:
        return _NO_METADATA
    if metadata is None:
        merged = more
    elif isinstance(metadata, Mapping):
        merged = {**metadata, **more}
    else:
        raise TypeError(f"`metadata` must be a dict or None, got {type(metadata).__name__}: {metadata!r}")
    settled = {}
    for key, value in merged.items():
        settled[check_key("metadata", key)] = settle(f"metadata[{key!r}]", value)
    return MappingProxyType(settled)

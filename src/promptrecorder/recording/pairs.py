"""Recording a pair: ``autorecord()`` for callers, ``store_pair()`` for the bots and calls.

A pair becomes two span events on the innermost recorder's span (or its current segment),
a call span ``chat <model>`` under it unless its LLM call made one (``pair_span.py``), and
one ``PromptRecord`` kept by every recorder in the active chain, after the innermost
recorder's content policy has decided what of its text may be kept.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, overload

from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from promptrecorder._diagnostics import warn_once
from promptrecorder.recording import log_events, semconv
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
from promptrecorder.recording.pair_span import add_call_span, call_attributes
from promptrecorder.recording.records import PromptRecord
from promptrecorder.recording.redaction import ContentPolicy, RedactionCounter
from promptrecorder.recording.values import apply_policy, check_key, settle

logger = logging.getLogger(__name__)

_NO_METADATA: Mapping[str, Any] = MappingProxyType({})
# autorecord's first line, bound once: with no recorder active it is the whole call.
_get_active = ACTIVE.get


# The two forms of prompt, as overloads: what IDEs and type checkers show. The one function
# below takes the options as one dict, because ``autorecord`` is called unconditionally by
# library code and filling six keyword-only defaults would double its cost with no recorder
# active (~75 ns to ~120 ns on the bench's machine); they are checked with a recorder active.
@overload
def autorecord(
    prompt: str,
    response: str,
    *,
    model: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    **more: Any,
) -> PromptRecord | None: ...


@overload
def autorecord(
    prompt: Sequence[Mapping[str, Any]],
    response: str,
    *,
    model: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    **more: Any,
) -> PromptRecord | None: ...


def autorecord(  # the overloads above type **options
    prompt: str | Sequence[Mapping[str, Any]], response: str, **options: Any
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
    chain = _get_active()
    if not chain:
        return None
    return _autorecord(chain, prompt, response, **options)


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
        Pair(
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
            conversation_id=chain[-1].conversation_id,
        ),
    )


@dataclass(slots=True)
class Pair:
    """One prompt/response pair on its way from ``autorecord`` or an LLM call to events and record.

    Built from checked arguments (``autorecord``) or from API objects (an LLM call), passed
    once through the innermost recorder's content policy (``through``), then turned into
    the two events' attributes and the ``PromptRecord``. ``prepared`` and
    ``prepared_output`` are content an LLM call already passed through that same policy
    for its CLIENT span: the policy step takes them as they are rather than apply it twice.
    """

    prompt: str
    messages: tuple[Mapping[str, Any], ...] | None
    response: str
    request_model: str | None
    response_model: str | None
    started_ns: int
    started_at: datetime | None
    ended_ns: int
    ended_at: datetime
    input_tokens: int | None = None
    output_tokens: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _NO_METADATA)
    provider: str | None = None
    conversation_id: str | None = None
    # The LLM call's own CLIENT span, when the pair comes from one: then no call span is
    # made for the pair (one span per call); a plain pair has None.
    call_span: Span | None = None
    finish_reasons: tuple[str, ...] | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    error: str | None = None
    complete: bool = True
    prepared: PreparedMessages | None = None
    prepared_output: PreparedOutput | None = None

    def through(self, policy: ContentPolicy, counter: RedactionCounter) -> None:
        """Apply the content policy, once: scrub and redact what it keeps, blank what it does not."""
        if policy.scrubber is not None or policy.redact is not None:
            # Texts that are not content (kept in every capture mode): the same policy, here once.
            if self.request_model is not None:
                given, self.request_model = self.request_model, policy.text(self.request_model, counter)
                if self.response_model == given:  # the same name: scrubbed (and counted) once
                    self.response_model = self.request_model
            if self.response_model is not None and self.response_model is not self.request_model:
                self.response_model = policy.text(self.response_model, counter)
            if self.metadata:
                self.metadata = MappingProxyType(apply_policy(policy, dict(self.metadata), counter))
        if not policy.keeps_text:
            self.prompt = self.response = ""
            self.messages = None
            if self.tool_calls is not None:
                self.tool_calls = tuple(_without_arguments(call) for call in self.tool_calls)
            self.error = None if self.error is None else self.error.partition(":")[0]
            return
        if policy.scrubber is None and policy.redact is None:
            return
        if self.messages is None:
            self.prompt = policy.text(self.prompt, counter)
        elif self.prepared is not None:
            self.messages = self.prepared.messages
            counter.add(self.prepared.counts)
            self.prompt = last_user_text(self.messages)
        else:  # the prompt is a view of the messages: derive it, so nothing counts twice
            self.messages = policy.messages(self.messages, counter)
            self.prompt = last_user_text(self.messages)
        if self.prepared_output is not None:
            self.response = self.prepared_output.text
            counter.add(self.prepared_output.counts)
            self.tool_calls = self.prepared_output.tool_calls or None
        else:
            self.response = policy.text(self.response, counter)
            if self.tool_calls is not None:
                self.tool_calls = policy.tool_calls(self.tool_calls, counter)
        self.error = None if self.error is None else policy.text(self.error, counter)

    def record(self, recorder_name: str, record_id: str, ids: tuple[str, str] | None) -> PromptRecord:
        """The ``PromptRecord`` of this pair (after ``through``), on the span ``ids`` names."""
        return PromptRecord(
            prompt=self.prompt,
            response=self.response,
            ended_at=self.ended_at,
            recorder=recorder_name,
            id=record_id,
            model=self.response_model or self.request_model,
            started_at=self.started_at,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            trace_id=ids[0] if ids else None,
            span_id=ids[1] if ids else None,
            messages=self.messages,
            metadata=self.metadata,
            provider=self.provider,
            finish_reasons=self.finish_reasons,
            tool_calls=self.tool_calls,
            error=self.error,
            complete=self.complete,
            conversation_id=self.conversation_id,
        )


def store_pair(chain: tuple[Activation, ...], pair: Pair) -> PromptRecord | None:
    """Add a pair's events to the innermost span and keep its record in every recorder.

    The shared path of ``autorecord`` and of the bots and openai instrumentation. The
    innermost recorder's content policy applies first, once (None when it captures nothing).
    """
    innermost = chain[-1]
    recorder = innermost.recorder
    policy = innermost.policy
    if not policy.records:
        return None
    pair.through(policy, recorder.redactions)
    # 64 random bits, as the SDK's own span ids: `random` holds the GIL for the call, where
    # os.urandom released it (a system call) and made threads sharing a recorder convoy;
    # the random module reseeds in a forked child, so parent and child never share ids.
    record_id = f"{random.getrandbits(64):016x}"
    ids: tuple[str, str] | None = None
    parent: Span | None = None
    prompt_attributes = response_attributes = None
    try:
        size = 0
        if innermost.recording:
            prompt_attributes, response_attributes = _event_attributes(
                record_id, recorder.max_content_length, recorder.max_span_bytes // 2, pair
            )
            size = (
                2 * EVENT_OVERHEAD + attributes_size(prompt_attributes) + attributes_size(response_attributes)
            )
        ids, parent = innermost.add_pair(
            prompt_attributes, pair.started_ns, response_attributes, pair.ended_ns, size
        )
        if innermost.closed:
            warn_once(
                logger,
                "record-after-exit",
                "a prompt was recorded after its PromptRecorder %r exited (a thread or task "
                "outlived the block); it is kept in memory but not exported",
                recorder.name,
            )
    except Exception as failure:  # telemetry must never break the caller; the record is still kept
        warn_once(logger, "add-events", "promptrecorder could not add events to the span: %r", failure)
    else:
        if parent is not None and prompt_attributes is not None and response_attributes is not None:
            try:
                _describe_call(
                    innermost, parent, pair, prompt_attributes, response_attributes, policy.keeps_text
                )
            except Exception as failure:  # the events and the record are kept all the same
                warn_once(
                    logger, "pair-call", "promptrecorder could not record a pair as an LLM call: %r", failure
                )

    record = pair.record(recorder.name, record_id, ids)
    if len(chain) == 1:
        chain[0].store.append(record)
    else:
        # A recorder entered twice in the chain still keeps the record once.
        for store in {id(a.store): a.store for a in chain}.values():
            store.append(record)
    return record


def _describe_call(
    activation: Activation,
    parent: Span,
    pair: Pair,
    prompt_attributes: dict[str, AttributeValue],
    response_attributes: dict[str, AttributeValue],
    keeps_text: bool,
) -> None:
    """The pair as an LLM call: its call span (unless its LLM call made one, or call spans
    are off) and the log record when log events are on."""
    call_span = pair.call_span
    makes_span = call_span is None and activation.recorder.call_spans
    if not makes_span and not log_events.enabled():
        return
    attributes = call_attributes(prompt_attributes, response_attributes, keeps_text)
    if makes_span:
        model = attributes.get(semconv.GEN_AI_REQUEST_MODEL)
        call_span = add_call_span(
            activation,
            parent,
            attributes,
            model if isinstance(model, str) else None,
            pair.started_ns,
            pair.ended_ns,
            response_attributes.get(semconv.RESPONSE_TEXT) if keeps_text else None,
        )
    if log_events.enabled():  # correlated with the call span, else with the span of the events
        log_events.emit(attributes, parent if call_span is None else call_span, pair.ended_ns)


def _event_attributes(
    record_id: str, limit: int | None, messages_bytes: int, pair: Pair
) -> tuple[dict[str, AttributeValue], dict[str, AttributeValue]]:
    """The attributes of a pair's two events; never raises.

    Every value reaching here was checked at the call, so building them cannot fail; should
    it all the same (a bug of ours), the pair is still exported, as its record id and what
    went wrong, so that a record in memory always has its events on a span.
    """
    prepared, prepared_output = pair.prepared, pair.prepared_output
    try:
        return (
            prompt_event_attributes(
                record_id=record_id,
                prompt=pair.prompt,
                messages=pair.messages,
                model=pair.request_model,
                provider=pair.provider,
                conversation_id=pair.conversation_id,
                input_tokens=pair.input_tokens,
                metadata=pair.metadata,
                limit=limit,
                input_messages=(
                    prepared.json
                    if prepared is not None and prepared.limit == limit and pair.messages
                    else None
                ),
                messages_bytes=messages_bytes,
            ),
            response_event_attributes(
                record_id=record_id,
                response=pair.response,
                model=pair.response_model,
                output_tokens=pair.output_tokens,
                finish_reasons=pair.finish_reasons,
                tool_calls=pair.tool_calls,
                error=pair.error,
                complete=pair.complete,
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
        warn_once(logger, "event-attributes", "promptrecorder could not build a pair's events: %r", failure)
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
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a non-negative int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"`{name}` must be a non-negative int or None, got {value!r}")
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

"""The chain of active recorders, and what one entry into a recorder holds.

The trick comes from llamabot: a ``contextvars.ContextVar`` holds the active recorders, so
code running inside ``with recorder:`` reaches the recorder without being passed it. Each
entry into a recorder is an *activation*: one OpenTelemetry span (current in the OTel
context for the whole block) plus the bookkeeping to add events to it. The ContextVar holds
the chain of activations, outermost first, so nested recorders all see what happens inside
them, and asyncio tasks inherit the chain as they inherit any ContextVar.

Threading contract: an activation may be used by any number of threads and tasks; its
events are added under a lock so that a segment rollover never races with an event.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.util.types import AttributeValue

from promptrecorder import settings
from promptrecorder._diagnostics import warn_once
from promptrecorder._version import __version__
from promptrecorder.recording import ledger, semconv
from promptrecorder.recording.content import MAX_NAME_LENGTH
from promptrecorder.recording.events import (
    EXCEPTION_EVENT_RESERVE,
    add_text,
    attributes_size,
    record_exception,
)
from promptrecorder.recording.redaction import ContentPolicy

if TYPE_CHECKING:
    from promptrecorder.recording.recorder import PromptRecorder
    from promptrecorder.recording.records import RecordStore

logger = logging.getLogger(__name__)

# The SDK keeps this many events per span unless told otherwise (OTEL_SPAN_EVENT_COUNT_LIMIT).
_SDK_DEFAULT_EVENT_LIMIT = 128
# Bytes a span takes in OTLP beside its name, attributes and events, at most: ids, parent,
# times, kind, flags, status, one link, and the counts the recorder span gets at its end.
_SPAN_OVERHEAD = 256

_workflow_duration = metrics.get_meter(semconv.INSTRUMENTATION_NAME, __version__).create_histogram(
    semconv.METRIC_INVOKE_WORKFLOW_DURATION,
    unit="s",
    description="Duration of GenAI workflow invocations (promptrecorder blocks)",
    explicit_bucket_boundaries_advisory=[0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
)

ACTIVE: ContextVar[tuple[Activation, ...]] = ContextVar("promptrecorder_active", default=())


def active_chain() -> tuple[Activation, ...]:
    """The active recorders' activations, outermost first (empty outside any recorder)."""
    return ACTIVE.get()


def current_recorder() -> PromptRecorder | None:
    """The innermost recorder active in this context, or None."""
    chain = ACTIVE.get()
    return chain[-1].recorder if chain else None


class SpanStarter:
    """How one recorder starts its spans: its tracer, its delivery tally, its span name and attributes.

    The recorder builds one; its activations start the recorder span and segment spans
    through it, and LLM calls and plain pairs their call spans, so nothing reaches into
    the recorder. ``name`` is the recorder span's (``invoke_workflow <name>``),
    ``segment_name`` the stem of its segments' (``<name> segment N``).
    """

    __slots__ = ("attributes", "name", "segment_name", "tally", "tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        tally: ledger.Tally,
        name: str,
        attributes: dict[str, AttributeValue],
        segment_name: str | None = None,
    ) -> None:
        self.tracer = tracer
        self.tally = tally
        self.name = name
        self.attributes = attributes
        self.segment_name = name if segment_name is None else segment_name

    def start(
        self,
        name: str,
        links: Sequence[Link] | None,
        attributes: Mapping[str, AttributeValue],
        kind: SpanKind = SpanKind.INTERNAL,
        parent: Span | None = None,
        start_time: int | None = None,
    ) -> Span:
        """Start a span counted in the recorder's delivery (raises what the tracer raises);
        a child of ``parent`` when given, else of the current span."""
        token = ledger.starting(self.tally)
        try:
            return self.tracer.start_span(
                name,
                context=None if parent is None else trace.set_span_in_context(parent),
                kind=kind,
                attributes=attributes,
                links=links,
                start_time=start_time,
            )
        finally:
            ledger.done(token)

    def start_or_invalid(
        self, name: str, links: Sequence[Link] | None, attributes: Mapping[str, AttributeValue]
    ) -> Span:
        """``start`` an INTERNAL span; a tracer that fails gives a no-op span, said once."""
        try:
            return self.start(name, links, attributes)
        except Exception as error:  # telemetry must never stop the user's block
            warn_once(
                logger,
                "start-span",
                "promptrecorder could not start a span (%s); recording in memory only",
                error,
            )
            return trace.INVALID_SPAN


class Activation:
    """One entry into a recorder: its span, its context tokens, and its event segments."""

    __slots__ = (
        "active_token",
        "attributes",
        "closed",
        "conversation_id",
        "first_input",
        "last_output",
        "lock",
        "otel_token",
        "policy",
        "recorder",
        "recording",
        "records",
        "room",
        "segment",
        "segment_bytes",
        "segment_ids",
        "segment_index",
        "segment_pairs",
        "span",
        "span_bytes",
        "spans",
        "started_perf",
        "store",
    )

    def __init__(
        self,
        recorder: PromptRecorder,
        spans: SpanStarter,
        store: RecordStore,
        outer: Activation | None = None,
    ) -> None:
        self.recorder = recorder
        self.spans = spans
        self.store = store
        # A recorder given no conversation id takes the one of the recorder it is nested in:
        # a nested block is part of the same conversation turn.
        self.conversation_id = recorder.conversation_id
        self.attributes = spans.attributes
        if self.conversation_id is None and outer is not None and outer.conversation_id is not None:
            self.conversation_id = outer.conversation_id
            self.attributes = dict(spans.attributes)  # exported as the recorder exports its own
            add_text(self.attributes, semconv.GEN_AI_CONVERSATION_ID, outer.conversation_id, MAX_NAME_LENGTH)
        self.started_perf = time.perf_counter()
        span = self.span = spans.start_or_invalid(spans.name, None, self.attributes)
        self.recording = span.is_recording()
        # Events go to `segment`: the recorder span until it is full, then child segments.
        self.segment = span
        self.segment_ids = _hex_ids(span)
        self.segment_index = 0
        # One event slot, and its bytes, are kept back for the exception a failing block
        # records on exit.
        limit = _event_limit(span)
        self.room: int | None = None if limit is None else max(limit - 1, 2)
        self.segment_bytes = _span_size(recorder.name, self.attributes) + EXCEPTION_EVENT_RESERVE
        self.segment_pairs = 0
        self.span_bytes = 0  # the recorder span's own bytes, once a segment took over from it
        # The block's first input and last output messages, for the recorder span's end.
        self.first_input: AttributeValue | None = None
        self.last_output: AttributeValue | None = None
        self.records = 0
        self.closed = False
        # Reentrant: a stream proxy garbage-collected while this thread holds the lock
        # records its call from the finaliser, in this same thread.
        self.lock = threading.RLock()
        self.policy = ContentPolicy()
        self.active_token: Token[tuple[Activation, ...]] | None = None
        self.otel_token: object = None

    def add_pair(
        self,
        prompt_attributes: dict[str, AttributeValue] | None,
        prompt_ns: int,
        response_attributes: dict[str, AttributeValue] | None,
        response_ns: int,
        size: int = 0,
    ) -> tuple[tuple[str, str] | None, Span | None]:
        """Add the two events of a pair (``size``: their bytes); return the hex (trace id,
        span id) of the span they went to, or None when the activation is closed or there is
        no valid span, and that span (None when closed or not recording), the parent of a
        plain pair's call span.

        The one rollover rule: the pair goes on a new segment when the current one holds a
        pair already and has no room left for two more events or for ``size`` more bytes
        within the recorder's ``max_span_bytes``. A pair alone on a segment always fits.
        """
        full: Span | None = None
        try:
            with self.lock:
                if self.closed:
                    return None, None
                self.records += 1
                if not self.recording:
                    return self.segment_ids, None
                if self.segment_pairs and (
                    (self.room is not None and self.room < 2)
                    or self.segment_bytes + size > self.recorder.max_span_bytes
                ):
                    full = self._next_segment()
                if self.room is not None:
                    self.room -= 2
                self.segment_bytes += size
                self.segment_pairs += 1
                self.segment.add_event(semconv.EVENT_PROMPT, prompt_attributes, prompt_ns)
                self.segment.add_event(semconv.EVENT_RESPONSE, response_attributes, response_ns)
                # The turn's first input and last output messages (as exported), kept for the
                # recorder span's end, under the one lock taken; none when text is not kept (the
                # events' messages then hold empty parts).
                if self.policy.keeps_text:
                    if self.first_input is None and prompt_attributes is not None:
                        self.first_input = prompt_attributes.get(semconv.GEN_AI_INPUT_MESSAGES)
                    if response_attributes is not None:
                        output = response_attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES)
                        if output is not None:
                            self.last_output = output
                return self.segment_ids, self.segment
        finally:
            # A full segment is ended (and, with configure()'s pipeline, encoded) outside
            # the lock, so threads sharing the recorder do not queue behind it; ended
            # whatever happened after the rollover.
            if full is not None:
                full.end()

    def _next_segment(self) -> Span | None:
        """Continue on a new segment; return the previous one if it is to be ended (the
        recorder span itself ends with the block)."""
        previous = self.segment
        self.segment_index += 1
        link = Link(
            previous.get_span_context(),
            {semconv.SEGMENT_LINK_REASON: semconv.SEGMENT_LINK_REASON_CONTINUES},
        )
        name = f"{self.spans.segment_name} segment {self.segment_index}"
        attributes = {**self.attributes, semconv.SEGMENT_INDEX: self.segment_index}
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            self.segment = self.spans.start_or_invalid(name, [link], attributes)
        finally:
            otel_context.detach(token)
        self.segment_ids = _hex_ids(self.segment)
        limit = _event_limit(self.segment)
        self.room = None if limit is None else max(limit, 2)
        if previous is self.span:
            self.span_bytes = self.segment_bytes
        self.segment_bytes = _span_size(name, attributes)
        self.segment_pairs = 0
        return None if previous is self.span else previous

    def end(self, exc: BaseException | None) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            span = self.span
            try:
                if self.segment is not span:
                    self.segment.end()
                    span.set_attribute(semconv.SEGMENT_COUNT, self.segment_index + 1)
                span.set_attribute(semconv.RECORD_COUNT, self.records)
                self._add_turn_messages(span)
                # Only an Exception marks the span as failed, as the API's use_span does:
                # CancelledError, KeyboardInterrupt, SystemExit and GeneratorExit are how a
                # block is stopped, not how it fails.
                if isinstance(exc, Exception):
                    record_exception(span, self.policy, exc, self.recorder.max_content_length)
            finally:
                span.end()
            self._record_duration(exc)

    def _record_duration(self, exc: BaseException | None) -> None:
        # gen_ai.invoke_workflow.duration: the block's duration, as its span's, by workflow
        # name; error.type only for an Exception, the same rule as the span's status.
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: self.spans.segment_name,
        }
        if isinstance(exc, Exception):
            attributes[semconv.ERROR_TYPE] = type(exc).__qualname__
        try:
            _workflow_duration.record(time.perf_counter() - self.started_perf, attributes)
        except Exception as failure:  # a failing meter must not break the block's exit
            warn_once(logger, "workflow-duration", "promptrecorder could not record a metric: %r", failure)

    def _add_turn_messages(self, span: Span) -> None:
        # The workflow convention's opt-in turn input and output: the first prompt and the
        # last response, so that a trace list (MLflow's reads only the root span) shows them.
        # Each only if it fits the span's byte budget, kept back for the exception event.
        used = self.segment_bytes if self.segment is span else self.span_bytes
        room = self.recorder.max_span_bytes - used
        for key, value in (
            (semconv.GEN_AI_INPUT_MESSAGES, self.first_input),
            (semconv.GEN_AI_OUTPUT_MESSAGES, self.last_output),
        ):
            if value is None:
                continue
            size = attributes_size({key: value})
            if size <= room:
                span.set_attribute(key, value)
                room -= size


def _hex_ids(span: Span) -> tuple[str, str] | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _span_size(name: str, attributes: dict[str, AttributeValue]) -> int:
    return _SPAN_OVERHEAD + len(name.encode("utf-8", "surrogatepass")) + attributes_size(attributes)


def _event_limit(span: Span) -> int | None:
    """How many events ``span`` keeps before it starts dropping the oldest.

    The SDK keeps its limits private (a span's ``_limits``), so this reads what its public
    ``SpanLimits()`` reads by default: ``OTEL_SPAN_EVENT_COUNT_LIMIT``, else 128. A provider
    built with an explicit ``SpanLimits(max_events=...)`` is not seen: set the variable to
    match (docs/architecture.md, "The event budget"). A span that records nothing has no limit.
    """
    if not span.is_recording():
        return None
    value = os.environ.get(settings.OTEL_SPAN_EVENT_COUNT_LIMIT, "").strip()
    if not value:
        return _SDK_DEFAULT_EVENT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        return _SDK_DEFAULT_EVENT_LIMIT  # the SDK refuses such a value when it builds its limits
    return limit if limit >= 0 else _SDK_DEFAULT_EVENT_LIMIT

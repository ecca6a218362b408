"""``PromptRecorder``, the ContextVar that lets code find it, and ``autorecord()``.

The trick comes from llamabot: a ``contextvars.ContextVar`` holds the active recorders,
so code running inside ``with recorder:`` reaches the recorder without being passed it.
Each entry into a recorder is an *activation*: one OpenTelemetry span (current in the OTel
context for the whole block) plus the bookkeeping to add events to it. The ContextVar holds
the chain of activations, outermost first, so nested recorders all see what happens
inside them, and asyncio tasks inherit the chain as they inherit any ContextVar.

Threading contract: a recorder may be shared by any number of threads and tasks.
``autorecord`` is safe to call concurrently; events of one activation are added under a
lock so that a segment rollover never races with an event being added.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from promptrecorder import ledger, semconv
from promptrecorder._diagnostics import warn_once
from promptrecorder._version import __version__
from promptrecorder.content import (
    DEFAULT_MAX_CONTENT_LENGTH,
    check_prompt,
    check_response,
    export_text,
    last_user_text,
)
from promptrecorder.events import (
    as_attribute_value,
    prompt_event_attributes,
    response_event_attributes,
)
from promptrecorder.records import (
    DEFAULT_MAX_RECORDS,
    PromptRecord,
    RecordStore,
    read_jsonl,
    records_html,
    to_dataframe,
    write_jsonl,
)
from promptrecorder.redaction import (
    DEFAULT_SCRUBBER,
    CaptureMode,
    ContentPolicy,
    RedactionCounter,
    Redactor,
    SecretScrubber,
    capture_from_environment,
    check_capture,
    exception_details,
)

if TYPE_CHECKING:
    import pandas

P = ParamSpec("P")
R = TypeVar("R")

# The SDK keeps this many events per span unless told otherwise (OTEL_SPAN_EVENT_COUNT_LIMIT).
_SDK_DEFAULT_EVENT_LIMIT = 128

_ACTIVE: ContextVar[tuple[_Activation, ...]] = ContextVar("promptrecorder_active", default=())
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


class PromptRecorder:
    """Records every prompt and response made inside ``with recorder:``.

    Entering the recorder starts an OpenTelemetry span named after it and makes the
    recorder findable by ``autorecord`` (our bots, the instrumented openai client, or your
    own code). Each recorded pair becomes two span events, exported wherever your
    TracerProvider sends spans, and a ``PromptRecord`` kept in memory on the recorder.

    Example:
        >>> recorder = PromptRecorder("triage")
        >>> with recorder:
        ...     _ = autorecord("Summarise ticket 42", "Printer on fire.", model="stand-in")
        >>> recorder.prompts_and_responses
        [{'prompt': 'Summarise ticket 42', 'response': 'Printer on fire.'}]

    Args:
        name: the span name and ``gen_ai.workflow.name``.
        attributes: extra attributes for the recorder's span.
        tracer_provider: where spans go; the global provider when ``None``.
        max_records: how many records to keep in memory (oldest evicted first and counted
            in ``evicted``); ``None`` keeps all.
        max_content_length: the longest text, in characters, exported per prompt or
            response; longer text is cut in the export and kept whole in memory.
            ``None`` exports everything.
        capture: ``"full"`` (text kept and exported), ``"metadata"`` (no text: model,
            tokens, timings only) or ``"none"`` (nothing recorded); when ``None``, the
            process default (``PROMPTRECORDER_CAPTURE_CONTENT``, else
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else full), read at
            each entry.
        redact: a function applied to every text (prompt, response, message contents,
            tool-call arguments) before it is kept or exported; ``recorder.redactions``
            counts what it and the secret scrubber changed.
        scrub_secrets: replace API keys, bearer tokens and private keys with
            ``[REDACTED:<kind>]`` (on by default); ``False`` turns it off, a
            ``SecretScrubber`` instance adds patterns.

    Raises:
        TypeError, ValueError: an argument is not of the documented form.
    """

    def __init__(
        self,
        name: str = "PromptRecorder",
        *,
        attributes: Mapping[str, AttributeValue] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        max_records: int | None = DEFAULT_MAX_RECORDS,
        max_content_length: int | None = DEFAULT_MAX_CONTENT_LENGTH,
        capture: CaptureMode | None = None,
        redact: Redactor | None = None,
        scrub_secrets: bool | SecretScrubber = True,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty str, got {name!r}")
        _check_positive_or_none("max_records", max_records)
        _check_positive_or_none("max_content_length", max_content_length)
        if tracer_provider is not None and not isinstance(tracer_provider, trace.TracerProvider):
            raise TypeError(
                "`tracer_provider` must be an opentelemetry TracerProvider or None, "
                f"got {type(tracer_provider).__name__}"
            )
        if capture is not None:
            check_capture(capture)
        if redact is not None and not callable(redact):
            raise TypeError(f"`redact` must be a callable taking and returning a str, got {redact!r}")
        if not isinstance(scrub_secrets, (bool, SecretScrubber)):
            raise TypeError(f"`scrub_secrets` must be a bool or a SecretScrubber, got {scrub_secrets!r}")
        self.name = name
        self.max_content_length = max_content_length
        self.capture = capture
        self._redact = redact
        self._scrubber = (
            scrub_secrets
            if isinstance(scrub_secrets, SecretScrubber)
            else DEFAULT_SCRUBBER
            if scrub_secrets
            else None
        )
        self.redactions = RedactionCounter()
        self._span_attributes: dict[str, AttributeValue] = {
            **_check_attributes(attributes),
            semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: name,
        }
        self._tracer = trace.get_tracer(
            semconv.INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )
        self._store = RecordStore(max_records)
        self._delivery = ledger.Tally()  # what became of this recorder's spans
        # Activations not yet exited, so that an exit in another context can find its own.
        self._open: list[_Activation] = []
        self._open_lock = threading.Lock()

    # --- the context manager -------------------------------------------------------

    def content_policy(self) -> ContentPolicy:
        """The content policy an entry into this recorder uses now."""
        capture = self.capture or capture_from_environment()
        return ContentPolicy(capture, self._scrubber, self._redact)

    def __enter__(self) -> PromptRecorder:
        activation = _Activation(self, self._start_span(self.name, None, self._span_attributes))
        try:
            activation.policy = self.content_policy()
        except ValueError as error:  # a bad PROMPTRECORDER_CAPTURE_CONTENT must not stop the block
            warn_once("capture-env", "promptrecorder: %s; recording with capture='metadata'", error)
            activation.policy = ContentPolicy("metadata", self._scrubber, self._redact)
        activation.otel_token = otel_context.attach(trace.set_span_in_context(activation.span))
        activation.active_token = _ACTIVE.set((*_ACTIVE.get(), activation))
        with self._open_lock:
            self._open.append(activation)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        activation = self._take_activation()
        if activation is None:
            warn_once(
                f"exit-unentered-{id(self)}", "PromptRecorder %r exited without being entered", self.name
            )
            return
        # Restore the previous context first: nothing below may leave this recorder current.
        try:
            _ACTIVE.reset(activation.active_token)  # type: ignore[arg-type]
            same_context = True
        except (ValueError, RuntimeError):
            # Exited in another context than it was entered in (a callback, another task).
            # That context's values are not ours to reset; the span still ends here.
            same_context = False
            warn_once(
                "exit-other-context",
                "PromptRecorder %r was exited in another context than it was entered in; "
                "its span is ended, but the entering context keeps it until that context ends",
                self.name,
            )
        if same_context:
            otel_context.detach(activation.otel_token)  # type: ignore[arg-type]
        activation.end(exc)

    async def __aenter__(self) -> PromptRecorder:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def _take_activation(self) -> _Activation | None:
        """The activation this exit closes: ours in the current context, else the latest open."""
        with self._open_lock:
            for activation in reversed(_ACTIVE.get()):
                if activation.recorder is self and activation in self._open:
                    self._open.remove(activation)
                    return activation
            return self._open.pop() if self._open else None

    def _start_span(
        self, name: str, links: Sequence[Link] | None, attributes: Mapping[str, AttributeValue]
    ) -> Span:
        token = ledger.starting(self._delivery)
        try:
            return self._tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes, links=links)
        except Exception as error:  # telemetry must never stop the user's block
            warn_once(
                "start-span", "promptrecorder could not start a span (%s); recording in memory only", error
            )
            return trace.INVALID_SPAN
        finally:
            ledger.done(token)

    # --- threads ---------------------------------------------------------------------

    def wrap(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Return ``fn`` made to run with this recorder active, in whatever thread calls it.

        Threads do not inherit context variables, so a function handed to a thread pool
        records nothing unless wrapped. Wrapped inside ``with recorder:``, the function
        records into that same block (and its span); wrapped outside any block, each call
        enters the recorder itself, so each call gets a span of its own.

        Example:
            >>> with recorder:  # doctest: +SKIP
            ...     list(pool.map(recorder.wrap(ask), questions))
        """
        chain = _ACTIVE.get()
        if not any(activation.recorder is self for activation in chain):

            @functools.wraps(fn)
            def run_in_own_block(*args: P.args, **kwargs: P.kwargs) -> R:
                with self:
                    return fn(*args, **kwargs)

            return run_in_own_block

        otel_ctx = otel_context.get_current()

        @functools.wraps(fn)
        def run_in_block(*args: P.args, **kwargs: P.kwargs) -> R:
            active_token = _ACTIVE.set(chain)
            otel_token = otel_context.attach(otel_ctx)
            try:
                return fn(*args, **kwargs)
            finally:
                otel_context.detach(otel_token)
                _ACTIVE.reset(active_token)

        return run_in_block

    def submit(
        self, executor: Executor, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        """``executor.submit(fn, ...)`` with ``fn`` wrapped by ``wrap``."""
        return executor.submit(self.wrap(fn), *args, **kwargs)

    # --- the records -------------------------------------------------------------------

    @property
    def records(self) -> list[PromptRecord]:
        """A snapshot of the records kept, oldest first."""
        return self._store.snapshot()

    @property
    def prompts_and_responses(self) -> list[dict[str, str]]:
        """The records as ``{"prompt": ..., "response": ...}`` dicts (llamabot's shape)."""
        return [{"prompt": r.prompt, "response": r.response} for r in self._store.snapshot()]

    @property
    def delivery(self) -> ledger.DeliverySummary:
        """What became of this recorder's spans so far: exported, spooled, dropped, pending.

        Counts every span the recorder started (its own, its segments, the CLIENT spans of
        calls recorded into it) that went to the pipeline ``configure()`` built. After
        ``promptrecorder.flush()`` returned, ``pending`` is 0.

        Example:
            >>> promptrecorder.flush()  # doctest: +SKIP
            >>> recorder.delivery  # doctest: +SKIP
            DeliverySummary(exported=3, spooled=0, dropped=0, pending=0)
        """
        return self._delivery.summary()

    @property
    def evicted(self) -> int:
        """How many records ``max_records`` pushed out of memory (they were still exported)."""
        return self._store.evicted

    @property
    def max_records(self) -> int | None:
        return self._store.max_records

    def clear(self) -> None:
        """Forget the records kept in memory."""
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[PromptRecord]:
        return iter(self._store)

    def __repr__(self) -> str:
        return f"PromptRecorder({self.name!r}, records={len(self)})"

    def _repr_html_(self) -> str:
        return records_html(self.name, self._store.snapshot())

    def dataframe(self) -> pandas.DataFrame:
        """The records as a pandas DataFrame, one row per record.

        Raises:
            MissingDependencyError: pandas is not installed (``pip install 'promptrecorder[pandas]'``).
        """
        return to_dataframe(self._store.snapshot())

    def to_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write the records to ``path``, one JSON object per line; return how many."""
        return write_jsonl(self._store.snapshot(), path)

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], name: str | None = None) -> PromptRecorder:
        """A recorder holding the records read from ``path`` (written by ``to_jsonl``).

        ``name`` defaults to the recorder name stored in the first record.
        """
        records = read_jsonl(path)
        recorder = cls(name or (records[0].recorder if records else "PromptRecorder"), max_records=None)
        recorder._store.extend(records)
        return recorder


class _Activation:
    """One entry into a recorder: its span, its context tokens, and its event segments."""

    __slots__ = (
        "active_token",
        "closed",
        "lock",
        "otel_token",
        "policy",
        "recorder",
        "recording",
        "records",
        "room",
        "segment",
        "segment_ids",
        "segment_index",
        "span",
    )

    def __init__(self, recorder: PromptRecorder, span: Span) -> None:
        self.recorder = recorder
        self.span = span
        self.recording = span.is_recording()
        # Events go to `segment`: the recorder span until it is full, then child segments.
        self.segment = span
        self.segment_ids = _hex_ids(span)
        self.segment_index = 0
        # One event slot is kept back for the exception a failing block records on exit.
        limit = _event_limit(span)
        self.room: int | None = None if limit is None else max(limit - 1, 2)
        self.records = 0
        self.closed = False
        # Reentrant: a stream proxy garbage-collected while this thread holds the lock
        # records its call from the finaliser, in this same thread.
        self.lock = threading.RLock()
        self.policy = ContentPolicy()
        self.active_token: Token[tuple[_Activation, ...]] | None = None
        self.otel_token: object = None

    def add_pair(
        self,
        prompt_attributes: dict[str, AttributeValue] | None,
        prompt_ns: int,
        response_attributes: dict[str, AttributeValue] | None,
        response_ns: int,
    ) -> tuple[str, str] | None:
        """Add the two events of a pair; return the hex (trace id, span id) of the span they
        went to, or None when the activation is closed or there is no valid span."""
        with self.lock:
            if self.closed:
                return None
            self.records += 1
            if not self.recording:
                return self.segment_ids
            if self.room is not None:
                if self.room < 2:
                    self._next_segment()
                self.room -= 2
            self.segment.add_event(semconv.EVENT_PROMPT, prompt_attributes, prompt_ns)
            self.segment.add_event(semconv.EVENT_RESPONSE, response_attributes, response_ns)
            return self.segment_ids

    def _next_segment(self) -> None:
        previous = self.segment
        self.segment_index += 1
        recorder = self.recorder
        link = Link(
            previous.get_span_context(),
            {semconv.SEGMENT_LINK_REASON: semconv.SEGMENT_LINK_REASON_CONTINUES},
        )
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            self.segment = recorder._start_span(
                f"{recorder.name} segment {self.segment_index}",
                [link],
                {**recorder._span_attributes, semconv.SEGMENT_INDEX: self.segment_index},
            )
        finally:
            otel_context.detach(token)
        self.segment_ids = _hex_ids(self.segment)
        limit = _event_limit(self.segment)
        self.room = None if limit is None else max(limit, 2)
        if previous is not self.span:
            previous.end()

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
                if exc is not None and not isinstance(exc, GeneratorExit):
                    description, details = exception_details(self.policy, exc)
                    span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
                    span.record_exception(exc, attributes=details)
                    span.set_status(Status(StatusCode.ERROR, export_text(description, 1024)[0]))
            finally:
                span.end()


def _hex_ids(span: Span) -> tuple[str, str] | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def _event_limit(span: Span) -> int | None:
    """How many events ``span`` keeps before it starts dropping the oldest; None if no limit."""
    # The SDK offers no public way to read a span's limits; they sit on `_limits`.
    limits = getattr(span, "_limits", None)
    if limits is None:
        return _SDK_DEFAULT_EVENT_LIMIT
    limit = getattr(limits, "max_events", _SDK_DEFAULT_EVENT_LIMIT)
    return limit if isinstance(limit, int) else None


# --- autorecord ---------------------------------------------------------------------


def current_recorder() -> PromptRecorder | None:
    """The innermost recorder active in this context, or None."""
    chain = _ACTIVE.get()
    return chain[-1].recorder if chain else None


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
        started_at, ended_at: timezone-aware datetimes of the call's start and end; the
            prompt event is stamped at ``started_at``, the response event at ``ended_at``
            (now when not given).
        input_tokens, output_tokens: token usage, when known.
        metadata, **more: anything else to keep with the record (``more`` is merged into
            ``metadata``); exported as ``promptrecorder.metadata.<key>`` attributes.

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
    _get_active = _ACTIVE.get

    def autorecord(prompt, response, **options):
        chain = _get_active()
        if not chain:
            return None
        return _autorecord(chain, prompt, response, **options)

    autorecord.__doc__ = _autorecord_signature.__doc__
    autorecord.__signature__ = inspect.signature(_autorecord_signature)
    autorecord.__annotations__ = _autorecord_signature.__annotations__


def _autorecord(
    chain: tuple[_Activation, ...],
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
    if model is not None and not isinstance(model, str):
        raise TypeError(f"`model` must be a str or None, got {type(model).__name__}: {model!r}")
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


def active_chain() -> tuple[_Activation, ...]:
    """The active recorders' activations, outermost first (empty outside any recorder)."""
    return _ACTIVE.get()


def store_pair(
    chain: tuple[_Activation, ...],
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
) -> PromptRecord | None:
    """Add a checked pair's events to the innermost span and keep its record in every recorder.

    The shared path of ``autorecord`` and of the bots and openai instrumentation, which
    build their arguments from API objects and so need no checking. The innermost
    recorder's content policy applies first (None when it captures nothing). ``prepared``
    is ``messages`` already passed through that policy, by the call's span: used as it is.
    """
    innermost = chain[-1]
    recorder = innermost.recorder
    policy = innermost.policy
    if not policy.records:
        return None
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
        if innermost.recording:
            limit = recorder.max_content_length
            prompt_attributes = prompt_event_attributes(
                record_id=record_id,
                prompt=prompt,
                messages=messages,
                model=request_model,
                provider=provider,
                input_tokens=input_tokens,
                metadata=metadata,
                limit=limit,
                input_messages_json=(
                    prepared.json if prepared is not None and prepared.limit == limit and messages else None
                ),
            )
            response_attributes = response_event_attributes(
                record_id=record_id,
                response=response,
                model=response_model,
                output_tokens=output_tokens,
                finish_reasons=finish_reasons,
                tool_calls=tool_calls,
                error=error,
                complete=complete,
                limit=limit,
            )
        ids = innermost.add_pair(prompt_attributes, started_ns, response_attributes, ended_ns)
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
        recorder._store.append(record)
    else:
        # A recorder entered twice in the chain still keeps the record once.
        for outer in {id(a.recorder): a.recorder for a in chain}.values():
            outer._store.append(record)
    return record


@dataclass(frozen=True)
class PreparedMessages:
    """A call's messages as its span exported them: passed through the recorder's content
    policy (``counts``: what that changed) and built as ``gen_ai.input.messages`` (``json``,
    cut at ``limit``). The pair's record and prompt event reuse them instead of doing both
    again."""

    messages: tuple[Mapping[str, Any], ...]
    counts: RedactionCounter
    limit: int | None
    json: str


def _without_arguments(call: Mapping[str, Any]) -> Mapping[str, Any]:
    function = call.get("function")
    if isinstance(function, Mapping):
        return {**call, "function": {key: value for key, value in function.items() if key != "arguments"}}
    return call


# --- argument checks ----------------------------------------------------------------


def _check_positive_or_none(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"`{name}` must be a positive int or None, got {value!r}")


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
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000, value


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _merge_metadata(metadata: object, more: dict[str, Any]) -> Mapping[str, Any]:
    if metadata is None and not more:
        return _NO_METADATA
    if metadata is None:
        merged = more
    elif isinstance(metadata, Mapping):
        merged = {**metadata, **more}
    else:
        raise TypeError(f"`metadata` must be a dict or None, got {type(metadata).__name__}: {metadata!r}")
    for key in merged:
        if not isinstance(key, str):
            raise TypeError(f"`metadata` keys must be str, got {key!r}")
    return MappingProxyType(dict(merged))


def _check_attributes(attributes: object) -> dict[str, AttributeValue]:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(
            f"`attributes` must be a dict of str to attribute values, got {type(attributes).__name__}"
        )
    checked: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"`attributes` keys must be non-empty str, got {key!r}")
        checked[key] = as_attribute_value(value)
    return checked

"""``PromptRecorder``: the ``with`` block whose entries record prompts and responses.

How code inside the block finds the recorder (a ContextVar chain of activations) is in
``activation.py``; how a pair is recorded is in ``pairs.py``.

Threading contract: a recorder may be shared by any number of threads and tasks.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, NoReturn, ParamSpec, SupportsIndex, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from promptrecorder import settings
from promptrecorder._diagnostics import warn_once
from promptrecorder._version import __version__
from promptrecorder.recording import ledger, semconv
from promptrecorder.recording.activation import ACTIVE, Activation, SpanStarter
from promptrecorder.recording.content import (
    DEFAULT_MAX_CONTENT_LENGTH,
    MAX_NAME_LENGTH,
    check_conversation_id,
)
from promptrecorder.recording.events import add_text, add_value, name_text
from promptrecorder.recording.records import (
    DEFAULT_MAX_RECORDS,
    PromptRecord,
    RecordStore,
    read_jsonl,
    records_html,
    to_dataframe,
    write_jsonl,
)
from promptrecorder.recording.redaction import (
    DEFAULT_SCRUBBER,
    CaptureMode,
    ContentPolicy,
    RedactionCounter,
    Redactor,
    SecretScrubber,
    capture_from_environment,
    check_capture,
)
from promptrecorder.recording.values import apply_policy, check_key, settle

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future  # the annotations only: the module costs ~5 ms

    import pandas

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class PromptRecorder:
    """Records every prompt and response made inside ``with recorder:``.

    Entering the recorder starts an OpenTelemetry span ``invoke_workflow <name>`` and makes
    the recorder findable by ``autorecord`` (our bots, the instrumented openai client, or
    your own code). Each recorded pair becomes a call span ``chat <model>`` under it (the
    bots' and the openai client's own CLIENT span, or one made for a plain ``autorecord``),
    two span events on the recorder's span (its transcript), exported wherever your
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
        max_span_bytes: the most bytes of OTLP a span of this recorder should carry; a
            pair that would take its span past it goes on a new segment span (a pair alone
            on a segment always fits). When ``None``, ``PROMPTRECORDER_MAX_SPAN_BYTES``,
            else 1 MiB.
        conversation_id: the conversation this block's pairs belong to (your chat session
            or ticket id), exported as ``gen_ai.conversation.id`` on the recorder span and
            the call spans, and kept on the records. None: the conversation id of the
            recorder this one is nested in, if any, else none (none is made up: the
            conventions ask not to invent one); a ``ChatBot``'s own id still goes on its
            calls.
        call_spans: whether a plain ``autorecord`` pair also gets its call span ``chat
            <model>`` (what the GenAI views of Jaeger, Phoenix and MLflow read). When
            ``None``, ``PROMPTRECORDER_CALL_SPANS`` (``false`` turns them off), else on.
            Off, a plain pair is its two events and its record only: about half the cost
            and 55% of the bytes on the wire, for services whose backend reads the
            transcript events (Jaeger's Logs) and not GenAI views. Bot and ``instrument_openai``
            calls keep their CLIENT span either way.

    The recorder's ``attributes`` (and the texts in ``metadata``, model names and error
    messages of its pairs) pass the same secret scrubbing and ``redact`` hook as content,
    and are cut at ``max_content_length`` in the export.

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
        max_span_bytes: int | None = None,
        conversation_id: str | None = None,
        call_spans: bool | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"`name` must be a non-empty str, got {name!r}")
        if not name:
            raise ValueError(f"`name` must be a non-empty str, got {name!r}")
        _check_positive_or_none("max_records", max_records)
        _check_positive_or_none("max_span_bytes", max_span_bytes)
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
        if call_spans is not None and not isinstance(call_spans, bool):
            raise TypeError(f"`call_spans` must be a bool or None, got {call_spans!r}")
        self.name = name
        self.conversation_id = None if conversation_id is None else check_conversation_id(conversation_id)
        self.call_spans = _call_spans_from_environment() if call_spans is None else call_spans
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
        self.max_span_bytes = max_span_bytes or _max_span_bytes_from_environment()
        self.redactions = RedactionCounter()
        self._policies: dict[CaptureMode, ContentPolicy] = {}  # one per capture mode seen
        # The attributes are scrubbed once, here: they are the same on every span.
        scrub = ContentPolicy("full", self._scrubber, redact)
        span_attributes = _span_attributes(
            _check_attributes(attributes), scrub, self.redactions, max_content_length
        )
        add_text(span_attributes, semconv.GEN_AI_OPERATION_NAME, semconv.OPERATION_INVOKE_WORKFLOW, None)
        # The name is the records' `recorder` too, so it is cut in the export but not scrubbed.
        add_text(span_attributes, semconv.GEN_AI_WORKFLOW_NAME, name, MAX_NAME_LENGTH)
        span_attributes[semconv.OPENINFERENCE_SPAN_KIND] = semconv.OPENINFERENCE_KIND_CHAIN
        if self.conversation_id is not None:
            add_text(span_attributes, semconv.GEN_AI_CONVERSATION_ID, self.conversation_id, MAX_NAME_LENGTH)
        # The tally counts what became of this recorder's spans.
        self._spans = SpanStarter(
            _tracer(tracer_provider),
            ledger.Tally(),
            name_text(semconv.WORKFLOW_SPAN_PREFIX + name),
            span_attributes,
            name_text(name),
        )
        self._store = RecordStore(max_records)
        # Activations not yet exited, so that an exit in another context can find its own.
        self._open: list[Activation] = []
        self._open_lock = threading.Lock()

    # --- the context manager -------------------------------------------------------

    def content_policy(self) -> ContentPolicy:
        """The content policy an entry into this recorder uses now."""
        capture = self.capture or capture_from_environment()
        policy = self._policies.get(capture)
        if policy is None:  # a policy is immutable, so entries share it
            policy = self._policies[capture] = ContentPolicy(capture, self._scrubber, self._redact)
        return policy

    def __enter__(self) -> PromptRecorder:
        chain = ACTIVE.get()
        activation = Activation(self, self._spans, self._store, chain[-1] if chain else None)
        try:
            activation.policy = self.content_policy()
        except ValueError as error:  # a bad PROMPTRECORDER_CAPTURE_CONTENT must not stop the block
            warn_once(logger, "capture-env", "promptrecorder: %s; recording with capture='metadata'", error)
            activation.policy = ContentPolicy("metadata", self._scrubber, self._redact)
        activation.otel_token = otel_context.attach(trace.set_span_in_context(activation.span))
        activation.active_token = ACTIVE.set((*chain, activation))
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
                logger,
                f"exit-unentered-{id(self)}",
                "PromptRecorder %r exited without being entered",
                self.name,
            )
            return
        # Restore the previous context first: nothing below may leave this recorder current.
        try:
            ACTIVE.reset(activation.active_token)  # type: ignore[arg-type]
            same_context = True
        except (ValueError, RuntimeError):
            # Exited in another context than it was entered in (a callback, another task).
            # That context's values are not ours to reset; the span still ends here.
            same_context = False
            warn_once(
                logger,
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

    def _take_activation(self) -> Activation | None:
        """The activation this exit closes: ours in the current context, else the latest open."""
        with self._open_lock:
            for activation in reversed(ACTIVE.get()):
                if activation.recorder is self and activation in self._open:
                    self._open.remove(activation)
                    return activation
            return self._open.pop() if self._open else None

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
        chain = ACTIVE.get()
        if not any(activation.recorder is self for activation in chain):

            @functools.wraps(fn)
            def run_in_own_block(*args: P.args, **kwargs: P.kwargs) -> R:
                with self:
                    return fn(*args, **kwargs)

            return run_in_own_block

        otel_ctx = otel_context.get_current()

        @functools.wraps(fn)
        def run_in_block(*args: P.args, **kwargs: P.kwargs) -> R:
            active_token = ACTIVE.set(chain)
            otel_token = otel_context.attach(otel_ctx)
            try:
                return fn(*args, **kwargs)
            finally:
                otel_context.detach(otel_token)
                ACTIVE.reset(active_token)

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
        return self._spans.tally.summary()

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

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # pickle, copy.copy and copy.deepcopy all come here. A recorder holds locks, a tracer
        # and its open spans, none of which can be carried elsewhere; its records can.
        raise TypeError(
            f"{self!r} cannot be pickled or copied: it holds locks, a tracer and its open spans; "
            "pickle or copy `recorder.records` (a list of PromptRecord) instead"
        )

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


# --- helpers ----------------------------------------------------------------------------

# A service may build a recorder per request, and `trace.get_tracer` costs ~5 µs (the SDK
# rebuilds the scope and a warnings filter on every call before handing back the tracer it
# already made for that scope), so each provider's tracer is looked up once.
_TRACERS: weakref.WeakKeyDictionary[trace.TracerProvider, trace.Tracer] = weakref.WeakKeyDictionary()


def _tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    """Our tracer from ``provider``, or from the global provider of the moment when None."""
    if provider is None:
        provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        # No global provider yet. A proxy tracer binds to the first real provider for good,
        # so it is not kept: a recorder made later must see a provider set (or reset) since.
        return trace.get_tracer(semconv.INSTRUMENTATION_NAME, __version__, tracer_provider=provider)
    try:
        return _TRACERS[provider]
    except KeyError:
        tracer = _TRACERS[provider] = trace.get_tracer(
            semconv.INSTRUMENTATION_NAME, __version__, tracer_provider=provider
        )
        return tracer
    except TypeError:  # a provider that is unhashable or takes no weak reference: no cache
        return trace.get_tracer(semconv.INSTRUMENTATION_NAME, __version__, tracer_provider=provider)


# --- argument checks ----------------------------------------------------------------


def _check_positive_or_none(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"`{name}` must be a positive int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int or None, got {value!r}")


def _check_attributes(attributes: object) -> Mapping[str, object]:
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping):
        raise TypeError(
            f"`attributes` must be a dict of str to attribute values, got {type(attributes).__name__}"
        )
    return {
        check_key("attributes", key, empty=False): settle(f"attributes[{key!r}]", value)
        for key, value in attributes.items()
    }


def _span_attributes(
    attributes: Mapping[str, object], policy: ContentPolicy, counter: RedactionCounter, limit: int | None
) -> dict[str, AttributeValue]:
    exported: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        add_value(exported, key, apply_policy(policy, value, counter), limit)
    return exported


def _max_span_bytes_from_environment() -> int:
    text = settings.env(settings.PROMPTRECORDER_MAX_SPAN_BYTES)
    if text is None:
        return settings.DEFAULT_MAX_SPAN_BYTES
    try:
        value = int(text)
        if value < 1:
            raise ValueError
    except ValueError:
        warn_once(
            logger,
            "max-span-bytes-env",
            "promptrecorder: %s must be a positive int, got %r; using %d",
            settings.PROMPTRECORDER_MAX_SPAN_BYTES,
            text,
            settings.DEFAULT_MAX_SPAN_BYTES,
        )
        return settings.DEFAULT_MAX_SPAN_BYTES
    return value


def _call_spans_from_environment() -> bool:
    text = settings.env(settings.PROMPTRECORDER_CALL_SPANS)
    if text is None or text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    warn_once(
        logger,
        "call-spans-env",
        "promptrecorder: %s must be `true` or `false`, got %r; making call spans",
        settings.PROMPTRECORDER_CALL_SPANS,
        text,
    )
    return True

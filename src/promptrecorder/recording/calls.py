"""One LLM call from request to recorded pair: its CLIENT span, its metrics and its record.

The bots and the openai instrumentation describe a call with a ``CallRequest``, start an
``LLMCall`` (which returns None outside any recorder: the call then passes through
untouched), and end it exactly once with ``finish`` or ``fail``. Everything that turns a
call into telemetry lives here, whatever API the call went to.

Threading contract: an ``LLMCall`` belongs to one call; ``finish``/``fail`` may run in
another thread or task than ``start`` (a stream consumed elsewhere) and the second of
them is ignored.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue

from promptrecorder._diagnostics import warn_once
from promptrecorder._version import __version__
from promptrecorder.recording import semconv
from promptrecorder.recording.activation import active_chain
from promptrecorder.recording.content import (
    MAX_NAME_LENGTH,
    export_text,
    input_messages_json,
    last_user_text,
    output_messages_json,
)
from promptrecorder.recording.events import (
    add_text,
    add_value,
    describe_exception,
    name_text,
    record_exception,
)
from promptrecorder.recording.pairs import Pair, PreparedMessages, PreparedOutput, store_pair
from promptrecorder.recording.records import PromptRecord
from promptrecorder.recording.redaction import ContentPolicy, RedactionCounter

logger = logging.getLogger(__name__)

# Set while a recorded call is inside the client, so that an instrumented client beneath
# a bot (or a client instrumented twice) does not record the same call again.
_IN_CALL: ContextVar[bool] = ContextVar("promptrecorder_in_call", default=False)

# Bucket boundaries the GenAI metric conventions advise.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
_TOKEN_BUCKETS = [4**n for n in range(14)]

_meter = metrics.get_meter(semconv.INSTRUMENTATION_NAME, __version__)
_duration = _meter.create_histogram(
    semconv.METRIC_INFERENCE_DURATION,
    unit="s",
    description="Duration of GenAI inference operations",
    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
)
_time_to_first_chunk = _meter.create_histogram(
    semconv.METRIC_TIME_TO_FIRST_CHUNK,
    unit="s",
    description="Time to the first chunk of a streamed response",
    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
)
# Counters, for totals (with gen_ai.token.modality, no error.type), then histograms, for
# percentiles (with error.type), as gen-ai-token-metrics.md defines them.
_usage_counters = [
    (_meter.create_counter(name, unit="{token}", description=description), field_name)
    for name, description, field_name in (
        (semconv.METRIC_USAGE_INPUT_TOKENS, "Input tokens used, cached ones included", "input_tokens"),
        (semconv.METRIC_USAGE_OUTPUT_TOKENS, "Output tokens used, reasoning ones included", "output_tokens"),
        (semconv.METRIC_USAGE_CACHE_READ_INPUT_TOKENS, "Input tokens read from a cache", "cache_read_tokens"),
        (
            semconv.METRIC_USAGE_REASONING_OUTPUT_TOKENS,
            "Output tokens spent on reasoning",
            "reasoning_tokens",
        ),
    )
]
_token_histograms = [
    (
        _meter.create_histogram(
            name, unit="{token}", description=description, explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS
        ),
        field_name,
    )
    for name, description, field_name in (
        (semconv.METRIC_OPERATION_INPUT_TOKENS, "Input tokens per inference operation", "input_tokens"),
        (semconv.METRIC_OPERATION_OUTPUT_TOKENS, "Output tokens per inference operation", "output_tokens"),
    )
]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Who serves a call: the GenAI provider name and the server's address."""

    provider: str
    address: str | None = None
    port: int | None = None


_KNOWN_HOSTS = {"api.openai.com": "openai"}


def describe_endpoint(base_url: object, client_type: str = "") -> Endpoint:
    """The provider and server of an OpenAI-compatible client, from its base URL.

    api.openai.com is ``openai``; an Azure client or an ``*.openai.azure.com`` host is
    ``azure.ai.openai``; any other server (vLLM, llama.cpp, Ollama, LiteLLM...) is named by
    its host, since nothing more reliable is known about it.
    """
    return _describe_endpoint(str(base_url), client_type)


@functools.lru_cache(maxsize=256)
def _describe_endpoint(url: str, client_type: str) -> Endpoint:
    # Cached: instrumented calls describe their client's endpoint on every call, and a
    # process talks to few base URLs. Endpoint is frozen, so one instance may be shared.
    parts = urlsplit(url)
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80 if parts.scheme == "http" else None)
    except ValueError:
        port = None
    if "Azure" in client_type or (host or "").endswith(".openai.azure.com"):
        provider = "azure.ai.openai"
    else:
        provider = _KNOWN_HOSTS.get(host or "", host or "openai")
    return Endpoint(provider, host, port)


# Not frozen, here and for the prepared content in pairs.py: each is built once per call and
# only read after, and a frozen dataclass's __init__ costs ~3 times a plain one's.
@dataclass(slots=True)
class CallRequest:
    """What was asked: the messages in openai's chat format and the request parameters.

    ``params`` maps ``gen_ai.request.*`` attribute names to values.
    """

    endpoint: Endpoint
    model: str | None
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, AttributeValue] = field(default_factory=dict)
    stream: bool = False
    operation: str = semconv.OPERATION_CHAT
    conversation_id: str | None = None


@dataclass
class CallResult:
    """What came back, as far as it came."""

    text: str = ""
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None


def inside_call() -> _InsideCall:
    """Mark the code inside (``with inside_call():``) as part of a call already being recorded."""
    return _InsideCall()


class _InsideCall:
    # A class rather than @contextmanager: this wraps every recorded call, and a generator
    # based context manager costs about three times as much to enter and leave.
    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _IN_CALL.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _IN_CALL.reset(self._token)


class LLMCall:
    """A call being recorded. Make one with ``LLMCall.start``; end it with finish or fail."""

    def __init__(self, request: CallRequest, chain: tuple[Any, ...], span: Span) -> None:
        self.request = request
        self._chain = chain
        self._span = span
        self._started_ns = time.time_ns()
        self._started_perf = time.perf_counter()
        self._first_chunk_s: float | None = None
        self._ended = False
        self._lock = threading.Lock()
        self._prepared: PreparedMessages | None = None
        self._output: PreparedOutput | None = None

    @classmethod
    def start(cls, request: CallRequest) -> LLMCall | None:
        """Begin recording ``request``; None outside any recorder or inside a recorded call."""
        chain = active_chain()
        if not chain or _IN_CALL.get() or not chain[-1].policy.records:
            return None
        recorder = chain[-1].recorder
        policy = chain[-1].policy
        if request.conversation_id is None:  # a bot's own conversation, else the recorder's
            request.conversation_id = chain[-1].conversation_id
        span: Span = trace.INVALID_SPAN
        prepared = None
        try:
            # The model name passes the policy here for the span, and again for the pair's
            # record, where it is counted.
            model = _policy_text(policy, request.model)
            name = name_text(f"{request.operation} {model}" if model else request.operation)
            attributes = _request_attributes(request, model, recorder.max_content_length)
            span = chain[-1].spans.start(name, None, attributes, SpanKind.CLIENT)
            if span.is_recording() and request.messages and policy.keeps_text:
                limit = recorder.max_content_length
                # Counted apart, and added to the recorder's counts when the pair is stored,
                # which then reuses these messages and their JSON rather than redo both.
                counts = RedactionCounter()
                messages = policy.messages(request.messages, counts)
                text = input_messages_json(messages, limit, recorder.max_span_bytes // 2)
                span.set_attribute(semconv.GEN_AI_INPUT_MESSAGES, text)
                prepared = PreparedMessages(messages, counts, limit, text)
        except Exception as error:  # telemetry must never stop the call
            warn_once(logger, "call-span", "promptrecorder could not start a span for an LLM call: %r", error)
        call = cls(request, chain, span)
        call._prepared = prepared
        return call

    @property
    def span(self) -> Span:
        return self._span

    def first_chunk(self) -> None:
        """Note the arrival of the first streamed chunk (for time to first chunk)."""
        if self._first_chunk_s is None:
            self._first_chunk_s = time.perf_counter() - self._started_perf

    def finish(self, result: CallResult, *, complete: bool = True) -> PromptRecord | None:
        """End a call that returned (a stream closed early is ``complete=False``)."""
        return self._end(result, None, complete)

    def fail(self, error: BaseException, partial: CallResult | None = None) -> PromptRecord | None:
        """End a call that raised; ``partial`` is what a stream delivered before it failed."""
        return self._end(partial or CallResult(), error, False)

    def _end(self, result: CallResult, error: BaseException | None, complete: bool) -> PromptRecord | None:
        with self._lock:
            if self._ended:
                return None
            self._ended = True
        ended_ns = time.time_ns()
        duration_s = time.perf_counter() - self._started_perf
        try:
            self._describe_outcome(result, error, complete)
        except Exception as failure:  # telemetry must never break the caller
            warn_once(
                logger, "call-end", "promptrecorder could not describe an LLM call's outcome: %r", failure
            )
        finally:
            self._span.end()  # on every path: a span left open would never be exported
        try:
            self._record_metrics(result, error, duration_s)
        except Exception as failure:
            warn_once(
                logger, "call-metrics", "promptrecorder could not record an LLM call's metrics: %r", failure
            )
        error_text = None if error is None else describe_exception(error)
        try:
            return self._store(result, error_text, complete, ended_ns)
        except Exception as failure:  # e.g. a redaction hook that raised: never the caller's problem
            warn_once(logger, "call-record", "promptrecorder could not record an LLM call: %r", failure)
            return None

    def _store(
        self, result: CallResult, error_text: str | None, complete: bool, ended_ns: int
    ) -> PromptRecord | None:
        request = self.request
        return store_pair(
            self._chain,
            Pair(
                prompt=last_user_text(request.messages) if request.messages else "",
                messages=request.messages,
                response=result.text,
                request_model=request.model,
                response_model=result.response_model,
                started_ns=self._started_ns,
                started_at=datetime.fromtimestamp(self._started_ns / 1e9, timezone.utc),
                ended_ns=ended_ns,
                ended_at=datetime.fromtimestamp(ended_ns / 1e9, timezone.utc),
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                provider=request.endpoint.provider,
                conversation_id=request.conversation_id,
                call_span=self._span if self._span.get_span_context().is_valid else None,
                finish_reasons=result.finish_reasons or None,
                tool_calls=result.tool_calls or None,
                error=error_text,
                complete=complete,
                prepared=self._prepared,
                prepared_output=self._output,
            ),
        )

    def _describe_outcome(self, result: CallResult, error: BaseException | None, complete: bool) -> None:
        """Set the response attributes, and the error if any, on the CLIENT span."""
        span = self._span
        if span.is_recording():
            policy = self._chain[-1].policy
            attributes: dict[str, AttributeValue] = {}
            for key, text in (
                (semconv.GEN_AI_RESPONSE_MODEL, result.response_model),
                (semconv.GEN_AI_RESPONSE_ID, result.response_id),
            ):
                text = _policy_text(policy, text)
                if text is not None:
                    add_text(attributes, key, text, MAX_NAME_LENGTH)
            optional: dict[str, AttributeValue | None] = {
                semconv.GEN_AI_USAGE_INPUT_TOKENS: result.input_tokens,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: result.output_tokens,
                semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: result.cache_read_tokens,
                semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: result.cache_write_tokens,
                semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: result.reasoning_tokens,
                semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: self._first_chunk_s,
            }
            attributes.update({key: value for key, value in optional.items() if value is not None})
            if result.finish_reasons:
                attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [
                    export_text(reason, MAX_NAME_LENGTH)[0] for reason in result.finish_reasons
                ]
            if (result.text or result.tool_calls) and policy.keeps_text:
                limit = self._chain[-1].recorder.max_content_length
                # As for the input: counted apart, and reused by the pair's record and
                # response event, which would otherwise scrub and build the same again.
                counts = RedactionCounter()
                text = policy.text(result.text, counts)
                tool_calls = policy.tool_calls(result.tool_calls, counts)
                max_bytes = self._chain[-1].recorder.max_span_bytes // 2
                output = output_messages_json(text, result.finish_reasons, tool_calls, limit, max_bytes)
                attributes[semconv.GEN_AI_OUTPUT_MESSAGES] = output
                self._output = PreparedOutput(text, tool_calls, counts, limit, output)
            failed = isinstance(error, Exception)  # as use_span: a cancellation is no failure
            if not complete and not failed:
                attributes[semconv.RESPONSE_COMPLETE] = False
            span.set_attributes(attributes)
            if isinstance(error, Exception):
                record_exception(span, policy, error, self._chain[-1].recorder.max_content_length)

    def _record_metrics(self, result: CallResult, error: BaseException | None, duration_s: float) -> None:
        request = self.request
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: request.operation,
            semconv.GEN_AI_PROVIDER_NAME: request.endpoint.provider,
        }
        if request.model:
            attributes[semconv.GEN_AI_REQUEST_MODEL] = request.model
        if result.response_model:
            attributes[semconv.GEN_AI_RESPONSE_MODEL] = result.response_model
        if request.endpoint.address:
            attributes[semconv.SERVER_ADDRESS] = request.endpoint.address
        if request.endpoint.port:
            attributes[semconv.SERVER_PORT] = request.endpoint.port
        # Recorded for every call, failed ones included, with 0 for usage not received.
        counted = {**attributes, semconv.GEN_AI_TOKEN_MODALITY: semconv.TOKEN_MODALITY_UNKNOWN}
        for counter, field_name in _usage_counters:
            counter.add(getattr(result, field_name) or 0, counted)
        if self._first_chunk_s is not None:
            _time_to_first_chunk.record(self._first_chunk_s, attributes)
        if isinstance(error, Exception):
            attributes[semconv.ERROR_TYPE] = type(error).__qualname__
        _duration.record(duration_s, attributes)
        for histogram, field_name in _token_histograms:
            histogram.record(getattr(result, field_name) or 0, attributes)


def _policy_text(policy: ContentPolicy, text: str | None) -> str | None:
    """A name for the CLIENT span through ``policy`` (uncounted: the pair's record counts it);
    None when the policy's ``redact`` hook fails on it, so that the span still starts."""
    if not text:
        return None
    try:
        return policy.text(text, RedactionCounter())
    except Exception as error:
        warn_once(
            logger, "call-name-policy", "promptrecorder: the content policy failed on a model name: %r", error
        )
        return None


def _request_attributes(
    request: CallRequest, model: str | None, limit: int | None
) -> dict[str, AttributeValue]:
    """The CLIENT span's request attributes, each bounded (``model``: the request's, scrubbed)."""
    endpoint = request.endpoint
    attributes: dict[str, AttributeValue] = {semconv.GEN_AI_OPERATION_NAME: request.operation}
    add_text(attributes, semconv.GEN_AI_PROVIDER_NAME, endpoint.provider, MAX_NAME_LENGTH)
    for key, value in request.params.items():
        add_value(attributes, key, value, limit)
    if model:
        add_text(attributes, semconv.GEN_AI_REQUEST_MODEL, model, MAX_NAME_LENGTH)
    if request.stream:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    if request.conversation_id is not None:
        add_text(attributes, semconv.GEN_AI_CONVERSATION_ID, request.conversation_id, MAX_NAME_LENGTH)
    if endpoint.address:
        add_text(attributes, semconv.SERVER_ADDRESS, endpoint.address, MAX_NAME_LENGTH)
    if endpoint.port:
        attributes[semconv.SERVER_PORT] = endpoint.port
    return attributes

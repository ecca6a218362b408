"""``promptrecorder check``: send one test span and find out exactly what became of it.

The check does what a configured application does (it sends through the sender
``configure()`` builds, ``senders.build_sender``, with the endpoint, protocol and headers
resolved as ``configure()`` resolves them, the span encoded by ``otlp_encode``), but with
a TracerProvider of its own, synchronously, and watching closely:

1. **Probe.** A TCP connection to the endpoint, and for ``https://`` a TLS handshake, tells a
   refused connection, an unknown host, a silent network and a TLS mismatch apart in well
   under a second.
2. **Send.** One span carrying one prompt/response pair is encoded and sent in one attempt;
   the sender's ``SendResult`` says what the server answered (status, its message, a
   redirect, spans rejected) or what the attempt ran into, with credentials masked.

What it found is an ``Outcome``; ``promptrecorder.cli.check_report`` turns it into sentences.
Header values (credentials) are sent, never kept in an ``Outcome`` nor printed.

This module holds the entry points (``resolve_target``, ``run_check``) and the sending of
the test span. The rest lives beside it: ``check_outcome`` (``Problem``, ``Outcome``, both
re-exported here), ``check_probe`` (the probe and its TLS helpers) and ``check_replies``
(what the sender's result means).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util.re import parse_env_headers

from promptrecorder import settings

# `name as name`: re-exported; check_report and the tests import them from promptrecorder.cli.check.
from promptrecorder.cli.check_outcome import Outcome as Outcome
from promptrecorder.cli.check_outcome import Problem as Problem
from promptrecorder.cli.check_probe import completes_tls_handshake, probe
from promptrecorder.cli.check_replies import outcome_of
from promptrecorder.credentials import mask_url
from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.export.otlp_send import resolve_options, resolve_protocol
from promptrecorder.export.senders import build_sender
from promptrecorder.recording.pairs import autorecord
from promptrecorder.recording.recorder import PromptRecorder

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_SERVICE_NAME = "promptrecorder-check"
# The test span and the pair it carries; a person finds them by these names in a backend.
CHECK_SPAN_NAME = "promptrecorder-check"
CHECK_PROMPT = "promptrecorder check: is this prompt delivered?"
CHECK_RESPONSE = "Yes: this response reached the collector with its prompt."
CHECK_MODEL = "promptrecorder-check"
CHECK_INPUT_TOKENS = 7
CHECK_OUTPUT_TOKENS = 9


@dataclass(frozen=True)
class Target:
    """Where and how the test span goes. ``headers`` are sent and never printed."""

    url: str
    protocol: str
    headers: Mapping[str, str] = field(repr=False)
    header_source: str | None
    timeout: float
    service_name: str

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme.lower()

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme.lower() == "https" else 80)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def shown_url(self) -> str:
        """The URL without a password in it, for printing."""
        return mask_url(self.url)


def resolve_target(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    service_name: str | None = None,
) -> Target:
    """The target ``configure()`` would export to, given the same flags and ``OTEL_*`` variables.

    Args:
        endpoint: as ``configure(endpoint=)``; else the ``OTEL_*`` endpoint variables.
        protocol: ``"grpc"`` or ``"http/protobuf"``; else the ``OTEL_*`` protocol variables.
        headers: ``"key=value"`` items; when given, they replace the header variables.
        timeout: seconds the probe and the export may each take.
        service_name: ``service.name`` of the test span; else ``OTEL_SERVICE_NAME``.

    Raises:
        ValueError: an argument, or the variable it falls back to, is malformed.
    """
    chosen = resolve_protocol(protocol)
    # The sender's own resolution (and its messages, credentials masked); headers are ours.
    url = resolve_options(chosen, endpoint, {}, timeout, None).url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the endpoint must be an http:// or https:// URL with a host, got {mask_url(url)!r}"
        )
    sent, source = _resolve_headers(headers)
    resolve_options(chosen, url, sent, timeout, None)  # the sender would refuse these headers at once
    return Target(
        url=url,
        protocol=chosen,
        headers=sent,
        header_source=source,
        timeout=float(timeout),
        service_name=service_name or settings.env(settings.OTEL_SERVICE_NAME) or DEFAULT_SERVICE_NAME,
    )


def _resolve_headers(items: Sequence[str] | None) -> tuple[dict[str, str], str | None]:
    if items:
        headers = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                # The item may be a bare credential: say what is wrong without echoing it.
                raise ValueError("`--header` must be key=value, got an item without a key and '='")
            headers[key.strip().lower()] = value.strip()
        return headers, "--header"
    for name in (settings.OTEL_EXPORTER_OTLP_TRACES_HEADERS, settings.OTEL_EXPORTER_OTLP_HEADERS):
        raw = settings.env(name)
        if raw is not None:
            # The exporters' own parser: values are URL-decoded, as the specification says.
            return dict(parse_env_headers(raw, liberal=True)), name
    return {}, None


def run_check(target: Target) -> Outcome:
    """Probe the endpoint, then send the test span through configure()'s sender; never raises."""
    started = time.monotonic()
    outcome = probe(target)
    if outcome is None:
        outcome = send_test_span(target)
        if (
            outcome.problem is Problem.CONNECTION_CLOSED
            and target.scheme == "http"
            and completes_tls_handshake(target)
        ):
            outcome = replace(outcome, problem=Problem.TLS_REQUIRED)
    return replace(outcome, elapsed_s=time.monotonic() - started)


# --- sending the test span ------------------------------------------------------------


def send_test_span(target: Target) -> Outcome:
    """Record one recorder span with one prompt/response pair (and the pair's call span) and
    send them, in one request, in one attempt."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: target.service_name}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(spans))
    try:
        recorder = PromptRecorder(CHECK_SPAN_NAME, tracer_provider=provider)
        with recorder:  # the span ends, and is kept, as the block ends
            record = autorecord(
                CHECK_PROMPT,
                CHECK_RESPONSE,
                model=CHECK_MODEL,
                started_at=datetime.now(timezone.utc),
                input_tokens=CHECK_INPUT_TOKENS,
                output_tokens=CHECK_OUTPUT_TOKENS,
                check=True,
            )
    finally:
        provider.shutdown()
    trace_id = record.trace_id if record is not None else None
    try:
        sender = build_sender(target.protocol, target.url, target.headers, target.timeout)
    except (TypeError, ValueError) as error:  # resolve_target checked the same: a variable changed since
        return Outcome(Problem.UNKNOWN, str(error), trace_id=trace_id)
    try:
        result = sender.send(encode_request(spans.get_finished_spans()), target.timeout)
    finally:
        sender.close()
    return replace(outcome_of(result), trace_id=trace_id)

"""``promptrecorder check``: send one test span and find out exactly what became of it.

The check does what a configured application does (the OTLP exporter ``configure()`` builds
for the chosen protocol: the stock one, encoding with ``otlp_encode``; the endpoint,
protocol and headers resolved as ``configure()`` resolves them),
but with a TracerProvider of its own, synchronously, and watching closely:

1. **Probe.** A TCP connection to the endpoint, and for ``https://`` a TLS handshake, tells a
   refused connection, an unknown host, a silent network and a TLS mismatch apart in well
   under a second, where the exporter would retry until its timeout and then say "failed".
2. **Send.** One span carrying one prompt/response pair goes through that exporter
   wrapped in ``DeliveryExporter``, which keeps the exporter's own words about a failure
   (for gRPC the status code and details). For OTLP/HTTP a ``requests`` session of our own
   also keeps the server's reply: status, body text, redirect target.

What it found is an ``Outcome``; ``promptrecorder.check_report`` turns it into sentences.
Header values (credentials) are sent, never kept in an ``Outcome`` nor printed.

This module holds the entry points (``resolve_target``, ``run_check``) and the sending of
the test span. The rest lives beside it: ``check_outcome`` (``Problem``, ``Outcome``, both
re-exported here), ``check_probe`` (the probe and its TLS helpers) and ``check_replies``
(what the replies mean: the HTTP reply, a ``requests`` error, the gRPC exporter's words).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.util.re import parse_env_headers

from promptrecorder import settings
from promptrecorder._diagnostics import logger as promptrecorder_logger

# `name as name`: re-exported; check_report and the tests import them from promptrecorder.check.
from promptrecorder.check_outcome import Outcome as Outcome
from promptrecorder.check_outcome import Problem as Problem
from promptrecorder.check_probe import _completes_tls_handshake, probe
from promptrecorder.check_replies import _http_outcome, _RecordingSession, grpc_outcome
from promptrecorder.check_replies import _partially_rejected as _partially_rejected
from promptrecorder.check_replies import http_error_outcome as http_error_outcome
from promptrecorder.check_replies import server_message as server_message
from promptrecorder.delivery import DeliveryExporter
from promptrecorder.pairs import autorecord
from promptrecorder.recorder import PromptRecorder
from promptrecorder.telemetry import resolve_endpoint, resolve_protocol

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
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
        return parts._replace(netloc=netloc).geturl()


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
    url = resolve_endpoint(endpoint, chosen)
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as error:
        raise ValueError(f"the endpoint's port is not valid in {url!r}: {error}") from error
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the endpoint must be an http:// or https:// URL with a host, got {url!r}")
    if not timeout > 0:
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    sent, source = _resolve_headers(headers)
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
    """Probe the endpoint, then send the test span through configure()'s exporter; never raises."""
    started = time.monotonic()
    outcome = probe(target)
    if outcome is None:
        outcome = send_test_span(target)
        if (
            outcome.problem is Problem.CONNECTION_CLOSED
            and target.scheme == "http"
            and _completes_tls_handshake(target)
        ):
            outcome = replace(outcome, problem=Problem.TLS_REQUIRED)
    return replace(outcome, elapsed_s=time.monotonic() - started)


# --- sending the test span ------------------------------------------------------------


def send_test_span(target: Target) -> Outcome:
    """Export one recorder span with one prompt/response pair, synchronously."""
    session = _RecordingSession() if target.protocol != "grpc" else None
    delivery = DeliveryExporter(_otlp_exporter(target, session), target.url)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: target.service_name}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(delivery))
    trace_id = None
    try:
        with _quiet(promptrecorder_logger):
            recorder = PromptRecorder(CHECK_SPAN_NAME, tracer_provider=provider)
            with recorder:  # the span is exported, synchronously, as the block ends
                started = datetime.now(timezone.utc)
                record = autorecord(
                    CHECK_PROMPT,
                    CHECK_RESPONSE,
                    model=CHECK_MODEL,
                    started_at=started,
                    input_tokens=CHECK_INPUT_TOKENS,
                    output_tokens=CHECK_OUTPUT_TOKENS,
                    check=True,
                )
            trace_id = record.trace_id if record is not None else None
    finally:
        provider.shutdown()
    stats = delivery.stats()
    accepted = stats.exported_spans > 0 and stats.failed_spans == 0
    if session is not None:
        outcome = _http_outcome(session, accepted, stats.last_error)
    else:
        outcome = Outcome(Problem.NONE) if accepted else grpc_outcome(stats.last_error)
    return replace(outcome, trace_id=trace_id)


def _otlp_exporter(target: Target, session: _RecordingSession | None) -> SpanExporter:
    """The OTLP exporter configure() builds for this target: the stock one, our encoder."""
    from promptrecorder.otlp_exporters import HttpSpanExporter, grpc_exporter  # grpc loads only when used

    headers = dict(target.headers)
    if target.protocol == "grpc":
        exporter: SpanExporter = grpc_exporter(endpoint=target.url, headers=headers, timeout=target.timeout)
        return exporter
    return HttpSpanExporter(endpoint=target.url, headers=headers, timeout=target.timeout, session=session)


class _HoldBack(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Hold back the delivery warning meant for services: the check reports for itself."""
    hold = _HoldBack()
    logger.addFilter(hold)
    try:
        yield
    finally:
        logger.removeFilter(hold)

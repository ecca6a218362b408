"""``promptrecorder check``: send one test span and find out exactly what became of it.

The check does what a configured application does (the stock OTLP exporter of the chosen
protocol; the endpoint, protocol and headers resolved as ``configure()`` resolves them),
but with a TracerProvider of its own, synchronously, and watching closely:

1. **Probe.** A TCP connection to the endpoint, and for ``https://`` a TLS handshake, tells a
   refused connection, an unknown host, a silent network and a TLS mismatch apart in well
   under a second, where the exporter would retry until its timeout and then say "failed".
2. **Send.** One span carrying one prompt/response pair goes through the stock exporter
   wrapped in ``DeliveryExporter``, which keeps the exporter's own words about a failure
   (for gRPC the status code and details). For OTLP/HTTP a ``requests`` session of our own
   also keeps the server's reply: status, body text, redirect target.

What it found is an ``Outcome``; ``promptrecorder.check_report`` turns it into sentences.
Header values (credentials) are sent, never kept in an ``Outcome`` nor printed.
"""

from __future__ import annotations

import enum
import json
import logging
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests  # the OTLP/HTTP exporter's own dependency
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_CERTIFICATE,
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.util.re import parse_env_headers

from promptrecorder import settings
from promptrecorder._diagnostics import logger as promptrecorder_logger
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

# Longest server message kept; a proxy's HTML error page need not be printed whole.
_MAX_MESSAGE_CHARS = 300
# Variables with which requests overrides a session's CA file (psf/requests#3829).
_REQUESTS_CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
# OpenSSL reasons for a handshake answered in plain text (the server does not speak TLS).
_PLAIN_TEXT_REPLIES = frozenset(
    {"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
)


class Problem(enum.Enum):
    """What stood between the test span and the collector (``NONE``: it was accepted)."""

    NONE = "accepted"
    UNRESOLVED = "unknown host"
    REFUSED = "connection refused"
    UNREACHABLE = "network unreachable"
    TIMEOUT = "timeout"
    TLS_NOT_SPOKEN = "the server does not speak TLS"
    TLS_UNTRUSTED = "TLS certificate not trusted"
    TLS_CA_OVERRIDDEN = "the CA file was overridden by REQUESTS_CA_BUNDLE"
    TLS_FAILED = "TLS handshake failed"
    TLS_REQUIRED = "the server speaks only TLS"
    CONNECTION_CLOSED = "connection closed without an answer"
    WRONG_PROTOCOL = "wrong protocol for this port"
    REDIRECTED = "redirected"
    HTTP_STATUS = "HTTP error status"
    GRPC_STATUS = "gRPC error status"
    REJECTED = "spans rejected"
    UNKNOWN = "export failed"


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


@dataclass(frozen=True)
class Outcome:
    """What happened to the test span.

    ``status`` is the server's verdict when it gave one (``"400 Bad Request"``, a gRPC code
    name such as ``"UNAUTHENTICATED"``); ``detail`` what was observed, in the words of the
    server, the TLS library or the exporter.
    """

    problem: Problem
    detail: str = ""
    status: str | None = None
    http_status: int | None = None
    trace_id: str | None = None
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.problem is Problem.NONE


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
    """Probe the endpoint, then send the test span through the stock exporter; never raises."""
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
        elif outcome.problem is Problem.TLS_UNTRUSTED and target.protocol != "grpc":
            # The probe trusted the certificate with the CA file the exporter was given, yet
            # the export did not: requests lets these variables override the session's CA
            # file (psf/requests#3829), and the stock OTLP/HTTP exporter sets it on a session.
            overriding = [name for name in _REQUESTS_CA_VARIABLES if settings.env(name)]
            if overriding and _ca_file() is not None:
                outcome = replace(outcome, problem=Problem.TLS_CA_OVERRIDDEN, detail=" and ".join(overriding))
    return replace(outcome, elapsed_s=time.monotonic() - started)


# --- the probe ------------------------------------------------------------------------


def probe(target: Target) -> Outcome | None:
    """A failure found by connecting (and for https, shaking hands); None when it went well."""
    if _behind_proxy(target):
        return None  # the exporter talks to the proxy, not to the endpoint: let it tell
    try:
        sock = socket.create_connection((target.host, target.port), timeout=target.timeout)
    except socket.gaierror as error:
        return Outcome(Problem.UNRESOLVED, str(error.strerror or error))
    except ConnectionRefusedError:
        return Outcome(Problem.REFUSED, "connection refused")
    except TimeoutError:
        return Outcome(Problem.TIMEOUT, f"no answer to a TCP connection within {target.timeout:g} s")
    except OSError as error:
        return Outcome(Problem.UNREACHABLE, str(error.strerror or error))
    with sock:
        if target.scheme != "https":
            return None
        return _handshake(sock, target)


def _handshake(sock: socket.socket, target: Target) -> Outcome | None:
    context = _tls_context(target)
    try:
        with context.wrap_socket(sock, server_hostname=target.host):
            return None
    except ssl.SSLCertVerificationError as error:
        return Outcome(Problem.TLS_UNTRUSTED, str(error.verify_message or error.reason or error))
    except ssl.SSLError as error:
        if error.reason in _PLAIN_TEXT_REPLIES:
            return Outcome(Problem.TLS_NOT_SPOKEN, f"the TLS library says {error.reason!s}")
        return Outcome(Problem.TLS_FAILED, str(error.reason or error))
    except TimeoutError:
        return Outcome(
            Problem.TLS_FAILED,
            f"no answer to the TLS handshake within {target.timeout:g} s; the server may not speak TLS",
        )
    except OSError as error:
        return Outcome(Problem.TLS_FAILED, str(error.strerror or error))


def _ca_file() -> str | None:
    """The CA file the exporters are told to trust: the traces variable, then the general one."""
    return settings.env(OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE) or settings.env(OTEL_EXPORTER_OTLP_CERTIFICATE)


def _tls_context(target: Target) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=_ca_file())
    if target.protocol == "grpc":
        context.set_alpn_protocols(["h2"])
    return context


def _completes_tls_handshake(target: Target) -> bool:
    """Whether the endpoint speaks TLS (certificate not checked): was https:// meant?"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((target.host, target.port), timeout=target.timeout) as sock,
            context.wrap_socket(sock, server_hostname=target.host),
        ):
            return True
    except OSError:
        return False


def _behind_proxy(target: Target) -> bool:
    if urllib.request.proxy_bypass(target.host):
        return False
    proxies = urllib.request.getproxies()
    names = ("grpc", "https", "all") if target.protocol == "grpc" else (target.scheme, "all")
    return any(proxies.get(name) for name in names)


# --- sending the test span ------------------------------------------------------------


def send_test_span(target: Target) -> Outcome:
    """Export one recorder span with one prompt/response pair, synchronously."""
    session = _RecordingSession() if target.protocol != "grpc" else None
    delivery = DeliveryExporter(_stock_exporter(target, session), target.url)
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


def _stock_exporter(target: Target, session: _RecordingSession | None) -> SpanExporter:
    headers = dict(target.headers)
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # loads grpc only when used
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=target.url, headers=headers, timeout=target.timeout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=target.url, headers=headers, timeout=target.timeout, session=session)


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


# --- what the replies mean ------------------------------------------------------------


class _RecordingSession(requests.Session):
    """A requests session that keeps the last reply or transport error the exporter saw."""

    def __init__(self) -> None:
        super().__init__()
        self.last_response: Any = None
        self.last_body = b""
        self.last_error: Exception | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.last_response, self.last_body, self.last_error = None, b"", None
        try:
            response = super().request(*args, **kwargs)
        except Exception as error:
            self.last_error = error
            raise
        self.last_response, self.last_body = response, response.content or b""
        return response


def _http_outcome(session: _RecordingSession, accepted: bool, exporter_said: str | None) -> Outcome:
    response = session.last_response
    if response is not None:
        code = int(response.status_code)
        status = f"{code} {response.reason or ''}".strip()
        content_type = str(response.headers.get("content-type", ""))
        if 300 <= code < 400:
            # The stock exporter counts any status below 400 as delivered, without following.
            where = response.headers.get("location") or "an unnamed location"
            return Outcome(Problem.REDIRECTED, f"to {where}", status, code)
        if code >= 400:
            return Outcome(Problem.HTTP_STATUS, server_message(session.last_body, content_type), status, code)
        rejected = _partially_rejected(session.last_body, content_type)
        if rejected is not None:
            return Outcome(Problem.REJECTED, rejected, status, code)
        if accepted:
            return Outcome(Problem.NONE, status=status, http_status=code)
    error = session.last_error
    if error is not None:
        return http_error_outcome(error)
    return Outcome(Problem.UNKNOWN, exporter_said or "the exporter reported a failure")


def http_error_outcome(error: Exception) -> Outcome:
    """Classify a transport error of ``requests`` (no reply was received)."""
    text = _one_line(str(error))
    exceptions = requests.exceptions
    if isinstance(error, exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return Outcome(Problem.TLS_UNTRUSTED, text)
        if any(reason in text for reason in _PLAIN_TEXT_REPLIES):
            return Outcome(Problem.TLS_NOT_SPOKEN, text)
        return Outcome(Problem.TLS_FAILED, text)
    if isinstance(error, exceptions.Timeout):
        return Outcome(Problem.TIMEOUT, text)
    if isinstance(error, exceptions.ConnectionError):
        if "refused" in text.lower():
            return Outcome(Problem.REFUSED, text)
        if "BadStatusLine" in text and "\\x00\\x00" in text:
            # The reply began with binary HTTP/2 frames: a gRPC server's answer to HTTP/1.1.
            return Outcome(Problem.WRONG_PROTOCOL, "it answered with HTTP/2 frames, as a gRPC port does")
        if "NameResolution" in text or "not known" in text:
            return Outcome(Problem.UNRESOLVED, text)
        return Outcome(Problem.CONNECTION_CLOSED, text)
    return Outcome(Problem.UNKNOWN, f"{type(error).__name__}: {text}")


def server_message(body: bytes, content_type: str) -> str:
    """The text of an error reply: a ``google.rpc.Status`` message, JSON ``message``, or the text."""
    if not body:
        return ""
    if "protobuf" in content_type:
        from google.rpc import status_pb2  # type: ignore[import-untyped]  # ships no py.typed

        status = status_pb2.Status()
        try:
            status.ParseFromString(body)
        except Exception:  # not a Status after all: show what can be shown
            return _shorten(body.decode("utf-8", "replace"))
        return _shorten(status.message)
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return _shorten(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return _shorten(data["message"])
    return _shorten(text)


def _partially_rejected(body: bytes, content_type: str) -> str | None:
    """``"N spans: message"`` when a 2xx reply says some spans were rejected, else None."""
    if not body:
        return None
    rejected, message = 0, ""
    if "protobuf" in content_type:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        try:
            response.ParseFromString(body)
        except Exception:  # a 2xx with a body that is not OTLP: not ours to judge
            return None
        rejected = response.partial_success.rejected_spans
        message = response.partial_success.error_message
    elif "json" in content_type:
        try:
            partial = json.loads(body).get("partialSuccess") or {}
            rejected, message = int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        except (ValueError, AttributeError, TypeError):
            return None
    if rejected <= 0:
        return None
    return f"{rejected} span{'s' if rejected != 1 else ''}" + (f": {_shorten(message)}" if message else "")


_GRPC_CODE = re.compile(r"StatusCode\.([A-Z_]+)")
_GRPC_DETAILS = re.compile(r"error details: (.*)$", re.IGNORECASE | re.DOTALL)


def grpc_outcome(exporter_said: str | None) -> Outcome:
    """Classify what the stock gRPC exporter logged about its failed export."""
    said = exporter_said or ""
    code_match = _GRPC_CODE.search(said)
    if code_match is None:
        return Outcome(Problem.UNKNOWN, said or "the exporter reported a failure")
    code = code_match.group(1)
    details_match = _GRPC_DETAILS.search(said)
    details = _one_line(details_match.group(1)) if details_match else ""
    lowered = details.lower()
    if code == "UNAVAILABLE":
        if "http1" in lowered or "http status" in lowered or "parsing http/2" in lowered:
            return Outcome(Problem.WRONG_PROTOCOL, details, code)
        if "refused" in lowered:
            return Outcome(Problem.REFUSED, details, code)
        if "handshake" in lowered or "ssl" in lowered or "certificate" in lowered:
            return Outcome(Problem.TLS_FAILED, details, code)
        if "socket closed" in lowered or "reset" in lowered or "end of tcp stream" in lowered:
            return Outcome(Problem.CONNECTION_CLOSED, details, code)
    if code == "DEADLINE_EXCEEDED":
        return Outcome(Problem.TIMEOUT, details, code)
    return Outcome(Problem.GRPC_STATUS, details, code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 1] + "…"

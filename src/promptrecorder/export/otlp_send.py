"""Sending OTLP trace request bytes: one attempt, one classified answer.

The stock OTLP exporters size nothing in bytes, retry and log on their own, and say only
SUCCESS/FAILURE. Delivery needs to tell a request refused for its size (split it) from an
outage (retry or spool it) from a refusal no retry will cure. So we send the bytes
``otlp_encode.encode_request`` made with senders of our own, through public APIs only
(``requests`` for OTLP/HTTP, grpcio's generic ``unary_unary`` for OTLP/gRPC), and every
attempt comes back as a ``SendResult``.

A sender makes ONE attempt per ``send``: retries, splitting, spooling, counting and logging
are the caller's (``promptrecorder.export.delivery``). ``send`` never raises and never logs.

Example::

    sender = senders.build_sender("grpc", "http://localhost:4317", None, 10.0)
    result = sender.send(encode_request(spans), timeout=10.0)
    if result.splittable:
        ...  # send each half
    sender.close()

Threading: ``send`` may be called from several threads at once; ``close`` ends every later
``send`` with a "closed" result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urlsplit

from opentelemetry.util.re import parse_env_headers

from promptrecorder import settings
from promptrecorder._version import __version__
from promptrecorder.credentials import mask_url

USER_AGENT: Final = f"promptrecorder/{__version__}"
COMPRESSIONS: Final = ("gzip", "deflate", "none")

# What a failed attempt ran into, when it got no usable answer (``SendResult.cause``): the
# CLI's `check` words its diagnosis by these; delivery may name them in its first outage line.
CAUSE_REFUSED: Final = "refused"  # nothing listens there
CAUSE_UNRESOLVED: Final = "unresolved"  # unknown host
CAUSE_TIMEOUT: Final = "timeout"  # no answer within the timeout
CAUSE_TLS_UNTRUSTED: Final = "tls-untrusted"  # the server's certificate is not trusted
CAUSE_TLS_NOT_SPOKEN: Final = "tls-not-spoken"  # https:// to a port that answers in plain text
CAUSE_TLS: Final = "tls"  # another TLS failure
CAUSE_WRONG_PROTOCOL: Final = "wrong-protocol"  # OTLP/HTTP to a gRPC port or the reverse
CAUSE_CLOSED_CONNECTION: Final = "connection-closed"  # taken, then closed without an answer
CAUSE_CONNECTION: Final = "connection"  # another failure to reach the server
CAUSE_REDIRECT: Final = "redirect"  # a 3xx answer, which OTLP does not follow

# A TLS server that requires a client certificate ends the handshake of a client without one;
# the client often hears only that the connection closed. Said when no client certificate is set.
CLIENT_CERTIFICATE_HINT: Final = (
    "; a server that requires a client certificate answers a client without one this way "
    "(OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
)
CAUSE_SENDER_CLOSED: Final = "sender-closed"  # send() after close()
CAUSE_ERROR: Final = "error"  # anything else (a bug of ours, an unexpected library error)

# Longest server message quoted in a reason: a proxy's HTML error page is not wanted whole.
MAX_MESSAGE_CHARS: Final = 300


@dataclass(frozen=True)
class SendResult:
    """What one export attempt came to.

    Attributes:
        delivered: accepted (HTTP 2xx, gRPC OK), possibly with ``rejected_spans`` refused.
        retryable: a transient failure; the same request may pass later (HTTP 408, 429, any 5xx,
            gRPC UNAVAILABLE/DEADLINE_EXCEEDED/ABORTED/CANCELLED/DATA_LOSS, a RESOURCE_EXHAUSTED
            that is not about message size, connection refused or reset, timeout).
        splittable: a permanent refusal that a smaller request may pass (HTTP 400/413, gRPC
            INVALID_ARGUMENT, a RESOURCE_EXHAUSTED naming a message size). Neither retryable nor
            splittable: a refusal no retry cures (401/403/404, UNIMPLEMENTED, a TLS failure...).
        reason: a short phrase naming the cause, credentials masked.
        retry_after: seconds the receiver asked to wait (``Retry-After``, gRPC ``RetryInfo``).
        rejected_spans: ``partial_success.rejected_spans`` of an accepted request.
        status: the HTTP status code or the gRPC status name; None when no answer came.
        cause: for an attempt without a usable answer, one of the ``CAUSE_*`` names; else None.
        detail: the words behind ``reason`` (the server's message, gRPC's details, the TLS or
            socket library's error), masked, on one line; "" when there are none.
    """

    delivered: bool
    retryable: bool
    splittable: bool
    reason: str
    retry_after: float | None = None
    rejected_spans: int = 0
    status: int | str | None = None
    cause: str | None = None
    detail: str = ""


class OtlpSender(Protocol):
    """Sends one ``ExportTraceServiceRequest`` per call; never raises, never logs.

    ``protocol`` is ``"grpc"`` or ``"http/protobuf"``; ``destination`` the endpoint URL with
    credentials masked. ``send`` may be called from several threads at once.
    """

    protocol: str
    destination: str

    def send(self, body: bytes, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SenderOptions:
    """Everything a sender needs, resolved from arguments and ``OTEL_EXPORTER_OTLP_*``."""

    url: str
    headers: Mapping[str, str]
    timeout: float
    compression: str  # one of COMPRESSIONS
    certificate_file: str | None
    client_key_file: str | None
    client_certificate_file: str | None
    insecure: bool  # gRPC only: plain text instead of TLS

    @property
    def destination(self) -> str:
        return mask_url(self.url)


# --- resolving the options --------------------------------------------------------------

# (traces variable, general variable): the traces one wins.
_CERTIFICATE = (settings.OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, settings.OTEL_EXPORTER_OTLP_CERTIFICATE)
_CLIENT_KEY = (settings.OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY, settings.OTEL_EXPORTER_OTLP_CLIENT_KEY)
_CLIENT_CERTIFICATE = (
    settings.OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE,
    settings.OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
)
_INSECURE = (settings.OTEL_EXPORTER_OTLP_TRACES_INSECURE, settings.OTEL_EXPORTER_OTLP_INSECURE)


def resolve_protocol(protocol: str | None) -> str:
    """``protocol``, else the traces or general protocol variable, else the default."""
    if protocol is not None and not isinstance(protocol, str):
        raise TypeError(f"`protocol` must be a str or None, got {type(protocol).__name__}")
    chosen = (
        protocol
        or settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or settings.env(settings.OTEL_EXPORTER_OTLP_PROTOCOL)
        or settings.DEFAULT_PROTOCOL
    )
    if chosen not in settings.PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {settings.PROTOCOLS}, got {chosen!r}")
    return chosen


def resolve_options(
    protocol: str,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
    compression: str | None,
) -> SenderOptions:
    """The sender's options for ``protocol``, from the arguments and the variables."""
    url = _resolve_url(endpoint, protocol)
    scheme = urlsplit(url).scheme.lower()
    return SenderOptions(
        url=url,
        headers=_resolve_headers(headers),
        timeout=_resolve_timeout(timeout),
        compression=_resolve_compression(compression),
        certificate_file=_traces_env(_CERTIFICATE),
        client_key_file=_traces_env(_CLIENT_KEY),
        client_certificate_file=_traces_env(_CLIENT_CERTIFICATE),
        insecure=_resolve_insecure(scheme) if protocol == "grpc" else scheme == "http",
    )


def _traces_env(names: tuple[str, str]) -> str | None:
    """The traces variable of the pair, else the general one."""
    return settings.env(names[0]) or settings.env(names[1])


def _resolve_url(endpoint: str | None, protocol: str) -> str:
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise TypeError(f"`endpoint` must be a str or None, got {type(endpoint).__name__}")
        source = "`endpoint`"
    else:
        traces = settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        if traces is not None:
            return _checked_url(traces, settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, protocol)
        endpoint = settings.env(settings.OTEL_EXPORTER_OTLP_ENDPOINT)
        source = settings.OTEL_EXPORTER_OTLP_ENDPOINT
    if protocol == "grpc":
        return _checked_url(endpoint or settings.DEFAULT_GRPC_ENDPOINT, source, protocol)
    base = (endpoint or settings.DEFAULT_HTTP_ENDPOINT).rstrip("/")
    url = base if base.endswith(settings.HTTP_TRACES_PATH) else base + settings.HTTP_TRACES_PATH
    return _checked_url(url, source, protocol)


def _checked_url(url: str, source: str, protocol: str) -> str:
    if protocol == "grpc" and "://" not in url:
        url = f"//{url}"  # the stock gRPC exporter takes host:port; TLS then follows INSECURE
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        port, parts = -1, None
    scheme_ok = parts is not None and (parts.scheme.lower() in ("http", "https") or protocol == "grpc")
    if (
        parts is None
        or port == -1
        or not parts.hostname
        or not scheme_ok
        or (protocol != "grpc" and not parts.scheme)
    ):
        raise ValueError(
            f"{source} must be a URL (http:// or https://) such as "
            f"'{settings.DEFAULT_GRPC_ENDPOINT if protocol == 'grpc' else settings.DEFAULT_HTTP_ENDPOINT}'"
            f" with a valid host and port, got {mask_url(url.removeprefix('//'))!r}"
        )
    return url.removeprefix("//") if url.startswith("//") else url


def _resolve_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    if headers is not None:
        if not isinstance(headers, Mapping):
            raise TypeError(
                f"`headers` must be a mapping of str to str or None, got {type(headers).__name__}"
            )
        resolved = {}
        for key, value in headers.items():
            if not isinstance(key, str) or not isinstance(value, str) or not key.strip():
                # A value is usually a token: name the key's type, never the value.
                raise TypeError(f"`headers` must map non-empty str names to str values, got the key {key!r}")
            resolved[key.strip().lower()] = value
        return _checked_headers(resolved, "`headers`")
    for name in (settings.OTEL_EXPORTER_OTLP_TRACES_HEADERS, settings.OTEL_EXPORTER_OTLP_HEADERS):
        raw = settings.env(name)
        if raw is not None:
            # The exporters' own parser: values are URL-decoded, as the specification says.
            parsed = {key.lower(): value for key, value in parse_env_headers(raw, liberal=True).items()}
            return _checked_headers(parsed, name)
    return {}


def _checked_headers(headers: dict[str, str], source: str) -> dict[str, str]:
    """Refuse now what HTTP and gRPC would refuse at every send, with an error quoting the value."""
    for key, value in headers.items():
        if any(char in key + value for char in "\r\n\0") or not key.isascii() or any(c in key for c in " :"):
            raise ValueError(
                f"{source} must hold header names without spaces or ':' and values without "
                f"line breaks or NUL, got the header {key!r} (value not shown)"
            )
    return headers


def _resolve_timeout(timeout: float | None) -> float:
    if timeout is not None:
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < float("inf")
        ):
            raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
        return float(timeout)
    for name in (settings.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, settings.OTEL_EXPORTER_OTLP_TIMEOUT):
        raw = settings.env(name)
        if raw is not None:
            try:
                millis = float(raw)
            except ValueError:
                millis = -1.0
            if not 0 < millis < float("inf"):
                raise ValueError(f"{name} must be a positive number of milliseconds, got {raw!r}")
            return millis / 1000
    return float(settings.ENVIRONMENT[settings.OTEL_EXPORTER_OTLP_TIMEOUT][0] or 10_000) / 1000


def _resolve_compression(compression: str | None) -> str:
    source = "`compression`"
    if compression is None:
        for name in (settings.OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, settings.OTEL_EXPORTER_OTLP_COMPRESSION):
            compression = settings.env(name)
            if compression is not None:
                source = name
                break
    chosen = (
        (compression or "none").strip().lower() if isinstance(compression, (str, type(None))) else compression
    )
    if chosen not in COMPRESSIONS:
        raise ValueError(f"{source} must be one of {COMPRESSIONS}, got {compression!r}")
    return str(chosen)


def _resolve_insecure(scheme: str) -> bool:
    """Plain text for gRPC: as the stock exporter, https:// never, else INSECURE, else http://."""
    if scheme == "https":
        return False
    raw = _traces_env(_INSECURE)
    if raw is not None:
        return raw.lower() == "true"
    return scheme == "http"


# --- helpers the senders share -----------------------------------------------------------


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def partial_success(body: bytes) -> tuple[int, str]:
    """``(rejected_spans, error_message)`` of an ``ExportTraceServiceResponse``; (0, "") if none."""
    if not body:
        return 0, ""
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no stubs
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    try:
        response = ExportTraceServiceResponse.FromString(body)
    except (DecodeError, ValueError):
        return 0, ""  # an accepted request whose answer is not OTLP: nothing to read in it
    partial = response.partial_success
    return max(0, int(partial.rejected_spans)), one_line(partial.error_message)


def delivered(status: int | str, said: str, rejected: int, message: str) -> SendResult:
    """An accepted request's result, with what its ``partial_success`` says."""
    if rejected:
        spans = "span" if rejected == 1 else "spans"
        reason = f"{said}, {rejected} {spans} rejected" + (f": {message}" if message else "")
    else:
        reason = said
    return SendResult(True, False, False, reason, rejected_spans=rejected, status=status, detail=message)


def closed_result(destination: str) -> SendResult:
    return SendResult(False, False, False, f"sender closed ({destination})", cause=CAUSE_SENDER_CLOSED)


def unexpected_result(error: BaseException, options: SenderOptions) -> SendResult:
    """A failure no branch foresaw: retryable, since nothing says the request is at fault."""
    said = scrub(str(error), options)
    return SendResult(
        False,
        True,
        False,
        f"{type(error).__name__}: {said} ({options.destination})",
        cause=CAUSE_ERROR,
        detail=said,
    )


def scrub(text: str, options: SenderOptions) -> str:
    """``text`` with the endpoint's credentials and header values masked, on one line."""
    masked = text.replace(options.url, options.destination)
    parts = urlsplit(options.url)
    for secret in (parts.password, *options.headers.values()):
        if secret and len(secret) >= 3:
            masked = masked.replace(secret, "***")
    return one_line(masked)

"""Real OTLP receivers on 127.0.0.1 for integration tests.

The receivers are oteltest's ``GrpcSink`` and ``HttpSink`` (written by an OpenTelemetry
Python maintainer, not by us), bent by small subclasses to bind ``127.0.0.1`` on an
OS-chosen port. What they receive is decoded into plain, comparable ``ReceivedSpan``
objects, so tests assert on Python values instead of protobuf ``AnyValue`` messages.

Example::

    with GrpcReceiver() as receiver:
        exporter = stock_span_exporter(receiver)
        ...  # export spans, shut the provider down
        [span] = receiver.wait_for_spans(1)
        assert span.attributes["gen_ai.system"] == "openai"

Receivers keep the limits the real systems have, so that a test can never pass against a
receiver more lenient than a stock Collector or Jaeger: the gRPC receiver refuses a message
over gRPC's default 4 MiB (``GRPC_MAX_RECEIVE_MESSAGE_BYTES``) with the very status and
text gRPC core gives, and the HTTP receiver refuses a body over the Collector's 20 MiB
(``COLLECTOR_MAX_REQUEST_BODY_BYTES``) with 413. Given a ``refuse_marker``, a receiver also
refuses for good (HTTP 400, gRPC INVALID_ARGUMENT) every request containing that string and
takes everything else: "all but the refused span arrives" can then be tested. Each request
is remembered with its size and outcome (``requests_seen()``), refused ones too.

Every receiver is a context manager: it starts on enter and stops (joining its threads)
on exit. Threading: receivers store what arrives from server threads under a lock; the
query methods (``spans``, ``headers``, ``wait_for_spans``) may be called from any thread.
"""

from __future__ import annotations

import abc
import base64
import gzip
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Final, NamedTuple, TypeVar

import grpc
from google.protobuf.json_format import ParseError
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace.export import SpanExporter
from oteltest.sink import GrpcSink, HttpSink
from oteltest.sink.handler import AccumulatingHandler
from oteltest.sink.private import _LogsServiceServicer, _MetricsServiceServicer

__all__ = [
    "ACCEPTED",
    "COLLECTOR_MAX_REQUEST_BODY_BYTES",
    "GRPC_MAX_RECEIVE_MESSAGE_BYTES",
    "POISONED",
    "TOO_LARGE",
    "FailingHttpReceiver",
    "GrpcReceiver",
    "HttpReceiver",
    "ReceivedEvent",
    "ReceivedLink",
    "ReceivedLogRecord",
    "ReceivedSpan",
    "Receiver",
    "RequestGate",
    "SeenRequest",
    "decode_any_value",
    "rpc_status_body",
    "stock_span_exporter",
    "unused_port",
]

LOOPBACK = "127.0.0.1"
_logger = logging.getLogger(__name__)

# gRPC core's default for a server's largest message (GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH);
# the Collector's and Jaeger's OTLP gRPC receivers keep it (`max_recv_msg_size_mib: 4`).
GRPC_MAX_RECEIVE_MESSAGE_BYTES: Final = 4 * 1024 * 1024
# The Collector's confighttp `max_request_body_size` default; over it the body is refused with 413.
COLLECTOR_MAX_REQUEST_BODY_BYTES: Final = 20 * 1024 * 1024

# What a receiver did with a request (``SeenRequest.outcome``).
ACCEPTED: Final = "accepted"
TOO_LARGE: Final = "too-large"
POISONED: Final = "poisoned"

AttributeValue = Any  # str | int | float | bool | bytes | None | list[...] | dict[str, ...]
Headers = dict[str, str | bytes]
_R = TypeVar("_R", bound="Receiver")


# --------------------------------------------------------------------------- decoded spans


@dataclass(frozen=True)
class ReceivedEvent:
    """A span event as the receiver got it."""

    name: str
    time_unix_nano: int
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


class ReceivedLogRecord(NamedTuple):
    """A log record as a receiver got it: event name, attributes (AnyValue decoded), ids in hex."""

    event_name: str
    attributes: dict[str, AttributeValue]
    trace_id: str
    span_id: str
    time_unix_nano: int


class ReceivedLink(NamedTuple):
    """A span link as the receiver got it; compares equal to a plain 3-tuple."""

    trace_id: str
    span_id: str
    attributes: dict[str, AttributeValue]


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as the receiver got it, decoded from OTLP protobuf into plain values.

    Ids are lowercase hex (``parent_span_id`` is ``""`` for a root span). ``kind`` is the
    SDK's ``SpanKind`` member name (``"INTERNAL"``, ``"CLIENT"``, ...), so it compares with
    ``SpanKind.CLIENT.name``. ``status_code`` is the OTLP number: 0 unset, 1 ok, 2 error.
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: int
    status_message: str
    attributes: dict[str, AttributeValue]
    events: list[ReceivedEvent]
    links: list[ReceivedLink]
    resource_attributes: dict[str, AttributeValue]
    scope_name: str


def decode_any_value(value: AnyValue) -> AttributeValue:
    """Turn an OTLP ``AnyValue`` into the Python value it carries (``None`` when empty)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [decode_any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return decode_attributes(value.kvlist_value.values)
    return getattr(value, which)


def decode_attributes(attributes: Iterable[KeyValue]) -> dict[str, AttributeValue]:
    """Turn repeated OTLP ``KeyValue`` into a dict."""
    return {kv.key: decode_any_value(kv.value) for kv in attributes}


def _decode_span(span: Span, resource: dict[str, AttributeValue], scope: str) -> ReceivedSpan:
    return ReceivedSpan(
        name=span.name,
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        status_code=span.status.code,
        status_message=span.status.message,
        attributes=decode_attributes(span.attributes),
        events=[
            ReceivedEvent(event.name, event.time_unix_nano, decode_attributes(event.attributes))
            for event in span.events
        ],
        links=[
            ReceivedLink(link.trace_id.hex(), link.span_id.hex(), decode_attributes(link.attributes))
            for link in span.links
        ],
        resource_attributes=resource,
        scope_name=scope,
    )


def _decode_request(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = decode_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            spans.extend(_decode_span(span, resource, scope_spans.scope.name) for span in scope_spans.spans)
    return spans


# --------------------------------------------------------------------------- storage


class _Store(AccumulatingHandler):
    """oteltest's accumulating handler, made safe to read while server threads write."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def handle_trace(self, request: ExportTraceServiceRequest, headers: Mapping[str, Any]) -> None:
        # gRPC metadata keys are lowercase already; HTTP keeps the sender's casing.
        lowered = {key.lower(): value for key, value in headers.items()}
        with self._lock:
            super().handle_trace(request, lowered)

    def snapshot(self) -> list[tuple[ExportTraceServiceRequest, Headers]]:
        with self._lock:
            return [(req.pbreq, dict(req.headers)) for req in self.telemetry.trace_requests]

    def log_snapshot(self) -> list[Any]:
        with self._lock:
            return [req.pbreq for req in self.telemetry.log_requests]

    def clear(self) -> None:
        with self._lock:
            self.telemetry.trace_requests.clear()
            self.telemetry.metric_requests.clear()
            self.telemetry.log_requests.clear()


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class SeenRequest:
    """One trace export request as it reached a receiver: its size and what was answered.

    ``size`` is the length of the ``ExportTraceServiceRequest`` in bytes, uncompressed (what
    both gRPC core and the Collector hold against their limits).
    """

    size: int
    outcome: str  # ACCEPTED, TOO_LARGE or POISONED


class RequestGate:
    """Decides, request by request, what a receiver with stock limits answers, and remembers each.

    Args:
        max_bytes: the largest request taken; a larger one is TOO_LARGE.
        refuse_marker: a request whose bytes contain this string is POISONED (refused for
            good); None refuses nothing.
        hold_first_request_s: the first request is held this long before it is answered, so
            that a test can act while an export is in flight (``first_request`` is set when it
            arrives).

    Threading: ``judge`` is called from server threads; the queries from any thread.
    """

    def __init__(
        self, max_bytes: int, refuse_marker: str | None = None, hold_first_request_s: float = 0.0
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"`max_bytes` must be a positive int, got {max_bytes!r}")
        if refuse_marker is not None and not refuse_marker:
            raise ValueError(f"`refuse_marker` must be a non-empty str or None, got {refuse_marker!r}")
        self.max_bytes = max_bytes
        self._marker = refuse_marker.encode() if refuse_marker is not None else None
        self._hold_s = hold_first_request_s
        self.first_request = threading.Event()
        self._lock = threading.Lock()
        self._seen: list[SeenRequest] = []

    def judge(self, body: bytes) -> str:
        """The outcome for this (uncompressed) request body, remembered."""
        if len(body) > self.max_bytes:
            outcome = TOO_LARGE
        elif self._marker is not None and self._marker in body:
            outcome = POISONED
        else:
            outcome = ACCEPTED
        with self._lock:
            self._seen.append(SeenRequest(len(body), outcome))
        if not self.first_request.is_set():
            self.first_request.set()
            if self._hold_s:
                time.sleep(self._hold_s)
        return outcome

    def seen(self) -> list[SeenRequest]:
        with self._lock:
            return list(self._seen)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


# --------------------------------------------------------------------------- loopback sinks


_TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def grpc_too_large_details(size: int, limit: int) -> str:
    """What gRPC core (grpcio 1.85) answers, with RESOURCE_EXHAUSTED, to a message over its limit.

    ``test_stock_limits`` checks it against a plain ``grpc.server()``, so a new grpcio that
    words it differently is noticed.
    """
    return f"SERVER: Received message larger than max ({size} vs. {limit})"


class LoopbackGrpcSink(GrpcSink):
    """``GrpcSink`` bound to 127.0.0.1 on an OS-chosen port (read it from ``.port``), or on ``port``.

    Trace requests pass ``gate`` (gRPC's default 4 MiB limit when None) before the handler
    sees them.
    """

    def __init__(
        self,
        request_handler: AccumulatingHandler,
        max_workers: int = 4,
        port: int = 0,
        gate: RequestGate | None = None,
    ) -> None:
        # GrpcSink.__init__ binds 0.0.0.0:<fixed port> itself, so it is not called: this
        # repeats its servicer wiring and binds loopback instead.
        self._executor = futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="otlp-grpc-receiver"
        )
        self._handler = request_handler
        self.gate = gate if gate is not None else RequestGate(GRPC_MAX_RECEIVE_MESSAGE_BYTES)
        # gRPC sets SO_REUSEPORT by default, which would let another process share the port.
        # gRPC core's own size check is lifted so that the gate sees (and can report the size
        # of) every request; the gate refuses what core would, with core's status and text.
        self.svr = grpc.server(
            self._executor,
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", -1)],
        )
        export = grpc.unary_unary_rpc_method_handler(
            self._export_traces,
            request_deserializer=None,  # the raw bytes, to measure and search them
            response_serializer=ExportTraceServiceResponse.SerializeToString,
        )
        self.svr.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(_TRACE_SERVICE, {"Export": export}),)
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            _MetricsServiceServicer(request_handler.handle_metrics), self.svr
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            _LogsServiceServicer(request_handler.handle_logs), self.svr
        )
        self.logger = _logger
        self.port = self.svr.add_insecure_port(f"{LOOPBACK}:{port}")
        if not self.port:
            raise RuntimeError(f"gRPC could not bind {LOOPBACK}:{port}")

    def _export_traces(self, body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        outcome = self.gate.judge(body)
        if outcome == TOO_LARGE:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, grpc_too_large_details(len(body), self.gate.max_bytes)
            )
        if outcome == POISONED:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request refused: it carries the refuse marker")
        request = ExportTraceServiceRequest.FromString(body)
        # Looked up per call: a test may wrap the handler's handle_trace after the sink is built.
        self._handler.handle_trace(request, dict(context.invocation_metadata()))
        return ExportTraceServiceResponse()

    def stop(self, grace: float | None = None) -> None:
        """Stop, cancelling in-flight calls (after ``grace`` seconds, if given), and join the workers."""
        self.svr.stop(grace=grace).wait()
        self._executor.shutdown(wait=True)


class _OtlpHttpServer(ThreadingHTTPServer):
    # Handler threads are joined by server_close(); HTTP/1.0 closes each connection
    # after its response, so they end promptly.
    daemon_threads = False
    block_on_close = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], sink: LoopbackHttpSink, port: int = 0) -> None:
        self.sink = sink
        super().__init__((LOOPBACK, port), handler)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    length = handler.headers.get("Content-Length")
    if length is None:
        return None
    return handler.rfile.read(int(length))


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str,
    extra_headers: Mapping[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for key, value in (extra_headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(body)


def _is_json(headers: Mapping[str, str]) -> bool:
    return any(k.lower() == "content-type" and "json" in v.lower() for k, v in headers.items())


_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_TRACES_PATH = "/v1/traces"
_PROTOBUF = "application/x-protobuf"
_BODY_TOO_LARGE = "http: request body too large"  # Go's http.MaxBytesReader, which the Collector uses


def _hex_ids_to_base64(post_data: bytes) -> bytes:
    """Rewrite OTLP/JSON's hex ids as the base64 that protobuf's JSON parser expects.

    OTLP/JSON encodes trace and span ids as hex; oteltest parses with protobuf's generic
    ``json_format.Parse``, which reads bytes fields as base64 and so garbles every id.
    """
    request = json.loads(post_data)
    for resource_spans in request.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for item in (span, *span.get("links", [])):
                    for key in _ID_KEYS:
                        if item.get(key):
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()
    return json.dumps(request).encode()


class _OtlpHttpRequestHandler(BaseHTTPRequestHandler):
    server: _OtlpHttpServer
    timeout = 5  # seconds: a stalled client cannot keep stop() waiting for ever

    def do_POST(self) -> None:
        body = _read_body(self)
        if body is None:
            _reply(self, 411, b"Content-Length required", "text/plain")
            return
        route = self.server.sink.handlers.get(self.path)
        if route is None:
            _reply(self, 404, f"no OTLP signal at {self.path}".encode(), "text/plain")
            return
        gate = self.server.sink.gate
        if len(body) > gate.max_bytes:  # as the Collector, before decompressing
            gate.judge(body)
            _reply(self, 413, rpc_status_body(_BODY_TOO_LARGE, code=8), _PROTOBUF)
            return
        try:
            # oteltest's HttpSink cannot read compressed bodies; the exporters may send them.
            encoding = self.headers.get("Content-Encoding", "").lower()
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
        except (OSError, EOFError, zlib.error) as error:
            _reply(self, 400, f"cannot decode OTLP request: {error}".encode(), "text/plain")
            return
        if self.path == _TRACES_PATH:
            # The Collector bounds the decompressed body by the same limit.
            outcome = gate.judge(body)
            if outcome == TOO_LARGE:
                _reply(self, 413, rpc_status_body(_BODY_TOO_LARGE, code=8), _PROTOBUF)
                return
            if outcome == POISONED:
                _reply(self, 400, rpc_status_body("request refused: it carries the refuse marker"), _PROTOBUF)
                return
        try:
            route(body, dict(self.headers.items()))
        except (DecodeError, ParseError, ValueError) as error:
            _reply(self, 400, f"cannot decode OTLP request: {error}".encode(), "text/plain")
            return
        # An empty Export*ServiceResponse: zero protobuf bytes, or {} in JSON.
        if _is_json(self.headers):
            _reply(self, 200, b"{}", "application/json")
        else:
            _reply(self, 200, b"", "application/x-protobuf")

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("otlp http receiver: " + format, *args)


class LoopbackHttpSink(HttpSink):
    """``HttpSink`` bound to 127.0.0.1 on an OS-chosen port, with a stop() that joins.

    Trace requests pass ``gate`` (the Collector's 20 MiB body limit when None) first.

    ``HttpSink.run_server`` binds all interfaces on a fixed port inside its thread, so the
    port could not be known when start() returns; here start() binds (the socket listens
    from then on) and the thread only serves.
    """

    def __init__(self, listener: AccumulatingHandler, port: int = 0, gate: RequestGate | None = None) -> None:
        super().__init__(listener, _logger, port=port, daemon=True)
        self.svr_thread.name = "otlp-http-receiver"
        self.httpd: _OtlpHttpServer | None = None
        self.gate = gate if gate is not None else RequestGate(COLLECTOR_MAX_REQUEST_BODY_BYTES)

    def start(self) -> None:
        self.httpd = _OtlpHttpServer(_OtlpHttpRequestHandler, self, self.port)
        self.port = self.httpd.server_address[1]
        super().start()

    def handle_trace(self, post_data: bytes, headers: Mapping[str, str]) -> None:
        if _is_json(headers):
            post_data = _hex_ids_to_base64(post_data)
        super().handle_trace(post_data, headers)

    def run_server(self) -> None:
        assert self.httpd is not None
        # The default 0.5 s poll would make every stop() take up to half a second.
        self.httpd.serve_forever(poll_interval=0.02)

    def stop(self) -> None:
        if self.httpd is None:
            return
        super().stop()  # shutdown(), join the serving thread, server_close()
        self.httpd = None


# --------------------------------------------------------------------------- receivers


class Receiver(abc.ABC):
    """An OTLP trace receiver on 127.0.0.1; what the integration tests export to.

    Args:
        port: the port to bind; 0 (the default) lets the OS choose. A fixed port lets a
            test stop a receiver and start a new one where the exporter already points
            (a collector restarting); what arrives is kept across restarts of one receiver.
        max_request_bytes: the largest request taken; None keeps the stock limit of the
            protocol (``default_limit``).
        refuse_marker: refuse for good every request containing this string.
        hold_first_request_s: hold the first request this long before answering it.
    """

    protocol: ClassVar[str]
    default_limit: ClassVar[int]

    def __init__(
        self,
        port: int = 0,
        *,
        max_request_bytes: int | None = None,
        refuse_marker: str | None = None,
        hold_first_request_s: float = 0.0,
    ) -> None:
        self._store = _Store()
        self._requested_port = port
        self._port: int | None = None
        limit = self.default_limit if max_request_bytes is None else max_request_bytes
        self.gate = RequestGate(limit, refuse_marker, hold_first_request_s)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT`` (what ``OTEL_EXPORTER_OTLP_ENDPOINT`` takes)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        """What the stock trace exporter's ``endpoint=`` argument takes for this protocol."""
        return self.endpoint

    def otel_env(self) -> dict[str, str]:
        """Standard exporter environment variables that point at this receiver."""
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
        }

    @abc.abstractmethod
    def start(self) -> None:
        """Bind and start serving; returns once the port is listening."""

    @abc.abstractmethod
    def stop(self, grace: float | None = None) -> None:
        """Stop serving and join the server's threads. Safe to call twice.

        With ``grace``, requests in flight get that long to finish, as a collector
        shutting down lets them; without, the gRPC receiver cancels them at once.
        """

    def __enter__(self: _R) -> _R:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_records(self) -> list[ReceivedLogRecord]:
        """Every log record received so far, decoded, in arrival order."""
        return [
            ReceivedLogRecord(
                event_name=record.event_name,
                attributes=decode_attributes(record.attributes),
                trace_id=record.trace_id.hex(),
                span_id=record.span_id.hex(),
                time_unix_nano=record.time_unix_nano,
            )
            for request in self._store.log_snapshot()
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order."""
        return [span for request, _ in self._store.snapshot() for span in _decode_request(request)]

    def span_named(self, name: str) -> ReceivedSpan:
        """The one received span called ``name``; AssertionError unless exactly one."""
        found = [span for span in self.spans() if span.name == name]
        if len(found) != 1:
            names = [span.name for span in self.spans()]
            raise AssertionError(f"expected one span named {name!r}, got {len(found)} in {names}")
        return found[0]

    def headers(self) -> list[Headers]:
        """The headers (gRPC metadata) of each trace export request, keys lowercased."""
        return [headers for _, headers in self._store.snapshot()]

    def wait_for_spans(self, n: int, timeout: float = 5.0) -> list[ReceivedSpan]:
        """Poll until at least ``n`` spans arrived and return them all.

        Raises:
            AssertionError: fewer than ``n`` spans arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if len(spans) >= n:
                return spans
            if time.monotonic() >= deadline:
                names = [span.name for span in spans]
                raise AssertionError(
                    f"expected at least {n} spans within {timeout}s at {self.endpoint} "
                    f"({self.protocol}), {len(spans)} arrived: {names}"
                )
            time.sleep(0.01)

    def span_count(self) -> int:
        """How many spans arrived (cheaper than ``len(spans())``: nothing is decoded)."""
        return sum(
            len(scope.spans)
            for request, _ in self._store.snapshot()
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )

    @property
    def limit(self) -> int:
        """The largest request, in bytes, this receiver takes."""
        return self.gate.max_bytes

    @property
    def first_request(self) -> threading.Event:
        """Set when the first trace request arrives (before it is held or answered)."""
        return self.gate.first_request

    def requests_seen(self) -> list[SeenRequest]:
        """Every trace request that reached the receiver, accepted or refused, in arrival order."""
        return self.gate.seen()

    def clear(self) -> None:
        """Forget everything received so far."""
        self._store.clear()
        self.gate.clear()


class GrpcReceiver(Receiver):
    """OTLP/gRPC receiver (oteltest ``GrpcSink``) on 127.0.0.1:<free port>, or on ``port``.

    Refuses a message over gRPC's default 4 MiB as gRPC core does (RESOURCE_EXHAUSTED), and
    one carrying ``refuse_marker`` with INVALID_ARGUMENT.
    """

    protocol = "grpc"
    default_limit = GRPC_MAX_RECEIVE_MESSAGE_BYTES

    def __init__(self, port: int = 0, **limits: Any) -> None:
        super().__init__(port, **limits)
        self.sink: LoopbackGrpcSink | None = None

    def start(self) -> None:
        if self.sink is not None:
            raise RuntimeError("GrpcReceiver is already started")
        self.sink = LoopbackGrpcSink(self._store, port=self._requested_port, gate=self.gate)
        self.sink.start()
        self._port = self.sink.port

    def stop(self, grace: float | None = None) -> None:
        """Stop; with ``grace``, calls in flight may finish first (as a collector shutting down)."""
        if self.sink is not None:
            self.sink.stop(grace)
            self.sink = None


class HttpReceiver(Receiver):
    """OTLP/HTTP receiver (oteltest ``HttpSink``; protobuf or JSON, plain/gzip/deflate).

    Refuses a body over the Collector's 20 MiB with 413, and one carrying ``refuse_marker``
    with 400.
    """

    protocol = "http/protobuf"
    default_limit = COLLECTOR_MAX_REQUEST_BODY_BYTES

    def __init__(self, port: int = 0, **limits: Any) -> None:
        super().__init__(port, **limits)
        self.sink: LoopbackHttpSink | None = None

    @property
    def traces_endpoint(self) -> str:
        return f"{self.endpoint}/v1/traces"

    def start(self) -> None:
        if self.sink is not None:
            raise RuntimeError("HttpReceiver is already started")
        self.sink = LoopbackHttpSink(self._store, port=self._requested_port, gate=self.gate)
        self.sink.start()
        self._port = self.sink.port

    def stop(self, grace: float | None = None) -> None:
        """Stop; requests in flight always finish (``grace`` is taken for symmetry with gRPC)."""
        if self.sink is not None:
            self.sink.stop()
            self.sink = None


# --------------------------------------------------------------------------- faults


def rpc_status_body(message: str, code: int = 3) -> bytes:
    """A serialized ``google.rpc.Status``: the body OTLP/HTTP specifies for failures.

    ``code`` is a gRPC status code (3 is INVALID_ARGUMENT).
    """
    body: bytes = status_pb2.Status(code=code, message=message).SerializeToString()
    return body


class _FailingRequestHandler(BaseHTTPRequestHandler):
    server: _FailingHttpServer
    timeout = 5

    def do_POST(self) -> None:
        _read_body(self)  # drain it, so the client sees a clean reply and not a reset
        receiver = self.server.receiver
        receiver._record(dict(self.headers.items()))
        extra = {"Retry-After": receiver.retry_after} if receiver.retry_after is not None else {}
        _reply(self, receiver.status, receiver.body, receiver.content_type, extra)

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("failing otlp http receiver: " + format, *args)


class _FailingHttpServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, receiver: FailingHttpReceiver, port: int = 0) -> None:
        self.receiver = receiver
        super().__init__((LOOPBACK, port), _FailingRequestHandler)


class FailingHttpReceiver:
    """OTLP/HTTP endpoint that answers every POST with one failing status, and counts them.

    Example::

        with FailingHttpReceiver(status=503, retry_after="0") as receiver:
            ...  # the exporter retries at once instead of backing off
            assert receiver.request_count > 1

    Args:
        status: HTTP status of every reply (500 is not retried by the stock exporter;
            429, 502, 503 and 504 are, with exponential backoff unless ``retry_after`` says).
        body: reply body; ``rpc_status_body("...")`` gives the protobuf OTLP specifies.
        content_type: of the body.
        retry_after: value of a ``Retry-After`` header, or None for no header.
        port: the port to bind; 0 (the default) lets the OS choose.
    """

    protocol = "http/protobuf"

    def __init__(
        self,
        status: int = 500,
        body: bytes = b"receiver failing on purpose",
        content_type: str = "text/plain; charset=utf-8",
        retry_after: str | None = None,
        port: int = 0,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"`status` must be a 4xx or 5xx code, got {status!r}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._headers: list[Headers] = []
        self._httpd: _FailingHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._requested_port = port
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FailingHttpReceiver is not started")
        return self._port

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def traces_endpoint(self) -> str:
        return f"{self.endpoint}/v1/traces"

    @property
    def request_count(self) -> int:
        """How many POST requests were answered (each retry counts)."""
        with self._lock:
            return len(self._headers)

    def headers(self) -> list[Headers]:
        """The headers of each request, keys lowercased."""
        with self._lock:
            return list(self._headers)

    def _record(self, headers: Mapping[str, str]) -> None:
        with self._lock:
            self._headers.append({key.lower(): value for key, value in headers.items()})

    def start(self) -> None:
        if self._httpd is not None:
            raise RuntimeError("FailingHttpReceiver is already started")
        self._httpd = _FailingHttpServer(self, self._requested_port)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="failing-otlp-http-receiver",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        assert self._thread is not None
        self._thread.join()
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> FailingHttpReceiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- helpers


def unused_port() -> int:
    """A 127.0.0.1 TCP port nothing listens on, for "collector unreachable" tests.

    The OS picks it and it is released at once; another process could take it before the
    test connects, but the OS hands out ports round-robin, so that is unlikely.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def stock_span_exporter(receiver: Receiver | FailingHttpReceiver, **kwargs: Any) -> SpanExporter:
    """The stock OTLP span exporter for the receiver's protocol, pointed at it.

    ``kwargs`` go to the exporter (``headers=``, ``timeout=``, ``compression=``...).
    """
    if receiver.protocol == "grpc":
        return GrpcSpanExporter(endpoint=receiver.traces_endpoint, insecure=True, **kwargs)
    return HttpSpanExporter(endpoint=receiver.traces_endpoint, **kwargs)

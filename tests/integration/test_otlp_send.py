"""The OTLP senders against real receivers on 127.0.0.1: what arrives, and how each failure is classified.

The receivers are the harness's (oteltest's sinks, gRPC's default 4 MiB message limit) and, for
answers those cannot give (a chosen gRPC status with RetryInfo, a partial success, silence),
small servers defined here on the real gRPC and HTTP stacks.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.export.otlp_send import CAUSE_REFUSED, CAUSE_TIMEOUT, SendResult
from promptrecorder.export.otlp_send_grpc import EXPORT_METHOD
from promptrecorder.export.senders import build_sender

from .receivers import (
    LOOPBACK,
    FailingHttpReceiver,
    GrpcReceiver,
    HttpReceiver,
    Receiver,
    rpc_status_body,
    unused_port,
)

PASSWORD = "pw-0123456789"
TOKEN = "Bearer tok-0123456789abcdef"
# What a send may take beyond its timeout (thread scheduling on a shared 2-core machine).
SLACK_S = 1.0


def _spans(count: int, text: str = "") -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test_otlp_send")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}", attributes={"text": text}):
            pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def _masked(result: SendResult, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.reason, result


# --- delivered ----------------------------------------------------------------------------


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_a_request_arrives_whole_over_each_protocol(otlp_receiver: Receiver, gzip: bool) -> None:
    """The receiver gets exactly the spans sent, with the headers, compressed when asked."""
    spans = _spans(5, "x" * 1000)
    sender = build_sender(
        otlp_receiver.protocol,
        otlp_receiver.endpoint,
        {"authorization": TOKEN, "x-tenant": "t1"},
        5,
        compression="gzip" if gzip else "none",
    )
    try:
        result = sender.send(encode_request(spans), 5)
    finally:
        sender.close()
    assert (result.delivered, result.retryable, result.splittable) == (True, False, False), result
    assert result.status in (200, "OK")
    assert result.rejected_spans == 0
    received = otlp_receiver.wait_for_spans(5)
    assert sorted(span.name for span in received) == [f"span-{i}" for i in range(5)]
    assert {span.span_id for span in received} == {format(span.context.span_id, "016x") for span in spans}
    [headers] = otlp_receiver.headers()
    assert headers["authorization"] == TOKEN
    assert headers["x-tenant"] == "t1"
    assert "promptrecorder/" in str(headers["user-agent"])
    if otlp_receiver.protocol != "grpc":
        assert headers.get("content-type") == "application/x-protobuf"
        assert headers.get("content-encoding") == ("gzip" if gzip else None)


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that counts the bytes the client sends through it."""

    def __init__(self, port: int) -> None:
        self.sent = 0
        self._target = port
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((LOOPBACK, self._target))
            for source, sink, counted in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, sink, counted), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        with source:
            while data := _recv(source):
                if counted:
                    with self._lock:
                        self.sent += len(data)
                try:
                    sink.sendall(data)
                except OSError:
                    return
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
def test_compression_puts_fewer_bytes_on_the_wire(otlp_receiver: Receiver, compression: str) -> None:
    """With gzip (or deflate) the request crosses the network compressed, and arrives whole."""
    body = encode_request(_spans(3, "y" * 20_000))
    proxy = CountingProxy(otlp_receiver.port)
    try:
        sender = build_sender(
            otlp_receiver.protocol, f"http://{LOOPBACK}:{proxy.port}", None, 5, compression=compression
        )
        result = sender.send(body, 5)
        sender.close()
    finally:
        proxy.close()
    assert result.delivered, result
    assert len(otlp_receiver.wait_for_spans(3)) == 3
    assert 0 < proxy.sent < len(body) // 5, (proxy.sent, len(body))


# --- refused for size ---------------------------------------------------------------------


def test_a_grpc_message_over_the_receivers_4_mib_is_splittable(grpc_receiver: GrpcReceiver) -> None:
    """gRPC's default 4 MiB limit: RESOURCE_EXHAUSTED "larger than max", splittable, quoted in reason."""
    body = encode_request(_spans(5, "z" * 1_000_000))
    assert len(body) > 4 * 1024 * 1024
    sender = build_sender("grpc", grpc_receiver.endpoint, None, 10)
    result = sender.send(body, 10)
    sender.close()
    assert (result.delivered, result.retryable, result.splittable) == (False, False, True), result
    assert result.status == "RESOURCE_EXHAUSTED"
    assert "larger than max" in result.reason
    assert "4194304" in result.reason
    assert grpc_receiver.spans() == []


@pytest.mark.parametrize(
    ("status", "splittable", "retryable"),
    [(400, True, False), (413, True, False), (429, False, True), (503, False, True), (401, False, False)],
)
def test_http_statuses_are_classified(status: int, splittable: bool, retryable: bool) -> None:
    """400/413 split, 429/503 retry after Retry-After, 401 neither; the server's message is quoted."""
    with FailingHttpReceiver(
        status=status,
        body=rpc_status_body(f"refused {status}"),
        content_type="application/x-protobuf",
        retry_after="7",
    ) as receiver:
        sender = build_sender("http/protobuf", receiver.endpoint, None, 5)
        result = sender.send(encode_request(_spans(1)), 5)
        sender.close()
        assert receiver.request_count == 1  # one attempt: retrying is the caller's
    assert (result.delivered, result.splittable, result.retryable) == (False, splittable, retryable), result
    assert result.status == status
    assert result.reason.startswith(f"HTTP {status} ")
    assert f"refused {status}" in result.reason
    assert result.retry_after == (7.0 if retryable else None)


def test_an_http_date_retry_after_is_read_as_seconds_from_now() -> None:
    """Retry-After as an HTTP date gives the seconds until then."""
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    with FailingHttpReceiver(status=503, retry_after=when) as receiver:
        sender = build_sender("http/protobuf", receiver.endpoint, None, 5)
        result = sender.send(b"", 5)
        sender.close()
    assert result.retryable
    assert result.retry_after is not None
    assert 25 <= result.retry_after <= 31


# --- a gRPC server answering what a test chooses ---------------------------------------------


class ScriptedGrpcServer:
    """The trace service's Export on 127.0.0.1, answering with ``answer(request_bytes, context)``."""

    def __init__(self, answer: Callable[[bytes, grpc.ServicerContext], bytes]) -> None:
        self.requests: list[bytes] = []

        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.requests.append(request)
            return answer(request, context)

        service, method = EXPORT_METHOD.strip("/").split("/")
        handler = grpc.method_handlers_generic_handler(
            service, {method: grpc.unary_unary_rpc_method_handler(export)}
        )
        self._executor = futures.ThreadPoolExecutor(max_workers=2)
        self.server = grpc.server(self._executor, handlers=[handler], options=[("grpc.so_reuseport", 0)])
        self.port = self.server.add_insecure_port(f"{LOOPBACK}:0")
        self.endpoint = f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> ScriptedGrpcServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(None).wait()
        self._executor.shutdown(wait=True)


def _abort_with(
    code: grpc.StatusCode, message: str, retry_delay_s: int | None = None
) -> Callable[..., bytes]:
    def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
        if retry_delay_s is not None:
            detail = AnyMessage()
            detail.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=retry_delay_s)))
            status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
            context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
        context.abort(code, message)
        raise AssertionError("abort() raises")

    return answer


@pytest.mark.parametrize(
    ("code", "message", "retryable", "splittable"),
    [
        (grpc.StatusCode.UNAVAILABLE, "collector restarting", True, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "data refused due to high memory usage", True, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "Received message larger than max (9 vs. 4)", False, True),
        (grpc.StatusCode.INVALID_ARGUMENT, "bad span", False, True),
        (grpc.StatusCode.UNAUTHENTICATED, "no token", False, False),
        (grpc.StatusCode.UNIMPLEMENTED, "no trace service", False, False),
    ],
)
def test_grpc_statuses_are_classified(
    code: grpc.StatusCode, message: str, retryable: bool, splittable: bool
) -> None:
    """Each gRPC status lands in its class, named with the server's message; RetryInfo gives retry_after."""
    with ScriptedGrpcServer(_abort_with(code, message, retry_delay_s=4)) as server:
        sender = build_sender("grpc", server.endpoint, None, 5)
        result = sender.send(encode_request(_spans(1)), 5)
        sender.close()
        assert len(server.requests) == 1
    assert (result.delivered, result.retryable, result.splittable) == (False, retryable, splittable), result
    assert result.status == code.name
    assert result.reason == f"gRPC {code.name}: {message}"
    assert result.retry_after == (4.0 if retryable else None)


def test_a_grpc_partial_success_counts_the_rejected_spans() -> None:
    """An accepted request whose answer rejects spans: delivered, rejected_spans and the message."""
    answer = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=2, error_message="spans too old")
    ).SerializeToString()
    with ScriptedGrpcServer(lambda request, context: answer) as server:
        sender = build_sender("grpc", server.endpoint, None, 5)
        result = sender.send(encode_request(_spans(3)), 5)
        sender.close()
    assert (result.delivered, result.rejected_spans) == (True, 2), result
    assert result.reason == "gRPC OK, 2 spans rejected: spans too old"


# --- an HTTP server answering a partial success, and servers that never answer --------------


class _PartialHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = ExportTraceServiceResponse(
            partial_success=ExportTracePartialSuccess(rejected_spans=1, error_message="one bad")
        ).SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_an_http_partial_success_counts_the_rejected_spans() -> None:
    """A 200 whose ExportTraceServiceResponse rejects a span: delivered, rejected_spans=1."""
    server = ThreadingHTTPServer((LOOPBACK, 0), _PartialHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        sender = build_sender("http/protobuf", f"http://{LOOPBACK}:{server.server_address[1]}", None, 5)
        result = sender.send(encode_request(_spans(2)), 5)
        sender.close()
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert (result.delivered, result.rejected_spans) == (True, 1), result
    assert result.reason == "HTTP 200 OK, 1 span rejected: one bad"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes TCP connections (the kernel's backlog) and never reads nor answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("size", [100, 8_000_000], ids=["small", "8MB"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_receiver_that_never_answers_costs_the_timeout_and_no_more(
    protocol: str, size: int, silent_port: int
) -> None:
    """send() returns within its timeout plus a little, retryable, naming the timeout,
    whether the request fits the socket buffers or its upload stalls."""
    sender = build_sender(protocol, f"http://{LOOPBACK}:{silent_port}", None, 30)
    started = time.monotonic()
    result = sender.send(b"\n" * size, 1.0)
    took = time.monotonic() - started
    sender.close()
    assert took < 1.0 + SLACK_S, took
    assert (result.delivered, result.retryable, result.splittable) == (False, True, False), result
    assert result.cause == CAUSE_TIMEOUT
    assert "timeout" in result.reason


# --- unreachable, credentials, never raising --------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_connection_refused_is_retryable_and_masks_credentials(protocol: str) -> None:
    """Nothing listening: retryable, reason names "refused", no password in reason or destination."""
    endpoint = f"http://user:{PASSWORD}@{LOOPBACK}:{unused_port()}"
    sender = build_sender(protocol, endpoint, {"authorization": TOKEN}, 2)
    result = sender.send(encode_request(_spans(1)), 2)
    sender.close()
    assert (result.delivered, result.retryable, result.splittable) == (False, True, False), result
    assert "refused" in result.reason
    assert result.cause == CAUSE_REFUSED
    assert PASSWORD not in sender.destination
    assert "user:***@" in sender.destination
    _masked(result, PASSWORD, TOKEN)


def test_a_server_echoing_the_token_is_masked_in_reason() -> None:
    """A 401 whose body quotes the header value sent: the value is masked in the reason."""
    with FailingHttpReceiver(status=401, body=f"token {TOKEN} is revoked".encode()) as receiver:
        sender = build_sender("http/protobuf", receiver.endpoint, {"authorization": TOKEN}, 5)
        result = sender.send(b"", 5)
        sender.close()
    assert result.status == 401
    assert "is revoked" in result.reason
    _masked(result, TOKEN)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_send_after_close_and_to_an_unknown_host_never_raises(protocol: str) -> None:
    """A closed sender and an unresolvable host come back as results, not exceptions."""
    sender = build_sender(protocol, "http://no-such-host.invalid:4318", None, 2)
    result = sender.send(b"not even protobuf", 2)
    assert not result.delivered, result
    assert result.reason
    sender.close()
    sender.close()  # twice is fine
    closed = sender.send(b"", 1)
    assert not closed.delivered
    assert not closed.retryable
    assert "closed" in closed.reason


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_sends_from_many_threads_all_arrive(protocol: str) -> None:
    """send() may be called from several threads at once: every request arrives once."""
    receiver: Receiver = GrpcReceiver() if protocol == "grpc" else HttpReceiver()
    with receiver:
        sender = build_sender(protocol, receiver.endpoint, None, 5)
        body = encode_request(_spans(2))
        with futures.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: sender.send(body, 5), range(20)))
        sender.close()
        assert all(result.delivered for result in results), results
        assert len(receiver.wait_for_spans(40)) == 40

"""Self-tests of the receiver harness, driven by the stock OpenTelemetry SDK and exporters.

No promptrecorder code runs here: if these pass, a failing integration test points at
promptrecorder, not at the harness.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from .receivers import (
    FailingHttpReceiver,
    GrpcReceiver,
    HttpReceiver,
    ReceivedEvent,
    ReceivedLink,
    ReceivedSpan,
    Receiver,
    decode_any_value,
    rpc_status_body,
    stock_span_exporter,
    unused_port,
)

LINKED_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
LINKED_SPAN_ID = 0xB7AD6B7169203331
SCOPE = "harness-selftest"


def _provider(exporter: SpanExporter, *, batch: bool = False) -> TracerProvider:
    provider = TracerProvider(
        resource=Resource.create({"service.name": "receiver-harness"}),
        shutdown_on_exit=False,
    )
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


@pytest.fixture
def finished_span() -> Iterator[ReadableSpan]:
    """One finished span, recorded in memory, for calling an exporter's export() directly."""
    memory = InMemorySpanExporter()
    provider = _provider(memory)
    provider.get_tracer(SCOPE).start_span("lonely").end()
    [span] = memory.get_finished_spans()
    yield span
    provider.shutdown()


def test_parent_and_child_arrive_decoded_into_plain_values(otlp_receiver: Receiver) -> None:
    """A child span with events, a link and ERROR status arrives intact under its parent."""
    provider = _provider(stock_span_exporter(otlp_receiver))
    tracer = provider.get_tracer(SCOPE)
    link_context = SpanContext(LINKED_TRACE_ID, LINKED_SPAN_ID, is_remote=True, trace_flags=TraceFlags(1))
    with tracer.start_as_current_span("chat session") as parent:
        child = tracer.start_span(
            "chat gpt-test",
            kind=SpanKind.CLIENT,
            attributes={"model": "gpt-test", "tokens": 42, "temperature": 0.5, "stream": False},
            links=[Link(link_context, {"link.reason": "previous turn"})],
            start_time=1_000,
        )
        child.add_event("prompt", {"role": "user", "index": 0, "tags": ["a", "b"]}, timestamp=1_100)
        child.add_event("completion", {"finish": "stop", "ids": [1, 2, 3]}, timestamp=1_900)
        child.set_status(Status(StatusCode.ERROR, "upstream said no"))
        child.end(end_time=2_000)
    provider.shutdown()

    received = otlp_receiver.wait_for_spans(2)

    assert [span.name for span in received] == ["chat gpt-test", "chat session"]
    parent_span = otlp_receiver.span_named("chat session")
    assert parent_span.parent_span_id == ""
    assert parent_span.span_id == f"{parent.get_span_context().span_id:016x}"
    assert parent_span.status_code == 0
    assert otlp_receiver.span_named("chat gpt-test") == ReceivedSpan(
        name="chat gpt-test",
        trace_id=f"{parent.get_span_context().trace_id:032x}",
        span_id=f"{child.get_span_context().span_id:016x}",
        parent_span_id=parent_span.span_id,
        kind="CLIENT",
        start_time_unix_nano=1_000,
        end_time_unix_nano=2_000,
        status_code=2,
        status_message="upstream said no",
        attributes={"model": "gpt-test", "tokens": 42, "temperature": 0.5, "stream": False},
        events=[
            ReceivedEvent("prompt", 1_100, {"role": "user", "index": 0, "tags": ["a", "b"]}),
            ReceivedEvent("completion", 1_900, {"finish": "stop", "ids": [1, 2, 3]}),
        ],
        links=[
            ReceivedLink(
                f"{LINKED_TRACE_ID:032x}",
                f"{LINKED_SPAN_ID:016x}",
                {"link.reason": "previous turn"},
            )
        ],
        resource_attributes=dict(provider.resource.attributes),
        scope_name=SCOPE,
    )
    assert parent_span.resource_attributes["service.name"] == "receiver-harness"


def test_batch_processor_spans_are_there_once_shutdown_returns(otlp_receiver: Receiver) -> None:
    """Provider shutdown flushes synchronously: no waiting needed afterwards."""
    provider = _provider(stock_span_exporter(otlp_receiver), batch=True)
    tracer = provider.get_tracer(SCOPE)
    for index in range(3):
        tracer.start_span(f"span {index}").end()
    provider.shutdown()

    assert sorted(span.name for span in otlp_receiver.spans()) == ["span 0", "span 1", "span 2"]


def test_headers_are_kept_per_request_and_clear_forgets_everything(
    otlp_receiver: Receiver,
) -> None:
    """Each export request's headers are recorded with lowercase keys; clear() empties all."""
    exporter = stock_span_exporter(otlp_receiver, headers={"x-harness-token": "t0ken"})
    provider = _provider(exporter)
    tracer = provider.get_tracer(SCOPE)
    tracer.start_span("one").end()
    tracer.start_span("two").end()
    provider.shutdown()

    headers = otlp_receiver.headers()
    assert len(headers) == 2
    assert all(request["x-harness-token"] == "t0ken" for request in headers)
    otlp_receiver.clear()
    assert otlp_receiver.spans() == []
    assert otlp_receiver.headers() == []


def test_receiver_configured_through_standard_environment_variables(
    otlp_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """otel_env() is enough for a stock exporter built without an endpoint argument."""
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    exporter_class = GrpcSpanExporter if otlp_receiver.protocol == "grpc" else HttpSpanExporter
    provider = _provider(exporter_class())
    provider.get_tracer(SCOPE).start_span("from env").end()
    provider.shutdown()

    assert [span.name for span in otlp_receiver.spans()] == ["from env"]


def test_http_receiver_reads_gzip_bodies(http_receiver: HttpReceiver) -> None:
    """Unlike oteltest's HttpSink, the HTTP receiver decompresses gzip exports."""
    exporter = stock_span_exporter(http_receiver, compression=Compression.Gzip)
    provider = _provider(exporter)
    provider.get_tracer(SCOPE).start_span("zipped").end()
    provider.shutdown()

    assert [span.name for span in http_receiver.spans()] == ["zipped"]
    assert http_receiver.headers()[0]["content-encoding"] == "gzip"


def _post(receiver: HttpReceiver, body: bytes, content_type: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    try:
        connection.request("POST", "/v1/traces", body, {"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_http_receiver_reads_otlp_json_and_rejects_garbage(http_receiver: HttpReceiver) -> None:
    """OTLP/JSON is decoded like protobuf; an undecodable body gets a 400 and is not kept."""
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "j"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json-scope"},
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "parentSpanId": "aaa19b7ec3c1b174",
                                "links": [
                                    {
                                        "traceId": "0af7651916cd43dd8448eb211c80319c",
                                        "spanId": "b7ad6b7169203331",
                                    }
                                ],
                                "name": "from json",
                                "kind": 3,
                                "attributes": [{"key": "n", "value": {"intValue": "7"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }

    assert _post(http_receiver, json.dumps(request).encode(), "application/json") == (200, b"{}")
    status, _ = _post(http_receiver, b"\xff not protobuf", "application/x-protobuf")

    assert status == 400
    [span] = http_receiver.spans()
    assert (span.name, span.kind, span.attributes, span.scope_name) == (
        "from json",
        "CLIENT",
        {"n": 7},
        "json-scope",
    )
    # OTLP/JSON ids are hex, which protobuf's generic JSON parser would read as base64.
    assert (span.trace_id, span.span_id, span.parent_span_id) == (
        "5b8efff798038103d269b633813fc60c",
        "eee19b7ec3c1b174",
        "aaa19b7ec3c1b174",
    )
    assert span.links == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", {})]
    assert span.resource_attributes == {"service.name": "j"}


def test_wait_for_spans_says_how_many_arrived(grpc_receiver: GrpcReceiver) -> None:
    """wait_for_spans gives up after its timeout with the count it did see."""
    with pytest.raises(AssertionError, match=r"at least 1 spans within 0\.05s .* 0 arrived"):
        grpc_receiver.wait_for_spans(1, timeout=0.05)


def _proc_net_address(hex_address: str) -> str:
    """Decode /proc/net/tcp* hex (32-bit words in host order) to an IP; unmap ::ffff:a.b.c.d."""
    raw = b"".join(
        int(hex_address[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(hex_address), 8)
    )
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket LISTENing on ``port``, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A is TCP_LISTEN
                found.add(_proc_net_address(address))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp")
def test_receiver_listens_on_loopback_only(otlp_receiver: Receiver) -> None:
    """Every socket listening on the port is bound to 127.0.0.1; 127.0.0.2 is refused."""
    # gRPC listens on an IPv6 socket bound to ::ffff:127.0.0.1, hence the unmapping.
    assert _listening_addresses(otlp_receiver.port) == {"127.0.0.1"}
    # Linux routes all of 127/8 to lo: a socket bound to 0.0.0.0 would accept this.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", otlp_receiver.port), timeout=1).close()


def test_http_receiver_socket_is_bound_to_loopback(http_receiver: HttpReceiver) -> None:
    """The HTTP server socket's own bound address is 127.0.0.1 and the advertised port."""
    assert http_receiver.sink is not None
    assert http_receiver.sink.httpd is not None
    bound = http_receiver.sink.httpd.socket.getsockname()
    assert bound == ("127.0.0.1", http_receiver.port)
    assert http_receiver.traces_endpoint == f"http://127.0.0.1:{http_receiver.port}/v1/traces"


@pytest.mark.parametrize("receiver_class", [GrpcReceiver, HttpReceiver, FailingHttpReceiver])
def test_stopped_receiver_releases_port_and_threads(
    receiver_class: type[Receiver | FailingHttpReceiver],
) -> None:
    """After the with block the port refuses connections and no server thread is left."""
    before = set(threading.enumerate())
    with receiver_class() as receiver:
        port = receiver.port
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert set(threading.enumerate()) - before == set()


def test_failing_receiver_fails_the_export_and_counts_the_request(
    failing_http_receiver: FailingHttpReceiver, finished_span: ReadableSpan
) -> None:
    """A 500 is not retried: export() returns FAILURE after exactly one request."""
    exporter = stock_span_exporter(failing_http_receiver)
    try:
        assert exporter.export([finished_span]) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert failing_http_receiver.request_count == 1
    assert failing_http_receiver.headers()[0]["content-type"] == "application/x-protobuf"


@pytest.mark.parametrize("failing_http_receiver", [{"status": 503, "retry_after": "0"}], indirect=True)
def test_failing_receiver_retry_after_makes_the_exporter_retry_at_once(
    failing_http_receiver: FailingHttpReceiver, finished_span: ReadableSpan
) -> None:
    """A 503 with ``Retry-After: 0`` is retried without backoff, each try counted."""
    exporter = stock_span_exporter(failing_http_receiver)
    try:
        assert exporter.export([finished_span]) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert failing_http_receiver.request_count > 1


@pytest.mark.parametrize(
    "failing_http_receiver",
    [
        {
            "status": 400,
            "body": rpc_status_body("bad span"),
            "content_type": "application/x-protobuf",
        }
    ],
    indirect=True,
)
def test_failing_receiver_can_answer_with_an_rpc_status(
    failing_http_receiver: FailingHttpReceiver, finished_span: ReadableSpan
) -> None:
    """A 400 carrying a google.rpc.Status fails the export once, without retry."""
    exporter = stock_span_exporter(failing_http_receiver)
    try:
        assert exporter.export([finished_span]) is SpanExportResult.FAILURE
    finally:
        exporter.shutdown()
    assert failing_http_receiver.request_count == 1


def test_failing_receiver_rejects_a_success_status() -> None:
    """A status that would not fail an export is refused at construction."""
    with pytest.raises(ValueError, match=r"`status` must be a 4xx or 5xx code, got 200"):
        FailingHttpReceiver(status=200)


def test_unused_port_refuses_connections() -> None:
    """Nothing listens on the port unused_port() returns."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", unused_port()), timeout=1).close()


def test_any_values_decode_to_plain_python() -> None:
    """Nested arrays, key-value lists, bytes and empty values become plain Python values."""
    value = AnyValue(
        kvlist_value=KeyValueList(
            values=[
                KeyValue(key="s", value=AnyValue(string_value="x")),
                KeyValue(key="b", value=AnyValue(bytes_value=b"\x00\x01")),
                KeyValue(key="empty", value=AnyValue()),
                KeyValue(
                    key="nested",
                    value=AnyValue(
                        array_value=ArrayValue(
                            values=[
                                AnyValue(int_value=1),
                                AnyValue(double_value=2.5),
                                AnyValue(bool_value=True),
                                AnyValue(array_value=ArrayValue(values=[])),
                            ]
                        )
                    ),
                ),
            ]
        )
    )
    assert decode_any_value(value) == {
        "s": "x",
        "b": b"\x00\x01",
        "empty": None,
        "nested": [1, 2.5, True, []],
    }


def test_tests_here_carry_the_integration_marker(request: pytest.FixtureRequest) -> None:
    """conftest marks everything under tests/integration as ``integration``."""
    assert request.node.get_closest_marker("integration") is not None

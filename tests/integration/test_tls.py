"""OTLP over TLS with a self-signed certificate on loopback, with auth headers, and no secret leaks.

The receivers are the harness's own (oteltest's servicer and HTTP sink), served over TLS
with a certificate from a throwaway CA made by ``trustme``. The exporter trusts that CA
through the standard ``OTEL_EXPORTER_OTLP_CERTIFICATE`` variable.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
import trustme
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from oteltest.sink import HttpSink
from oteltest.sink.private import _TraceServiceServicer

from promptrecorder import PromptRecorder, autorecord, configure, flush
from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.export.otlp_send import CAUSE_TLS, CAUSE_TLS_UNTRUSTED
from promptrecorder.export.senders import build_sender

from .receivers import (
    LOOPBACK,
    GrpcReceiver,
    HttpReceiver,
    LoopbackHttpSink,
    Receiver,
    _OtlpHttpRequestHandler,
    _OtlpHttpServer,
)

pytestmark = pytest.mark.usefixtures("global_tracing")

TOKEN = "Bearer tls-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(authority: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return path


class _TlsGrpcSink:
    """oteltest's trace servicer on a TLS gRPC port of 127.0.0.1."""

    def __init__(self, store: object, key: bytes, chain: bytes, client_ca: bytes | None = None) -> None:
        self._executor = futures.ThreadPoolExecutor(max_workers=2)
        self.svr = grpc.server(self._executor, options=[("grpc.so_reuseport", 0)])
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceServiceServicer(store.handle_trace),  # type: ignore[attr-defined]
            self.svr,
        )
        credentials = grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )
        self.port = self.svr.add_secure_port(f"{LOOPBACK}:0", credentials)

    def start(self) -> None:
        self.svr.start()

    def stop(self, grace: float | None = None) -> None:
        self.svr.stop(grace=grace).wait()
        self._executor.shutdown(wait=True)


class TlsGrpcReceiver(GrpcReceiver):
    """With ``mutual``, it takes only clients whose certificate ``authority`` issued."""

    def __init__(self, authority: trustme.CA, mutual: bool = False) -> None:
        super().__init__()
        self._certificate = authority.issue_cert(LOOPBACK)
        self._client_ca = authority.cert_pem.bytes() if mutual else None

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        key = self._certificate.private_key_pem.bytes()
        chain = b"".join(blob.bytes() for blob in self._certificate.cert_chain_pems)
        self.sink = _TlsGrpcSink(self._store, key, chain, self._client_ca)  # type: ignore[assignment]
        self.sink.start()  # type: ignore[union-attr]
        self._port = self.sink.port  # type: ignore[union-attr]


class _TlsHttpSink(LoopbackHttpSink):
    def __init__(self, store: object, context: ssl.SSLContext) -> None:
        super().__init__(store)  # type: ignore[arg-type]
        self._context = context

    def start(self) -> None:
        self.httpd = _OtlpHttpServer(_OtlpHttpRequestHandler, self)
        self.httpd.socket = self._context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        HttpSink.start(self)


class TlsHttpReceiver(HttpReceiver):
    """With ``mutual``, it takes only clients whose certificate ``authority`` issued."""

    def __init__(self, authority: trustme.CA, mutual: bool = False) -> None:
        super().__init__()
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        authority.issue_cert(LOOPBACK).configure_cert(self._context)
        if mutual:
            authority.configure_trust(self._context)
            self._context.verify_mode = ssl.CERT_REQUIRED

    @property
    def endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        self.sink = _TlsHttpSink(self._store, self._context)
        self.sink.start()
        self._port = self.sink.port


@pytest.fixture(params=["grpc", "http/protobuf"], ids=["grpc", "http"])
def tls_receiver(request: pytest.FixtureRequest, authority: trustme.CA) -> Iterator[Receiver]:
    receiver: Receiver = TlsGrpcReceiver(authority) if request.param == "grpc" else TlsHttpReceiver(authority)
    with receiver:
        yield receiver


@pytest.fixture(params=["grpc", "http/protobuf"], ids=["grpc", "http"])
def mutual_tls_receiver(request: pytest.FixtureRequest, authority: trustme.CA) -> Iterator[Receiver]:
    """A receiver that asks every client for a certificate its CA issued (mutual TLS)."""
    receiver: Receiver = (
        TlsGrpcReceiver(authority, mutual=True)
        if request.param == "grpc"
        else TlsHttpReceiver(authority, mutual=True)
    )
    with receiver:
        yield receiver


def _refused_export(receiver: Receiver, caplog: pytest.LogCaptureFixture, **options: Any) -> str:
    """Record one pair through configure() to ``receiver`` whose handshake fails: flush() is
    False, nothing arrives, and exactly one warning names the endpoint; return that warning."""
    configure(endpoint=receiver.endpoint, protocol=receiver.protocol, timeout=2, **options)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"), PromptRecorder("refused"):
        autorecord("p", "r")
    assert flush(timeout=10) is False
    assert receiver.spans() == []
    warnings = [record.getMessage() for record in caplog.records if record.name.startswith("promptrecorder")]
    assert len(warnings) == 1
    assert receiver.endpoint.split("//")[1] in warnings[0]
    return warnings[0]


def test_mutual_tls_with_the_client_certificate_the_otlp_variables_name_delivers(
    mutual_tls_receiver: Receiver,
    authority: trustme.CA,
    ca_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY: the handshake passes, every span arrives."""
    client = authority.issue_cert("promptrecorder-client")
    certificate, key = tmp_path / "client.pem", tmp_path / "client.key"
    certificate.write_bytes(b"".join(blob.bytes() for blob in client.cert_chain_pems))
    client.private_key_pem.write_to_path(str(key))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", str(certificate))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", str(key))
    configure(endpoint=mutual_tls_receiver.endpoint, protocol=mutual_tls_receiver.protocol)
    with PromptRecorder("mutual"):
        autorecord("over mutual TLS", "arrived")
    assert flush(timeout=10)
    names = sorted(span.name for span in mutual_tls_receiver.wait_for_spans(2))
    assert names == ["chat", "invoke_workflow mutual"]


def test_mutual_tls_without_a_client_certificate_gets_nothing_and_it_is_said_plainly(
    mutual_tls_receiver: Receiver,
    ca_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The receiver refuses the handshake: flush() is False, nothing arrives, one warning names the endpoint."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", raising=False)
    warning = _refused_export(mutual_tls_receiver, caplog)
    # neither protocol's client hears the cause plainly (gRPC: "Socket closed"; HTTP: an EOF
    # or the TLS alert, whichever wins the race), so the reason names what may be missing
    assert "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE" in warning


def test_export_over_tls_with_auth_headers_arrives_and_leaks_nothing(
    tls_receiver: Receiver, ca_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Spans reach a TLS receiver with the auth header; the token is in no span, record or log line.

    REQUESTS_CA_BUNDLE is set to the system bundle on purpose: the requests library would
    let it override the CA the OTLP variable names (psf/requests#3829), and the export must
    still trust the OTLP one.
    """
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile or "")
    with caplog.at_level(logging.DEBUG):
        configure(
            endpoint=tls_receiver.endpoint, protocol=tls_receiver.protocol, headers={"Authorization": TOKEN}
        )
        with PromptRecorder("secure") as recorder:
            autorecord("over TLS", "arrived")
        assert flush(timeout=10)
    tls_receiver.wait_for_spans(2)  # the recorder span and its pair's call span
    span = tls_receiver.span_named("invoke_workflow secure")
    assert [str(event.attributes["prompt"]) for event in span.events[:1]] == ["over TLS"]
    assert tls_receiver.headers()[0]["authorization"] == TOKEN
    assert TOKEN not in repr(span)
    assert TOKEN not in repr(recorder.records)
    assert all("tls-test-token" not in record.getMessage() for record in caplog.records)


def test_a_tls_receiver_the_exporter_does_not_trust_gets_nothing_and_it_is_said_plainly(
    tls_receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the CA, the handshake fails: flush() is False and one warning names the endpoint."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE", raising=False)
    warning = _refused_export(tls_receiver, caplog, headers={"Authorization": TOKEN})
    assert "tls-test-token" not in warning


def test_the_sender_trusts_the_ca_the_otlp_variable_names(
    tls_receiver: Receiver, ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_sender reads OTEL_EXPORTER_OTLP_CERTIFICATE (over REQUESTS_CA_BUNDLE): the request arrives."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile or "")
    sender = build_sender(tls_receiver.protocol, tls_receiver.endpoint, {"authorization": TOKEN}, 5)
    try:
        result = sender.send(encode_request(_one_span()), 5)
    finally:
        sender.close()
    assert result.delivered, result
    assert [span.name for span in tls_receiver.wait_for_spans(1)] == ["tls"]
    assert tls_receiver.headers()[0]["authorization"] == TOKEN


def test_the_sender_refuses_an_untrusted_certificate_for_good(
    tls_receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the CA: not delivered, neither retryable nor splittable, the cause is the certificate."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_CERTIFICATE", raising=False)
    sender = build_sender(tls_receiver.protocol, tls_receiver.endpoint, {"authorization": TOKEN}, 5)
    try:
        result = sender.send(encode_request(_one_span()), 5)
    finally:
        sender.close()
    assert (result.delivered, result.retryable, result.splittable) == (False, False, False), result
    assert result.cause in (CAUSE_TLS_UNTRUSTED, CAUSE_TLS)
    assert result.reason.startswith("TLS")
    assert "tls-test-token" not in result.reason
    assert tls_receiver.spans() == []


def _one_span() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("test_tls").start_as_current_span("tls"):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())

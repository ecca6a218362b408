"""`promptrecorder check` against real OTLP receivers on 127.0.0.1, and against broken ones.

Every run passes a short --timeout, so a test that goes wrong ends within seconds.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from promptrecorder.cli import check
from promptrecorder.cli.check import CHECK_MODEL, CHECK_PROMPT, CHECK_RESPONSE, CHECK_SPAN_NAME
from promptrecorder.cli.main import EXIT_FAILURE, EXIT_OK, main
from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.export.senders import build_sender
from promptrecorder.recording import semconv

from .receivers import LOOPBACK, FailingHttpReceiver, Receiver, rpc_status_body, unused_port

SECRET = "s3cr3t-token-value"
# Whole runs stay well below this; it is asserted so that a slow path shows up as a failure.
_MOST_SECONDS = 4.0


@pytest.fixture(autouse=True)
def _no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `promptrecorder check ... --timeout 2` in-process; return the exit code and all output."""
    started = time.monotonic()
    code = main(["check", *argv, "--timeout", "2"])
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert elapsed < _MOST_SECONDS, f"check took {elapsed:.1f} s:\n{output}"
    assert "Traceback" not in output
    return code, output


def test_the_check_sends_through_the_sender_configure_builds(
    otlp_receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test span is encoded by our OTLP encoder and sent by senders.build_sender's sender."""
    encoded: list[int] = []
    built: list[str] = []

    def counting(spans: Any) -> bytes:
        encoded.append(len(spans))
        return encode_request(spans)

    def building(protocol: str, *args: Any, **kwargs: Any) -> Any:
        built.append(protocol)
        return build_sender(protocol, *args, **kwargs)

    monkeypatch.setattr(check, "encode_request", counting)
    monkeypatch.setattr(check, "build_sender", building)
    code, output = _check(capsys, "--endpoint", otlp_receiver.endpoint, "--protocol", otlp_receiver.protocol)
    assert code == EXIT_OK, output
    assert encoded == [2]  # the recorder span and its pair's call span, in one request
    assert built == [otlp_receiver.protocol]
    assert sorted(span.name for span in otlp_receiver.wait_for_spans(2)) == [
        f"chat {CHECK_MODEL}",
        f"invoke_workflow {CHECK_SPAN_NAME}",
    ]


def test_an_accepted_span_arrives_with_its_prompt_and_response(
    otlp_receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over gRPC and HTTP: exit 0, and the receiver holds the test span with both events."""
    code, output = _check(
        capsys,
        "--endpoint",
        otlp_receiver.endpoint,
        "--protocol",
        otlp_receiver.protocol,
        "--header",
        f"authorization=Bearer {SECRET}",
        "--service-name",
        "check-test",
    )
    assert code == EXIT_OK, output
    assert "accepted:" in output
    assert "headers authorization from --header" in output
    assert SECRET not in output

    span = otlp_receiver.span_named("invoke_workflow " + CHECK_SPAN_NAME)
    assert span.resource_attributes["service.name"] == "check-test"
    assert otlp_receiver.headers()[0]["authorization"] == f"Bearer {SECRET}"
    prompt, response = span.events
    assert prompt.name == semconv.EVENT_PROMPT
    assert prompt.attributes[semconv.PROMPT_TEXT] == CHECK_PROMPT
    assert prompt.attributes[semconv.GEN_AI_REQUEST_MODEL] == CHECK_MODEL
    assert prompt.attributes[semconv.USAGE_INPUT_TOKENS] > 0
    assert response.name == semconv.EVENT_RESPONSE
    assert response.attributes[semconv.RESPONSE_TEXT] == CHECK_RESPONSE
    assert response.attributes[semconv.USAGE_OUTPUT_TOKENS] > 0
    assert span.trace_id in output


def test_the_otel_variables_are_honoured(
    otlp_receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no flags, OTEL_EXPORTER_OTLP_* choose endpoint, protocol and headers."""
    for name, value in otlp_receiver.otel_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-honeycomb-team={SECRET}")
    code, output = _check(capsys)
    assert code == EXIT_OK, output
    assert "headers x-honeycomb-team from OTEL_EXPORTER_OTLP_HEADERS" in output
    assert SECRET not in output
    assert otlp_receiver.headers()[0]["x-honeycomb-team"] == SECRET


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_nothing_listening_is_refused(protocol: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A port nobody listens on: exit 1, 'refused', and what to start."""
    code, output = _check(capsys, "--endpoint", f"http://{LOOPBACK}:{unused_port()}", "--protocol", protocol)
    assert code == EXIT_FAILURE
    assert "refused the connection" in output
    assert "next: start the collector" in output


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_password_in_the_endpoint_is_never_printed(
    protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """user:password@ in --endpoint: every line masks the password, whatever the failure."""
    endpoint = f"http://user:{SECRET}@{LOOPBACK}:{unused_port()}"
    code, output = _check(capsys, "--endpoint", endpoint, "--protocol", protocol)
    assert code == EXIT_FAILURE
    assert "user:***@" in output
    assert SECRET not in output


@pytest.mark.parametrize(
    "failing_http_receiver",
    [{"status": 413, "body": f"body too large for {SECRET}".encode()}],
    indirect=True,
)
def test_a_413_says_to_raise_the_servers_limit_and_masks_the_header_it_echoes(
    failing_http_receiver: FailingHttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """HTTP 413: the status, the server's words (a header value it echoes masked), the limit to raise."""
    code, output = _check(
        capsys, "--endpoint", failing_http_receiver.endpoint, "--header", f"authorization={SECRET}"
    )
    assert code == EXIT_FAILURE
    assert "HTTP 413 Request Entity Too Large: 'body too large for ***'" in output
    assert "max_request_body_size" in output
    assert SECRET not in output


@pytest.mark.parametrize(
    "failing_http_receiver",
    [
        {"status": 400, "body": b"span rejected: attribute limit exceeded"},
        {
            "status": 400,
            "body": rpc_status_body("span rejected: attribute limit exceeded"),
            "content_type": "application/x-protobuf",
        },
    ],
    indirect=True,
    ids=["text", "rpc-status"],
)
def test_an_http_error_quotes_the_servers_message(
    failing_http_receiver: FailingHttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """HTTP 400: exit 1 with the status and the server's own text (plain or google.rpc.Status)."""
    code, output = _check(capsys, "--endpoint", failing_http_receiver.endpoint)
    assert code == EXIT_FAILURE
    assert "HTTP 400 Bad Request: 'span rejected: attribute limit exceeded'" in output
    assert failing_http_receiver.request_count == 1  # 400 is not retried


@pytest.mark.parametrize("failing_http_receiver", [{"status": 401, "body": b"bad key"}], indirect=True)
def test_an_auth_failure_names_the_headers_sent(
    failing_http_receiver: FailingHttpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """HTTP 401: the next step lists the header names that went out, never their values."""
    code, output = _check(
        capsys, "--endpoint", failing_http_receiver.endpoint, "--header", f"x-api-key={SECRET}"
    )
    assert code == EXIT_FAILURE
    assert "401 Unauthorized: 'bad key'" in output
    assert "headers sent: x-api-key" in output
    assert SECRET not in output


def test_https_against_a_plain_receiver_is_a_tls_failure(
    otlp_receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """https:// to a port that speaks plain HTTP/gRPC: exit 1, a TLS sentence, and 'use http://'."""
    url = otlp_receiver.endpoint.replace("http://", "https://")
    code, output = _check(capsys, "--endpoint", url, "--protocol", otlp_receiver.protocol)
    assert code == EXIT_FAILURE
    assert "TLS failed" in output
    assert "does not speak TLS" in output
    assert f"use http://{LOOPBACK}:{otlp_receiver.port}" in output
    assert otlp_receiver.spans() == []


def test_http_to_a_grpc_port_says_which_protocol_to_use(
    grpc_receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTLP/HTTP sent to a gRPC port: exit 1 and 'use --protocol grpc'."""
    code, output = _check(capsys, "--endpoint", grpc_receiver.endpoint, "--protocol", "http/protobuf")
    assert code == EXIT_FAILURE
    assert "does not speak OTLP/HTTP" in output
    assert "--protocol grpc" in output


def test_grpc_to_an_http_port_says_which_protocol_to_use(
    http_receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """OTLP/gRPC sent to an HTTP/1.1 port: exit 1 and 'use --protocol http/protobuf'."""
    code, output = _check(capsys, "--endpoint", http_receiver.endpoint, "--protocol", "grpc")
    assert code == EXIT_FAILURE
    assert "does not speak gRPC" in output
    assert "--protocol http/protobuf" in output


# --- a TLS receiver with a self-signed certificate ------------------------------------------


class _AcceptingHandler(BaseHTTPRequestHandler):
    timeout = 2

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        # Counted before answering: once the client has its 200, the test reads the count.
        self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__((LOOPBACK, 0), _AcceptingHandler)
        self.context = context
        self.posts = 0

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        sock.settimeout(2)
        # The handshake runs in the handler thread (finish_request), not in the accept loop.
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except OSError:
            return  # a client that does not speak TLS; it sees the connection close
        super().finish_request(request, client_address)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def tls_receiver(certificate: tuple[Path, Path]) -> Iterator[_TlsServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = _TlsServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()


def test_a_self_signed_certificate_is_not_trusted(
    tls_receiver: _TlsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """https:// to a self-signed server: exit 1, 'not trusted', and how to give the CA."""
    port = tls_receiver.server_address[1]
    code, output = _check(capsys, "--endpoint", f"https://{LOOPBACK}:{port}")
    assert code == EXIT_FAILURE
    assert "certificate of" in output
    assert "not trusted" in output
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in output
    assert tls_receiver.posts == 0


def test_the_certificate_variable_makes_it_trusted(
    tls_receiver: _TlsServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With OTEL_EXPORTER_OTLP_CERTIFICATE naming the CA, probe and exporter both trust it."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certificate[0]))
    port = tls_receiver.server_address[1]
    code, output = _check(capsys, "--endpoint", f"https://{LOOPBACK}:{port}")
    assert code == EXIT_OK, output
    assert tls_receiver.posts == 1


def test_the_certificate_variable_wins_over_requests_ca_bundle(
    tls_receiver: _TlsServer,
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """REQUESTS_CA_BUNDLE would override the OTLP/HTTP exporter's CA file (psf/requests#3829);
    check, like configure(), keeps the CA the OTLP variable names, and the span is accepted."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(certificate[0]))
    port = tls_receiver.server_address[1]
    code, output = _check(capsys, "--endpoint", f"https://{LOOPBACK}:{port}")
    assert code == EXIT_OK, output
    assert tls_receiver.posts == 1


def test_http_to_a_tls_port_says_to_use_https(
    tls_receiver: _TlsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """http:// to a port that speaks only TLS: exit 1 and 'use https://'."""
    port = tls_receiver.server_address[1]
    code, output = _check(capsys, "--endpoint", f"http://{LOOPBACK}:{port}")
    assert code == EXIT_FAILURE
    assert "speaks TLS" in output
    assert f"use https://{LOOPBACK}:{port}" in output

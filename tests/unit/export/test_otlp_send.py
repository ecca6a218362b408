"""build_sender's resolution of arguments and OTLP variables, and the senders' parsing helpers.

Sending to real receivers is in tests/integration/test_otlp_send.py.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)

from promptrecorder import settings
from promptrecorder.export import otlp_send
from promptrecorder.export.otlp_send import partial_success, resolve_options
from promptrecorder.export.otlp_send_http import retry_after_seconds, server_message, transport_failure
from promptrecorder.export.senders import build_sender

PASSWORD = "pw-0123456789"
_OTLP_VARIABLES = [name for name in settings.ENVIRONMENT if name.startswith("OTEL_EXPORTER_OTLP_")]


@pytest.fixture(autouse=True)
def _no_otlp_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTLP_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_specifications() -> None:
    """No argument, no variable: http/protobuf to localhost:4318/v1/traces, 10 s, no gzip, no headers."""
    sender = build_sender(None, None, None, None)
    try:
        assert sender.protocol == "http/protobuf"
        assert sender.destination == "http://localhost:4318/v1/traces"
    finally:
        sender.close()
    options = resolve_options("grpc", None, None, None, None)
    assert (options.url, options.timeout, options.compression, dict(options.headers)) == (
        "http://localhost:4317",
        10.0,
        "none",
        {},
    )
    assert options.insecure


def test_the_variables_are_honoured_traces_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each OTLP variable is read, the traces one winning over the general one."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "Authorization=Bearer%20T,b=2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "/general/ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/traces/ca.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "/c.pem")
    sender = build_sender(None, None, None, None)
    sender.close()
    assert sender.protocol == "http/protobuf"
    options = resolve_options("http/protobuf", None, None, None, None)
    assert options.url == "http://general:4318/v1/traces"
    assert dict(options.headers) == {"authorization": "Bearer T", "b": "2"}
    assert options.timeout == 2.5
    assert options.compression == "gzip"
    assert (options.certificate_file, options.client_key_file, options.client_certificate_file) == (
        "/traces/ca.pem",
        "/k.pem",
        "/c.pem",
    )
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom")
    assert resolve_options("http/protobuf", None, None, None, None).url == "http://traces:9999/custom"


def test_arguments_win_over_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit endpoint, headers, timeout and compression replace the variables."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    options = resolve_options("http/protobuf", "http://mine:4318/", {"X-Key": "v"}, 1.5, "none")
    assert (options.url, dict(options.headers), options.timeout, options.compression) == (
        "http://mine:4318/v1/traces",
        {"x-key": "v"},
        1.5,
        "none",
    )


@pytest.mark.parametrize(
    ("endpoint", "insecure_variable", "insecure"),
    [
        ("http://c:4317", None, True),
        ("https://c:4317", "true", False),
        ("c:4317", None, False),
        ("c:4317", "true", True),
        ("http://c:4317", "false", False),
    ],
)
def test_grpc_tls_follows_the_scheme_then_insecure(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, insecure_variable: str | None, insecure: bool
) -> None:
    """As the stock gRPC exporter: https:// is TLS; else OTEL_EXPORTER_OTLP_INSECURE; else http:// is plain."""
    if insecure_variable is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", insecure_variable)
    assert resolve_options("grpc", endpoint, None, None, None).insecure is insecure


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"protocol": "http/json"}, ValueError, "`protocol` must be one of"),
        ({"endpoint": f"http://u:{PASSWORD}@h:99999"}, ValueError, "`endpoint` must be a URL"),
        ({"endpoint": f"ftp://u:{PASSWORD}@h:1"}, ValueError, "`endpoint` must be a URL"),
        ({"endpoint": f"u:{PASSWORD}@nowhere"}, ValueError, "`endpoint` must be a URL"),
        ({"endpoint": 4318}, TypeError, "`endpoint` must be a str"),
        ({"timeout": 0}, ValueError, "`timeout` must be a positive number"),
        ({"timeout": float("nan")}, ValueError, "`timeout` must be a positive number"),
        ({"headers": {"authorization": 5}}, TypeError, "`headers` must map"),
        ({"headers": "a=b"}, TypeError, "`headers` must be a mapping"),
        ({"headers": {"authorization": f"Bearer {PASSWORD}\r\nx-evil: 1"}}, ValueError, "line breaks"),
        ({"headers": {"bad name": PASSWORD}}, ValueError, "without spaces"),
    ],
)
def test_bad_arguments_are_refused_without_echoing_credentials(
    kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    """A malformed argument raises at once with the rule; a password in it is masked."""
    arguments: dict[str, object] = {
        "protocol": "http/protobuf",
        "endpoint": None,
        "headers": None,
        "timeout": None,
    }
    arguments.update(kwargs)
    with pytest.raises(error, match=words) as raised:
        build_sender(**arguments)  # type: ignore[arg-type]
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://u:{PASSWORD}@h:notaport/v1/traces"),
    ],
)
def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """A malformed variable raises naming the variable, credentials masked."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name) as raised:
        build_sender("http/protobuf", None, None, None)
    assert PASSWORD not in str(raised.value)


def test_the_destination_masks_the_password() -> None:
    sender = build_sender("http/protobuf", f"http://u:{PASSWORD}@h:4318", None, 1)
    sender.close()
    assert sender.destination == "http://u:***@h:4318/v1/traces"


def test_grpc_is_imported_only_for_a_grpc_sender() -> None:
    """Building an HTTP sender does not load grpc; building a gRPC one does."""
    code = (
        "import sys\n"
        "from promptrecorder.export.senders import build_sender\n"
        "build_sender('http/protobuf', 'http://h:4318', None, 1).close()\n"
        "assert 'grpc' not in sys.modules, 'grpc loaded for HTTP'\n"
        "build_sender('grpc', 'http://h:4317', None, 1).close()\n"
        "assert 'grpc' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 0.5 ", 0.5), ("-3", 0.0), ("soon", None), ("", None), (None, None), ("nan", None)],
)
def test_retry_after_in_seconds(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date() -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    got = retry_after_seconds(when)
    assert got is not None
    assert 55 <= got <= 61
    past = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 60))
    assert retry_after_seconds(past) == 0.0


def test_partial_success_is_read_from_the_answer() -> None:
    body = ExportTraceServiceResponse(
        partial_success=ExportTracePartialSuccess(rejected_spans=3, error_message="too\nold")
    ).SerializeToString()
    assert partial_success(body) == (3, "too old")
    assert partial_success(b"") == (0, "")
    assert partial_success(b"\xff\xff not protobuf") == (0, "")


def test_the_servers_message_is_read_from_text_json_and_rpc_status() -> None:
    from google.rpc import status_pb2

    proto = status_pb2.Status(code=3, message="bad span").SerializeToString()
    assert server_message(b"quota   exceeded\n", "text/plain") == "quota exceeded"
    assert server_message(b'{"message": "no such project"}', "application/json") == "no such project"
    assert server_message(proto, "application/x-protobuf") == "bad span"
    assert server_message(b"", "text/plain") == ""
    assert len(server_message(b"x" * 10_000, "text/html")) == 300


@pytest.mark.parametrize(
    ("error", "cause", "retryable"),
    [
        (
            requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate"),
            otlp_send.CAUSE_TLS_UNTRUSTED,
            False,
        ),
        (
            requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version number"),
            otlp_send.CAUSE_TLS_NOT_SPOKEN,
            False,
        ),
        (requests.exceptions.SSLError("[SSL: TLSV1_ALERT_PROTOCOL_VERSION]"), otlp_send.CAUSE_TLS, False),
        (requests.exceptions.ConnectTimeout("timed out"), otlp_send.CAUSE_TIMEOUT, True),
        (
            requests.exceptions.ConnectionError("[Errno 111] Connection refused"),
            otlp_send.CAUSE_REFUSED,
            True,
        ),
        (
            requests.exceptions.ConnectionError("NameResolutionError: not known"),
            otlp_send.CAUSE_UNRESOLVED,
            True,
        ),
        (
            requests.exceptions.ConnectionError(
                "('Connection aborted.', BadStatusLine('\\x00\\x00\\x18\\x04'))"
            ),
            otlp_send.CAUSE_WRONG_PROTOCOL,
            True,
        ),
        (
            requests.exceptions.ConnectionError("RemoteDisconnected('closed')"),
            otlp_send.CAUSE_CLOSED_CONNECTION,
            True,
        ),
        (requests.exceptions.InvalidURL("odd"), otlp_send.CAUSE_CONNECTION, False),
    ],
)
def test_http_transport_errors_are_classified(
    error: requests.RequestException, cause: str, retryable: bool
) -> None:
    """Each kind of requests failure gets its cause; only TLS and unusable URLs are not retryable."""
    options = resolve_options("http/protobuf", f"http://u:{PASSWORD}@h:4318", None, 2, None)
    result = transport_failure(error, options, 2)
    assert (result.delivered, result.splittable, result.cause, result.retryable) == (
        False,
        False,
        cause,
        retryable,
    )
    assert "http://u:***@h:4318/v1/traces" in result.reason
    assert PASSWORD not in result.reason


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_send_never_raises_even_for_a_body_that_is_not_bytes(protocol: str) -> None:
    """A body of the wrong type comes back as a failed result whose reason masks the credentials."""
    sender = build_sender(protocol, f"http://u:{PASSWORD}@127.0.0.1:9", {"authorization": PASSWORD}, 1)
    try:
        result = sender.send(object(), 1)  # type: ignore[arg-type]
    finally:
        sender.close()
    assert not result.delivered
    assert result.reason
    assert PASSWORD not in result.reason
    assert PASSWORD not in result.detail

"""`promptrecorder check` without a network: target resolution, classification, and the sentences."""

from __future__ import annotations

import pytest

from promptrecorder.cli.check import DEFAULT_SERVICE_NAME, Outcome, Problem, Target, resolve_target
from promptrecorder.cli.check_replies import outcome_of
from promptrecorder.cli.check_report import describe, environment_notes, verdict
from promptrecorder.cli.main import EXIT_USAGE, main
from promptrecorder.export import otlp_send
from promptrecorder.export.otlp_send import SendResult

SECRET = "s3cr3t-token-value"

_OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _target(protocol: str = "http/protobuf", url: str = "http://collector:4318/v1/traces") -> Target:
    return Target(
        url=url,
        protocol=protocol,
        headers={"authorization": SECRET},
        header_source="--header",
        timeout=5.0,
        service_name=DEFAULT_SERVICE_NAME,
    )


# --- resolving the target -----------------------------------------------------------------


def test_the_target_follows_the_otel_variables_like_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no flags, endpoint, protocol, headers and service name come from OTEL_*."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=abc%20def")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    target = resolve_target()
    assert (target.url, target.protocol, target.service_name) == (
        "http://collector:4317",
        "grpc",
        "support-bot",
    )
    assert target.headers == {"x-honeycomb-team": "abc def"}  # URL-decoded, as the exporters do
    assert target.header_source == "OTEL_EXPORTER_OTLP_HEADERS"


def test_flags_win_over_variables_and_http_gets_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """--endpoint/--protocol/--header replace the variables; /v1/traces is appended for HTTP."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=from-env")
    target = resolve_target("https://collector:4318", "http/protobuf", ["Authorization=Basic abc"], 2.0)
    assert target.url == "https://collector:4318/v1/traces"
    assert target.headers == {"authorization": "Basic abc"}
    assert target.header_source == "--header"
    assert (target.scheme, target.host, target.port, target.timeout) == ("https", "collector", 4318, 2.0)


def test_the_traces_header_variable_wins_over_the_general_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_TRACES_HEADERS is used when set, as the exporter would."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "a=1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "b=2")
    target = resolve_target("http://collector:4318")
    assert target.headers == {"b": "2"}
    assert target.header_source == "OTEL_EXPORTER_OTLP_TRACES_HEADERS"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "collector:4318"}, "must be a URL"),
        ({"endpoint": "ftp://collector:21"}, "http:// or https://"),
        ({"endpoint": "http://collector:99999"}, "port"),
        ({"protocol": "carrier-pigeon"}, "`protocol` must be one of"),
        ({"timeout": 0}, "`timeout` must be a positive number"),
    ],
)
def test_a_malformed_target_is_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    """Bad endpoints, protocols and timeouts raise ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        resolve_target(**kwargs)  # type: ignore[arg-type]


def test_a_header_without_a_key_is_refused_without_echoing_it() -> None:
    """A bare credential passed as --header is not repeated in the error."""
    with pytest.raises(ValueError, match="key=value") as raised:
        resolve_target("http://collector:4318", headers=[f"Bearer {SECRET}"])
    assert SECRET not in str(raised.value)


def test_a_password_in_the_url_is_not_shown() -> None:
    """shown_url masks the password of a user:password@host endpoint."""
    target = _target(url=f"https://user:{SECRET}@collector:4318/v1/traces")
    assert target.shown_url == "https://user:***@collector:4318/v1/traces"
    assert SECRET not in describe(target)


# --- what the sender's result means -------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "problem", "status", "detail"),
    [
        (SendResult(True, False, False, "HTTP 200 OK", status=200), Problem.NONE, "200 OK", ""),
        (SendResult(True, False, False, "gRPC OK", status="OK"), Problem.NONE, "OK", ""),
        (
            SendResult(True, False, False, "x", rejected_spans=1, status=200, detail="span too old"),
            Problem.REJECTED,
            "200 OK",
            "1 span: span too old",
        ),
        (
            SendResult(True, False, False, "x", rejected_spans=2, status="OK"),
            Problem.REJECTED,
            "OK",
            "2 spans",
        ),
        (
            SendResult(False, False, True, "x", status=413, detail="too big"),
            Problem.HTTP_STATUS,
            "413 Request Entity Too Large",
            "too big",
        ),
        (
            SendResult(False, False, True, "x", status="RESOURCE_EXHAUSTED", detail="larger than max"),
            Problem.GRPC_STATUS,
            "RESOURCE_EXHAUSTED",
            "larger than max",
        ),
        (
            SendResult(False, False, False, "x", status=307, cause=otlp_send.CAUSE_REDIRECT, detail="to /b"),
            Problem.REDIRECTED,
            "307 Temporary Redirect",
            "to /b",
        ),
        (
            SendResult(
                False, True, False, "x", status="UNAVAILABLE", cause=otlp_send.CAUSE_REFUSED, detail="d"
            ),
            Problem.REFUSED,
            "UNAVAILABLE",
            "d",
        ),
        (
            SendResult(False, True, False, "x", cause=otlp_send.CAUSE_TIMEOUT, detail="d"),
            Problem.TIMEOUT,
            None,
            "d",
        ),
        (SendResult(False, True, False, "x", cause=otlp_send.CAUSE_UNRESOLVED), Problem.UNRESOLVED, None, ""),
        (
            SendResult(False, False, False, "x", cause=otlp_send.CAUSE_TLS_UNTRUSTED),
            Problem.TLS_UNTRUSTED,
            None,
            "",
        ),
        (
            SendResult(False, False, False, "x", cause=otlp_send.CAUSE_TLS_NOT_SPOKEN),
            Problem.TLS_NOT_SPOKEN,
            None,
            "",
        ),
        (SendResult(False, False, False, "x", cause=otlp_send.CAUSE_TLS), Problem.TLS_FAILED, None, ""),
        (
            SendResult(False, True, False, "x", cause=otlp_send.CAUSE_WRONG_PROTOCOL),
            Problem.WRONG_PROTOCOL,
            None,
            "",
        ),
        (
            SendResult(False, True, False, "x", cause=otlp_send.CAUSE_CLOSED_CONNECTION),
            Problem.CONNECTION_CLOSED,
            None,
            "",
        ),
        (
            SendResult(False, True, False, "boom (h)", cause=otlp_send.CAUSE_ERROR),
            Problem.UNKNOWN,
            None,
            "boom (h)",
        ),
    ],
)
def test_the_senders_result_becomes_an_outcome(
    result: SendResult, problem: Problem, status: str | None, detail: str
) -> None:
    """Each class of send result maps to the problem a person can act on, with the server's words."""
    outcome = outcome_of(result)
    assert (outcome.problem, outcome.status, outcome.detail) == (problem, status, detail)
    assert outcome.http_status == (result.status if isinstance(result.status, int) else None)


# --- the sentences ---------------------------------------------------------------------------


def test_describe_names_the_url_protocol_and_header_names_but_no_value() -> None:
    """The first line says where, how, and which headers, never their values."""
    line = describe(_target())
    assert "http://collector:4318/v1/traces over OTLP/HTTP" in line
    assert "timeout 5 s" in line
    assert "headers authorization from --header" in line
    assert SECRET not in line


def test_an_accepted_span_says_where_to_look() -> None:
    """Accepted: the trace id, and the service and span to look for."""
    happened, next_step = verdict(_target(), Outcome(Problem.NONE, trace_id="ab" * 16, elapsed_s=0.05))
    assert happened == f"accepted: collector:4318 took the test span in 0.05 s (trace {'ab' * 16})."
    assert "'promptrecorder-check'" in next_step


_FAILURES = [
    (Outcome(Problem.REFUSED), "refused the connection", "start the collector"),
    (Outcome(Problem.UNRESOLVED, "Name or service not known"), "could not be resolved", "host name"),
    (Outcome(Problem.UNREACHABLE, "No route to host"), "cannot be reached", "route"),
    (Outcome(Problem.TIMEOUT, "no answer within 5 s"), "did not answer in time", "--timeout"),
    (
        Outcome(Problem.TLS_NOT_SPOKEN, "WRONG_VERSION_NUMBER"),
        "does not speak TLS",
        "use http://collector:4318",
    ),
    (
        Outcome(Problem.TLS_UNTRUSTED, "self-signed certificate"),
        "not trusted",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ),
    (Outcome(Problem.TLS_FAILED, "alert"), "TLS handshake", "TLS enabled"),
    (Outcome(Problem.TLS_REQUIRED), "speaks TLS", "use https://collector:4318"),
    (Outcome(Problem.CONNECTION_CLOSED, "reset"), "closed it", "gRPC port"),
    (Outcome(Problem.WRONG_PROTOCOL, "HTTP/2 frames"), "does not speak OTLP/HTTP", "--protocol grpc"),
    (
        Outcome(Problem.REDIRECTED, "to https://x/", "301 Moved", 301),
        "redirect to https://x/",
        "redirects to",
    ),
    (
        Outcome(Problem.HTTP_STATUS, "no such project", "404 Not Found", 404),
        "HTTP 404 Not Found: 'no such project'",
        "/v1/traces is appended",
    ),
    (Outcome(Problem.HTTP_STATUS, "", "401 Unauthorized", 401), "with an empty body", "authorization"),
    (Outcome(Problem.HTTP_STATUS, "busy", "503 Service Unavailable", 503), "'busy'", "overloaded"),
    (Outcome(Problem.HTTP_STATUS, "bad", "400 Bad Request", 400), "'bad'", "OTLP/HTTP traces receiver"),
    # What the real Collector answers to a body over max_request_body_size (tests/backends).
    (
        Outcome(Problem.HTTP_STATUS, "http: request body too large", "400 Bad Request", 400),
        "request body too large",
        "max_request_body_size",
    ),
    (Outcome(Problem.HTTP_STATUS, "oops", "500 Internal Server Error", 500), "'oops'", "logs"),
    (
        Outcome(Problem.GRPC_STATUS, "missing key", "UNAUTHENTICATED"),
        "UNAUTHENTICATED: 'missing key'",
        "credentials",
    ),
    (Outcome(Problem.GRPC_STATUS, "", "UNIMPLEMENTED"), "with no details", "trace service"),
    (Outcome(Problem.REJECTED, "1 span: too old"), "rejected 1 span: too old", "logs"),
    (Outcome(Problem.UNKNOWN, "odd"), "the export failed (odd)", "--timeout"),
]


@pytest.mark.parametrize(
    ("outcome", "happened_says", "next_says"), _FAILURES, ids=[o.problem.name for o, _, _ in _FAILURES]
)
def test_every_failure_is_one_sentence_and_one_next_step(
    outcome: Outcome, happened_says: str, next_says: str
) -> None:
    """Each failure reads 'not accepted: <what happened>.' then 'next: <what to try>.'"""
    happened, next_step = verdict(_target(), outcome)
    assert happened.startswith("not accepted: ")
    assert happened.endswith(".")
    assert next_step.startswith("next: ")
    assert next_step.endswith(".")
    assert happened_says in happened
    assert next_says in next_step
    assert SECRET not in happened + next_step


def test_credential_failures_name_the_headers_sent_but_not_their_values() -> None:
    """401/403 and UNAUTHENTICATED list the header names that went out."""
    _, next_step = verdict(
        _target("grpc", "http://c:4317"), Outcome(Problem.GRPC_STATUS, "", "PERMISSION_DENIED")
    )
    assert "headers sent: authorization" in next_step
    assert SECRET not in next_step


def test_wrong_protocol_advice_depends_on_the_protocol_tried() -> None:
    """gRPC against an HTTP/1.1 port suggests http/protobuf, and the other way round."""
    outcome = Outcome(Problem.WRONG_PROTOCOL, "http1.x server")
    happened, next_step = verdict(_target("grpc", "http://c:4318"), outcome)
    assert "does not speak gRPC" in happened
    assert "--protocol http/protobuf" in next_step


def test_settings_that_silence_an_application_are_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_SDK_DISABLED=true and an OTEL_TRACES_EXPORTER without otlp are pointed out."""
    assert environment_notes() == []
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    notes = environment_notes()
    assert len(notes) == 2
    assert "OTEL_SDK_DISABLED=true" in notes[0]
    assert "OTEL_TRACES_EXPORTER=console" in notes[1]


# --- the command's usage errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--timeout", "0"],
        ["check", "--timeout", "soon"],
        ["check", "--protocol", "smoke-signals"],
    ],
)
def test_bad_flag_values_are_usage_errors(argv: list[str]) -> None:
    """argparse refuses bad values with exit 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_USAGE


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["check", "--endpoint", "localhost:4318"], "`endpoint` must be a URL"),
        (["check", "--endpoint", "http://c:4318", "--header", f"Bearer {SECRET}"], "key=value"),
        (["check", "--endpoint", f"http://u:{SECRET}@h:99999"], "valid host and port"),
        (
            ["check", "--endpoint", "http://c:4318", "--header", f"authorization=Bearer {SECRET}\r\nx: y"],
            "line breaks",
        ),
        (["check", "--endpoint", f"http://u:{SECRET}@h:99999", "--protocol", "grpc"], "valid host and port"),
    ],
)
def test_a_bad_target_is_one_sentence_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed endpoint or header is a usage error, said plainly, without a traceback or a credential."""
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err
    assert SECRET not in err


def test_a_grpc_message_over_the_receivers_limit_says_which_limit() -> None:
    """RESOURCE_EXHAUSTED "larger than max" points at max_recv_msg_size_mib; another one at memory."""
    target = _target(protocol="grpc", url="http://collector:4317")
    too_big = Outcome(
        Problem.GRPC_STATUS, "Received message larger than max (8833552 vs. 4194304)", "RESOURCE_EXHAUSTED"
    )
    assert "max_recv_msg_size_mib" in verdict(target, too_big)[1]
    memory = Outcome(Problem.GRPC_STATUS, "data refused due to high memory usage", "RESOURCE_EXHAUSTED")
    assert "max_recv_msg_size_mib" not in verdict(target, memory)[1]

"""The sentences ``promptrecorder check`` prints: what happened, and what to try next.

Each failure is one sentence saying what happened (quoting the server, the TLS library or
the exporter) and one sentence saying what to try. Header *names* may be printed, never
their values.
"""

from __future__ import annotations

from promptrecorder import settings
from promptrecorder.cli.check import CHECK_SPAN_NAME, Outcome, Problem, Target
from promptrecorder.recording import semconv

_PROTOCOL_NAMES = {"grpc": "OTLP/gRPC", "http/protobuf": "OTLP/HTTP"}
_DEFAULT_PORTS = "4318 for OTLP/HTTP, 4317 for OTLP/gRPC"


def describe(target: Target) -> str:
    """The first line: where the test span goes, how, and which headers (names only)."""
    if target.headers:
        names = ", ".join(sorted(target.headers))
        headers = f"headers {names} from {target.header_source}"
    else:
        headers = "no headers"
    return (
        f"promptrecorder check: sending one test span to {target.shown_url} over "
        f"{_PROTOCOL_NAMES[target.protocol]} (timeout {target.timeout:g} s, {headers})"
    )


def verdict(target: Target, outcome: Outcome) -> tuple[str, str]:
    """``(what happened, what to try next)``: one sentence each."""
    if outcome.accepted:
        return _accepted(target, outcome)
    return _what_happened(target, outcome), _next_step(target, outcome)


def environment_notes() -> list[str]:
    """Settings that make an application export nothing, whatever the check says."""
    notes = []
    if settings.env_flag(settings.OTEL_SDK_DISABLED):
        notes.append(
            "note: OTEL_SDK_DISABLED=true here, so configure() in an application with this "
            "environment sets up no exporter at all; unset it to export."
        )
    exporters = settings.env(settings.OTEL_TRACES_EXPORTER)
    if exporters is not None and "otlp" not in [name.strip().lower() for name in exporters.split(",")]:
        notes.append(
            f"note: OTEL_TRACES_EXPORTER={exporters} here, so configure() sends nothing over OTLP; "
            "add otlp to it (e.g. OTEL_TRACES_EXPORTER=otlp)."
        )
    return notes


def _accepted(target: Target, outcome: Outcome) -> tuple[str, str]:
    took = f"in {outcome.elapsed_s:.2f} s" if outcome.elapsed_s else ""
    trace = f"trace {outcome.trace_id}" if outcome.trace_id else "its trace"
    return (
        f"accepted: {target.address} took the test span {took} ({trace}).".replace("  ", " "),
        f"next: look for service {target.service_name!r}, span "
        f"{semconv.WORKFLOW_SPAN_PREFIX + CHECK_SPAN_NAME!r} in your backend "
        "(in Jaeger's UI: Search, or /trace/<trace id>); its Logs hold the test prompt and response.",
    )


def _what_happened(target: Target, outcome: Outcome) -> str:
    where, detail = target.address, outcome.detail
    said = f" ({detail})" if detail else ""
    problem = outcome.problem
    if problem is Problem.UNRESOLVED:
        return f"not accepted: the host {target.host!r} could not be resolved{said}."
    if problem is Problem.REFUSED:
        return f"not accepted: {where} refused the connection, so nothing listens there."
    if problem is Problem.UNREACHABLE:
        return f"not accepted: {where} cannot be reached{said}."
    if problem is Problem.TIMEOUT:
        return f"not accepted: {where} did not answer in time{said}."
    if problem is Problem.TLS_NOT_SPOKEN:
        return (
            f"not accepted: TLS failed, as {where} answered the TLS handshake in plain text, "
            f"so it does not speak TLS on this port{said}."
        )
    if problem is Problem.TLS_UNTRUSTED:
        return f"not accepted: TLS failed, as the certificate of {where} is not trusted{said}."
    if problem is Problem.TLS_FAILED:
        return f"not accepted: the TLS handshake with {where} failed{said}."
    if problem is Problem.TLS_REQUIRED:
        return f"not accepted: {where} speaks TLS, but the endpoint is an http:// URL{said}."
    if problem is Problem.CONNECTION_CLOSED:
        return f"not accepted: {where} took the connection but closed it without an OTLP answer{said}."
    if problem is Problem.WRONG_PROTOCOL:
        if target.protocol == "grpc":
            return f"not accepted: {where} does not speak gRPC; it looks like an HTTP/1.1 server{said}."
        return f"not accepted: {where} does not speak OTLP/HTTP{said}."
    if problem is Problem.REDIRECTED:
        return (
            f"not accepted: the server answered HTTP {outcome.status} with a redirect {detail}, which "
            "the OTLP exporter does not follow (it would count the span as delivered, but it was not)."
        )
    if problem is Problem.HTTP_STATUS:
        message = f": {detail!r}" if detail else " with an empty body"
        return f"not accepted: the server answered HTTP {outcome.status}{message}."
    if problem is Problem.GRPC_STATUS:
        message = f": {detail!r}" if detail else " with no details"
        return f"not accepted: the server answered gRPC status {outcome.status}{message}."
    if problem is Problem.REJECTED:
        return f"not accepted: the server took the request but rejected {detail}."
    return f"not accepted: the export failed{said}."


def _next_step(target: Target, outcome: Outcome) -> str:
    problem, protocol = outcome.problem, target.protocol
    other_port = "HTTP port (4318) with --protocol http/protobuf" if protocol == "grpc" else "gRPC port"
    if problem is Problem.UNRESOLVED:
        return (
            "next: check the host name in --endpoint or OTEL_EXPORTER_OTLP_ENDPOINT "
            "(inside docker compose, a service is reached by its service name)."
        )
    if problem is Problem.REFUSED:
        return (
            "next: start the collector (the demo stack: `docker compose up -d`) or point --endpoint "
            f"at the port it listens on ({_DEFAULT_PORTS})."
        )
    if problem is Problem.UNREACHABLE:
        return "next: check the address and the route to the collector (VPN, firewall, network)."
    if problem is Problem.TIMEOUT:
        return (
            "next: check that the collector is up and that no firewall drops the traffic, "
            "or raise --timeout for a slow link."
        )
    if problem is Problem.TLS_NOT_SPOKEN:
        return f"next: use http://{target.address} instead of https://, or enable TLS on the collector's receiver."
    if problem is Problem.TLS_UNTRUSTED:
        return (
            "next: give the CA that signed the server's certificate with "
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/path/to/ca.pem, or fix the certificate "
            "(its names must include the host you connect to)."
        )
    if problem is Problem.TLS_FAILED:
        return (
            "next: check that the receiver on this port has TLS enabled (else use http://) and, "
            "for mutual TLS, set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY."
        )
    if problem is Problem.TLS_REQUIRED:
        return f"next: use https://{target.address} as the endpoint."
    if problem is Problem.CONNECTION_CLOSED:
        return (
            f"next: check that this is the collector's {_PROTOCOL_NAMES[protocol]} port; "
            f"if it is the {other_port}, switch, and if it speaks TLS use https://."
        )
    if problem is Problem.WRONG_PROTOCOL:
        if target.protocol == "grpc":
            return "next: use --protocol http/protobuf for this port, or the collector's gRPC port (4317)."
        return "next: use --protocol grpc for this port, or the collector's OTLP/HTTP port (4318)."
    if problem is Problem.REDIRECTED:
        return "next: put the URL it redirects to in --endpoint or OTEL_EXPORTER_OTLP_ENDPOINT."
    if problem is Problem.HTTP_STATUS:
        return _next_for_http(target, outcome.http_status or 0, outcome.detail)
    if problem is Problem.GRPC_STATUS:
        return _next_for_grpc(target, outcome.status or "", outcome.detail)
    if problem is Problem.REJECTED:
        return "next: the server's logs say why it refuses these spans; check its limits and filters."
    return "next: check the collector's logs, and try again with a longer --timeout."


def _credentials(target: Target) -> str:
    sent = ", ".join(sorted(target.headers)) or "none"
    return (
        f"next: check the credentials (headers sent: {sent}); set them with --header "
        "or OTEL_EXPORTER_OTLP_HEADERS, e.g. authorization=Bearer%20<token>."
    )


def _next_for_http(target: Target, code: int, detail: str) -> str:
    if code in (401, 403):
        return _credentials(target)
    if code in (404, 405):
        return (
            f"next: check the URL ({target.shown_url}): for OTLP/HTTP, /v1/traces is appended to "
            "OTEL_EXPORTER_OTLP_ENDPOINT, while OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is."
        )
    # The Collector refuses an over-limit body with 400 "http: request body too large", not 413.
    if code == 413 or (code == 400 and "body too large" in detail.lower()):
        return "next: raise the server's request size limit (the collector's max_request_body_size)."
    if code == 415:
        return "next: point at an OTLP/HTTP receiver: it must accept application/x-protobuf."
    if code in (429, 502, 503, 504):
        return "next: the server or a proxy before it is overloaded or down; check its logs and try again."
    if 400 <= code < 500:
        return "next: the server's message says what it refused; check that this URL is an OTLP/HTTP traces receiver."
    return "next: the server failed; its logs say why."


def _next_for_grpc(target: Target, code: str, detail: str) -> str:
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return _credentials(target)
    if code == "UNIMPLEMENTED":
        return (
            "next: this server does not offer OTLP's trace service; point at the collector's "
            "OTLP/gRPC port (4317), or use --protocol http/protobuf for an HTTP port."
        )
    if code == "RESOURCE_EXHAUSTED" and "larger than max" in detail.lower():
        return "next: raise the receiver's message limit (the collector's max_recv_msg_size_mib; gRPC's default is 4)."
    if code == "RESOURCE_EXHAUSTED":
        return "next: the server is over a limit (memory or message size); check its logs and try again."
    if code == "UNAVAILABLE":
        return "next: check that the collector is up and healthy, then try again."
    if code == "INVALID_ARGUMENT":
        return "next: the server's message says what it refused; check that it is an OTLP receiver."
    return "next: the server's logs say why."

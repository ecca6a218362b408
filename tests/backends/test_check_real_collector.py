"""`promptrecorder check` against a real Collector: accepted, wrong protocol, and its real size limits.

What the Collector v0.165 itself answers (these tests pin it, so a change shows up here):
* an OTLP/HTTP body over `max_request_body_size`: HTTP **400** (not 413) with a
  google.rpc.Status whose message is ``http: request body too large``;
* a gRPC message over `max_recv_msg_size_mib`: RESOURCE_EXHAUSTED,
  ``grpc: received message larger than max (N vs. M)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import grpc
import pytest

from promptrecorder.cli.check import CHECK_MODEL

from .conftest import v3_spans, wait_for_trace
from .processes import Collector, Jaeger, http_get

PROTOCOLS = pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])
_TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the CLI as a user would; its report (stdout, and stderr where a diagnosis goes) is in `.stdout`."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-m", "promptrecorder", "check", "--timeout", "5", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


@PROTOCOLS
def test_check_is_accepted_by_the_real_collector_and_its_span_reaches_jaeger(
    protocol: str, collector: Collector, jaeger: Jaeger
) -> None:
    """Exit 0, `accepted`, and the test spans (service promptrecorder-check: the recorder span and
    its pair's call span) are in Jaeger by their trace id."""
    result = run_check("--endpoint", collector.endpoint(protocol), "--protocol", protocol)
    assert result.returncode == 0, result.stdout
    assert "accepted" in result.stdout
    trace_id = result.stdout.split("(trace ", 1)[1][:32]
    spans = v3_spans(wait_for_trace(jaeger, trace_id, lambda answer: len(v3_spans(answer)) >= 2))
    assert sorted(span["name"] for span in spans) == [
        f"chat {CHECK_MODEL}",
        "invoke_workflow promptrecorder-check",
    ]
    assert all(span["_resource"]["service.name"] == {"stringValue": "promptrecorder-check"} for span in spans)


def test_check_over_grpc_at_the_http_port_says_it_does_not_speak_grpc(collector: Collector) -> None:
    """The Collector's HTTP port answers HTTP/1.1 to a gRPC client: check says so and exits 1."""
    result = run_check("--endpoint", collector.http_endpoint, "--protocol", "grpc")
    assert result.returncode == 1, result.stdout
    assert "does not speak gRPC" in result.stdout
    assert "--protocol http/protobuf" in result.stdout


def test_check_over_http_at_the_grpc_port_is_not_accepted_and_points_at_the_port(
    collector: Collector,
) -> None:
    """The Collector's gRPC port resets an HTTP/1.1 request: check exits 1 and names the gRPC port as a cause."""
    result = run_check("--endpoint", collector.grpc_endpoint, "--protocol", "http/protobuf")
    assert result.returncode == 1, result.stdout
    assert "not accepted" in result.stdout
    assert "gRPC port" in result.stdout


def test_check_refused_over_the_collectors_real_http_body_limit_reports_its_words(
    start_collector: Callable[..., Collector],
) -> None:
    """A Collector with max_request_body_size=1000: it answers 400 `http: request body too large`; check exits 1, quotes it and names the limit to raise."""
    tiny = start_collector(PROMPTRECORDER_COLLECTOR_HTTP_MAX_BODY_BYTES="1000")
    result = run_check("--endpoint", tiny.http_endpoint, "--protocol", "http/protobuf")
    assert result.returncode == 1, result.stdout
    assert "not accepted" in result.stdout
    assert "400" in result.stdout
    assert "request body too large" in result.stdout
    assert "max_request_body_size" in result.stdout


def test_the_real_collector_refuses_a_grpc_message_over_its_limit_with_resource_exhausted(
    start_collector: Callable[..., Collector],
) -> None:
    """max_recv_msg_size_mib=1 (the smallest it takes): a 1 MiB + 100 byte message gets RESOURCE_EXHAUSTED.

    `check` sends one small span, so it cannot reach this limit; the answer is pinned here
    with a raw gRPC call instead, in the Collector's words.
    """
    small = start_collector(PROMPTRECORDER_COLLECTOR_GRPC_MAX_RECV_MIB="1")
    size = 1024 * 1024 + 100
    with grpc.insecure_channel(f"127.0.0.1:{small.grpc_port}") as channel:
        call = channel.unary_unary(_TRACE_EXPORT)
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\x0a" + b"\x00" * (size - 1), timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert refused.value.details() == f"grpc: received message larger than max ({size} vs. 1048576)"  # type: ignore[attr-defined]
    assert http_get(small.health_url)[0] == 200  # and it carries on

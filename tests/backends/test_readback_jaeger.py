"""Production to notebook through the real programs: a session recorded with ``configure()``,
sent through a real Collector into a real Jaeger v2, read back with ``read_jaeger`` (and from
Jaeger's own /api/v3 JSON saved to a file, and with ``promptrecorder read``) equals the
records kept in memory, apart from the documented truncation."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from opentelemetry import trace

from promptrecorder import (
    PromptRecord,
    TraceNotFoundError,
    configure,
    flush,
    read_jaeger,
    read_jsonl,
    read_otlp_json,
)
from promptrecorder.cli.main import main
from tests.unit.readback.test_readback import as_exported, record_session

from .processes import Collector, Jaeger

pytestmark = pytest.mark.usefixtures("global_tracing")
PROTOCOLS = pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])


def _read_when_complete(
    jaeger: Jaeger, trace_id: str, count: int, timeout: float = 60.0
) -> list[PromptRecord]:
    """read_jaeger's records of `trace_id` once all `count` pairs are in (the Collector batches)."""
    deadline = time.monotonic() + timeout
    records: list[PromptRecord] = []
    while time.monotonic() < deadline:
        try:
            records = read_jaeger(jaeger.query_url, trace_id=trace_id)
        except TraceNotFoundError:
            records = []
        if len(records) >= count:
            return records
        time.sleep(0.3)
    raise AssertionError(
        f"{len(records)} of {count} pairs of trace {trace_id} in Jaeger after {timeout:.0f} s"
    )


@PROTOCOLS
def test_a_session_read_back_from_jaeger_equals_the_records_in_memory(
    protocol: str, collector: Collector, jaeger: Jaeger, tmp_path: Path
) -> None:
    """Nested recorders, 140 events in one block (segments), a 200,000-character prompt, a
    message list with tool calls, a bot call with its CLIENT span, a failed call, a stream
    stopped early, usage and metadata: read back by trace id, by service, from a saved
    /api/v3 answer and with `promptrecorder read`, every pair equals its in-memory record
    (the long prompt as exported, its original length and hash in the metadata)."""
    service = f"readback-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
    configure(endpoint=collector.endpoint(protocol), protocol=protocol, service_name=service)
    session = record_session(trace.get_tracer_provider())  # type: ignore[arg-type]
    assert flush(timeout=60) is True
    expected = [as_exported(record) for record in session.records]
    trace_id = expected[0].trace_id
    assert trace_id is not None
    assert {record.trace_id for record in expected} == {trace_id}

    assert _read_when_complete(jaeger, trace_id, len(expected)) == expected
    assert read_jaeger(jaeger.query_url, service=service, since="10m", limit=5) == expected

    status, answer = jaeger.get_json(f"/api/v3/traces/{trace_id}")
    assert status == 200
    saved = tmp_path / "answer.json"
    saved.write_text(json.dumps(answer), encoding="utf-8")
    assert read_otlp_json(saved) == expected

    out = tmp_path / "records.jsonl"
    assert main(["read", "--jaeger", jaeger.query_url, "--trace-id", trace_id, "--jsonl", str(out)]) == 0
    assert read_jsonl(out) == expected


def test_a_trace_jaeger_never_saw_is_trace_not_found(jaeger: Jaeger) -> None:
    """Jaeger's real 404 for an unknown trace id is TraceNotFoundError; a service with no
    traces in the window is an empty list."""
    with pytest.raises(TraceNotFoundError, match="has no trace"):
        read_jaeger(jaeger.query_url, trace_id=uuid.uuid4().hex)
    assert read_jaeger(jaeger.query_url, service=f"nobody-{uuid.uuid4().hex[:8]}", since="5m") == []

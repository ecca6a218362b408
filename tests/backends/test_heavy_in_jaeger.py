"""Heavy sessions through a real Collector that keeps the stock limits, found pair by pair in Jaeger.

The Collector here refuses what a stock one refuses (4 MiB per gRPC message, 20 MiB per
HTTP body): the config/ file runs with PROMPTRECORDER_COLLECTOR_GRPC_MAX_RECV_MIB=4.
"""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent import futures
from typing import Any

import pytest

from promptrecorder import PromptRecorder, autorecord, configure, delivery_stats, flush
from promptrecorder.recording import semconv

from .conftest import attributes, v3_spans, wait_for_trace
from .processes import Collector, Jaeger

pytestmark = pytest.mark.usefixtures("global_tracing")
PROTOCOLS = pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])
DOCUMENTED_CONTENT_LIMIT = 32_768
TRUNCATION_MARKER = "…[truncated]"


def _pairs(spans: list[dict[str, Any]]) -> Counter[str]:
    """How many times each record id arrived, counted on the prompt events."""
    return Counter(
        str(attributes(event)[semconv.RECORD_ID])
        for span in spans
        for event in span.get("events", [])
        if event["name"] == semconv.EVENT_PROMPT
    )


def _prompt_count(expected: int) -> Any:
    return lambda answer: sum(_pairs(v3_spans(answer)).values()) >= expected


def _service(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@PROTOCOLS
def test_a_long_block_past_128_events_and_a_200_000_character_prompt_arrive_whole_in_jaeger(
    protocol: str, collector: Collector, jaeger: Jaeger
) -> None:
    """One recorder with 400 pairs (800 events: several segment spans) and one 200,000-character prompt.

    Every pair is in Jaeger once, in one trace, spread over segment spans linked to the
    recorder span; the big prompt arrives cut as documented (at most 32,768 characters plus
    the marker) with its original length beside it.
    """
    configure(endpoint=collector.endpoint(protocol), protocol=protocol, service_name=_service("heavy"))
    with PromptRecorder("long-block") as recorder:
        for index in range(400):
            autorecord(f"{index:05d} " + "p" * 1000, "r" * 1000, model="m")
        big = autorecord("q" * 200_000, "ok", model="m")
    assert big is not None
    assert flush(timeout=60) is True
    ids = {record.id for record in recorder.records}
    trace_id = big.trace_id
    assert trace_id is not None
    assert {record.trace_id for record in recorder.records} == {trace_id}

    spans = v3_spans(wait_for_trace(jaeger, trace_id, _prompt_count(len(ids)), timeout=60))
    arrived = _pairs(spans)
    assert set(arrived) == ids
    assert set(arrived.values()) == {1}
    carrying = [span for span in spans if span.get("events")]
    assert len(carrying) > 1, "800 events cannot fit one span's 128: segments were expected"
    assert all(len(span["events"]) <= 128 for span in carrying)
    # Each pair's call span, a child of the span carrying its events, with its record id.
    calls = [span for span in spans if span["name"] == "chat m"]
    assert {str(attributes(call)[semconv.RECORD_ID]) for call in calls} == ids
    carrier_ids = {span["spanId"] for span in carrying}
    assert all(call["parentSpanId"] in carrier_ids for call in calls)

    [big_event] = [
        attributes(event)
        for span in spans
        for event in span.get("events", [])
        if event["name"] == semconv.EVENT_PROMPT and attributes(event)[semconv.RECORD_ID] == big.id
    ]
    text = big_event[semconv.PROMPT_TEXT]
    assert text.endswith(TRUNCATION_MARKER)
    assert len(text) <= DOCUMENTED_CONTENT_LIMIT + len(TRUNCATION_MARKER)
    assert big_event[semconv.PROMPT_ORIGINAL_LENGTH] == 200_000
    assert len(big.prompt) == 200_000  # kept whole in memory


@PROTOCOLS
def test_three_thousand_requests_with_4_kb_pairs_all_arrive_in_jaeger(
    protocol: str, collector: Collector, jaeger: Jaeger
) -> None:
    """A busy service: 3,000 requests (each its own trace) of 4 KB pairs, every one found in Jaeger once.

    Needs export requests bounded in bytes: 512 spans of ~16 KB exceed the Collector's stock
    4 MiB gRPC limit. Nothing may be refused: delivery_stats() counts 6,000 exported (each
    request's recorder span and its pair's call span).
    """
    configure(endpoint=collector.endpoint(protocol), protocol=protocol, service_name=_service("busy"))
    prompt, response = "p" * 4096, "r" * 4096
    expected: dict[str, str] = {}
    for index in range(3_000):
        with PromptRecorder("req"):
            record = autorecord(prompt, response, model="m")
        assert record is not None
        assert record.trace_id is not None
        expected[record.trace_id] = record.id
        if index % 500 == 499:  # a service's load arrives over time
            flush(timeout=30)
    assert flush(timeout=60) is True
    [stats] = delivery_stats()
    assert (stats.exported_spans, stats.failed_spans) == (6_000, 0)

    def found(trace_id: str) -> tuple[str, Counter[str]]:
        answer = wait_for_trace(jaeger, trace_id, _prompt_count(1), timeout=30)
        return trace_id, _pairs(v3_spans(answer))

    with futures.ThreadPoolExecutor(max_workers=4) as pool:
        arrived = dict(pool.map(found, expected))
    assert {trace_id: set(pairs) for trace_id, pairs in arrived.items()} == {
        trace_id: {record_id} for trace_id, record_id in expected.items()
    }
    assert all(pairs[expected[trace_id]] == 1 for trace_id, pairs in arrived.items())
    assert collector.process is not None
    assert collector.process.poll() is None

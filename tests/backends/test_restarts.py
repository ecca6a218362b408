"""Restarting the Collector mid-stream (with the spool on) and restarting Jaeger (in-memory store)."""

from __future__ import annotations

import time
from collections import Counter
from concurrent import futures
from pathlib import Path

import pytest

from promptrecorder import PromptRecorder, autorecord, configure, delivery_stats, flush
from promptrecorder.recording import semconv

from .conftest import attributes, v3_spans, wait_for_trace
from .processes import Collector, Jaeger

pytestmark = pytest.mark.usefixtures("global_tracing")


def _requests(count: int, phase: str) -> dict[str, str]:
    """`count` requests, each its own trace with one pair; {trace id: record id}."""
    made: dict[str, str] = {}
    for index in range(count):
        with PromptRecorder("req"):
            record = autorecord(f"{phase} {index} " + "p" * 500, "r" * 500, model="m")
        assert record is not None
        assert record.trace_id is not None
        made[record.trace_id] = record.id
        if index % 50 == 49:
            flush(timeout=0.5)  # a service's load arrives over time; a short flush lets batches go
    return made


def _pairs_in(jaeger: Jaeger, trace_id: str) -> Counter[str]:
    answer = wait_for_trace(jaeger, trace_id, lambda a: bool(v3_spans(a)), timeout=30)
    return Counter(
        str(attributes(event)[semconv.RECORD_ID])
        for span in v3_spans(answer)
        for event in span.get("events", [])
        if event["name"] == semconv.EVENT_PROMPT
    )


def _flush_until_drained(limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while not flush(timeout=10):
        assert time.monotonic() < deadline, f"the spool did not drain in {limit_s:.0f} s: {delivery_stats()}"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])
def test_a_collector_restarted_mid_stream_with_the_spool_on_loses_nothing_and_duplicates_nothing(
    protocol: str, own_stack: tuple[Jaeger, Collector], tmp_path: Path
) -> None:
    """200 requests, the Collector stops (SIGTERM), 200 more while it is down, it comes back, 200 more.

    With `spool_dir`, every one of the 600 pairs is in Jaeger exactly once: what the
    Collector could not take waited on disk and was re-sent when it came back.
    """
    jaeger, collector = own_stack
    configure(
        endpoint=collector.endpoint(protocol),
        protocol=protocol,
        service_name="restart-collector",
        spool_dir=tmp_path / "spool",
        timeout=2,
    )
    made = _requests(200, "before")
    collector.stop()
    made |= _requests(200, "while-down")
    flush(timeout=3)  # the exports fail: these go to the spool
    assert delivery_stats()[0].spooled_spans > 0, "the Collector was down, yet nothing was spooled"
    collector.start()  # the same ports: the same environment
    made |= _requests(200, "after")
    _flush_until_drained()

    with futures.ThreadPoolExecutor(max_workers=4) as pool:
        arrived = dict(zip(made, pool.map(lambda trace_id: _pairs_in(jaeger, trace_id), made), strict=True))
    missing = [t for t, pairs in arrived.items() if made[t] not in pairs]
    twice = [t for t, pairs in arrived.items() if pairs[made[t]] > 1]
    assert (len(missing), len(twice)) == (0, 0), f"missing {missing[:5]}, twice {twice[:5]}"
    assert all(set(pairs) == {made[t]} for t, pairs in arrived.items())
    [stats] = delivery_stats()
    assert stats.failed_spans == 0


def test_a_restarted_jaeger_has_forgotten_every_trace_and_takes_new_ones(
    own_stack: tuple[Jaeger, Collector],
) -> None:
    """The in-memory store (config/jaeger.yaml) keeps nothing across a restart, as the docs say.

    Before: the trace is there. After a restart: /api/v3 answers 404 for it and /api/traces
    has no data; a trace sent after the restart arrives (the Collector reconnects by itself).
    """
    jaeger, collector = own_stack
    configure(endpoint=collector.grpc_endpoint, protocol="grpc", service_name="restart-jaeger")
    with PromptRecorder("before"):
        before = autorecord("kept in memory only", "yes", model="m")
    assert before is not None
    assert before.trace_id is not None
    assert flush(timeout=10) is True
    assert before.id in _pairs_in(jaeger, before.trace_id)

    jaeger.restart()
    status, answer = jaeger.get_json(f"/api/v3/traces/{before.trace_id}")
    assert status == 404, answer
    status, answer = jaeger.get_json(f"/api/traces/{before.trace_id}")
    assert status == 404, answer
    status, services = jaeger.get_json("/api/v3/services")
    assert status == 200
    assert "restart-jaeger" not in services.get("services", [])

    with PromptRecorder("after"):
        after = autorecord("sent after the restart", "arrives", model="m")
    assert after is not None
    assert after.trace_id is not None
    assert flush(timeout=10) is True
    assert after.id in _pairs_in(jaeger, after.trace_id)

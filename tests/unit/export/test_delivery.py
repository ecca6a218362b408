"""Delivery through configure()'s pipeline: the spool's drain, full queues, per-recorder summaries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder import (
    PromptRecorder,
    autorecord,
    configure,
    delivery_stats,
    flush,
    shutdown,
)
from promptrecorder.export import delivery_processor
from promptrecorder.export.otlp_codec import decode_batch, encode_batch
from promptrecorder.export.otlp_encode import EncodedSpan, encode_request
from promptrecorder.export.spool import Spool
from promptrecorder.recording import ledger
from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint, LLMCall
from promptrecorder.recording.ledger import DeliverySummary

pytestmark = pytest.mark.usefixtures("global_tracing")


class Collector(SpanExporter):
    """A stand-in collector: accepts or refuses, may hang until released; keeps what it accepted."""

    def __init__(self, *, up: bool = True) -> None:
        self.up = up
        self.hold = threading.Event()
        self.hold.set()
        self.batches: list[list[str]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.hold.wait(10)
        if not self.up:
            return SpanExportResult.FAILURE
        # The recorders' names: their spans are `invoke_workflow <name>`.
        self.batches.append([span.name.removeprefix("invoke_workflow ") for span in spans])
        return SpanExportResult.SUCCESS

    def names(self) -> list[str]:
        return [name for batch in self.batches for name in batch]

    def shutdown(self) -> None:
        self.hold.set()


class EncodedCollector(Collector):
    """A collector that, like configure()'s OTLP exporters, takes spans encoded as they ended."""

    takes_encoded_spans = True

    def __init__(self, *, up: bool = True) -> None:
        super().__init__(up=up)
        self.received: list[type] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.received.extend(type(span) for span in spans)
        # What goes on the wire, read back as spans.
        return super().export(decode_batch(encode_request(spans)))


COLLECTORS = [pytest.param(Collector, id="spans"), pytest.param(EncodedCollector, id="encoded-at-end")]


def _sessions(count: int, prefix: str = "s") -> list[PromptRecorder]:
    """One span per session: a block with no pair (a pair would add its call span)."""
    recorders = []
    for index in range(count):
        with PromptRecorder(f"{prefix}{index}", attributes={"prompt": "p", "response": "r"}) as recorder:
            pass
        recorders.append(recorder)
    return recorders


# --- with a spool ---------------------------------------------------------------------------------


@pytest.mark.parametrize("collector_class", COLLECTORS)
def test_spans_that_cannot_be_delivered_are_spooled_and_resent_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, collector_class: type[Collector]
) -> None:
    """Collector down: flush() is False, spans wait on disk; back up: re-sent in order, once each."""
    collector = collector_class(up=False)
    configure(exporter=collector, spool_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        first = _sessions(3, "a")
        assert flush(timeout=1) is False
        later = _sessions(2, "b")
        assert flush(timeout=0.5) is False
        assert [recorder.delivery for recorder in first + later] == [DeliverySummary(spooled=1)] * 5
        assert delivery_stats()[0].spool_backlog_spans == 5
        collector.up = True
        assert flush(timeout=5) is True
    assert collector.names() == ["a0", "a1", "a2", "b0", "b1"]
    assert [recorder.delivery for recorder in first + later] == [DeliverySummary(exported=1)] * 5
    stats = delivery_stats()[0]
    assert (stats.exported_spans, stats.failed_spans, stats.spool_backlog_spans) == (5, 0, 0)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "kept in the spool" in messages[0]
    assert "recovered; re-sending the 5 spans spooled" in messages[1]


def test_a_hanging_exporter_never_makes_the_queue_drop_with_a_spool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The queue is full while an export hangs: the overflow goes to disk (said once), all arrives once."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    collector = Collector()
    collector.hold.clear()
    configure(exporter=collector, spool_dir=tmp_path)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        recorders = _sessions(60)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, lines
    assert "is full; spans wait in the spool" in lines[0]
    assert time.monotonic() - started < 2  # the application never waited on the exporter
    collector.hold.set()
    assert flush(timeout=10) is True
    assert sorted(collector.names()) == sorted(f"s{index}" for index in range(60))
    assert delivery_stats()[0].queue_dropped_spans == 0
    assert all(recorder.delivery == DeliverySummary(exported=1) for recorder in recorders)


@pytest.mark.parametrize("damage", ["truncated", "not-otlp"])
def test_a_damaged_spool_file_is_set_aside_and_the_drain_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """A truncated file, or one whose checksum holds but that is not OTLP, between two good
    ones: one log line, the good ones re-sent in order, the drain goes on."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for name in ("old-1", "damaged", "old-2"):
        provider.get_tracer("t").start_span(name).end()
    spool = Spool.acquire(tmp_path, max_bytes=1 << 20)
    old_1, damaged_span, old_2 = memory.get_finished_spans()
    payloads = [encode_batch([old_1]), encode_batch([damaged_span]), encode_batch([old_2])]
    if damage == "not-otlp":
        payloads[1] = b"\xff\xff\xff not protobuf"
    entries = [spool.append(payload, 1) for payload in payloads]
    spool.release()
    damaged = tmp_path / entries[1].name  # type: ignore[union-attr]
    if damage == "truncated":
        damaged.write_bytes(damaged.read_bytes()[:-5])

    collector = Collector()
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        configure(exporter=collector, spool_dir=tmp_path)
        assert flush(timeout=5) is False  # one batch is lost, and flush says so
        _sessions(1, "new")
        assert flush(timeout=5) is True
    assert collector.names() == ["old-1", "old-2", "new0"]
    (line,) = [record.getMessage() for record in caplog.records if "set aside" in record.getMessage()]
    assert f"{damaged} (1 spans) cannot be re-sent because" in line
    assert ("do not match its checksum" if damage == "truncated" else "not an OTLP trace request") in line
    assert (tmp_path / f"{damaged.name}.corrupt").exists()
    assert delivery_stats()[0].failed_spans == 1


def test_what_shutdown_could_not_send_waits_for_the_next_configure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Down at exit: the spool keeps the spans (one line says where); the next configure() sends them."""
    down = Collector(up=False)
    configure(exporter=down, spool_dir=tmp_path, timeout=1)
    recorders = _sessions(4)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        started = time.monotonic()
        shutdown(timeout=2)
        assert time.monotonic() - started < 4
    assert any("4 spans (1 batches) wait in the spool" in record.getMessage() for record in caplog.records)
    assert all(recorder.delivery == DeliverySummary(spooled=1) for recorder in recorders)
    up = Collector()
    configure(exporter=up, spool_dir=tmp_path)
    assert flush(timeout=5) is True
    assert sorted(up.names()) == ["s0", "s1", "s2", "s3"]


def test_a_spool_held_by_another_user_is_reported_and_loss_is_counted_instead(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """configure() does not fail when the spool cannot be used: it says so and counts loss."""
    from promptrecorder.export import spool as spool_module

    def refuse(directory: object, max_bytes: int) -> Spool:
        raise spool_module.SpoolUnavailableError(f"{directory} is in use by another process")

    monkeypatch.setattr(Spool, "acquire", refuse)
    with caplog.at_level(logging.WARNING, logger="promptrecorder"):
        configure(exporter=Collector(up=False), spool_dir=tmp_path)
    assert "is in use by another process" in caplog.text
    assert "counted and reported, not spooled" in caplog.text
    _sessions(1)
    assert flush(timeout=2) is False
    assert delivery_stats()[0].failed_spans == 1


@pytest.mark.parametrize(
    ("kwargs", "env", "error", "match"),
    [
        ({"spool_dir": 5}, {}, TypeError, "`spool_dir` must be a directory path"),
        ({"spool_dir": ""}, {}, TypeError, "`spool_dir` must be a directory path"),
        ({"spool_max_bytes": 0}, {}, ValueError, "`spool_max_bytes` must be a positive int"),
        ({"spool_max_bytes": True}, {}, ValueError, "`spool_max_bytes` must be a positive int"),
        (
            {},
            {"PROMPTRECORDER_SPOOL_MAX_BYTES": "lots"},
            ValueError,
            "PROMPTRECORDER_SPOOL_MAX_BYTES must be",
        ),
    ],
)
def test_bad_spool_settings_are_refused_at_once(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, object], env: dict[str, str], error: type, match: str
) -> None:
    """Each bad spool argument or variable fails configure() with a message naming it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(error, match=match):
        configure(exporter="none", **kwargs)  # type: ignore[arg-type]


def test_the_spool_variables_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PROMPTRECORDER_SPOOL_DIR turns the spool on and PROMPTRECORDER_SPOOL_MAX_BYTES bounds it."""
    monkeypatch.setenv("PROMPTRECORDER_SPOOL_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("PROMPTRECORDER_SPOOL_MAX_BYTES", "1")
    configure(exporter=Collector(up=False))
    _sessions(1)
    assert flush(timeout=1) is False
    stats = delivery_stats()[0]
    assert stats.spool_dir == str(tmp_path / "from-env")
    assert (stats.spool_dropped_spans, stats.failed_spans) == (1, 1)  # 1 byte holds nothing


# --- without a spool ---------------------------------------------------------------------------


@pytest.mark.parametrize("collector_class", COLLECTORS)
def test_a_full_queue_drops_are_counted_per_recorder_and_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, collector_class: type[Collector]
) -> None:
    """No spool, exporter hanging, queue of 8: the rest are dropped, counted, one log line, nothing silent."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4")
    collector = collector_class()
    collector.hold.clear()
    encoded: list[object] = []
    monkeypatch.setattr(
        delivery_processor,
        "EncodedSpan",
        lambda span, context: encoded.append(span) or EncodedSpan(span, context),
    )
    configure(exporter=collector)
    with caplog.at_level(logging.WARNING):
        recorders = _sessions(40)
        collector.hold.set()
        assert flush(timeout=5) is False
    stats = delivery_stats()[0]
    summaries = [recorder.delivery for recorder in recorders]
    assert all(summary.pending == 0 and summary.spooled == 0 for summary in summaries)
    dropped = sum(summary.dropped for summary in summaries)
    assert dropped == stats.queue_dropped_spans == stats.failed_spans > 0
    assert sum(summary.exported for summary in summaries) == len(collector.names()) == 40 - dropped
    # Only the spans the queue took were encoded: none for the dropped ones (without a spool).
    assert len(encoded) == len(collector.names())
    queue_lines = [record for record in caplog.records if "queue" in record.getMessage()]
    assert len(queue_lines) == 1
    assert "Queue full" not in caplog.text  # the SDK's own uncounted drop never happened


# --- the per-recorder summary ---------------------------------------------------------------------


def test_a_recorder_counts_its_own_segment_and_call_spans_not_an_inner_recorders() -> None:
    """Outer: its span, a segment, a CLIENT span and its 70 pairs' call spans; inner: its own
    span and its pair's call span only."""
    collector = Collector()
    configure(exporter=collector)
    with PromptRecorder("outer") as outer:
        for _ in range(70):  # 140 events: past one span's 128, so one segment
            autorecord("p", "r")
        call = LLMCall.start(
            CallRequest(Endpoint("openai"), "gpt-4o-mini", ({"role": "user", "content": "hi"},))
        )
        assert call is not None
        call.finish(CallResult(text="hello"))
        with PromptRecorder("inner") as inner:
            autorecord("p", "r")
    assert outer.delivery.pending == 73  # ended, queued, fate not known yet
    assert flush(timeout=5) is True
    assert outer.delivery == DeliverySummary(exported=73)
    assert outer.delivery.complete
    assert inner.delivery == DeliverySummary(exported=2)
    assert sorted(collector.names()) == [
        *["chat"] * 71,
        "chat gpt-4o-mini",
        "inner",
        "outer",
        "outer segment 1",
    ]


def test_spans_that_go_nowhere_are_not_counted_and_not_remembered() -> None:
    """exporter='none', or a recorder on another provider: the summary stays empty and no note is kept."""
    configure(exporter="none")
    (recorder,) = _sessions(1)
    assert recorder.delivery == DeliverySummary()
    configure(exporter=Collector())
    own = TracerProvider(shutdown_on_exit=False)
    with PromptRecorder("elsewhere", tracer_provider=own) as elsewhere:
        autorecord("p", "r")
    assert elsewhere.delivery == DeliverySummary()
    assert ledger._open == {}
    own.shutdown()


def test_an_exporter_instance_gets_its_spans_back_from_their_bytes(tmp_path: Path) -> None:
    """Every span waits as its OTLP bytes; an application's exporter gets them decoded back to
    spans (changed deliberately: one byte-bounded pipeline for every destination, issue 11)."""
    encoded, plain = EncodedCollector(), Collector()
    configure(exporter=encoded)
    _sessions(2, "e")
    assert flush(timeout=5)
    configure(exporter=plain)
    _sessions(1, "p")
    assert flush(timeout=5)
    assert all(issubclass(kind, ReadableSpan) for kind in encoded.received)
    assert encoded.names() == ["e0", "e1"]
    assert plain.names() == ["p0"]

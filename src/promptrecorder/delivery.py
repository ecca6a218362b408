"""Delivery accounting around a span exporter: count what went out, say plainly what did not.

The stock OTLP exporters log every retry and every failure, sometimes with a traceback.
A service whose collector is down would see that stream in its own logs. ``DeliveryExporter``
wraps the real exporter: it counts exported and lost spans, turns the exporter's own log
lines about a failure into one plain warning per outage (no traceback), says when delivery
recovers, and once shutdown has begun it stops waiting on a collector that is not answering,
so that the process exits in bounded time.

With a spool (``configure(spool_dir=...)``) nothing is given up instead: a batch that
cannot be delivered is written to disk and re-sent later by the exporter's ``SpoolDrain``
(``promptrecorder.spool_drain``); this module still decides, batch by batch, whether to
send directly or behind the spool, and counts every outcome.

The batch processor that hands a full queue's spans to ``DeliveryExporter.overflow`` is
``DeliveryProcessor`` (``promptrecorder.delivery_processor``).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder import ledger
from promptrecorder._diagnostics import QUEUE_EPISODE_QUIET_S, logger
from promptrecorder.spool import Spool
from promptrecorder.spool_drain import SpoolDrain

# The loggers through which the stock OTLP span exporters report a failed export.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http._common",
)

_exporting = threading.local()
# How long shutdown waits for an aborted export to return its outcome.
_IN_FLIGHT_GRACE_S = 1.0


class _CaptureExporterLogs(logging.Filter):
    """Keep an exporter's log lines that our own export call caused; let the rest through."""

    def filter(self, record: logging.LogRecord) -> bool:
        owner: DeliveryExporter | None = getattr(_exporting, "owner", None)
        if owner is None:
            return True
        # The first complaint names the cause; later ones are retries and aborts.
        if record.levelno >= logging.WARNING and owner._captured is None:
            owner._captured = record.getMessage().splitlines()[0].rstrip(". ")
        return False


_capture_filter = _CaptureExporterLogs()


def _install_capture_filter() -> None:
    for name in _EXPORTER_LOGGERS:
        exporter_logger = logging.getLogger(name)
        if _capture_filter not in exporter_logger.filters:
            exporter_logger.addFilter(_capture_filter)


@dataclass(frozen=True)
class DeliveryStats:
    """What an exporter delivered so far in this process.

    ``failed_spans`` counts every span lost for good, whatever the cause; the
    ``*_dropped_spans`` fields say how many of those a full queue or a full spool cost.
    A span whose export failed but which was spooled is not lost: it counts in
    ``spooled_spans`` and, once re-sent, in ``exported_spans``.
    """

    exported_spans: int
    failed_spans: int
    failed_exports: int
    last_error: str | None
    queue_dropped_spans: int = 0
    spooled_spans: int = 0
    spool_dropped_spans: int = 0
    spool_backlog_spans: int = 0
    spool_dir: str | None = None


class DeliveryExporter(SpanExporter):
    """Wraps ``exporter``, counting delivery, logging each outage once, and spooling if asked.

    Threading contract: ``export`` is called by one processor thread at a time (the SDK's
    batch processor serialises it); with a spool, the drain thread also exports, and a lock
    keeps the two from calling the wrapped exporter at once. The counters, ``track`` and
    ``overflow`` may be used from any thread.
    """

    def __init__(self, exporter: SpanExporter, destination: str, spool: Spool | None = None) -> None:
        self._exporter = exporter
        self.destination = destination
        self._spool = spool
        self._lock = threading.Lock()
        # One call into the wrapped exporter at a time. Reentrant: the drain thread takes it
        # with a timeout first, so that it can go on spooling overflow while an export hangs.
        self._send_lock = threading.RLock()
        self._exported = 0
        self._failed = 0  # lost for good
        self._failed_exports = 0
        self._queue_dropped = 0
        self._spooled = 0
        self._failing = False
        self._outage_failed = 0  # spans failed since the outage began
        self._unreported = 0  # of those, the ones after the outage's one warning
        self._last_error: str | None = None
        self._captured: str | None = None  # what the exporter logged during the current export
        self._last_queue_drop = float("-inf")
        self._failed_at_last_flush = 0
        self._queue_unreported = 0
        self._shutting_down = False
        self._closed = False
        self._idle = threading.Event()  # clear while an export is in flight
        self._idle.set()
        self._in_flight: Sequence[ReadableSpan] = ()
        self._in_flight_is_spooled = False  # a re-send: its file is still on disk
        self._tracked: dict[int, ledger.Tally] = {}  # span id -> whose, until its fate is known
        # The spool mode: overflow, spool writes and the drain thread; None without a spool.
        self._drain = SpoolDrain(self, spool) if spool is not None else None
        _install_capture_filter()

    def start(self) -> None:
        """Start re-sending what the spool holds (configure() calls it once the pipeline is live)."""
        if self._drain is not None:
            self._drain.start()

    # --- what happened --------------------------------------------------------------------

    def stats(self) -> DeliveryStats:
        spool = self._spool
        backlog = self._drain.backlog_spans() if self._drain is not None else 0
        with self._lock:
            return DeliveryStats(
                self._exported,
                self._failed,
                self._failed_exports,
                self._last_error,
                queue_dropped_spans=self._queue_dropped,
                spooled_spans=self._spooled,
                spool_dropped_spans=spool.dropped_spans if spool is not None else 0,
                spool_backlog_spans=backlog,
                spool_dir=str(spool.directory) if spool is not None else None,
            )

    def track(self, span_id: int, tally: ledger.Tally) -> None:
        """Account the span's fate to ``tally`` (a recorder's) when it is known."""
        with self._lock:
            self._tracked[span_id] = tally

    def _tallies(self, spans: Sequence[ReadableSpan]) -> list[ledger.Tally]:
        found = []
        with self._lock:
            if self._tracked:
                for span in spans:
                    if span.context is not None:
                        tally = self._tracked.pop(span.context.span_id, None)
                        if tally is not None:
                            found.append(tally)
        return found

    # --- exporting --------------------------------------------------------------------------

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._drain is not None:
            return self._export_or_spool(self._drain, spans)
        if self._shutting_down and self._failing:
            # The collector did not answer the last export: waiting on it again would only
            # hold the process at exit. Count what is given up.
            self._lose(spans, None)
            return SpanExportResult.FAILURE
        delivered = self._send(spans)
        if self._closed:  # shutdown gave up on this export and already counted it
            return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE
        if delivered:
            self._count_success(spans)
            return SpanExportResult.SUCCESS
        self._lose(spans, self._captured)
        return SpanExportResult.FAILURE

    def _export_or_spool(self, drain: SpoolDrain, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        drain.move_overflow()
        if drain.holds_anything() or not self._send_lock.acquire(blocking=False):
            # Behind what is already waiting (or being re-sent), in order; never waiting on
            # the drain thread's export, so that the queue keeps moving.
            drain.to_spool(spans)
            return SpanExportResult.SUCCESS
        try:
            delivered = self._send(spans)
        finally:
            self._send_lock.release()
        if self._closed:  # shutdown gave up on this export and already spooled a copy
            return SpanExportResult.SUCCESS if delivered else SpanExportResult.FAILURE
        if delivered:
            self._count_success(spans)
            return SpanExportResult.SUCCESS
        self._note_failure(len(spans), self._captured, spooled=True)
        drain.to_spool(spans)
        return SpanExportResult.FAILURE

    def _send(self, spans: Sequence[ReadableSpan], *, spooled: bool = False) -> bool:
        """One call into the wrapped exporter; the exporter's complaints land in ``_captured``."""
        with self._send_lock:
            _exporting.owner = self
            self._captured = None
            self._in_flight = spans
            self._in_flight_is_spooled = spooled
            self._idle.clear()
            try:
                try:
                    result = self._exporter.export(spans)
                except Exception as error:  # an exporter bug must not kill the processor thread
                    result = SpanExportResult.FAILURE
                    self._captured = f"{type(error).__name__}: {error}"
            finally:
                _exporting.owner = None
                self._in_flight = ()
                self._idle.set()
        return result is SpanExportResult.SUCCESS

    def begin_shutdown(self) -> None:
        """From now on, give up at once on a collector that did not answer the last export."""
        self._shutting_down = True

    # --- counting -----------------------------------------------------------------------------

    def _count_success(self, spans: Sequence[ReadableSpan]) -> None:
        ledger.resolve(self._tallies(spans), "exported")
        self._count_exported(len(spans))

    def _count_exported(self, count: int, spooled_before: int = 0) -> None:
        with self._lock:
            self._exported += count
            recovered = self._failing
            dropped = self._outage_failed
            self._failing = False
            self._outage_failed = self._unreported = 0
        if recovered and self._spool is None:
            logger.warning(
                "promptrecorder: delivery to %s recovered; %d spans were not delivered during the outage",
                self.destination,
                dropped,
            )
        elif recovered:
            logger.warning(
                "promptrecorder: delivery to %s recovered; re-sending the %d spans spooled in %s",
                self.destination,
                spooled_before,
                self._spool.directory if self._spool is not None else "",
            )

    def _lose(self, spans: Sequence[ReadableSpan], reason: str | None) -> None:
        ledger.resolve(self._tallies(spans), "dropped")
        self._note_failure(len(spans), reason, spooled=False)

    def _note_failure(self, count: int, reason: str | None, *, spooled: bool) -> None:
        with self._lock:
            if reason is not None:
                self._last_error = reason
            self._failed_exports += 1
            if not spooled:
                self._failed += count
                self._outage_failed += count
            first = not self._failing
            if not first and not spooled:
                self._unreported += count
            self._failing = True
        if not first:
            return
        cause = reason or self._last_error or "the exporter reported a failure"
        if spooled:
            logger.warning(
                "promptrecorder: could not deliver %d spans to %s: %s. Your code is not affected; "
                "spans are kept in the spool %s and re-sent, oldest first, when the collector answers.",
                count,
                self.destination,
                cause,
                self._spool.directory if self._spool is not None else "",
            )
        else:
            logger.warning(
                "promptrecorder: could not deliver %d spans to %s: %s. Your code is not affected; "
                "further failures are counted and reported when delivery recovers or at shutdown.",
                count,
                self.destination,
                cause,
            )

    def _lose_queued(self, spans: Sequence[ReadableSpan]) -> None:
        """Spans the batch processor had no room for (and, with a spool, no overflow room)."""
        ledger.resolve(self._tallies(spans), "dropped")
        now = time.monotonic()
        with self._lock:
            self._failed += len(spans)
            self._queue_dropped += len(spans)
            episode = now - self._last_queue_drop > QUEUE_EPISODE_QUIET_S
            self._last_queue_drop = now
            if not episode:
                self._queue_unreported += len(spans)
        if episode:
            logger.warning(
                "promptrecorder: the export queue for %s is full; spans are dropped and counted "
                "(delivery_stats().queue_dropped_spans) until it drains. Spans end faster than they "
                "can be sent: raise OTEL_BSP_MAX_QUEUE_SIZE, or configure a spool_dir.",
                self.destination,
            )

    def _count_failed(self, count: int) -> None:
        """Spans lost for good outside an export: a spool write or a spooled file gone bad."""
        with self._lock:
            self._failed += count

    def _count_spooled(self, count: int) -> None:
        with self._lock:
            self._spooled += count

    def lost_since_last_flush(self) -> int:
        """Spans lost since the previous call (flush() asks), or since this exporter began."""
        with self._lock:
            lost = self._failed - self._failed_at_last_flush
            self._failed_at_last_flush = self._failed
        return lost

    # --- the spool ---------------------------------------------------------------------------

    def overflow(self, span: ReadableSpan) -> None:
        """Take a span the batch processor's full queue cannot hold."""
        if self._drain is not None and not self._closed and self._drain.overflow(span):
            return
        self._lose_queued([span])

    def wait_for_spool(self, deadline: float) -> bool:
        """Wait until the spool is empty (True) or ``deadline`` (``time.monotonic()``) passes."""
        if self._drain is None:
            return True
        return self._drain.wait_until_empty(deadline)

    # --- shutting down -------------------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        deadline = time.monotonic() + timeout_millis / 1000
        self._shutting_down = True
        if self._spool is not None and not self._failing:
            # The collector answers: let the drain finish the backlog while time remains.
            self.wait_for_spool(deadline)
        if self._drain is not None:
            self._drain.stop()
        remaining_millis = max(0.0, (deadline - time.monotonic()) * 1000)
        if "timeout_millis" in inspect.signature(self._exporter.shutdown).parameters:
            self._exporter.shutdown(timeout_millis=remaining_millis)  # type: ignore[call-arg]
        else:
            self._exporter.shutdown()
        # Shutting the exporter down aborts its retries; give the export still in flight a
        # moment to come back, so that its outcome is counted and reported, not lost with
        # the daemon thread at exit.
        if self._drain is not None:
            self._drain.join(_IN_FLIGHT_GRACE_S)
        if not self._idle.wait(_IN_FLIGHT_GRACE_S):
            stuck = self._in_flight
            if stuck and not self._in_flight_is_spooled:  # a re-send's file stays on disk anyway
                self._closed = True  # its late outcome, if any, is not counted twice
                self._give_up(stuck, "still in flight when shutdown timed out")

    def abandon(self, spans: Sequence[ReadableSpan]) -> None:
        """Take the spans the processor still held when shutdown gave up, then report and close."""
        if spans:
            self._give_up(spans, "still queued when shutdown timed out")
        self._closed = True
        self._move_overflow_at_close()
        with self._lock:
            undelivered = self._unreported
            self._unreported = 0
            queue_unreported = self._queue_unreported
            self._queue_unreported = 0
        if undelivered:
            logger.warning(
                "promptrecorder: %d more spans could not be delivered to %s before shutdown",
                undelivered,
                self.destination,
            )
        if queue_unreported:
            logger.warning(
                "promptrecorder: in all, %d spans were dropped because the export queue for %s was full",
                self._queue_dropped,
                self.destination,
            )
        if self._spool is not None:
            files, spans_left, _ = self._spool.backlog()
            if spans_left:
                logger.warning(
                    "promptrecorder: %d spans (%d batches) wait in the spool %s; they are sent when a "
                    "process next calls configure() with this spool_dir",
                    spans_left,
                    files,
                    self._spool.directory,
                )
            self._spool.release()

    def _give_up(self, spans: Sequence[ReadableSpan], reason: str) -> None:
        if self._drain is not None:
            # Spooled, they are re-sent by the next process. An export still in flight might
            # yet be accepted: then the collector sees it twice (documented), never zero times.
            self._drain.to_spool(spans)
        else:
            self._lose(spans, reason)

    def _move_overflow_at_close(self) -> None:
        spans = self._drain.take_overflow() if self._drain is not None else []
        if spans:
            self._give_up(spans, "overflowed the queue at shutdown")

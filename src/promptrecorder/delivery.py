"""Delivery accounting around a span exporter: count what went out, say plainly what did not.

The stock OTLP exporters log every retry and every failure, sometimes with a traceback.
A service whose collector is down would see that stream in its own logs. ``DeliveryExporter``
wraps the real exporter: it counts exported and failed spans, turns the exporter's own log
lines about a failure into one plain warning per outage (no traceback), says when delivery
recovers, and once shutdown has begun it stops waiting on a collector that is not answering,
so that the process exits in bounded time.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder._diagnostics import logger

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
    """What an exporter delivered so far in this process."""

    exported_spans: int
    failed_spans: int
    failed_exports: int
    last_error: str | None


class DeliveryExporter(SpanExporter):
    """Wraps ``exporter``, counting delivery and logging each outage once.

    Threading contract: ``export`` is called by one processor thread at a time (the SDK's
    batch processor serialises it); the counters may be read from any thread.
    """

    def __init__(self, exporter: SpanExporter, destination: str) -> None:
        self._exporter = exporter
        self.destination = destination
        self._lock = threading.Lock()
        self._exported = 0
        self._failed = 0
        self._failed_exports = 0
        self._failing = False
        self._outage_failed = 0  # spans failed since the outage began
        self._unreported = 0  # of those, the ones after the outage's one warning
        self._last_error: str | None = None
        self._captured: str | None = None  # what the exporter logged during the current export
        self._shutting_down = False
        self._idle = threading.Event()  # clear while an export is in flight
        self._idle.set()
        _install_capture_filter()

    def stats(self) -> DeliveryStats:
        with self._lock:
            return DeliveryStats(self._exported, self._failed, self._failed_exports, self._last_error)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutting_down and self._failing:
            # The collector did not answer the last export: waiting on it again would only
            # hold the process at exit. Count what is given up.
            self._count_failure(len(spans), None)
            return SpanExportResult.FAILURE
        _exporting.owner = self
        self._captured = None
        self._idle.clear()
        try:
            try:
                result = self._exporter.export(spans)
            except Exception as error:  # an exporter bug must not kill the processor thread
                result = SpanExportResult.FAILURE
                self._captured = f"{type(error).__name__}: {error}"
            finally:
                _exporting.owner = None
            if result is SpanExportResult.SUCCESS:
                self._count_success(len(spans))
            else:
                self._count_failure(len(spans), self._captured)
            return result
        finally:
            self._idle.set()

    def begin_shutdown(self) -> None:
        """From now on, give up at once on a collector that did not answer the last export."""
        self._shutting_down = True

    def _count_success(self, count: int) -> None:
        with self._lock:
            self._exported += count
            recovered = self._failing
            dropped = self._outage_failed
            self._failing = False
            self._outage_failed = self._unreported = 0
        if recovered:
            logger.warning(
                "promptrecorder: delivery to %s recovered; %d spans were not delivered during the outage",
                self.destination,
                dropped,
            )

    def _count_failure(self, count: int, reason: str | None) -> None:
        with self._lock:
            if reason is not None:
                self._last_error = reason
            self._failed += count
            self._failed_exports += 1
            self._outage_failed += count
            first = not self._failing
            if not first:
                self._unreported += count
            self._failing = True
        if first:
            logger.warning(
                "promptrecorder: could not deliver %d spans to %s: %s. Your code is not affected; "
                "further failures are counted and reported when delivery recovers or at shutdown.",
                count,
                self.destination,
                reason or self._last_error or "the exporter reported a failure",
            )

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._shutting_down = True
        if "timeout_millis" in inspect.signature(self._exporter.shutdown).parameters:
            self._exporter.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            self._exporter.shutdown()
        # Shutting the exporter down aborts its retries; give the export still in flight a
        # moment to come back, so that its outcome is counted and reported, not lost with
        # the daemon thread at exit.
        self._idle.wait(_IN_FLIGHT_GRACE_S)

    def abandon(self, count: int) -> None:
        """Count spans the processor still held when shutdown gave up, and report the total."""
        if count:
            self._count_failure(count, "still queued when shutdown timed out")
        with self._lock:
            undelivered = self._unreported
            self._unreported = 0
        if undelivered:
            logger.warning(
                "promptrecorder: %d more spans could not be delivered to %s before shutdown",
                undelivered,
                self.destination,
            )

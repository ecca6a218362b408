"""What one destination's delivery did, counted, and said in a few plain lines.

``DeliveryReport`` keeps the counters behind ``promptrecorder.delivery_stats()`` and writes
every log line about delivery to that destination, so that the lines and the counters
cannot disagree: the recovery line and the line at shutdown quote the very fields
``delivery_stats()`` returns. Each kind of trouble is said once per episode:

* an outage: its first failure, at once, with its cause (``SendResult.reason``: a refused
  connection, TLS, HTTP 413...); then one line when delivery recovers;
* a full queue: once per burst (``QUEUE_EPISODE_QUIET_S`` apart), naming the failing
  delivery as the cause when there is one, never blaming the queue for an outage;
* a span refused on its own: one line each, with its trace id (up to
  ``REJECTED_SPANS_LOGGED``, then counted only);
* a span ending after ``shutdown()``: once.

``promptrecorder.export.delivery.Delivery`` decides what happens; this module only counts and tells.
Threading contract: every method may be called from any thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from promptrecorder._diagnostics import QUEUE_EPISODE_QUIET_S
from promptrecorder.export.spool import Spool

logger = logging.getLogger(__name__)

# Spans refused one by one are each logged with their trace id up to this many per
# destination; beyond it they are counted only (one line says so).
REJECTED_SPANS_LOGGED = 20


@dataclass(frozen=True)
class DeliveryStats:
    """What one destination's delivery did so far in this process.

    ``failed_spans`` counts every span lost for good, whatever the cause; the
    ``*_dropped_spans`` and ``rejected_spans`` fields say how many of those a full queue,
    a full spool, the collector's refusal of a single span (or of a spooled batch, for good),
    or recording after ``shutdown()`` cost. A span whose export failed but which was spooled
    is not lost: it counts in ``spooled_spans`` and, once re-sent, in ``exported_spans``.
    ``largest_request_bytes`` is the largest export request sent (bounded by
    ``max_request_bytes`` unless a single span is larger).
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
    rejected_spans: int = 0
    shutdown_dropped_spans: int = 0
    largest_request_bytes: int = 0


class DeliveryReport:
    """The counters of one destination and the lines that tell about them."""

    def __init__(self, destination: str, spool: Spool | None, backlog: Callable[[], int]) -> None:
        self.destination = destination
        self._spool = spool
        self._backlog = backlog  # spans waiting in the spool, on disk and in memory
        self._lock = threading.Lock()
        self._exported = self._failed = self._failed_exports = 0
        self._queue_dropped = self._spooled = self._rejected = self._shutdown_dropped = 0
        self._largest_request = 0
        self._last_error: str | None = None
        self.failing = False  # between an outage's first failure and its recovery
        self._failed_at_outage_start = 0
        self._announced = 0  # spans the current outage's first line named
        self._failed_reported = 0  # losses a recovery line has told
        self._failed_at_last_flush = 0
        self._last_queue_drop = float("-inf")
        self._rejected_logged = 0
        self._said_after_shutdown = False

    def stats(self) -> DeliveryStats:
        spool = self._spool
        backlog = self._backlog()
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
                rejected_spans=self._rejected,
                shutdown_dropped_spans=self._shutdown_dropped,
                largest_request_bytes=self._largest_request,
            )

    def _counters(self) -> str:
        """The loss counters as ``delivery_stats()`` names them, for log lines."""
        stats = self.stats()
        return (
            f"failed_spans={stats.failed_spans} (queue_dropped_spans={stats.queue_dropped_spans}, "
            f"rejected_spans={stats.rejected_spans}, spool_dropped_spans={stats.spool_dropped_spans}, "
            f"shutdown_dropped_spans={stats.shutdown_dropped_spans})"
        )

    def lost_since_last_flush(self) -> int:
        """Spans lost since the previous call (flush() asks), or since this delivery began."""
        with self._lock:
            lost = self._failed - self._failed_at_last_flush
            self._failed_at_last_flush = self._failed
        return lost

    # --- sending ---------------------------------------------------------------------------------

    def sending(self, size: int) -> None:
        with self._lock:
            self._largest_request = max(self._largest_request, size)

    def delivered(self, count: int, refused: int, reason: str, *, resent: bool) -> None:
        """``count`` spans accepted (``refused`` of them rejected by a partial success)."""
        with self._lock:
            self._exported += count - refused
            self._rejected += refused
            self._failed += refused
            recovered = self.failing
            self.failing = False
            lost = self._failed - self._failed_at_outage_start
            if recovered:
                self._failed_reported = self._failed
                self._announced = 0
        if refused:
            logger.warning(
                "promptrecorder: %s accepted a batch but rejected %d of its %d spans (partial success: %s)",
                self.destination,
                refused,
                count,
                reason,
            )
        if recovered and resent:
            logger.warning(
                "promptrecorder: delivery to %s recovered; re-sending the %d spans spooled in %s. "
                "Lost so far (delivery_stats()): %s",
                self.destination,
                self._backlog(),
                self._spool.directory if self._spool is not None else "",
                self._counters(),
            )
        elif recovered:
            logger.warning(
                "promptrecorder: delivery to %s recovered; %d spans were not delivered during the outage. "
                "In all (delivery_stats()): %s",
                self.destination,
                lost,
                self._counters(),
            )

    def outage_begins(self, count: int, reason: str, *, retrying: bool) -> None:
        """A send failed: the first failure of an outage is said once, naming its cause."""
        with self._lock:
            self._last_error = reason
            first = not self.failing
            if first:
                self._failed_at_outage_start = self._failed
                self._announced = count
                self.failing = True
        if not first:
            return
        if self._spool is not None:
            then = (
                f"spans are kept in the spool {self._spool.directory} and re-sent, oldest first, "
                "when the collector answers"
            )
        elif retrying:
            then = (
                "they are retried for a while; further failures are counted and reported when "
                "delivery recovers or at shutdown"
            )
        else:
            then = "further failures are counted and reported when delivery recovers or at shutdown"
        logger.warning(
            "promptrecorder: could not deliver %d spans to %s: %s. Your code is not affected; %s.",
            count,
            self.destination,
            reason,
            then,
        )

    def gave_up(self, count: int, reason: str, *, spooled: bool) -> None:
        """A batch given up on (``spooled``: written to the spool instead, not lost)."""
        self.outage_begins(count, reason, retrying=False)
        with self._lock:
            self._failed_exports += 1
            if not spooled:
                self._failed += count

    def rejected_span(self, count: int, reason: str, trace_ids: list[str], kept: str) -> None:
        """A span the collector refuses whatever its company: counted, and said with its trace id."""
        with self._lock:
            self._rejected += count
            self._failed += count
            self._last_error = reason
            logged = self._rejected_logged
            self._rejected_logged += 1
        if logged < REJECTED_SPANS_LOGGED:
            logger.warning(
                "promptrecorder: %s refused a span of trace %s on its own (%s); it was set aside and "
                "counted (delivery_stats().rejected_spans)%s",
                self.destination,
                ", ".join(trace_ids) or "(unknown)",
                reason,
                kept,
            )
        elif logged == REJECTED_SPANS_LOGGED:
            logger.warning(
                "promptrecorder: %s refused more single spans; further ones are counted "
                "(delivery_stats().rejected_spans), not logged",
                self.destination,
            )

    def rejected_file(self, count: int, reason: str) -> None:
        """A spooled batch refused for good (set aside by the drain, which says so)."""
        with self._lock:
            self._rejected += count
            self._failed += count
            self._last_error = reason

    def failed(self, count: int) -> None:
        """Spans lost for good outside a send: a spool write, or a spooled file gone bad."""
        with self._lock:
            self._failed += count

    def spooled(self, count: int) -> None:
        with self._lock:
            self._spooled += count

    # --- spans that never reached a send ---------------------------------------------------------

    def queue_dropped(self) -> None:
        """A span that found the queue full and had nowhere else to go; said once per burst."""
        now = time.monotonic()
        with self._lock:
            self._failed += 1
            self._queue_dropped += 1
            episode = now - self._last_queue_drop > QUEUE_EPISODE_QUIET_S
            self._last_queue_drop = now
            failing, cause = self.failing, self._last_error
        if not episode:
            return
        if failing:
            logger.warning(
                "promptrecorder: the export queue for %s is full because delivery is failing (%s); "
                "spans are dropped and counted (delivery_stats().queue_dropped_spans) until it "
                "recovers. A spool_dir keeps them on disk instead.",
                self.destination,
                cause,
            )
        else:
            logger.warning(
                "promptrecorder: the export queue for %s is full: spans end faster than they can be "
                "sent; they are dropped and counted (delivery_stats().queue_dropped_spans). Raise "
                "OTEL_BSP_MAX_QUEUE_SIZE or PROMPTRECORDER_MAX_QUEUE_BYTES, or configure a spool_dir.",
                self.destination,
            )

    def unencodable(self, error: Exception) -> None:
        with self._lock:
            self._failed += 1
            self._last_error = f"a span could not be encoded: {error!r}"
        logger.warning(
            "promptrecorder: a span could not be encoded for %s and was dropped: %r", self.destination, error
        )

    def after_shutdown(self) -> None:
        """A span that ended after ``shutdown()``: counted as dropped, said once."""
        with self._lock:
            self._failed += 1
            self._shutdown_dropped += 1
            first = not self._said_after_shutdown
            self._said_after_shutdown = True
        if first:
            logger.warning(
                "promptrecorder: a span ended after shutdown(); it is not sent to %s and is counted "
                "(delivery_stats().shutdown_dropped_spans). Call promptrecorder.configure() again to "
                "resume delivery, or shut down only when the process is done recording.",
                self.destination,
            )

    def at_close(self) -> None:
        """The shutdown lines: losses no line has told yet, and what waits in the spool."""
        stats = self.stats()
        # The outage's first line named its first spans; the recovery lines told the rest so far.
        if stats.failed_spans > self._failed_reported + self._announced:
            logger.warning(
                "promptrecorder: at shutdown, %d spans were delivered to %s and %d were lost; "
                "delivery_stats(): %s",
                stats.exported_spans,
                self.destination,
                stats.failed_spans,
                self._counters(),
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

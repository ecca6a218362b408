"""Delivering encoded span batches through an ``OtlpSender``: retry, split, count, and say so plainly.

``DeliveryProcessor`` (``promptrecorder.delivery_processor``) queues spans as their OTLP bytes
and hands ``Delivery.deliver`` batches bounded in spans and in request bytes. Each send is
one attempt by the sender (``promptrecorder.otlp_send``), which classifies the answer; this
module decides what follows:

* **Transient** (``retryable``: unreachable, 429, 503, UNAVAILABLE...): the same request is
  tried again after an exponential back-off with jitter (or the receiver's ``Retry-After``),
  within the export timeout and never past a shutdown deadline. With a spool, the batch
  goes to disk at once instead and the spool's drain thread does the retrying.
* **Too big or refused, but a smaller request may pass** (``splittable``: HTTP 400/413, gRPC
  INVALID_ARGUMENT or a message-size RESOURCE_EXHAUSTED): the request is split in halves and
  each half sent, recursively, until what is refused is one span. That span is set aside,
  counted (``DeliveryStats.rejected_spans``) and logged once with its trace id and the
  reason; every other span arrives. A refused batch never takes more than itself.
* **Refused for good** (401, 403, 404, UNIMPLEMENTED, TLS...): the batch is spooled when
  there is a spool (the drain sets it aside if it is refused again), else counted as lost.

Every loss is counted in ``DeliveryStats``; the first failure of an outage is logged once
with its cause, and the recovery and shutdown lines quote the same counters that
``promptrecorder.delivery_stats()`` returns. Nothing here raises into the application.

With a spool (``configure(spool_dir=...)``) the spool mode lives in
``promptrecorder.spool_drain.SpoolDrain``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder import ledger
from promptrecorder._diagnostics import QUEUE_EPISODE_QUIET_S, logger
from promptrecorder.otlp_encode import EncodedSpan, MalformedRequestError, request_span_ids, split_request
from promptrecorder.otlp_send import OtlpSender, SendResult
from promptrecorder.spool import Spool, SpoolEntry
from promptrecorder.spool_drain import SpoolDrain

# Back-off between attempts at a transient failure: doubles from the first to the last,
# each pause drawn between half and all of it ("equal jitter"), so that many processes
# hitting one collector do not retry in step.
RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 8.0
# Spans refused one by one are each logged with their trace id up to this many per
# destination; beyond it they are counted only (one line says so).
REJECTED_SPANS_LOGGED = 20


@dataclass(frozen=True)
class DeliveryStats:
    """What one destination's delivery did so far in this process.

    ``failed_spans`` counts every span lost for good, whatever the cause; the
    ``*_dropped_spans`` and ``rejected_spans`` fields say how many of those a full queue,
    a full spool, the collector's refusal of a single span, or recording after
    ``shutdown()`` cost. A span whose export failed but which was spooled is not lost: it
    counts in ``spooled_spans`` and, once re-sent, in ``exported_spans``.
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


def transient(result: SendResult) -> bool:
    """Whether the same request may pass later: the sender's word, and any HTTP 5xx.

    The OTLP specification retries only 502/503/504 over HTTP; issue 11 holds every 5xx
    transient (a collector's 500 is usually a passing fault), so a spooled file is never set
    aside for one.
    """
    status = result.status
    return result.retryable or (isinstance(status, int) and 500 <= status < 600)


# A part of a batch that was not delivered: its request bytes, span count, the last answer.
Undelivered = tuple[bytes, int, SendResult]


class Delivery:
    """Sends batches through ``sender``, counting every outcome; one per destination.

    Threading contract: ``deliver`` is called by the processor's worker thread; with a
    spool, the drain thread re-sends files through ``send_request`` at the same time (one
    ``sender.send`` at a time, under a lock). ``overflow``, ``track``, ``after_shutdown``,
    ``stats`` and the counters may be called from any thread.
    """

    def __init__(
        self,
        sender: OtlpSender,
        destination: str,
        spool: Spool | None = None,
        *,
        export_timeout: float,
        retry: bool = True,
        rebuild_sender: Callable[[], OtlpSender] | None = None,
        max_request_bytes: int = 4 << 20,
    ) -> None:
        self._sender = sender
        self._rebuild_sender = rebuild_sender
        self.destination = destination
        self._spool = spool
        self._export_timeout = export_timeout
        self._retry = retry  # False for an application's own SpanExporter, which retries itself
        self._init_state()
        self._drain = SpoolDrain(self, spool) if spool is not None else None
        if self._drain is not None:
            self._drain.max_file_bytes = max_request_bytes  # files the overflow writes are requests

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # one sender.send at a time
        self._stop = threading.Event()  # shutdown's deadline passed: no more waiting
        self._exported = self._failed = self._failed_exports = 0
        self._queue_dropped = self._spooled = self._rejected = self._shutdown_dropped = 0
        self._largest_request = 0
        self._failed_at_last_flush = 0
        self._failed_reported = 0  # losses a recovery line has already reported
        self._announced = 0  # spans the current outage's first line named
        self._last_error: str | None = None
        self._failing = False
        self._failed_at_outage_start = 0
        self._last_queue_drop = float("-inf")
        self._rejected_logged = 0
        self._said_after_shutdown = False
        self._shutting_down = False
        self._closed = False
        self._sender_is_the_parents = False  # set in a forked child: never use its connections
        self._tracked: dict[int, ledger.Tally] = {}  # span id -> whose, until its fate is known
        self._spooled_tallies: dict[int, ledger.Tally] = {}  # span id -> whose, while on disk

    def start(self) -> None:
        """Start re-sending what the spool holds (configure() calls it once the pipeline is live)."""
        if self._drain is not None:
            self._drain.start()

    @property
    def spool(self) -> Spool | None:
        return self._spool

    # --- what happened ---------------------------------------------------------------------

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

    def track(self, span_id: int, tally: ledger.Tally) -> None:
        """Account the span's fate to ``tally`` (a recorder's) when it is known."""
        with self._lock:
            self._tracked[span_id] = tally

    def settle(self, span_ids: Sequence[int] | None, body: bytes | None, outcome: str) -> None:
        """Resolve the recorders' tallies of these spans (by id, or read from ``body``)."""
        if not (self._tracked or self._spooled_tallies):
            return
        if span_ids is None:
            try:
                span_ids = [span_id for _, span_id in request_span_ids(body or b"")]
            except MalformedRequestError:
                return
        pending: list[ledger.Tally] = []
        spooled: dict[ledger.Tally, int] = {}
        with self._lock:
            for span_id in span_ids:
                tally = self._tracked.pop(span_id, None)
                if tally is not None:
                    pending.append(tally)
                    if outcome == "spooled":
                        self._spooled_tallies[span_id] = tally
                    continue
                tally = self._spooled_tallies.pop(span_id, None)
                if tally is not None and outcome != "spooled":
                    spooled[tally] = spooled.get(tally, 0) + 1
        ledger.resolve(pending, outcome)
        if spooled:
            ledger.settle_spooled(spooled, outcome)

    def lost_since_last_flush(self) -> int:
        """Spans lost since the previous call (flush() asks), or since this delivery began."""
        with self._lock:
            lost = self._failed - self._failed_at_last_flush
            self._failed_at_last_flush = self._failed
        return lost

    # --- delivering a batch (the worker thread) --------------------------------------------

    def deliver(self, spans: Sequence[EncodedSpan], body: bytes, deadline: float | None) -> None:
        """Deliver one batch (``body`` is its request); every span's fate is counted."""
        ids = [span.context.span_id for span in spans]
        drain = self._drain
        if drain is not None:
            if drain.holds_anything() or (self._shutting_down and self._failing):
                drain.to_spool(body, len(spans), ids)  # behind what waits, in order
                return
            left = self.send_request(body, len(spans), deadline, retry=False, span_ids=ids)
            for part, count, result in left:
                self._note_failure(count, result.reason, spooled=True)
                drain.to_spool(part, count, ids if part is body else None)
            return
        if self._shutting_down and self._failing:
            # The collector did not answer the last export: waiting on it again would only
            # hold the process at exit.
            self.lose(body, len(spans), "not sent: the collector was not answering at shutdown", ids)
            return
        for part, count, result in self.send_request(body, len(spans), deadline, self._retry, span_ids=ids):
            self.lose(part, count, result.reason, ids if part is body else None)

    def send_request(
        self,
        body: bytes,
        count: int,
        deadline: float | None,
        retry: bool,
        *,
        span_ids: Sequence[int] | None = None,
        entry: SpoolEntry | None = None,
    ) -> list[Undelivered]:
        """Send ``body``, splitting it on a refusal a smaller request may pass.

        Returns the parts not delivered (in order) with the last answer; after the first
        part that fails (other than by such a refusal) the rest are returned unsent.
        Delivered and set-aside parts are counted here. ``entry``: the spool file being
        re-sent, beside which a refused span is kept.
        """
        pending: list[tuple[bytes, int]] = [(body, count)]
        rejected_parts = 0
        while pending:
            part, part_count = pending.pop(0)
            result = self._attempt(part, part_count, deadline, retry)
            if self._closed:  # shutdown gave up on this batch and already counted it
                return []
            if result.delivered:
                self._count_delivered(part, part_count, result, span_ids if part is body else None, entry)
                continue
            if result.splittable:
                if part_count <= 1:
                    rejected_parts += 1
                    self._reject(part, part_count, result, entry, rejected_parts)
                    continue
                try:
                    pending[0:0] = split_request(part)
                    continue
                except MalformedRequestError as error:
                    result = SendResult(False, False, False, f"{result.reason}; cannot split it: {error}")
            # Sending the rest now would only meet the same failure.
            return [(part, part_count, result)] + [(rest, n, result) for rest, n in pending]
        return []

    def _attempt(self, body: bytes, count: int, deadline: float | None, retry: bool) -> SendResult:
        """One send, or (``retry``) several with back-off, within the export timeout and ``deadline``.

        The first failure of an outage is said at once, with its cause, before any retry.
        """
        end = time.monotonic() + self._export_timeout
        if deadline is not None:
            end = min(end, deadline)
        delay = RETRY_FIRST_DELAY_S
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return SendResult(False, True, False, "not sent: no time left before the shutdown deadline")
            result = self._send_once(body, left)
            retryable = transient(result)
            if not result.delivered and not result.splittable:
                self._outage_begins(count, result.reason, retrying=retry and retryable)
            if result.delivered or not retryable or not retry or self._stop.is_set():
                return result
            pause = result.retry_after if result.retry_after is not None else random.uniform(delay / 2, delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
            if time.monotonic() + pause >= end or self._stop.wait(pause):
                return result

    def _send_once(self, body: bytes, timeout: float) -> SendResult:
        with self._lock:
            self._largest_request = max(self._largest_request, len(body))
        with self._send_lock:
            try:
                if self._sender_is_the_parents and self._rebuild_sender is not None:
                    # Built on first use in a forked child, not in the fork handler itself.
                    self._sender = self._rebuild_sender()
                    self._sender_is_the_parents = False
                return self._sender.send(body, timeout)
            except Exception as error:  # the contract says never; a bug must not kill the worker
                return SendResult(False, True, False, f"{type(error).__name__}: {error}")

    # --- counting ----------------------------------------------------------------------------

    def _count_delivered(
        self,
        body: bytes,
        count: int,
        result: SendResult,
        span_ids: Sequence[int] | None,
        entry: SpoolEntry | None,
    ) -> None:
        self.settle(span_ids, body, "exported")
        refused = min(max(result.rejected_spans, 0), count)
        with self._lock:
            self._exported += count - refused
            self._rejected += refused
            self._failed += refused
            recovered = self._failing
            self._failing = False
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
                result.reason,
            )
        if recovered and self._drain is not None and entry is not None:
            logger.warning(
                "promptrecorder: delivery to %s recovered; re-sending the %d spans spooled in %s. "
                "Lost so far (delivery_stats()): %s",
                self.destination,
                self._drain.backlog_spans(),
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

    def _reject(
        self, body: bytes, count: int, result: SendResult, entry: SpoolEntry | None, part: int
    ) -> None:
        """One span the collector refuses whatever its company: set it aside, count it, say so."""
        self.settle(None, body, "dropped")
        kept = ""
        if entry is not None and self._spool is not None:
            kept = f"; kept as {self._spool.keep_rejected(entry, part, body, count)}"
        try:
            trace_ids = [f"{trace_id:032x}" for trace_id, _ in request_span_ids(body)]
        except MalformedRequestError:
            trace_ids = []
        with self._lock:
            self._rejected += count
            self._failed += count
            self._last_error = result.reason
            logged = self._rejected_logged
            self._rejected_logged += 1
        if logged < REJECTED_SPANS_LOGGED:
            logger.warning(
                "promptrecorder: %s refused a span of trace %s on its own (%s); it was set aside and "
                "counted (delivery_stats().rejected_spans)%s",
                self.destination,
                ", ".join(trace_ids) or "(unknown)",
                result.reason,
                kept,
            )
        elif logged == REJECTED_SPANS_LOGGED:
            logger.warning(
                "promptrecorder: %s refused more single spans; further ones are counted "
                "(delivery_stats().rejected_spans), not logged",
                self.destination,
            )

    def lose(
        self, body: bytes | None, count: int, reason: str, span_ids: Sequence[int] | None = None
    ) -> None:
        """Spans lost for good (not spooled): counted, and the outage said once."""
        self.settle(span_ids, body, "dropped")
        self._note_failure(count, reason, spooled=False)

    def note_spool_failure(self, count: int, reason: str) -> None:
        self._note_failure(count, reason, spooled=True)

    def _note_failure(self, count: int, reason: str, *, spooled: bool) -> None:
        """A batch given up on (``spooled``: written to the spool instead): counted."""
        self._outage_begins(count, reason, retrying=False)
        with self._lock:
            self._failed_exports += 1
            if not spooled:
                self._failed += count

    def _outage_begins(self, count: int, reason: str, *, retrying: bool) -> None:
        """A send failed: the first failure of an outage is said once, naming its cause."""
        with self._lock:
            self._last_error = reason
            first = not self._failing
            if first:
                self._failed_at_outage_start = self._failed
                self._announced = count  # the first line names these spans
                self._failing = True
        if not first:
            return
        if self._drain is not None:
            then = f"spans are kept in the spool {self._spool.directory if self._spool else ''} and re-sent, oldest first, when the collector answers"
        elif retrying:
            then = "they are retried for a while; further failures are counted and reported when delivery recovers or at shutdown"
        else:
            then = "further failures are counted and reported when delivery recovers or at shutdown"
        logger.warning(
            "promptrecorder: could not deliver %d spans to %s: %s. Your code is not affected; %s.",
            count,
            self.destination,
            reason,
            then,
        )

    def count_failed(self, count: int) -> None:
        """Spans lost for good outside a send: a spool write, or a spooled file set aside."""
        with self._lock:
            self._failed += count

    def count_rejected_file(self, count: int, reason: str) -> None:
        with self._lock:
            self._rejected += count
            self._failed += count
            self._last_error = reason

    def count_spooled(self, count: int) -> None:
        with self._lock:
            self._spooled += count

    def count_exported(self, count: int) -> None:
        with self._lock:
            self._exported += count

    # --- spans the queue could not take ------------------------------------------------------

    def overflow(self, span: EncodedSpan | None, span_id: int) -> None:
        """A span that found the queue full: spooled (via memory) if there is a spool, else counted."""
        if span is not None and self._drain is not None and not self._closed and self._drain.overflow(span):
            return
        self.settle([span_id], None, "dropped")
        now = time.monotonic()
        with self._lock:
            self._failed += 1
            self._queue_dropped += 1
            episode = now - self._last_queue_drop > QUEUE_EPISODE_QUIET_S
            self._last_queue_drop = now
            failing, cause = self._failing, self._last_error
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

    def unencodable(self, span_id: int, error: Exception) -> None:
        """A span our encoder could not write: lost alone, never with its batch."""
        self.settle([span_id], None, "dropped")
        with self._lock:
            self._failed += 1
            self._last_error = f"a span could not be encoded: {error!r}"
        logger.warning(
            "promptrecorder: a span could not be encoded for %s and was dropped: %r", self.destination, error
        )

    def after_shutdown(self, span_id: int) -> None:
        """A span that ended after ``shutdown()``: counted as dropped, said once."""
        self.settle([span_id], None, "dropped")
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

    def wait_for_spool(self, deadline: float) -> bool:
        """Wait until the spool is empty (True) or ``deadline`` (``time.monotonic()``) passes."""
        if self._drain is None:
            return True
        return self._drain.wait_until_empty(deadline)

    # --- shutting down and forking ------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """From now on, give up at once on a collector that did not answer the last export."""
        self._shutting_down = True

    def give_up(self, spans: Sequence[EncodedSpan], body: bytes, reason: str) -> None:
        """Spans shutdown could not send in time: spooled for the next process, else counted."""
        ids = [span.context.span_id for span in spans]
        if self._drain is not None:
            self._drain.to_spool(body, len(spans), ids)
        else:
            self.lose(body, len(spans), reason, ids)

    def close(self, deadline: float) -> None:
        """Finish: let the spool drain while the collector answers and time is left, report, release."""
        if self._drain is not None:
            if not self._failing:
                self.wait_for_spool(deadline)
            self._drain.stop()
            self._drain.join(max(0.0, min(1.0, deadline - time.monotonic())))
            self._drain.spool_overflow()
        self._stop.set()
        self._closed = True
        stats = self.stats()
        # Only losses no line has told yet: the outage's first line named its first spans.
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
            self._spool.release()
        try:
            if not self._sender_is_the_parents:
                self._sender.close()
        except Exception as error:  # a broken sender must not break shutdown
            logger.warning("promptrecorder: closing the sender for %s failed: %s", self.destination, error)

    def after_fork_in_child(self) -> None:
        """In a forked child: counters, locks and tallies of its own; a sender of its own."""
        self._init_state()
        # The parent's connections are the parent's: never write to its sockets (nor close them).
        self._sender_is_the_parents = True
        if self._drain is not None:
            self._drain.after_fork_in_child()


class ExporterSender:
    """An ``OtlpSender`` over an application's own ``SpanExporter`` (``configure(exporter=...)``).

    The request is decoded back to spans (``otlp_codec.decode_batch``) and handed to the
    exporter's ``export``. A ``FAILURE`` says nothing about why, so it is treated as
    transient (spooled when there is a spool); the exporter does its own retrying, so
    delivery does not retry it. Batches are bounded in bytes as for the OTLP senders.
    """

    protocol = "exporter"

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter
        self.destination = type(exporter).__name__

    def send(self, body: bytes, timeout: float) -> SendResult:
        from promptrecorder.otlp_codec import decode_batch  # protobuf loads only for this path

        try:
            result = self.exporter.export(decode_batch(body))
        except Exception as error:  # an exporter bug is a failed export, not a dead worker
            return SendResult(False, True, False, f"{type(error).__name__}: {error}")
        if result is SpanExportResult.SUCCESS:
            return SendResult(True, False, False, "accepted")
        return SendResult(False, True, False, f"{self.destination} reported a failure")

    def close(self) -> None:
        self.exporter.shutdown()

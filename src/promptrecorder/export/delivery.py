"""Delivering encoded span batches through an ``OtlpSender``: retry, split, count, and say so plainly.

``DeliveryProcessor`` (``promptrecorder.export.delivery_processor``) queues spans as their OTLP bytes
and hands ``Delivery.deliver`` batches bounded in spans and in request bytes. Each send is
one attempt by the sender (``promptrecorder.export.otlp_send``), which classifies the answer; this
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

Every outcome is counted, and said, by the destination's ``DeliveryReport``
(``promptrecorder.export.delivery_report``): the first failure of an outage once with its cause,
the recovery and shutdown lines with the counters ``promptrecorder.delivery_stats()``
returns. Nothing here raises into the application.

With a spool (``configure(spool_dir=...)``) the spool mode lives in
``promptrecorder.export.spool_drain.SpoolDrain``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder.errors import MalformedRequestError
from promptrecorder.export.delivery_report import DeliveryReport
from promptrecorder.export.delivery_report import (
    DeliveryStats as DeliveryStats,
)  # public: promptrecorder.DeliveryStats
from promptrecorder.export.otlp_encode import (
    EncodedSpan,
    request_span_ids,
    split_request,
)
from promptrecorder.export.otlp_send import OtlpSender, SendResult
from promptrecorder.export.spool import Spool, SpoolEntry
from promptrecorder.export.spool_drain import SpoolDrain
from promptrecorder.recording import ledger

logger = logging.getLogger(__name__)

# Back-off between attempts at a transient failure: doubles from the first to the last,
# each pause drawn between half and all of it ("equal jitter"), so that many processes
# hitting one collector do not retry in step.
RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 8.0


# A part of a batch that was not delivered: its request bytes, span count, the last answer.
Undelivered = tuple[bytes, int, SendResult]


class Delivery:
    """Sends batches through ``sender`` and accounts for every span; one per destination.

    Threading contract: ``deliver`` is called by the processor's worker thread; with a
    spool, the drain thread re-sends files through ``send_request`` at the same time (one
    ``sender.send`` at a time, under a lock). ``overflow``, ``track``, ``after_shutdown``
    and ``report`` may be used from any thread.
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
        self._drain = SpoolDrain(self, spool) if spool is not None else None
        if self._drain is not None:
            self._drain.max_file_bytes = max_request_bytes  # files the overflow writes are requests
        self._init_state()

    def _init_state(self) -> None:
        drain = self._drain
        self.report = DeliveryReport(
            self.destination, self._spool, drain.backlog_spans if drain is not None else lambda: 0
        )
        self._lock = threading.Lock()  # the tallies
        self._send_lock = threading.Lock()  # one sender.send at a time
        self._stop = threading.Event()  # shutdown's deadline passed: no more waiting
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

    def stats(self) -> DeliveryStats:
        return self.report.stats()

    def lost_since_last_flush(self) -> int:
        return self.report.lost_since_last_flush()

    # --- whose spans: the recorders' tallies ------------------------------------------------------

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

    # --- delivering a batch (the worker thread) --------------------------------------------

    def deliver(self, spans: Sequence[EncodedSpan], body: bytes, deadline: float | None) -> None:
        """Deliver one batch (``body`` is its request); every span's fate is counted."""
        ids = [span.context.span_id for span in spans]
        drain = self._drain
        if drain is not None:
            if drain.holds_anything() or (self._shutting_down and self.report.failing):
                drain.to_spool(body, len(spans), ids)  # behind what waits, in order
                return
            left = self.send_request(body, len(spans), deadline, retry=False, span_ids=ids)
            for part, count, result in left:
                self.report.gave_up(count, result.reason, spooled=True)
                drain.to_spool(part, count, ids if part is body else None)
            return
        if self._shutting_down and self.report.failing:
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
        result = SendResult(False, True, False, "not sent: no time left before the shutdown deadline")
        while (left := end - time.monotonic()) > 0:
            result = self._send_once(body, left)
            retryable = result.retryable
            if not result.delivered and not result.splittable:
                self.report.outage_begins(count, result.reason, retrying=retry and retryable)
            if result.delivered or not retryable or not retry or self._stop.is_set():
                return result
            pause = result.retry_after if result.retry_after is not None else random.uniform(delay / 2, delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
            # Wait at most until the end: a collector back before then still gets a last try,
            # so a deadline is used whole rather than given up a back-off early.
            if self._stop.wait(max(0.0, min(pause, end - time.monotonic()))):
                return result
        return result

    def _send_once(self, body: bytes, timeout: float) -> SendResult:
        self.report.sending(len(body))
        with self._send_lock:
            try:
                if self._sender_is_the_parents and self._rebuild_sender is not None:
                    # Built on first use in a forked child, not in the fork handler itself.
                    self._sender = self._rebuild_sender()
                    self._sender_is_the_parents = False
                return self._sender.send(body, timeout)
            except Exception as error:  # the contract says never; a bug must not kill the worker
                return SendResult(False, True, False, f"{type(error).__name__}: {error}")

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
        self.report.delivered(
            count, refused, result.reason, resent=entry is not None and self._drain is not None
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
        self.report.rejected_span(count, result.reason, trace_ids, kept)

    def lose(
        self, body: bytes | None, count: int, reason: str, span_ids: Sequence[int] | None = None
    ) -> None:
        """Spans lost for good (not spooled): counted, and the outage said once."""
        self.settle(span_ids, body, "dropped")
        self.report.gave_up(count, reason, spooled=False)

    # --- spans that never reached a send ---------------------------------------------------------

    def overflow(self, span: EncodedSpan | None, span_id: int) -> None:
        """A span that found the queue full: spooled (via memory) if there is a spool, else counted."""
        if span is not None and self._drain is not None and not self._closed and self._drain.overflow(span):
            return
        self.settle([span_id], None, "dropped")
        self.report.queue_dropped()

    def unencodable(self, span_id: int, error: Exception) -> None:
        """A span our encoder could not write: lost alone, never with its batch."""
        self.settle([span_id], None, "dropped")
        self.report.unencodable(error)

    def after_shutdown(self, span_id: int) -> None:
        """A span that ended after ``shutdown()``: counted as dropped, said once."""
        self.settle([span_id], None, "dropped")
        self.report.after_shutdown()

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
            if not self.report.failing:
                self.wait_for_spool(deadline)
            self._drain.stop()
            self._drain.join(max(0.0, min(1.0, deadline - time.monotonic())))
            self._drain.spool_overflow()
        self._stop.set()
        self._closed = True
        self.report.at_close()
        if self._spool is not None:
            self._spool.release()
        try:
            if not self._sender_is_the_parents:
                self._sender.close()
        except Exception as error:  # a broken sender must not break shutdown
            logger.warning("promptrecorder: closing the sender for %s failed: %s", self.destination, error)

    def after_fork_in_child(self) -> None:
        """In a forked child: counters, locks and tallies of its own; a sender of its own."""
        if self._drain is not None:
            self._drain.after_fork_in_child()
        self._init_state()
        # The parent's connections are the parent's: never write to its sockets (nor close them).
        self._sender_is_the_parents = True


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
        from promptrecorder.export.otlp_codec import decode_batch  # protobuf loads only for this path

        try:
            result = self.exporter.export(decode_batch(body))
        except Exception as error:  # an exporter bug is a failed export, not a dead worker
            return SendResult(False, True, False, f"{type(error).__name__}: {error}")
        if result is SpanExportResult.SUCCESS:
            return SendResult(True, False, False, "accepted")
        return SendResult(False, True, False, f"{self.destination} reported a failure")

    def close(self) -> None:
        self.exporter.shutdown()

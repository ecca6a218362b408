"""``DeliveryProcessor``: spans queued as their OTLP bytes, sent in batches bounded in spans and bytes.

The SDK's ``BatchSpanProcessor`` sizes batches by span count only (512). Our spans carry
whole prompts: 512 of them are megabytes, past a stock receiver's limit (gRPC: 4 MiB per
message; the Collector's HTTP receiver: 20 MiB), and the whole batch is refused. This
processor knows each span's size because it encodes the span as it ends
(``otlp_encode.EncodedSpan``), so it bounds everything in bytes as well as in spans:

* the **queue**: at most ``max_queue_spans`` spans (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048) and
  ``max_queue_bytes`` bytes (``PROMPTRECORDER_MAX_QUEUE_BYTES``, 64 MiB). A span that finds
  it full goes to ``Delivery.overflow``: spooled (through memory, never a file on the
  recording thread) or counted as dropped, never silently;
* each **request**: at most ``max_batch_spans`` spans (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``,
  512) and ``max_request_bytes`` bytes (``PROMPTRECORDER_MAX_REQUEST_BYTES``, 4 MiB - 64 KiB).
  A single span larger than that is sent alone (the receiver may refuse it; then it is set
  aside and counted, see ``promptrecorder.export.delivery``).

A worker thread, started with the first span, sends a batch when one is full or every
``schedule_delay_s`` (``OTEL_BSP_SCHEDULE_DELAY``, 5000 ms). Recording never waits on the
network: ``on_end`` encodes (~16 µs per span) and appends under a lock held for an append.

Queued as bytes rather than as span objects, waiting spans also cost the garbage collector
nothing (bench/backlog.py: the slowest record block went from ~370 ms to ~65 ms with a
backed-up queue). It uses only the SDK's public ``SpanProcessor`` interface.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Span as SDKSpan

from promptrecorder._diagnostics import warn_once
from promptrecorder.export.delivery import Delivery
from promptrecorder.export.otlp_encode import EncodedSpan, encode_request

logger = logging.getLogger(__name__)

# A span in a request costs its bytes plus its field tag and length (at most 1 + 5 bytes).
_SPAN_FRAMING = 6
# What a request adds around its spans (resource and scope): kept free when batching, and
# checked exactly once the request is encoded.
_REQUEST_RESERVE = 1024

_live: weakref.WeakSet[DeliveryProcessor] = weakref.WeakSet()


class DeliveryProcessor(SpanProcessor):
    """Queues sampled spans as bytes and hands ``delivery`` batches bounded in spans and bytes.

    Threading contract: ``on_end`` may be called from any thread; one worker thread sends;
    ``force_flush`` and ``shutdown`` may be called from any thread and are bounded by their
    timeouts. After ``os.fork()`` the child's processor is its own (``after_fork_in_child``).
    """

    def __init__(
        self,
        delivery: Delivery,
        *,
        max_queue_spans: int,
        max_queue_bytes: int,
        max_batch_spans: int,
        max_request_bytes: int,
        schedule_delay_s: float,
    ) -> None:
        self.delivery = delivery
        self.max_queue_spans = max_queue_spans
        self.max_queue_bytes = max_queue_bytes
        self.max_batch_spans = max_batch_spans
        self.max_request_bytes = max_request_bytes
        self.schedule_delay_s = schedule_delay_s
        self._init_state()
        _live.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queue: deque[tuple[EncodedSpan, int]] = deque()
        self._queued_bytes = 0
        self._enqueued = 0  # spans ever queued
        self._handled = 0  # of those, taken and delivered (or given up)
        self._flushing = 0  # force_flush calls waiting
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._deadline: float | None = None  # shutdown's
        self._in_flight: list[tuple[EncodedSpan, int]] = []  # the batch being sent

    # --- the recording side -----------------------------------------------------------------

    def on_start(self, span: SDKSpan, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        if self._stopped:
            self.delivery.after_shutdown(context.span_id)
            return
        if len(self._queue) >= self.max_queue_spans:  # full: no encoding to throw away
            self.delivery.overflow(self._encoded_for_overflow(span), context.span_id)
            return
        try:
            encoded = EncodedSpan(span, context)
        except Exception as error:  # one span our encoder cannot write is lost alone
            self.delivery.unencodable(context.span_id, error)
            return
        size = len(encoded.payload) + _SPAN_FRAMING
        with self._lock:
            kept = (
                len(self._queue) < self.max_queue_spans and self._queued_bytes + size <= self.max_queue_bytes
            )
            if kept:
                self._queue.append((encoded, size))
                self._queued_bytes += size
                self._enqueued += 1
                if (
                    len(self._queue) == 1  # the worker starts its schedule delay
                    or len(self._queue) >= self.max_batch_spans
                    or self._queued_bytes >= self.max_request_bytes
                ):
                    self._changed.notify_all()
            start = kept and self._worker is None
            if start:
                self._worker = threading.Thread(target=self._run, name="promptrecorder-export", daemon=True)
        if not kept:
            self.delivery.overflow(encoded, context.span_id)
        elif start:
            assert self._worker is not None
            self._worker.start()

    def _encoded_for_overflow(self, span: ReadableSpan) -> EncodedSpan | None:
        """The span's bytes when the overflow can keep it (a spool), else None: not encoded."""
        if self.delivery.spool is None or span.context is None:
            return None
        try:
            return EncodedSpan(span, span.context)
        except Exception:  # counted as dropped by overflow
            return None

    # --- the worker -------------------------------------------------------------------------

    def _run(self) -> None:
        next_send = time.monotonic() + self.schedule_delay_s
        while True:
            with self._changed:
                while not self._ready(next_send):
                    if self._stopped and not self._queue:
                        return
                    if self._queue:
                        self._changed.wait(max(0.0, next_send - time.monotonic()))
                    else:  # idle: the delay counts from the next span queued
                        self._changed.wait()
                        next_send = time.monotonic() + self.schedule_delay_s
                if self._stopped and self._deadline is not None and time.monotonic() >= self._deadline:
                    self._give_up_queue_locked()
                    return
                batch = self._take_batch_locked()
                deadline = self._deadline
                if time.monotonic() >= next_send:
                    next_send = time.monotonic() + self.schedule_delay_s
                self._in_flight = batch
            sent = len(batch)
            try:
                sent = self._send(batch, deadline)
            except Exception as error:  # a bug of ours must not stop delivery for good
                warn_once(
                    logger,
                    "delivery-worker",
                    "promptrecorder: sending a batch failed unexpectedly: %r",
                    error,
                )
                ids = [span.context.span_id for span, _ in batch]
                self.delivery.lose(None, len(batch), f"{type(error).__name__}: {error}", ids)
            finally:
                with self._changed:
                    self._in_flight = []
                    self._handled += sent
                    self._changed.notify_all()

    def _ready(self, next_send: float) -> bool:
        if not self._queue:
            return False
        return (
            self._stopped
            or self._flushing > 0
            or len(self._queue) >= self.max_batch_spans
            or self._queued_bytes >= self.max_request_bytes
            or time.monotonic() >= next_send
        )

    def _take_batch_locked(self) -> list[tuple[EncodedSpan, int]]:
        batch: list[tuple[EncodedSpan, int]] = []
        size = _REQUEST_RESERVE
        queue = self._queue
        while queue and len(batch) < self.max_batch_spans:
            item_size = queue[0][1]
            if batch and size + item_size > self.max_request_bytes:
                break
            batch.append(queue.popleft())
            size += item_size
            self._queued_bytes -= item_size
        return batch

    def _send(self, batch: list[tuple[EncodedSpan, int]], deadline: float | None) -> int:
        """Deliver ``batch`` (fewer of it when its request is too big); the number of spans sent."""
        spans = [span for span, _ in batch]
        body = encode_request(spans)
        # The reserve covers resource and scope in practice; a huge resource is caught here.
        while len(body) > self.max_request_bytes and len(spans) > 1:
            excess = len(body) - self.max_request_bytes
            put_back: list[tuple[EncodedSpan, int]] = []
            while excess > 0 and len(batch) > 1:
                item = batch.pop()
                excess -= item[1]
                put_back.append(item)
            with self._changed:
                for item in put_back:  # popped from the end: back to the front, in order
                    self._queue.appendleft(item)
                    self._queued_bytes += item[1]
            spans = [span for span, _ in batch]
            body = encode_request(spans)
        self.delivery.deliver(spans, body, deadline)
        return len(spans)

    def _give_up_queue_locked(self) -> None:
        """Shutdown's deadline passed: what is still queued is spooled or counted, not sent."""
        left = [span for span, _ in self._queue]
        self._queue.clear()
        self._queued_bytes = 0
        self._handled += len(left)
        if left:
            self.delivery.give_up(left, encode_request(left), "still queued when shutdown timed out")

    # --- flush and shutdown -----------------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Send everything queued now; True when it was all handled within the timeout."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._changed:
            target = self._enqueued
            self._flushing += 1
            self._changed.notify_all()
            try:
                while self._handled < target:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._worker is None:
                        break
                    self._changed.wait(left)
                return self._handled >= target
            finally:
                self._flushing -= 1

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Send what is queued within the timeout; what is left is spooled or counted, then report."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._changed:
            if self._stopped:
                return
            self._stopped = True
            self._deadline = deadline
            self._changed.notify_all()
            worker = self._worker
        self.delivery.begin_shutdown()
        if worker is not None:
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                # A send that does not honour its timeout (an application's exporter): what
                # is queued, and the batch in flight, are given up now (spooled or counted);
                # the late outcome of the send is not counted again.
                with self._changed:
                    in_flight = [span for span, _ in self._in_flight]
                    self._give_up_queue_locked()
                if in_flight:
                    self.delivery.give_up(
                        in_flight, encode_request(in_flight), "still in flight when shutdown timed out"
                    )
        self.delivery.close(deadline)

    def after_fork_in_child(self) -> None:
        """In a forked child: a queue, locks, counters and worker of its own.

        The parent's queued spans are the parent's to send and report: the child starts
        empty. No lock a parent thread held at the fork is ever waited on.
        """
        self._init_state()
        self.delivery.after_fork_in_child()


def after_fork_in_child() -> None:
    """Called in a forked child (``os.register_at_fork``): every live processor starts afresh."""
    for processor in list(_live):
        processor.after_fork_in_child()

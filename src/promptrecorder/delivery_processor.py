"""``DeliveryProcessor``: the SDK's batch processor, with a full queue's spans handed to delivery.

It is the SDK's ``BatchSpanProcessor``, except that:

* a span arriving at a full queue is handed to the ``DeliveryExporter``
  (``promptrecorder.delivery``: spooled, or counted as lost) rather than dropped with the
  SDK's one "Queue full" warning for thousands of spans;
* when the exporter takes them (configure()'s OTLP exporters), spans wait in the queue as
  their OTLP bytes (``otlp_encode.EncodedSpan``), encoded as they end. The encoding costs
  the same either way; what changes is the garbage collector's work. A queued span is a
  graph of dozens of objects that every collection walks while it waits, and a queue that
  backs up (a slow collector, a burst) makes every collection slower. Recording 60,000
  spans into a queue that held them all (bench/backlog.py, gRPC), the CPU per record went
  from 111-115 µs to 88-89 µs, and the slowest block, a collection's pause, from
  366-378 ms to 59-69 ms.
"""

from __future__ import annotations

import threading
from collections import deque

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from promptrecorder.delivery import DeliveryExporter
from promptrecorder.otlp_encode import EncodedSpan, encode_span


class DeliveryProcessor(BatchSpanProcessor):
    """The SDK's batch processor, with a full queue's spans handed to ``delivery``.

    The stock processor, finding its queue full, drops the *oldest* queued span with one
    "Queue full" warning (deduplicated for 20 s) and no count anywhere. Here ``on_end``
    looks first: with no room, the new span goes to ``delivery.overflow`` (spooled, or
    counted as lost), and the queue never overflows. ``on_end`` calls are serialised so
    that the check and the enqueue agree; only the export thread drains the queue meanwhile,
    which can only make room.
    """

    def __init__(self, delivery: DeliveryExporter, *, encode_at_end: bool = False) -> None:
        super().__init__(delivery)
        self.delivery = delivery
        # Queue spans as their OTLP bytes (otlp_encode.EncodedSpan), when the exporter takes them.
        self._encode_at_end = encode_at_end
        self._emit_lock = threading.Lock()
        # The SDK keeps the queue on its internal batcher (SDK >= 1.34); without it, the
        # stock behaviour applies.
        batcher = getattr(self, "_batch_processor", None)
        self._queue: deque[ReadableSpan] | None = getattr(batcher, "_queue", None)
        self._capacity: int | None = getattr(batcher, "_max_queue_size", None)

    def on_end(self, span: ReadableSpan) -> None:
        queue, capacity = self._queue, self._capacity
        if queue is None or capacity is None:
            super().on_end(span)
            return
        if not (span.context and span.context.trace_flags.sampled):
            return
        queued: ReadableSpan | EncodedSpan = span
        if self._encode_at_end and len(queue) < capacity:  # a full queue: no encoding to throw away
            queued = encode_span(span)
        with self._emit_lock:
            if len(queue) < capacity:
                super().on_end(queued)  # type: ignore[arg-type]  # the queue only holds it for export
                return
        self.delivery.overflow(queued)  # type: ignore[arg-type]  # likewise

    def queued(self) -> list[ReadableSpan]:
        """The spans still queued (oldest first), once the processor is shut down."""
        return list(reversed(self._queue)) if self._queue is not None else []

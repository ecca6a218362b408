"""A ``Delivery``'s spool mode: batches written to disk, and the thread that re-sends them.

With a spool (``configure(spool_dir=...)``) nothing is given up: a batch that cannot be
delivered is written to disk (``promptrecorder.export.spool``), and from then on, while the spool
holds anything, new batches go straight to disk behind it (fast: the processor's queue
keeps moving while the collector is down). A drain thread re-sends the oldest file, as it
is (the file is the request), deletes it once accepted, backs off (up to
``DRAIN_MAX_BACKOFF_S``, or what the collector asked for) while the collector does not
answer, and hands back to direct sending when the spool is empty.

The spool never blocks on a file: a file refused as too big is split like a batch
(``Delivery.send_request``) and what was delivered is cut out of it (``Spool.rewrite``); a
single span refused on its own is kept beside it as ``*.rejected``; a file refused for good
is renamed ``*.rejected``, counted and said once, and the files behind it flow. Spans a
full queue cannot take wait in memory (up to ``OVERFLOW_LIMIT``) for the drain thread to
write them to disk: the recording thread never touches a file.

``SpoolDrain`` keeps no counters of its own: what it spools, re-sends or loses is counted
by the ``Delivery`` that owns it (``promptrecorder.export.delivery``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptrecorder._diagnostics import QUEUE_EPISODE_QUIET_S, warn_once
from promptrecorder.errors import CorruptSpoolFileError, MalformedRequestError
from promptrecorder.export.otlp_encode import (
    EncodedSpan,
    encode_request,
    request_span_count,
)
from promptrecorder.export.spool import Spool, SpoolEntry

if TYPE_CHECKING:
    from promptrecorder.export.delivery import Delivery

logger = logging.getLogger(__name__)

# The drain thread's pause after a failed re-send doubles from the first to the last.
DRAIN_FIRST_BACKOFF_S = 0.2
DRAIN_MAX_BACKOFF_S = 5.0
# With a spool, spans a full queue cannot take wait here (in memory) for the drain thread
# to write them to disk; beyond this many they are dropped and counted.
OVERFLOW_LIMIT = 2048
# Spans the overflow writes to one spool file, at most.
OVERFLOW_FILE_SPANS = 512


class SpoolDrain:
    """The spool side of one ``Delivery``: its overflow, its spool writes, its drain thread.

    Threading contract: ``overflow`` may be called from any thread (it only appends to a
    bounded deque). The spool is written from the worker thread, the drain thread, and
    whichever thread flushes or shuts down; the counters are the delivery's.
    """

    def __init__(self, delivery: Delivery, spool: Spool) -> None:
        self._delivery = delivery
        self._spool = spool
        self.overflow_limit = OVERFLOW_LIMIT
        self.max_file_bytes = 4 << 20  # configure() sets it to max_request_bytes
        self._init_state()

    def _init_state(self) -> None:
        self._overflow: deque[EncodedSpan] = deque()
        self._overflow_lock = threading.Lock()
        self._last_overflow = float("-inf")
        self._wake = threading.Event()  # something to spool or re-send
        self._kick = threading.Event()  # cut the drain's back-off short (flush, shutdown)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def start(self) -> None:
        """Start the drain thread (once; never after ``stop``)."""
        with self._thread_lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="promptrecorder-spool", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Tell the drain thread to stop, cutting short any wait or back-off."""
        self._stop.set()
        self._wake.set()
        self._kick.set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the drain thread, if it was started, to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def backlog_spans(self) -> int:
        """Spans waiting: on disk, plus in memory for the drain thread to write."""
        return self._spool.backlog()[1] + len(self._overflow)

    def after_fork_in_child(self) -> None:
        """In a forked child: no thread, no overflow, and only the child's own files to drain."""
        self._init_state()
        self._spool.after_fork_in_child()

    # --- the overflow of a full queue --------------------------------------------------------

    def overflow(self, span: EncodedSpan) -> bool:
        """Keep a span the full queue cannot hold; False when there is no room either."""
        now = time.monotonic()
        with self._overflow_lock:
            kept = len(self._overflow) < self.overflow_limit
            episode = False
            if kept:
                self._overflow.append(span)
                episode = now - self._last_overflow > QUEUE_EPISODE_QUIET_S
                self._last_overflow = now
        if kept:
            self._wake.set()
            if episode:
                logger.warning(
                    "promptrecorder: the export queue for %s is full; spans wait in the spool %s "
                    "and are sent as it drains (nothing is lost)",
                    self._delivery.destination,
                    self._spool.directory,
                )
        return kept

    def holds_anything(self) -> bool:
        return bool(self._overflow) or len(self._spool) > 0

    def spool_overflow(self) -> None:
        """Write the spans waiting in memory to the spool, in files bounded like requests."""
        with self._overflow_lock:
            spans = list(self._overflow)
            self._overflow.clear()
        batch: list[EncodedSpan] = []
        size = 0
        for span in [*spans, None]:
            if batch and (
                span is None
                or len(batch) >= OVERFLOW_FILE_SPANS
                or size + len(span.payload) > self.max_file_bytes
            ):
                self.to_spool(encode_request(batch), len(batch), [item.context.span_id for item in batch])
                batch, size = [], 0
            if span is not None:
                batch.append(span)
                size += len(span.payload) + 6

    # --- writing to the spool ----------------------------------------------------------------

    def to_spool(self, body: bytes, count: int, span_ids: Sequence[int] | None) -> None:
        delivery = self._delivery
        # Counted as spooled before the drain thread can see the file (and count it exported).
        delivery.settle(span_ids, body, "spooled")
        if self._spool.append(body, count) is None:
            delivery.settle(span_ids, body, "dropped")
            delivery.report.failed(count)
            return
        delivery.report.spooled(count)
        self.start()  # after a fork, the child's drain thread starts with its first file
        self._wake.set()

    # --- the drain thread ----------------------------------------------------------------------

    def _run(self) -> None:
        """The drain thread: re-send spooled batches, oldest first, until stopped."""
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            self.spool_overflow()
            if self._spool.oldest() is None:
                self._wake.wait()
                continue
            if backoff:
                self._pause(backoff)
                if self._stop.is_set():
                    break
            # One re-send per directory at a time, even across a re-configure() that left
            # the previous drain thread finishing a send: no file goes out twice.
            if not self._spool.draining.acquire(timeout=0.05):
                continue
            try:
                entry = self._spool.oldest()
                delivered, asked = (True, None) if entry is None else self._resend(entry)
            except Exception as error:  # a bug of ours must not stop the drain for good
                warn_once(
                    logger,
                    "spool-drain",
                    "promptrecorder: re-sending a spooled batch failed unexpectedly: %r",
                    error,
                )
                delivered, asked = False, None
            finally:
                self._spool.draining.release()
            if delivered:
                backoff = 0.0
            elif asked is not None:
                backoff = min(asked, DRAIN_MAX_BACKOFF_S * 12)
            else:
                backoff = min(max(backoff * 2, DRAIN_FIRST_BACKOFF_S), DRAIN_MAX_BACKOFF_S)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._kick.wait(min(remaining, 0.1)):
                self._kick.clear()
                return
            self.spool_overflow()  # the queue may be overflowing meanwhile

    def _resend(self, entry: SpoolEntry) -> tuple[bool, float | None]:
        """Re-send one spooled batch: (moved on, the pause the collector asked for)."""
        spool, delivery = self._spool, self._delivery
        try:
            body = spool.read(entry)
            request_span_count(body)  # refuses what is not a request before it is sent
        except (CorruptSpoolFileError, MalformedRequestError) as error:
            spool.quarantine(entry, str(error))
            delivery.report.failed(entry.spans)
            return True, None
        left = delivery.send_request(body, entry.spans, None, retry=False, entry=entry)
        if not left:
            # A crash right before the deletion, after the collector's answer, re-sends this
            # one batch at the next start: the window for a duplicate is this one unlink.
            spool.remove(entry)
            return True, None
        remaining = sum(count for _, count, _ in left)
        rest = b"".join(part for part, _, _ in left)
        result = left[0][2]
        if remaining < entry.spans:  # part of it was delivered or set aside: keep only the rest
            entry = spool.rewrite(entry, rest, remaining) or entry
        if result.retryable:
            delivery.report.gave_up(remaining, result.reason, spooled=True)
            return False, result.retry_after
        # Refused for good: set aside, so that the batches behind it flow.
        path = spool.set_aside(entry, result.reason)
        delivery.settle(None, rest, "dropped")
        delivery.report.rejected_file(remaining, result.reason)
        logger.warning(
            "promptrecorder: %s refused the spooled batch %s (%d spans) for good: %s. It was set "
            "aside as %s and counted (delivery_stats().rejected_spans); the batches behind it carry on.",
            delivery.destination,
            entry.name,
            remaining,
            result.reason,
            path,
        )
        return True, None

    def wait_until_empty(self, deadline: float) -> bool:
        """Wait until the spool is empty (True) or ``deadline`` (``time.monotonic()``) passes."""
        if self.holds_anything():
            self.start()
        self._kick.set()
        self._wake.set()
        while self.holds_anything():
            if time.monotonic() >= deadline or self._stop.is_set():
                return not self.holds_anything()
            time.sleep(0.01)
        return True

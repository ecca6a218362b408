"""A ``DeliveryExporter``'s spool mode: batches written to disk, and the thread that re-sends them.

With a spool (``configure(spool_dir=...)``) nothing is given up: a batch that cannot be
delivered is written to disk (``promptrecorder.spool``), and from then on, while the spool
holds anything, new batches go straight to disk behind it (fast: the batch processor's
queue keeps moving while the collector is down). A drain thread re-sends the oldest file
through the same exporter, deletes it once accepted, backs off (up to
``DRAIN_MAX_BACKOFF_S``) while the collector does not answer, and hands back to direct
export when the spool is empty. Spans a full queue cannot take wait in memory (up to
``OVERFLOW_LIMIT``) for the drain thread to write them to disk.

``SpoolDrain`` keeps no counters of its own: what it spools, re-sends or loses is counted
by the ``DeliveryExporter`` that owns it (``promptrecorder.delivery``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import ReadableSpan

from promptrecorder import ledger
from promptrecorder._diagnostics import QUEUE_EPISODE_QUIET_S, logger
from promptrecorder.otlp_codec import UndecodableBatchError, decode_batch, encode_batch
from promptrecorder.spool import CorruptSpoolFileError, Spool, SpoolEntry

if TYPE_CHECKING:
    from promptrecorder.delivery import DeliveryExporter

# The drain thread's pause after a failed re-send doubles from the first to the last.
DRAIN_FIRST_BACKOFF_S = 0.2
DRAIN_MAX_BACKOFF_S = 5.0
# With a spool, spans a full queue cannot take wait here (in memory) for the drain thread
# to write them to disk; beyond this many they are dropped and counted.
OVERFLOW_LIMIT = 2048


class SpoolDrain:
    """The spool side of one ``DeliveryExporter``: its overflow, its spool writes, its drain thread.

    Threading contract: ``overflow`` may be called from any thread. The spool is written
    from the processor thread, the drain thread, and whichever thread flushes or shuts down;
    the overflow has its own lock and the counters are the exporter's. The drain thread
    re-sends through the exporter, taking the exporter's send lock, so that it and the
    processor thread never call the wrapped exporter at once.
    """

    def __init__(self, delivery: DeliveryExporter, spool: Spool) -> None:
        self._delivery = delivery
        self._spool = spool
        self._overflow: deque[ReadableSpan] = deque()
        self._overflow_lock = threading.Lock()
        self.overflow_limit = OVERFLOW_LIMIT
        self._last_overflow = float("-inf")
        self._wake = threading.Event()  # something to spool or re-send
        self._kick = threading.Event()  # cut the drain's back-off short (flush, shutdown)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the drain thread (once; never after ``stop``)."""
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

    # --- the overflow of a full queue --------------------------------------------------------

    def overflow(self, span: ReadableSpan) -> bool:
        """Keep a span the batch processor's full queue cannot hold; False when there is no room."""
        now = time.monotonic()
        with self._overflow_lock:
            kept = len(self._overflow) < self.overflow_limit
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

    def take_overflow(self) -> list[ReadableSpan]:
        """The spans waiting in memory, oldest first; they are no longer held here."""
        with self._overflow_lock:
            spans = list(self._overflow)
            self._overflow.clear()
        return spans

    def move_overflow(self) -> None:
        spans = self.take_overflow()
        if spans:
            self.to_spool(spans)

    # --- writing to the spool ----------------------------------------------------------------

    def to_spool(self, spans: Sequence[ReadableSpan]) -> None:
        delivery = self._delivery
        # Whose spans these are travels with the file's entry, and is counted as spooled
        # before the drain thread can see the file (and count it exported).
        counts = ledger.resolve(delivery._tallies(spans), "spooled")
        try:
            entry = self._spool.append(encode_batch(spans), len(spans), tag=counts or None)
        except Exception as error:  # an unencodable span must not stop the processor thread
            logger.warning("promptrecorder: could not encode %d spans for the spool: %s", len(spans), error)
            entry = None
        if entry is None:
            ledger.settle_spooled(counts, "dropped")
            delivery._count_failed(len(spans))
            return
        delivery._count_spooled(len(spans))
        self._wake.set()

    # --- the drain thread ----------------------------------------------------------------------

    def _run(self) -> None:
        """The drain thread: re-send spooled batches, oldest first, until stopped."""
        send_lock = self._delivery._send_lock
        backoff = 0.0
        while not self._stop.is_set():
            self._wake.clear()
            self.move_overflow()
            entry = self._spool.oldest()
            if entry is None:
                self._wake.wait()
                continue
            if self._stop.is_set():
                break
            if backoff:
                self._pause(backoff)
                if self._stop.is_set():
                    break
            if not send_lock.acquire(timeout=0.05):
                continue  # a direct export is in flight; meanwhile keep the overflow moving
            try:
                # One re-send per directory at a time, even across a re-configure() that left
                # the previous drain thread finishing a send: no file goes out twice.
                if not self._spool.draining.acquire(timeout=0.05):
                    continue
                try:
                    entry = self._spool.oldest()
                    delivered = entry is None or self._resend(entry)
                finally:
                    self._spool.draining.release()
            finally:
                send_lock.release()
            backoff = 0.0 if delivered else min(max(backoff * 2, DRAIN_FIRST_BACKOFF_S), DRAIN_MAX_BACKOFF_S)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._kick.wait(min(remaining, 0.1)):
                self._kick.clear()
                return
            self.move_overflow()  # the queue may be overflowing meanwhile

    def _resend(self, entry: SpoolEntry) -> bool:
        """Re-send one spooled batch; True unless the collector refused or did not answer."""
        spool, delivery = self._spool, self._delivery
        try:
            spans = decode_batch(spool.read(entry))
        except (CorruptSpoolFileError, UndecodableBatchError) as error:
            spool.quarantine(entry, str(error))
            self._settle(entry, "dropped")
            return True
        if not delivery._send(spans, spooled=True):
            if not delivery._closed:
                delivery._note_failure(len(spans), delivery._captured, spooled=True)
            return False
        spooled_before = spool.backlog()[1]
        spool.remove(entry)
        # A crash right before the deletion, after the collector's answer, re-sends this one
        # batch at the next start: the window for a duplicate is this one unlink.
        self._settle(entry, "exported")
        delivery._count_exported(len(spans), spooled_before)
        return True

    def _settle(self, entry: SpoolEntry, outcome: str) -> None:
        if outcome == "dropped":
            self._delivery._count_failed(entry.spans)
        if isinstance(entry.tag, dict):  # None for a file an earlier process spooled
            ledger.settle_spooled(entry.tag, outcome)

    def wait_until_empty(self, deadline: float) -> bool:
        """Wait until the spool is empty (True) or ``deadline`` (``time.monotonic()``) passes."""
        self.move_overflow()
        self._kick.set()
        self._wake.set()
        while self.holds_anything():
            if time.monotonic() >= deadline or self._stop.is_set():
                return not self.holds_anything()
            time.sleep(0.01)
        return True

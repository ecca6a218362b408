"""Per-recorder delivery accounting: what became of the spans each recorder started.

A recorder marks the spans it starts (its own span, its segment spans, the CLIENT spans of
the calls recorded into it) by starting them inside ``starting(tally)``. The span processor
configure() installs sees each start; when the pipeline has a destination that accounts
for delivery, it notes the span id against the recorder's ``Tally`` (``note_start``). When
the span ends the note moves to each delivery that takes the span (``take``), and the
delivery resolves it as exported, spooled or dropped. Memory stays bounded: a note lives
from a span's start until its batch's fate is known, spans on other providers are never
noted, and spans that never end (a bug elsewhere) are capped at ``MAX_OPEN_SPANS``.

Threading contract: everything here may be called from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass

# Spans started by recorders and not yet ended; beyond this they are not accounted (a
# span that is never ended would otherwise be remembered for ever).
MAX_OPEN_SPANS = 100_000

_lock = threading.Lock()
_STARTING: ContextVar[Tally | None] = ContextVar("promptrecorder_starting", default=None)
_open: dict[int, Tally] = {}


@dataclass(frozen=True)
class DeliverySummary:
    """What became of a recorder's spans, counted per span handed to the exporter.

    ``exported``: accepted by the collector. ``spooled``: on disk in the spool, to be
    re-sent (when they are, they move to ``exported``). ``dropped``: lost, and counted and
    logged where it happened. ``pending``: started or queued, fate not known yet; zero
    after ``promptrecorder.flush()`` returned.

    Only spans sent through the pipeline ``configure()`` built are counted: with
    ``exporter="none"``, the console, or an application's own TracerProvider, all four are 0.

    Example:
        >>> with recorder:  # doctest: +SKIP
        ...     bot("Summarise ticket 42")
        >>> promptrecorder.flush()  # doctest: +SKIP
        >>> recorder.delivery  # doctest: +SKIP
        DeliverySummary(exported=2, spooled=0, dropped=0, pending=0)
    """

    exported: int = 0
    spooled: int = 0
    dropped: int = 0
    pending: int = 0

    @property
    def complete(self) -> bool:
        """True when every span was exported: nothing spooled, dropped or pending."""
        return self.spooled == self.dropped == self.pending == 0


class Tally:
    """The mutable counters behind one recorder's ``DeliverySummary``."""

    __slots__ = ("dropped", "exported", "pending", "spooled")

    def __init__(self) -> None:
        self.exported = self.spooled = self.dropped = self.pending = 0

    def summary(self) -> DeliverySummary:
        with _lock:
            return DeliverySummary(self.exported, self.spooled, self.dropped, self.pending)


def starting(tally: Tally) -> Token[Tally | None]:
    """Mark spans started from now on, in this context, as ``tally``'s; undo with ``done``."""
    return _STARTING.set(tally)


def done(token: Token[Tally | None]) -> None:
    _STARTING.reset(token)


def note_start(span_id: int) -> None:
    """Called by the span processor when a span starts: remember whose it is, if anyone's."""
    tally = _STARTING.get()
    if tally is None:
        return
    with _lock:
        if len(_open) < MAX_OPEN_SPANS:
            _open[span_id] = tally
            tally.pending += 1


def take(span_id: int, deliveries: int) -> Tally | None:
    """Called when a span ends: the tally it belongs to, now expecting ``deliveries`` outcomes.

    With no delivery to account for it (``deliveries == 0``) the span leaves the count.
    """
    if not _open:  # the common case for spans no recorder started: no lock taken
        return None
    with _lock:
        tally = _open.pop(span_id, None)
        if tally is not None:
            tally.pending += deliveries - 1
    return tally


def resolve(tallies: Iterable[Tally], outcome: str) -> dict[Tally, int]:
    """Move each tally's spans (one per occurrence) from pending to ``outcome``.

    ``outcome`` is ``"exported"``, ``"spooled"`` or ``"dropped"``. Returns the count per tally.
    """
    counts: dict[Tally, int] = {}
    for tally in tallies:
        counts[tally] = counts.get(tally, 0) + 1
    with _lock:
        for tally, count in counts.items():
            tally.pending -= count
            setattr(tally, outcome, getattr(tally, outcome) + count)
    return counts


def settle_spooled(counts: dict[Tally, int], outcome: str) -> None:
    """Spooled spans were re-sent (``"exported"``) or given up (``"dropped"``)."""
    with _lock:
        for tally, count in counts.items():
            tally.spooled -= count
            setattr(tally, outcome, getattr(tally, outcome) + count)


def after_fork_in_child() -> None:
    """In a forked child: a lock no parent thread can be holding (the notes are kept)."""
    global _lock
    _lock = threading.Lock()

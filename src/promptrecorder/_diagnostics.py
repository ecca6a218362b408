"""Logging for the telemetry path: say a thing once, plainly, and carry on."""

from __future__ import annotations

import logging
import threading

# Each module logs to its own ``logging.getLogger(__name__)``; all are below this one.
logger = logging.getLogger("promptrecorder")

# Drops of a full queue less than this far apart belong to one episode (one log line).
QUEUE_EPISODE_QUIET_S = 10.0

_said: set[str] = set()
_said_lock = threading.Lock()


def warn_once(logger: logging.Logger, key: str, message: str, *args: object) -> None:
    """Log ``message`` to ``logger`` as a warning the first time ``key`` is seen in this process."""
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    logger.warning(message, *args)


def after_fork_in_child() -> None:
    """In a forked child: a lock no parent thread can be holding."""
    global _said_lock
    _said_lock = threading.Lock()

"""The opt-in log-based event of each pair: ``gen_ai.client.inference.operation.details``.

OpenTelemetry moves events from spans to the Logs API (OTEP 4430), and the GenAI
conventions define this log record as "input and output details independently from
traces". When enabled (``configure(log_events=True)`` or ``PROMPTRECORDER_LOG_EVENTS``),
each pair is also emitted as one such record through the OpenTelemetry Logs API, with the
attributes of its call span (the same usage, models, finish reasons and conversation id)
and the messages as structured values rather than JSON text, in the context of the call
span, so that a backend correlates it by trace and span id. No body: the conventions
define none. Span events stay the default, as Jaeger shows them and no log backend is
needed to read them.

Threading contract: ``enable`` is meant for start-up; ``emit`` may run in any thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from promptrecorder._diagnostics import warn_once
from promptrecorder._version import __version__
from promptrecorder.recording import semconv

logger = logging.getLogger(__name__)

_enabled = False
_provider: _logs.LoggerProvider | None = None
_STRUCTURED = (semconv.GEN_AI_INPUT_MESSAGES, semconv.GEN_AI_OUTPUT_MESSAGES)


def enable(on: bool = True, provider: _logs.LoggerProvider | None = None) -> None:
    """Emit (or stop emitting) a log record per pair, through ``provider`` (the one
    ``configure()`` built), else through the global LoggerProvider of the moment."""
    global _enabled, _provider
    _enabled = bool(on)
    _provider = provider


def enabled() -> bool:
    """Whether pairs are emitted as log records too."""
    return _enabled


def emit(attributes: Mapping[str, AttributeValue], span: Span, timestamp_ns: int) -> None:
    """Emit one pair's log record, correlated with its call ``span``; never raises."""
    try:
        structured: dict[str, Any] = dict(attributes)
        for key in _STRUCTURED:
            value = structured.get(key)
            if isinstance(value, str):
                # Fitted to the span's budget the JSON stays valid; should it not, keep the text.
                with contextlib.suppress(ValueError):
                    structured[key] = json.loads(value)
        provider = _provider
        logger_of = _logs.get_logger if provider is None else provider.get_logger
        logger_of(semconv.INSTRUMENTATION_NAME, __version__).emit(
            _logs.LogRecord(
                timestamp=timestamp_ns,
                context=trace.set_span_in_context(span),
                event_name=semconv.EVENT_INFERENCE_DETAILS,
                attributes=structured,
            )
        )
    except Exception as failure:  # telemetry must never break the caller
        warn_once(logger, "log-event", "promptrecorder could not emit a pair's log record: %r", failure)

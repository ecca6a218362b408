"""Compact, human-readable console renderings of finished spans and of records.

The SDK's ConsoleSpanExporter prints each span as a page of JSON. For a person watching
a demo or a notebook, one line per span and one per prompt or response reads better.
Every text taken from data (span and event names, prompts, responses, recorder and model
names) goes through ``printable``, so no control character from it reaches the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from promptrecorder.recording import semconv
from promptrecorder.recording.records import PromptRecord, token_summary
from promptrecorder.terminal_text import printable

_TEXT_KEYS = (semconv.PROMPT_TEXT, semconv.RESPONSE_TEXT)
_WIDTH = 100


def _short(text: str, width: int = _WIDTH) -> str:
    """One line: whitespace runs (newlines too) become one space, controls are escaped, then cut."""
    text = printable(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


def format_span(span: ReadableSpan) -> str:
    """One line for the span, then one indented line per event."""
    context = span.get_span_context()
    trace_id = format(context.trace_id, "032x") if context else "?"
    span_id = format(context.span_id, "016x") if context else "?"
    parent = format(span.parent.span_id, "016x") if span.parent else "-"
    duration_ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    lines = [
        f"[span] {printable(span.name)}  trace={trace_id} span={span_id} parent={parent} "
        f"status={span.status.status_code.name} {duration_ms:.1f}ms"
    ]
    for event in span.events:
        attributes = event.attributes or {}
        text = next((attributes[key] for key in _TEXT_KEYS if key in attributes), None)
        detail = f"  '{_short(str(text))}'" if text is not None else ""
        lines.append(f"    [event] {printable(event.name)}{detail}")
    return "\n".join(lines) + "\n"


def format_records_table(records: Sequence[PromptRecord], width: int = 44) -> str:
    """The records as a plain-text table: index, recorder, model, prompt, response, tokens."""
    headers = ("#", "recorder", "model", "prompt", "response", "tokens")
    rows = [
        (
            str(index),
            printable(record.recorder),
            printable(record.model or "-"),
            _short(record.prompt, width),
            _short(record.response, width),
            token_summary(record) or "-",
        )
        for index, record in enumerate(records, start=1)
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class CompactConsoleExporter(SpanExporter):
    """Prints each finished span with ``format_span`` to the *current* ``sys.stdout``.

    The SDK's ConsoleSpanExporter binds ``sys.stdout`` when its module is imported, so
    output redirected later (a notebook, ``contextlib.redirect_stdout``) would miss it.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        stream = sys.stdout
        for span in spans:
            stream.write(format_span(span))
        stream.flush()
        return SpanExportResult.SUCCESS

"""Tests of ``promptrecorder.export.console``: one-line renderings of spans and records."""

from __future__ import annotations

import contextlib
import io
from datetime import datetime, timezone
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import StatusCode

from promptrecorder import PromptRecorder, autorecord, configure, flush
from promptrecorder.export.console import CompactConsoleExporter, format_records_table, format_span
from promptrecorder.recording import semconv
from promptrecorder.recording.records import PromptRecord
from tests.conftest import Tracing
from tests.unit.terminal_controls import raw_controls


def make_record(index: int, **changes: Any) -> PromptRecord:
    values: dict[str, Any] = {
        "prompt": f"prompt {index}",
        "response": f"response {index}",
        "ended_at": datetime(2024, 5, 17, tzinfo=timezone.utc),
        "recorder": "nb",
        "id": str(index),
    }
    values.update(changes)
    return PromptRecord(**values)


# --- format_span ----------------------------------------------------------------------


def test_format_span_shows_the_span_and_one_line_per_event(tracing: Tracing) -> None:
    """The span line names the span, its trace, span and parent ids; each event gets one shortened line."""
    tracer = tracing.provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, tracer.start_as_current_span("child") as child:
        child.add_event(
            semconv.EVENT_PROMPT, {semconv.RECORD_ID: "r1", semconv.PROMPT_TEXT: "Hello\n   world\t!"}
        )
        child.add_event(semconv.EVENT_RESPONSE, {semconv.RECORD_ID: "r1", semconv.RESPONSE_TEXT: "y" * 150})
        child.add_event("other")
        child.set_status(StatusCode.OK)
    trace_id = format(parent.get_span_context().trace_id, "032x")
    parent_id = format(parent.get_span_context().span_id, "016x")
    span_id = format(child.get_span_context().span_id, "016x")

    text = format_span(tracing.span("child"))

    assert text.endswith("\n")
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 4
    assert lines[0].startswith(f"[span] child  trace={trace_id} span={span_id} parent={parent_id} status=OK ")
    assert lines[0].endswith("ms")
    assert lines[1] == "    [event] promptrecorder.prompt  'Hello world !'"
    assert lines[2] == "    [event] promptrecorder.response  '" + "y" * 99 + "…'"
    assert lines[3] == "    [event] other"


def test_format_span_of_a_root_span_has_no_parent(tracing: Tracing) -> None:
    """A root span shows parent=- and, without events, is a single line."""
    with tracing.provider.get_tracer("test").start_as_current_span("root"):
        pass
    text = format_span(tracing.span("root"))
    assert text.count("\n") == 1
    assert "parent=- " in text
    assert "status=UNSET" in text


def test_compact_exporter_writes_to_the_stdout_of_export_time(tracing: Tracing) -> None:
    """CompactConsoleExporter prints format_span of each span to sys.stdout as it is when exporting."""
    exporter = CompactConsoleExporter()  # built before stdout is redirected, on purpose
    with tracing.provider.get_tracer("test").start_as_current_span("shown") as span:
        span.add_event(semconv.EVENT_PROMPT, {semconv.PROMPT_TEXT: "hi"})
    finished = tracing.span("shown")
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        assert exporter.export([finished, finished]) is SpanExportResult.SUCCESS
    assert captured.getvalue() == format_span(finished) * 2


# --- format_records_table -------------------------------------------------------------


def test_table_has_a_header_a_separator_and_a_row_per_record() -> None:
    """The table is a header line, a line of dashes, then one line per record numbered from 1."""
    records = [make_record(1, model="gpt-4o-mini"), make_record(2), make_record(3)]
    lines = format_records_table(records).split("\n")
    assert len(lines) == 2 + len(records)
    assert lines[0].split() == ["#", "recorder", "model", "prompt", "response", "tokens"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["1", "nb", "gpt-4o-mini", "prompt", "1", "response", "1", "-"]
    assert lines[4].split()[0] == "3"


def test_table_columns_line_up() -> None:
    """Every column starts at the same offset in the header, the separator and each row."""
    records = [make_record(1, model="a-much-longer-model-name"), make_record(2, model="m")]
    lines = format_records_table(records).split("\n")
    start = lines[0].index("prompt")
    assert lines[1][start - 1] == " "
    assert lines[1][start] == "-"
    assert lines[2][start:].startswith("prompt 1")
    assert lines[3][start:].startswith("prompt 2")


def test_table_shortens_long_text_with_an_ellipsis() -> None:
    """Texts longer than width are cut to width characters ending in '…'; whitespace is collapsed."""
    long_prompt = "word " * 40
    table = format_records_table([make_record(1, prompt=long_prompt, response="one\ntwo\n\nthree")], width=20)
    lines = table.split("\n")
    assert len(lines) == 3
    assert "word word word word…" in lines[2]
    assert "word " * 5 not in lines[2]
    assert "one two three" in lines[2]


def test_table_shows_tokens_as_in_to_out_or_a_dash() -> None:
    """Tokens read 'in→out' when known and '-' when neither is known."""
    records = [make_record(1, input_tokens=12, output_tokens=34), make_record(2)]
    lines = format_records_table(records).split("\n")
    assert lines[2].endswith("12→34")
    assert lines[3].endswith("-")
    assert "→" not in lines[3]


def test_table_of_no_records_is_the_header_and_separator() -> None:
    """With no records the table is just its header and separator."""
    lines = format_records_table([]).split("\n")
    assert len(lines) == 2
    assert lines[1] == "  ".join(
        "-" * len(title) for title in ("#", "recorder", "model", "prompt", "response", "tokens")
    )


# --- control characters from data never reach the terminal ----------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\x7f\u202e"
HOSTILE_SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x7f\\u202e"


def test_format_span_escapes_control_characters_in_span_names_event_names_and_texts(
    tracing: Tracing,
) -> None:
    """An ESC sequence, a C1 CSI, DEL or a bidi override in a name or a text is printed as an escape."""
    with tracing.provider.get_tracer("test").start_as_current_span(f"span {HOSTILE}") as span:
        span.add_event(f"event {HOSTILE}", {semconv.PROMPT_TEXT: f"text {HOSTILE}"})
    text = format_span(tracing.span(f"span {HOSTILE}"))
    assert raw_controls(text) == []
    assert text.startswith(f"[span] span {HOSTILE_SHOWN}  trace=")
    assert f"    [event] event {HOSTILE_SHOWN}  'text {HOSTILE_SHOWN}'\n" in text


def test_the_console_exporter_configure_builds_prints_no_control_character(
    global_tracing: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """configure(exporter="console") then a recorder and a pair full of control characters: what
    reaches stdout has them escaped."""
    configure(exporter="console")
    with PromptRecorder(f"name {HOSTILE}"):
        autorecord(f"prompt {HOSTILE}\nline two", f"response {HOSTILE}", model=f"model {HOSTILE}")
    flush()
    out = capsys.readouterr().out
    assert f"[span] invoke_workflow name {HOSTILE_SHOWN}" in out
    assert f"[span] chat model {HOSTILE_SHOWN}" in out
    assert f"'prompt {HOSTILE_SHOWN} line two'" in out
    assert raw_controls(out) == []


def test_the_records_table_escapes_recorder_and_model_names() -> None:
    """format_records_table shows control characters of every column as escapes."""
    table = format_records_table(
        [make_record(1, recorder=f"r {HOSTILE}", model=f"m {HOSTILE}", prompt=HOSTILE, response=HOSTILE)],
        width=200,
    )
    assert raw_controls(table) == []
    assert table.split("\n")[2].split()[:3] == ["1", "r", HOSTILE_SHOWN]

"""The export contract: for a fixed input, the exported spans and the records stay what they were.

Issue 15 reworks the hot path (ids, the secret pre-check, how events are built); none of it
may change what leaves the process. A fixed session (plain pairs of 100, 10,000 and 1,000,000
characters, chat messages, metadata, secrets, unicode and a lone surrogate, a cut text, a
redaction hook, capture="metadata", nested recorders, segments, a bot call and a failed block)
is recorded, its spans are encoded into the OTLP request our exporters send
(``export.otlp_encode.encode_request``) and decoded back, and the result, with ids and
clock times replaced by placeholders, is compared with ``export_contract.json``, written at
the commit the contract was taken. The records (``to_dict``) are compared the same way.

Ids, clock times and the checkout's path are the only things normalised: a record id, trace
id or span id becomes ``<id N>`` in order of first appearance (so which event points at which
span is still checked), a timestamp the session did not set becomes ``<now>``, the repository's
path in the failed block's stack trace ``<repo>``. Strings over 2,000
characters are kept as their length and sha256, to keep the file small.

To take the contract again after a deliberate change of the exported shape:
``PROMPTRECORDER_WRITE_CONTRACT=1 pytest tests/unit/recording/test_export_contract.py``,
and say why in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from promptrecorder import ChatBot, PromptRecorder, autorecord
from promptrecorder.export.otlp_encode import encode_request
from tests.conftest import Tracing
from tests.fake_openai import FakeOpenAI, completion

CONTRACT = Path(__file__).with_name("export_contract.json")
# Where the checkout is differs between machines: the exception's stack trace names its files.
ROOT = str(Path(__file__).resolve().parents[3])
# The session's own clock: far from any day the test runs, so that a time it set is never
# mistaken for one the clock set (or the reverse), whatever the date.
BASE = datetime(2001, 2, 3, 4, 0, 0, tzinfo=timezone.utc)
PROSE = "The quick brown fox asks about task-risk and sk-ills; a printer jams on duplex. "
SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
AWS = "AKIAIOSFODNN7EXAMPLE"


def _text(length: int) -> str:
    return (PROSE * (length // len(PROSE) + 1))[:length]


def _at(seconds: float) -> dict[str, datetime]:
    started = BASE + timedelta(seconds=seconds)
    return {"started_at": started, "ended_at": started + timedelta(milliseconds=250)}


def record_session(tracing: Tracing) -> list[dict[str, Any]]:
    """Record the fixed session; return every record's ``to_dict`` in order."""
    provider = tracing.provider
    bot = ChatBot(
        "You are terse.",
        model="gpt-4o-mini",
        client=FakeOpenAI(completion("Jams happen.")).client(),
        conversation_id="bot-conv",
    )
    with PromptRecorder(
        "contract", tracer_provider=provider, conversation_id="turn-1", attributes={"ticket": 42}
    ) as outer:
        for index, length in enumerate((100, 10_000, 1_000_000)):
            autorecord(
                _text(length),
                _text(length // 2 + 1),
                model="m-1",
                input_tokens=length // 4,
                output_tokens=length // 8,
                **_at(index),
            )
        autorecord(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"My key is {SECRET}, and AWS {AWS}."},
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "Summarise."},
            ],
            f"Your key {SECRET} is noted.",
            model="m-2",
            metadata={"channel": "email", "tags": ["a", "b"], "depth": {"x": 1}, "n": 10**30},
            retry=2,
            **_at(10),
        )
        autorecord("naïve café — 日本語 🎉 \ud800 lone", "ok \udfff", **_at(11))
        with PromptRecorder("nested", tracer_provider=provider, max_span_bytes=4_000):
            for index in range(4):
                autorecord(f"step {index} " + _text(900), f"done {index}", model="m-3", **_at(20 + index))
        with PromptRecorder("quiet", tracer_provider=provider, capture="metadata"):
            autorecord("hidden prompt", "hidden response", model="m-4", input_tokens=1, **_at(30))
        with PromptRecorder("cut", tracer_provider=provider, max_content_length=50, redact=str.upper):
            autorecord(_text(120), _text(80), model="m-5", **_at(40))
        bot("Why does the printer jam?")
        with pytest.raises(RuntimeError), PromptRecorder("failing", tracer_provider=provider):
            autorecord("before the failure", "partial", **_at(50))
            raise RuntimeError("parts database unreachable")
    return [record.to_dict() for record in outer.records]


class _Normaliser:
    """Ids to ``<id N>`` in order of first appearance; long strings to their digest."""

    _HEX = re.compile(r"^[0-9a-f]{16}$|^[0-9a-f]{32}$")

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def id(self, value: str) -> str:
        return self.ids.setdefault(value, f"<id {len(self.ids) + 1}>")

    def value(self, value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            if set(value) == {"key", "value"}:  # an OTLP attribute: its value under its own key
                return {"key": value["key"], "value": self.value(value["value"], value["key"])}
            if key == "promptrecorder.record.id" and "stringValue" in value:
                return {"stringValue": self.id(value["stringValue"])}
            return {k: self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            if key.lower().endswith(("traceid", "spanid", "trace_id", "span_id")) or key in (
                "id",
                "promptrecorder.record.id",
            ):
                return self.id(value) if value else value
            if ROOT in value:
                value = value.replace(ROOT, "<repo>")
            if len(value) > 2_000:
                return {
                    "length": len(value),
                    "sha256": hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest(),
                }
        return value


def _decoded_spans(tracing: Tracing, normaliser: _Normaliser) -> list[dict[str, Any]]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_request(tracing.spans()))
    decoded = MessageToDict(request)
    spans = [
        span
        for resource in decoded["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    for span in spans:
        # The recorder spans' own times come from the clock; the pairs' from the session.
        for key in ("startTimeUnixNano", "endTimeUnixNano"):
            if not _set_by_session(int(span[key])):
                span[key] = "<now>"
        for event in span.get("events", []):
            if not _set_by_session(int(event["timeUnixNano"])):
                event["timeUnixNano"] = "<now>"
    return [normaliser.value(span) for span in spans]


def _set_by_session(unix_nano: int) -> bool:
    start = BASE.timestamp() * 1e9
    return start <= unix_nano <= start + 3_600 * 1e9


def _normalised_records(records: list[dict[str, Any]], normaliser: _Normaliser) -> list[dict[str, Any]]:
    for record in records:
        for key in ("started_at", "ended_at"):
            value = record.get(key)
            if isinstance(value, str) and not _set_by_session(
                int(datetime.fromisoformat(value).timestamp() * 1e9)
            ):
                record[key] = "<now>"
    return [normaliser.value(record) for record in records]


def test_exported_spans_and_records_are_those_of_the_contract(tracing: Tracing) -> None:
    records = record_session(tracing)
    normaliser = _Normaliser()
    spans = _decoded_spans(tracing, normaliser)
    taken = {"records": _normalised_records(records, normaliser), "spans": spans}
    text = json.dumps(taken, indent=1, ensure_ascii=True, sort_keys=True) + "\n"
    if os.environ.get("PROMPTRECORDER_WRITE_CONTRACT") == "1":
        CONTRACT.write_text(text, encoding="utf-8")
    expected = json.loads(CONTRACT.read_text(encoding="utf-8"))
    assert len(taken["spans"]) == len(expected["spans"])
    for index, (got, want) in enumerate(zip(taken["records"], expected["records"], strict=True)):
        assert got == want, f"record {index} differs"
    for index, (got, want) in enumerate(zip(taken["spans"], expected["spans"], strict=True)):
        assert got == want, f"span {index} ({want.get('name')}) differs"

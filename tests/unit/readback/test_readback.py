"""Tests of ``promptrecorder.readback.otlp_json`` and ``promptrecorder.readback.jaeger_query``: recorded pairs
read back from OTLP JSON (files, Jaeger's API v3 answers) equal the records kept in memory,
apart from the documented truncation."""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openai
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider

from promptrecorder import (
    PromptRecord,
    PromptRecorder,
    SimpleBot,
    TraceNotFoundError,
    TraceReadError,
    autorecord,
    read_jaeger,
    read_otlp_json,
)
from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.readback.jaeger_query import parse_duration
from promptrecorder.recording import semconv
from promptrecorder.recording.content import TRUNCATION_MARKER
from tests.conftest import Tracing
from tests.fake_openai import FakeOpenAI, chunks, completion, error_reply, stream_reply, tool_call

STARTED = datetime(2025, 12, 6, 4, 30, 0, 123_456, tzinfo=timezone.utc)  # before the rest of the session
LIMIT = 1_000  # the recorders' max_content_length in the session below
LONG_PROMPT = "".join(f"line {n}: {'x' * 40}\n" for n in range(4_500))[:200_000]


# --- a recorded session, and its OTLP JSON --------------------------------------------


def record_session(provider: TracerProvider) -> PromptRecorder:
    """Nested recorders, a segment rollover, a cut prompt, messages, tool calls, a bot call
    with its CLIENT span, a failed call, a stream stopped early, usage and metadata, a
    conversation id (the outer recorder's; the inner one has none): what the tests read back."""
    session = PromptRecorder(
        "support-session", tracer_provider=provider, max_content_length=LIMIT, conversation_id="ticket-42"
    )
    inner = PromptRecorder("triage", tracer_provider=provider, max_content_length=LIMIT)
    server = FakeOpenAI(
        completion("Let me look that up.", tool_calls=[tool_call("lookup_order", {"order": 42})]),
        error_reply(500),
        stream_reply(chunks(["Once ", "upon ", "a time."])),
    )
    bot = SimpleBot("You are terse.", model="gpt-4o-mini", client=server.client())
    with session:
        autorecord(
            "What is 2+2?",
            "4",
            model="stand-in-1",
            started_at=STARTED,
            ended_at=STARTED + timedelta(milliseconds=250),
            input_tokens=7,
            output_tokens=1,
            metadata={"user": "u-17", "attempt": 2, "score": 0.5, "flag": True, "tags": ["a", "b"]},
        )
        autorecord(LONG_PROMPT, "a long answer", model="stand-in-1")
        autorecord(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Where is order 42?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [tool_call("lookup_order", {"order": 42}, "call_1")],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
                {"role": "user", "content": "And when does it arrive?"},
            ],
            "Tomorrow.",
            model="stand-in-1",
        )
        with inner:
            for index in range(70):  # 140 events: past the SDK's 128 per span, so segments
                autorecord(f"question {index}", f"answer {index}", model="stand-in-2", index=index)
        bot("Where is my order?")
        with pytest.raises(openai.InternalServerError):
            bot("Try again")
        story = bot.stream("Tell me a story")
        next(story)
        story.close()  # stopped early: recorded as incomplete
    return session


def otlp_json(tracing: Tracing) -> dict[str, Any]:
    """The finished spans as the OTLP JSON a receiver writes: ids in hex, int64 as strings."""
    request = ExportTraceServiceRequest.FromString(encode_request(tracing.spans()))
    document = MessageToDict(request)  # protobuf's JSON mapping: ids in base64
    return _ids_to_hex(document)


def _ids_to_hex(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: base64.b64decode(item).hex()
            if key in ("traceId", "spanId", "parentSpanId")
            else _ids_to_hex(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_ids_to_hex(item) for item in value]
    return value


def as_jaeger_answers(document: dict[str, Any]) -> dict[str, Any]:
    """What Jaeger's query service does before answering: events sorted by name (stable),
    attributes by key (its SortCollections adjuster), wrapped in ``{"result": ...}``."""
    adjusted = copy.deepcopy(document)
    for resource in adjusted["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                span["events"] = sorted(span.get("events", []), key=lambda event: event["name"])
                for event in span["events"]:
                    event["attributes"] = sorted(event.get("attributes", []), key=lambda a: a["key"])
    return {"result": adjusted}


def as_exported(record: PromptRecord) -> PromptRecord:
    """``record`` as the export keeps it: texts past LIMIT cut, what was cut in metadata."""
    metadata = dict(record.metadata)
    prompt = record.prompt
    if len(prompt) > LIMIT:
        import hashlib

        metadata[semconv.PROMPT_ORIGINAL_LENGTH] = len(prompt)
        metadata[semconv.PROMPT_SHA256] = hashlib.sha256(prompt.encode()).hexdigest()
        prompt = prompt[:LIMIT] + TRUNCATION_MARKER
    return replace(record, prompt=prompt, metadata=MappingProxyType(metadata))


@pytest.fixture
def session(tracing: Tracing) -> PromptRecorder:
    return record_session(tracing.provider)


# --- read_otlp_json ------------------------------------------------------------------------


def test_every_recorded_pair_reads_back_equal_to_the_record_in_memory(
    tracing: Tracing, session: PromptRecorder
) -> None:
    """The outer recorder's records, in order, equal what its trace's OTLP JSON reads back as
    (apart from the cut prompt): nested recorder names, segment span ids, messages, tool
    calls, usage, metadata, the failed call's error and the bot's finish reasons."""
    expected = [as_exported(record) for record in session.records]
    assert len(expected) == 76
    assert {record.conversation_id for record in expected} == {"ticket-42"}  # the nested one's too
    assert len({record.span_id for record in expected}) >= 3  # the recorder span, the inner one, a segment

    assert read_otlp_json(otlp_json(tracing)) == expected


def test_jaegers_answer_with_events_sorted_by_name_reads_back_in_recorded_order(
    tracing: Tracing, session: PromptRecorder
) -> None:
    """Jaeger sorts a span's events by name (all prompts, then all responses); pairs are
    matched by record id and ordered by their timestamps all the same."""
    answer = json.dumps(as_jaeger_answers(otlp_json(tracing)))

    assert read_otlp_json(answer) == [as_exported(record) for record in session.records]


def test_what_each_kind_of_pair_reads_back_as(tracing: Tracing, session: PromptRecorder) -> None:
    """Spot checks that say, field by field, what the equality above covers."""
    records = read_otlp_json(otlp_json(tracing))
    first, cut, chat = records[0], records[1], records[2]
    assert (first.prompt, first.response, first.model) == ("What is 2+2?", "4", "stand-in-1")
    assert (first.started_at, first.input_tokens, first.output_tokens) == (STARTED, 7, 1)
    assert dict(first.metadata) == {
        "user": "u-17",
        "attempt": 2,
        "score": 0.5,
        "flag": True,
        "tags": ["a", "b"],
    }
    assert cut.prompt.endswith(TRUNCATION_MARKER)
    assert len(cut.prompt) == LIMIT + len(TRUNCATION_MARKER)
    assert cut.metadata[semconv.PROMPT_ORIGINAL_LENGTH] == 200_000
    assert cut.started_at is None  # autorecord without started_at
    assert chat.messages is not None
    assert chat.messages[3] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"status": "shipped"}',
    }
    assert [record.recorder for record in records[3:73]] == ["triage"] * 70
    bot_call, failed = records[73], records[74]
    assert bot_call.provider == "openai"
    assert bot_call.finish_reasons == ("tool_calls",)
    assert bot_call.tool_calls == (tool_call("lookup_order", {"order": 42}),)
    assert failed.error is not None
    assert failed.error.startswith("InternalServerError: ")
    assert records[75].complete is False


def test_protobuf_json_with_base64_ids_and_a_retried_batch_read_back_each_pair_once(
    tracing: Tracing, session: PromptRecorder
) -> None:
    """protobuf's own JSON mapping (ids in base64) reads the same; a span that arrives twice
    (an export retried after a lost answer) gives its pairs once."""
    request = ExportTraceServiceRequest.FromString(encode_request(tracing.spans()))
    document = MessageToDict(request)
    text = json.dumps(document) + "\n" + json.dumps(document) + "\n"

    assert read_otlp_json(text.encode()) == [as_exported(record) for record in session.records]


def test_a_collector_file_export_of_one_request_per_line_reads_back(
    tracing: Tracing, session: PromptRecorder, tmp_path: Path
) -> None:
    """The Collector's file exporter writes one request per line; spans of a trace may be
    spread over several lines."""
    path = tmp_path / "traces.json"
    lines = []
    for span in tracing.spans():
        request = ExportTraceServiceRequest.FromString(encode_request([span]))
        lines.append(json.dumps(_ids_to_hex(MessageToDict(request))))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    assert read_otlp_json(path) == [as_exported(record) for record in session.records]
    assert read_otlp_json(str(path)) == read_otlp_json(path)


def test_a_message_list_of_one_user_message_reads_back_as_a_plain_prompt(tracing: Tracing) -> None:
    """Documented limit: a one-message list exports exactly as a str prompt does."""
    with PromptRecorder("r", tracer_provider=tracing.provider) as recorder:
        autorecord([{"role": "user", "content": "hi"}], "hello")
        autorecord([{"role": "developer", "content": "rules"}, {"role": "user", "content": "hi"}], "hello")
    single, developer = read_otlp_json(otlp_json(tracing))

    assert recorder.records[0].messages is not None
    assert single.messages is None
    assert developer.messages == ({"role": "system", "content": "rules"}, {"role": "user", "content": "hi"})


def test_a_cut_metadata_value_reads_back_cut_with_its_length_and_hash(tracing: Tracing) -> None:
    """Any text cut for export brings its own original length and hash into the metadata,
    under the exported key; a caller key that only ends like one stays the caller's."""
    with PromptRecorder("r", tracer_provider=tracing.provider, max_content_length=10):
        autorecord("p", "r", metadata={"note": "n" * 50, "file.sha256": "abc"})
    [record] = read_otlp_json(otlp_json(tracing))

    assert record.metadata["note"] == "n" * 10 + TRUNCATION_MARKER
    assert record.metadata["file.sha256"] == "abc"
    assert record.metadata[semconv.METADATA_PREFIX + "note.original_length"] == 50


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not OTLP JSON"),
        ('{"spans": []}', "expected OTLP JSON trace data with `resourceSpans`"),
        ('{"error": {"httpCode": 404, "message": "trace not found"}}', "trace not found"),
        ("[1]", "expected a JSON object"),
    ],
)
def test_data_that_is_not_otlp_trace_json_is_one_clear_error(text: str, message: str) -> None:
    """Bad input raises TraceReadError saying what was wrong, not a KeyError deep inside."""
    with pytest.raises(TraceReadError, match=re.escape(message)):
        read_otlp_json(text)


def test_a_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    """A path that does not exist names the path."""
    with pytest.raises(TraceReadError, match="no such file"):
        read_otlp_json(tmp_path / "missing.json")


def test_otlp_json_values_of_every_kind_decode() -> None:
    """int64 as strings or numbers, doubles, bools, arrays, kvlists, bytes, empty values."""
    from promptrecorder.readback.otlp_json import decode_attributes

    attributes = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "9007199254740993"}},
        {"key": "j", "value": {"intValue": 3}},
        {"key": "d", "value": {"doubleValue": 0.25}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "a", "value": {"arrayValue": {"values": [{"stringValue": "p"}, {"intValue": "1"}]}}},
        {"key": "k", "value": {"kvlistValue": {"values": [{"key": "n", "value": {"boolValue": False}}]}}},
        {"key": "y", "value": {"bytesValue": "AAE="}},
        {"key": "e", "value": {}},
    ]
    assert decode_attributes(attributes) == {
        "s": "x",
        "i": 9007199254740993,
        "j": 3,
        "d": 0.25,
        "b": True,
        "a": ["p", 1],
        "k": {"n": False},
        "y": b"\x00\x01",
        "e": None,
    }


# --- read_jaeger against a fake Jaeger on 127.0.0.1 ----------------------------------------


class FakeJaeger:
    """Answers /api/v3/traces like Jaeger 2.12: a trace by id, a search, 404s as JSON errors."""

    def __init__(self, traces: dict[str, dict[str, Any]]) -> None:
        self.traces = traces
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.status: int | None = None
        self.body: bytes | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.requests.append(
                    (parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()})
                )
                if fake.status is not None:
                    self._answer(fake.status, fake.body or b"")
                elif parts.path.startswith("/api/v3/traces/"):
                    found = fake.traces.get(parts.path.rsplit("/", 1)[1])
                    if found is None:
                        self._answer(404, _error(404, "trace not found"))
                    else:
                        self._answer(200, json.dumps(found).encode())
                elif parts.path == "/api/v3/traces":
                    if not fake.traces:
                        self._answer(404, _error(404, "No traces found"))
                    else:
                        merged = [rs for t in fake.traces.values() for rs in t["result"]["resourceSpans"]]
                        self._answer(200, json.dumps({"result": {"resourceSpans": merged}}).encode())
                else:
                    self._answer(404, b"404 page not found\n")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def _error(status: int, message: str) -> bytes:
    return json.dumps({"error": {"httpCode": status, "message": message}}).encode()


@pytest.fixture
def jaeger(tracing: Tracing, session: PromptRecorder) -> Iterator[FakeJaeger]:
    trace_id = session.records[0].trace_id
    assert trace_id is not None
    fake = FakeJaeger({trace_id: as_jaeger_answers(otlp_json(tracing))})
    yield fake
    fake.close()


def test_read_jaeger_by_trace_id_asks_for_that_trace_and_reads_it_back(
    jaeger: FakeJaeger, session: PromptRecorder
) -> None:
    """GET /api/v3/traces/{trace_id}; the trace id may be given in upper case."""
    trace_id = session.records[0].trace_id
    assert trace_id is not None

    records = read_jaeger(jaeger.url + "/", trace_id=trace_id.upper())

    assert records == [as_exported(record) for record in session.records]
    assert [request[0] for request in jaeger.requests] == [f"/api/v3/traces/{trace_id}"]


def test_read_jaeger_by_service_sends_jaegers_v3_search_parameters(
    jaeger: FakeJaeger, session: PromptRecorder
) -> None:
    """A search names the service, a start window ending a minute from now, and a count."""
    before = datetime.now(timezone.utc)
    records = read_jaeger(jaeger.url, service="support-bot", since="2h", limit=5, headers={"x-tenant": "t1"})

    assert len(records) == 76
    [(path, query, headers)] = jaeger.requests
    assert path == "/api/v3/traces"
    assert headers["x-tenant"] == "t1"
    assert query["query.service_name"] == ["support-bot"]
    assert query["query.num_traces"] == ["5"]
    start = datetime.fromisoformat(query["query.start_time_min"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(query["query.start_time_max"][0].replace("Z", "+00:00"))
    assert (
        timedelta(hours=2) - timedelta(seconds=5) < before - start < timedelta(hours=2) + timedelta(seconds=5)
    )
    assert timedelta(seconds=55) < end - before < timedelta(seconds=65)


def test_a_search_that_finds_no_trace_is_an_empty_list() -> None:
    """Jaeger answers 404 "No traces found" to an empty search: that is no records, not an error."""
    fake = FakeJaeger({})
    try:
        assert read_jaeger(fake.url, service="quiet") == []
        assert fake.requests[0][1]["query.num_traces"] == ["20"]  # Jaeger UI's default
    finally:
        fake.close()


def test_an_unknown_trace_id_is_trace_not_found(jaeger: FakeJaeger) -> None:
    """404 for a trace id raises TraceNotFoundError with Jaeger's own message."""
    with pytest.raises(TraceNotFoundError, match=r"has no trace 0+1 .*trace not found"):
        read_jaeger(jaeger.url, trace_id="1")


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(jaeger: FakeJaeger) -> None:
    """user:password in the URL becomes an Authorization header, and is masked in errors."""
    with_password = jaeger.url.replace("http://", "http://reader:s3cret@")
    read_jaeger(with_password, service="support-bot")
    assert jaeger.requests[-1][2]["authorization"] == "Basic " + base64.b64encode(b"reader:s3cret").decode()

    jaeger.status, jaeger.body = 500, _error(500, "storage is down")
    with pytest.raises(TraceReadError) as raised:
        read_jaeger(with_password, service="support-bot")
    assert "s3cret" not in str(raised.value)
    assert "HTTP 500" in str(raised.value)
    assert "storage is down" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>not json</html>", "is not OTLP JSON"),
        (200, b'{"something": "else"}', "not OTLP trace data"),
        (200, _error(500, "boom"), "answered an error"),
        (404, b"404 page not found\n", "is it Jaeger 2's query URL"),
        (502, b"bad gateway", "HTTP 502"),
    ],
)
def test_jaeger_answers_that_are_not_traces_raise_trace_read_error(
    jaeger: FakeJaeger, status: int, body: bytes, message: str
) -> None:
    """Each wrong answer is one TraceReadError that says what came back."""
    jaeger.status, jaeger.body = status, body
    with pytest.raises(TraceReadError, match=re.escape(message)):
        read_jaeger(jaeger.url, trace_id="ab" * 16)


def test_an_unreachable_jaeger_is_a_clear_error_with_the_url_masked() -> None:
    """Nothing listening: TraceReadError naming the (masked) URL, within the timeout."""
    fake = FakeJaeger({})
    url = fake.url.replace("http://", "http://u:pw@")
    fake.close()
    with pytest.raises(TraceReadError, match=r"cannot reach Jaeger at http://u:\*\*\*@127\.0\.0\.1"):
        read_jaeger(url, trace_id="ab" * 16, timeout=2)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "give exactly one of `trace_id` and `service`"),
        ({"trace_id": "ab", "service": "s"}, "give exactly one"),
        ({"trace_id": "xyz"}, "`trace_id` must be up to 32 hex digits"),
        ({"service": ""}, "`service` must be a non-empty str"),
        ({"service": "s", "limit": 0}, "`limit` must be a whole number"),
        ({"service": "s", "since": "yesterday"}, "`since` must be a duration"),
        ({"service": "s", "timeout": 0}, "`timeout` must be a number of seconds above 0"),
    ],
)
def test_bad_arguments_fail_at_once(arguments: dict[str, Any], message: str) -> None:
    """Mistakes raise ValueError before any request is made."""
    with pytest.raises(ValueError, match=re.escape(message)):
        read_jaeger("http://127.0.0.1:9", **arguments)


def test_a_url_that_is_not_http_is_refused_with_its_password_masked() -> None:
    """The URL check never echoes a password."""
    with pytest.raises(ValueError, match=r"`url` must be .*'ftp://u:\*\*\*@host'"):
        read_jaeger("ftp://u:pw@host", trace_id="ab")


def test_durations_read_as_jaegers_ui_writes_them() -> None:
    """'90s', '30m', '1h', '2d' and combinations; anything else is refused."""
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("2d") == timedelta(days=2)
    for bad in ("", "1", "h", "0m", "1w"):
        with pytest.raises(ValueError, match="`since` must be"):
            parse_duration(bad)


# --- promptrecorder read ------------------------------------------------------------------


def main(argv: list[str]) -> int:
    from promptrecorder.cli.main import main as cli_main  # the command line imports every command's module

    return cli_main(argv)


def test_the_read_command_prints_an_otlp_json_file_as_show_does(
    tracing: Tracing, session: PromptRecorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`promptrecorder read FILE.json` prints the table `show` prints, and says from where."""
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(as_jaeger_answers(otlp_json(tracing))), encoding="utf-8")

    assert main(["read", str(path)]) == 0

    out = capsys.readouterr().out
    assert "What is 2+2?" in out
    assert "question 69" in out
    assert f"76 records from {path}" in out


def test_the_read_command_saves_jsonl_that_show_reads(
    jaeger: FakeJaeger, session: PromptRecorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--jaeger URL --trace-id ID --jsonl OUT writes the records as to_jsonl does."""
    from promptrecorder import read_jsonl

    out = tmp_path / "records.jsonl"
    trace_id = session.records[0].trace_id
    assert trace_id is not None

    assert main(["read", "--jaeger", jaeger.url, "--trace-id", trace_id, "--jsonl", str(out)]) == 0

    assert f"wrote 76 records to {out}" in capsys.readouterr().out
    assert read_jsonl(out) == [as_exported(record) for record in session.records]


def test_the_read_command_searches_a_service(jaeger: FakeJaeger, capsys: pytest.CaptureFixture[str]) -> None:
    """--service NAME --since 30m --limit 3 reaches Jaeger's search; --json prints JSON lines."""
    assert (
        main(["read", "--jaeger", jaeger.url, "--service", "bot", "--since", "30m", "--limit", "3", "--json"])
        == 0
    )

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 76
    assert json.loads(lines[0])["prompt"] == "What is 2+2?"
    assert jaeger.requests[-1][1]["query.num_traces"] == ["3"]


def test_the_read_command_fails_in_one_sentence_with_the_url_masked(
    jaeger: FakeJaeger, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown trace is exit 1 with one line on stderr, the password masked."""
    url = jaeger.url.replace("http://", "http://u:pw@")
    assert main(["read", "--jaeger", url, "--trace-id", "ab" * 16]) == 1
    err = capsys.readouterr().err
    assert "has no trace" in err
    assert "pw" not in err.replace("promptrecorder", "")


@pytest.mark.parametrize(
    "argv",
    [
        ["read"],
        ["read", "--jaeger", "http://127.0.0.1:9"],
        ["read", "--jaeger", "http://127.0.0.1:9", "--trace-id", "ab", "--service", "s"],
        ["read", "file.json", "--jaeger", "http://127.0.0.1:9", "--trace-id", "ab"],
        ["read", "file.json", "--service", "s"],
    ],
)
def test_the_read_command_refuses_unclear_requests_as_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A file or --jaeger with exactly one of --trace-id/--service: anything else is exit 2."""
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("promptrecorder read: ")


# --- the README's example ------------------------------------------------------------------


def test_the_readmes_production_to_notebook_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Python block of README "From production to notebook" runs, offline, and reads its pair."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## From production to notebook") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    monkeypatch.chdir(tmp_path)

    exec(compile(block, "README.md", "exec"), {})

    assert (
        capsys.readouterr().out == "triage gpt-4o-mini Summarise ticket 42 -> The printer is on fire. 1.5\n"
    )

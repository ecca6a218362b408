"""A whole recorded session in Phoenix's GenAI views, read back over its REST API, pair by pair.

Issue 14: every pair, whatever path recorded it (plain ``autorecord``, the bots, a refused
call), must be an LLM span in Phoenix with its input and output messages, model and token
counts; each call's tokens counted once (Phoenix's own session and trace totals equal the
records' sum); the session found under the conversation id; the recorder spans shown as CHAIN.

What Phoenix 20.26.1 cannot show, asserted as what it does show instead:
- ``service.name``: Phoenix keeps no resource attribute but ``openinference.project.name``
  (the project); the service name is not in its API or UI.
- Span links (segment span -> recorder span) are not stored; segments show as children.
- Output messages: Phoenix builds ``llm.output_messages`` only from output messages that carry
  a ``finish_reason`` (its model requires it; the conventions now deprecate the field). A plain
  ``autorecord`` pair has none, so its call span carries the response as OpenInference's
  ``output.value`` as well, which fills the Output pane: asserted for every pair.
- The Traces and Spans tables' input/output columns read only ``input.value`` /
  ``output.value`` (OpenInference); Phoenix never fills them from ``gen_ai.*`` messages, so
  they show "--" for spans that carry messages only (the detail view shows the messages).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from promptrecorder import PromptRecord, configure, flush
from promptrecorder.recording import semconv

from .conftest import Phoenix
from .genai_session import (
    BIG_PROMPT_LENGTH,
    TRIAGE_PAIRS,
    Session,
    exported_text,
    message_texts,
    record_session,
    tokens,
)
from .test_phoenix import PROJECT_ATTRIBUTE, _get_json, _project

pytestmark = [pytest.mark.phoenix, pytest.mark.usefixtures("global_tracing")]

_READ_BACK_TIMEOUT_S = 60.0
_SDK_EVENT_LIMIT = 128


def _all_spans(phoenix: Phoenix, project: str, ready: Any) -> list[dict[str, Any]]:
    """Every span of the project, polled until ``ready(spans)`` holds (404 until the first arrives)."""
    deadline = time.monotonic() + _READ_BACK_TIMEOUT_S
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        spans, cursor = [], None
        try:
            while True:
                query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
                url = f"{phoenix.http_url}/v1/projects/{urllib.parse.quote(project)}/spans?"
                page = _get_json(url + urllib.parse.urlencode(query))
                spans += page["data"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        if ready(spans):
            return spans
        time.sleep(0.5)
    raise AssertionError(f"Phoenix project {project!r} never got the whole session: {len(spans)} spans")


def _messages(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Phoenix's flattened ``llm.{input,output}_messages.<i>.message.*`` keys, as a list of dicts."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if key.startswith(prefix + "."):
            index, _, field = key[len(prefix) + 1 :].partition(".message.")
            if index.isdigit():
                found.setdefault(int(index), {})[field] = value
    return [found[index] for index in sorted(found)]


def _last_input_text(span: dict[str, Any]) -> str | None:
    messages = _messages(span["attributes"], "llm.input_messages")
    return str(messages[-1].get("content")) if messages else None


def _workflows(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The recorder spans by recorder name (their segment spans carry the workflow name too)."""
    found: dict[str, dict[str, Any]] = {}
    for span in spans:
        name = span["attributes"].get(semconv.GEN_AI_WORKFLOW_NAME)
        if name is not None and span["name"] == f"invoke_workflow {name}":
            assert name not in found, f"two recorder spans for {name!r}"
            found[str(name)] = span
    return found


def _llm_spans_by_prompt(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    llm = [s for s in spans if s["span_kind"] == "LLM"]
    by_prompt = {_last_input_text(s): s for s in llm}
    assert len(by_prompt) == len(llm), "two LLM spans show the same last input message"
    return {str(text): span for text, span in by_prompt.items()}


def _shown_and_expected(span: dict[str, Any], record: PromptRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """What Phoenix shows of a call, field by field, beside what the record says it should.

    ``output`` is the Output pane's text: ``llm.output_messages`` (a call with a finish reason),
    else ``output.value`` (a plain pair's call span carries the response there).
    """
    attributes = span["attributes"]
    output = _messages(attributes, "llm.output_messages")
    pane = output[0].get("content") if output else attributes.get("output.value")
    raw = message_texts(attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES))
    shown = {
        "trace": span["context"]["trace_id"],
        "session": attributes.get("session.id"),
        "conversation": attributes.get("gen_ai.conversation.id"),
        "model": attributes.get("llm.model_name"),
        "input": _last_input_text(span),
        "output": pane,
        "output_messages": raw[0] if raw else None,  # the Attributes tab's gen_ai.output.messages
        "input_tokens": attributes.get("llm.token_count.prompt"),
        "output_tokens": attributes.get("llm.token_count.completion"),
        "status": span["status_code"],
    }
    models = {attributes.get("gen_ai.request.model"), attributes.get("gen_ai.response.model")}
    expected = {
        "trace": record.trace_id,
        "session": record.conversation_id,
        "conversation": record.conversation_id,
        # Phoenix names the requested model; the record holds the request's or the response's
        "model": attributes.get("gen_ai.request.model") if record.model in models else record.model,
        "input": exported_text(record.prompt),
        "output": exported_text(record.response),
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "status": "UNSET",
        "output_messages": exported_text(record.response),
    }
    if record.error is not None:
        expected["status"] = "ERROR"
        del expected["output"], expected["output_messages"]  # a refused call has no output to show
    return shown, expected


def _session_arrived(count: int) -> Any:
    return lambda spans: (
        sum(s["span_kind"] == "LLM" for s in spans) >= count
        and {"support-session", "triage", "lookup"} <= set(_workflows(spans))
    )


def _send_session(phoenix: Phoenix, protocol: str) -> tuple[str, Session, list[dict[str, Any]]]:
    project = _project(protocol)
    configure(
        service_name="promptrecorder-phoenix-session",
        endpoint=phoenix.grpc_url if protocol == "grpc" else phoenix.http_url,
        protocol=protocol,
        resource_attributes={PROJECT_ATTRIBUTE: project},
    )
    session = record_session(f"conv-{uuid.uuid4().hex}")
    assert flush(timeout=60), "the session was not delivered to Phoenix"
    spans = _all_spans(phoenix, project, _session_arrived(len(session.records)))
    return project, session, spans


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_every_pair_of_a_whole_session_is_an_llm_span_in_phoenix(phoenix: Phoenix, protocol: str) -> None:
    """Each record is one LLM span: same trace, model, input and output messages, tokens, session."""
    _, session, spans = _send_session(phoenix, protocol)
    records = session.records
    assert len(records) == 2 + TRIAGE_PAIRS + 2 + 1 + 4 + 1 + 1
    llm = _llm_spans_by_prompt(spans)
    assert len(llm) == len(records), "one LLM span per call: none missing, none twice"
    trace_ids = {s["context"]["trace_id"] for s in spans}
    assert trace_ids == {records[0].trace_id}, "the session is one trace"
    ids = {s["context"]["span_id"] for s in spans}

    differences: list[str] = []
    for record in records:
        span = llm.get(exported_text(record.prompt))
        assert span is not None, f"no LLM span shows the prompt of {record.id}: {record.prompt[:60]!r}"
        assert span["parent_id"] in ids, "an LLM span hangs under the session's recorder or segment spans"
        shown, expected = _shown_and_expected(span, record)
        differences += [
            f"{record.recorder}/{record.id} {field}: Phoenix shows {shown[field]!r:.80}, recorded {value!r:.80}"
            for field, value in expected.items()
            if shown[field] != value
        ]
    summary = Counter(f"{d.split('/')[0]} {d.split(' ')[1].rstrip(':')}" for d in differences)
    assert not differences, f"{len(differences)} differences {dict(summary)}:\n" + "\n".join(differences[:20])

    # the conversation: every pair carries the outer recorder's id, the nested recorders'
    # (given none) too; a bot's calls carry its own; Phoenix files the trace under the outer id
    plain = [r for r in records if r.provider is None]
    assert {r.recorder for r in plain} == {"support-session", "triage", "lookup"}
    assert {r.conversation_id for r in plain} == {session.conversation_id}
    assert {llm[exported_text(r.prompt)]["attributes"]["session.id"] for r in plain} == {
        session.conversation_id
    }
    quoted = urllib.parse.quote(session.conversation_id)
    traces = _get_json(f"{phoenix.http_url}/v1/sessions/{quoted}")["data"]["traces"]
    assert [t["trace_id"] for t in traces] == [records[0].trace_id]

    first = records[0]
    assert first.started_at is not None
    first_span = llm[exported_text(first.prompt)]
    assert abs(datetime.fromisoformat(first_span["start_time"]) - first.started_at) < timedelta(
        milliseconds=1
    )
    assert datetime.fromisoformat(first_span["end_time"]) - datetime.fromisoformat(
        first_span["start_time"]
    ) == (first.ended_at - first.started_at)


@pytest.mark.parametrize("protocol", ["http/protobuf"])
def test_phoenix_counts_each_calls_tokens_once(phoenix: Phoenix, protocol: str) -> None:
    """Phoenix's session and trace totals equal the records' sum; usage sits on LLM spans only."""
    project, session, spans = _send_session(phoenix, protocol)
    input_tokens, output_tokens = tokens(session.records)
    assert input_tokens > 0
    assert output_tokens > 0

    usage_on = [s["name"] for s in spans if any(k.startswith("gen_ai.usage.") for k in s["attributes"])]
    assert all(s["span_kind"] == "LLM" for s in spans if s["name"] in usage_on)
    assert not [
        e["name"]
        for s in spans
        for e in s["events"]
        if any(k.startswith("gen_ai.usage.") for k in e["attributes"])
    ], "usage on a span event would be counted a second time by backends that read events"
    assert sum(s["attributes"].get("llm.token_count.prompt", 0) for s in spans) == input_tokens
    assert sum(s["attributes"].get("llm.token_count.completion", 0) for s in spans) == output_tokens

    quoted = urllib.parse.quote(session.conversation_id)
    phoenix_session = _get_json(f"{phoenix.http_url}/v1/sessions/{quoted}")["data"]
    assert [t["trace_id"] for t in phoenix_session["traces"]] == [session.records[0].trace_id]
    assert (phoenix_session["token_count_prompt"], phoenix_session["token_count_completion"]) == (
        input_tokens,
        output_tokens,
    )
    [trace] = _get_json(f"{phoenix.http_url}/v1/projects/{urllib.parse.quote(project)}/traces?limit=10")[
        "data"
    ]
    assert (trace["token_count_prompt"], trace["token_count_completion"]) == (input_tokens, output_tokens)


@pytest.mark.parametrize("protocol", ["grpc"])
def test_phoenix_shows_the_sessions_shape(phoenix: Phoenix, protocol: str) -> None:
    """Recorders as CHAIN spans (nested under their parent), segments, the error, the transcript in events."""
    _, session, spans = _send_session(phoenix, protocol)
    workflows = _workflows(spans)
    outer, triage, lookup = workflows["support-session"], workflows["triage"], workflows["lookup"]
    assert outer["name"] == "invoke_workflow support-session"
    assert outer["parent_id"] is None
    assert {s["span_kind"] for s in workflows.values()} == {"CHAIN"}
    assert triage["parent_id"] == lookup["parent_id"] == outer["context"]["span_id"]
    for workflow in workflows.values():
        assert workflow["attributes"][semconv.GEN_AI_OPERATION_NAME] == "invoke_workflow"
    assert outer["attributes"]["session.id"] == session.conversation_id  # given to the outer recorder
    assert outer["attributes"]["ticket"] == 42
    assert lookup["status_code"] == "ERROR"
    assert "parts database unreachable" in lookup["status_message"]
    assert outer["status_code"] != "ERROR", "the error was handled inside the outer block"

    # the transcript stays in the events (Jaeger's Logs), each pair once; segments past 128 events
    by_record = {}
    for record in session.records:
        prompt, response = _events(spans, record)
        assert prompt[semconv.PROMPT_TEXT] == exported_text(record.prompt)
        assert response.get(semconv.RESPONSE_TEXT, "") == exported_text(record.response)
        by_record[record.id] = prompt
    carrying = [s for s in spans if s["events"]]
    assert len(carrying) > 2, "280 events of the nested recorder need segment spans"
    assert all(len(s["events"]) <= _SDK_EVENT_LIMIT for s in carrying)

    big = by_record[session.big.id]
    assert big[semconv.PROMPT_ORIGINAL_LENGTH] == BIG_PROMPT_LENGTH
    assert len(session.big.prompt) == BIG_PROMPT_LENGTH  # whole in memory
    assert "\ufffd" in by_record[session.unicode.id][semconv.PROMPT_TEXT]


def _events(spans: list[dict[str, Any]], record: PromptRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    mine = [e for s in spans for e in s["events"] if e["attributes"].get(semconv.RECORD_ID) == record.id]
    assert [e["name"] for e in mine] == [semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE], record.id
    return mine[0]["attributes"], mine[1]["attributes"]


def test_the_session_is_in_phoenixs_sessions_view_under_its_conversation_id(phoenix: Phoenix) -> None:
    """GET /v1/projects/{p}/sessions lists the conversation id, with the session's one trace."""
    project, session, _ = _send_session(phoenix, "http/protobuf")
    listed = _get_json(f"{phoenix.http_url}/v1/projects/{urllib.parse.quote(project)}/sessions")["data"]
    assert [s["session_id"] for s in listed] == [session.conversation_id]
    assert json.dumps(listed[0]["traces"]).count(str(session.records[0].trace_id)) == 1

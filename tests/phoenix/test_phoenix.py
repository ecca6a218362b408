"""Recorded sessions sent to Arize Phoenix over OTLP/HTTP and OTLP/gRPC, read back over its REST API.

Phoenix is a backend nobody on this project wrote: when it gives back each prompt and response
event with its text, model and token usage, the OTLP we emit is understood outside our tests.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from promptrecorder import PromptRecord, PromptRecorder, autorecord, configure, flush
from promptrecorder.cli.check import CHECK_PROMPT, CHECK_RESPONSE, CHECK_SPAN_NAME
from promptrecorder.cli.main import EXIT_OK, main
from promptrecorder.recording import semconv

from .conftest import LOOPBACK, Phoenix

pytestmark = pytest.mark.phoenix

PROJECT_ATTRIBUTE = "openinference.project.name"
_READ_BACK_TIMEOUT_S = 30.0
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp*
_LOOPBACK_HEX = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def _project(protocol: str) -> str:
    return f"promptrecorder-{protocol.replace('/', '-')}-{uuid.uuid4().hex[:8]}"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def read_spans(phoenix: Phoenix, project: str, expected: int) -> list[dict[str, Any]]:
    """The project's spans, polled until ``expected`` arrived (404 until the first is ingested)."""
    url = f"{phoenix.http_url}/v1/projects/{urllib.parse.quote(project)}/spans?limit=1000"
    deadline = time.monotonic() + _READ_BACK_TIMEOUT_S
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        try:
            seen = _get_json(url)["data"]
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise
        if len(seen) >= expected:
            return seen
        time.sleep(0.25)
    names = [span["name"] for span in seen]
    raise AssertionError(f"{len(seen)} of {expected} spans reached Phoenix project {project!r}: {names}")


def record_session() -> PromptRecorder:
    """A short session: a str prompt, a chat-message prompt, and a nested recorder."""
    start = datetime.now(timezone.utc) - timedelta(seconds=1)
    session = PromptRecorder("phoenix-session", attributes={"ticket": 42})
    with session:
        autorecord(
            "Summarise ticket 42: the printer on floor 3 jams on duplex jobs.",
            "The third-floor printer jams on every duplex job.",
            model="gpt-4o-mini",
            started_at=start,
            ended_at=start + timedelta(milliseconds=420),
            input_tokens=17,
            output_tokens=11,
        )
        autorecord(
            [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "Draft a one-line reply to the ticket."},
            ],
            "Thanks: a technician will look at the duplex unit today.",
            model="llama-3-8b-instruct",
            input_tokens=25,
            output_tokens=12,
        )
        with PromptRecorder("phoenix-title"):
            autorecord(
                "Suggest a title for the incident.", "Duplex jams", model="gpt-4o-mini", input_tokens=8
            )
    return session


def _events_of(spans: list[dict[str, Any]], record: PromptRecord) -> tuple[dict[str, Any], dict[str, Any]]:
    """The record's prompt and response events, wherever they are: once each, on one span."""
    carriers = [
        s for s in spans if any(e["attributes"].get(semconv.RECORD_ID) == record.id for e in s["events"])
    ]
    assert len(carriers) == 1, f"record {record.id} is on {len(carriers)} spans"
    mine = [e for e in carriers[0]["events"] if e["attributes"].get(semconv.RECORD_ID) == record.id]
    assert [e["name"] for e in mine] == [semconv.EVENT_PROMPT, semconv.EVENT_RESPONSE]
    return mine[0]["attributes"], mine[1]["attributes"]


def _workflow(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """The recorder span of the recorder called ``name``."""
    [span] = [s for s in spans if s["name"] == f"invoke_workflow {name}"]
    assert span["attributes"][semconv.GEN_AI_WORKFLOW_NAME] == name
    return span


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.usefixtures("global_tracing")
def test_every_prompt_and_response_arrives_in_phoenix(phoenix: Phoenix, protocol: str) -> None:
    """configure() + a session: Phoenix gives back each event with its text and model, usage on no event."""
    project = _project(protocol)
    endpoint = phoenix.grpc_url if protocol == "grpc" else phoenix.http_url
    configure(
        service_name="promptrecorder-phoenix-test",
        endpoint=endpoint,
        protocol=protocol,
        resource_attributes={PROJECT_ATTRIBUTE: project},
    )
    session = record_session()
    assert flush(timeout=15), "the spans were not delivered to Phoenix"

    records = session.records
    assert len(records) == 3
    spans = read_spans(phoenix, project, 2 + len(records))  # two recorders, a call span per pair
    outer, nested = _workflow(spans, "phoenix-session"), _workflow(spans, "phoenix-title")
    assert nested["parent_id"] == outer["context"]["span_id"]
    assert nested["context"]["trace_id"] == outer["context"]["trace_id"]

    for record in records:
        prompt, response = _events_of(spans, record)
        assert prompt[semconv.PROMPT_TEXT] == record.prompt
        assert response[semconv.RESPONSE_TEXT] == record.response
        assert prompt[semconv.GEN_AI_REQUEST_MODEL] == record.model
        assert response[semconv.GEN_AI_RESPONSE_MODEL] == record.model
        # usage is on the call span only (issue 14, item 2): a backend summing events counts nothing twice
        assert not [key for key in {**prompt, **response} if key.startswith("gen_ai.usage.")]
        messages = json.loads(prompt[semconv.GEN_AI_INPUT_MESSAGES])
        assert messages[-1] == {"role": "user", "parts": [{"type": "text", "content": record.prompt}]}
        output = json.loads(response[semconv.GEN_AI_OUTPUT_MESSAGES])
        assert output[0]["parts"][0]["content"] == record.response

    # Phoenix keeps an event's own timestamp: the call's start, not the moment it was recorded.
    first = records[0]
    assert first.started_at is not None
    prompt_event = next(
        e for s in spans for e in s["events"] if e["attributes"].get(semconv.RECORD_ID) == first.id
    )
    arrived = datetime.fromisoformat(prompt_event["timestamp"])
    assert abs(arrived - first.started_at) < timedelta(milliseconds=1)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_promptrecorder_check_is_accepted_by_phoenix(
    phoenix: Phoenix, protocol: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`promptrecorder check` exits 0 against Phoenix, and its test pair is there to read."""
    project = _project(protocol)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"{PROJECT_ATTRIBUTE}={project}")
    endpoint = phoenix.grpc_url if protocol == "grpc" else phoenix.http_url
    assert main(["check", "--endpoint", endpoint, "--protocol", protocol]) == EXIT_OK, capsys.readouterr()
    spans = read_spans(phoenix, project, 2)  # the check's recorder span and its pair's LLM span
    [span] = [s for s in spans if s["events"]]
    assert CHECK_SPAN_NAME in span["name"]
    texts = [
        e["attributes"].get(semconv.PROMPT_TEXT) or e["attributes"].get(semconv.RESPONSE_TEXT)
        for e in span["events"]
    ]
    assert texts == [CHECK_PROMPT, CHECK_RESPONSE]
    [call] = [s for s in spans if s["span_kind"] == "LLM"]
    assert call["attributes"]["llm.input_messages.0.message.content"] == CHECK_PROMPT


def _listening(port: int) -> set[str]:
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] == _LISTEN and int(hex_port, 16) == port:
                addresses.add(address)
    return addresses


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc/net/tcp")
def test_phoenix_listens_on_loopback_only(phoenix: Phoenix) -> None:
    """The launcher keeps Phoenix's gRPC server (which binds [::] by itself) on 127.0.0.1."""
    for port in (phoenix.http_port, phoenix.grpc_port):
        addresses = _listening(port)
        assert addresses, f"nothing listens on {LOOPBACK}:{port}"
        assert addresses <= _LOOPBACK_HEX, f"port {port} listens beyond loopback: {addresses}"

"""`promptrecorder demo --endpoint <collector>` through a real Collector into a real Jaeger v2.

The trace is read back from both of Jaeger's query APIs: /api/v3/traces/{id} (OTLP JSON)
and /api/traces/{id} (the JSON the UI reads, where span events are a span's Logs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from promptrecorder.cli.demo import STAND_IN_MODEL, scripted_answer
from promptrecorder.recording import semconv

from .conftest import attributes, v3_spans, wait_for_trace
from .processes import Collector, Jaeger

PROTOCOLS = pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"], ids=["grpc", "http"])
SERVICE = "promptrecorder-demo"
# The demo's three prompts, by the recorder span that holds them (src/promptrecorder/cli/demo.py).
PROMPTS = {
    "invoke_workflow demo-session": [
        "Summarise ticket 42: the printer on floor 3 jams on duplex jobs.",
        "Draft a one-line reply to the ticket.",
    ],
    "invoke_workflow demo-incident-title": ["Suggest a title for the incident report."],
}
CALL_SPAN = f"chat {STAND_IN_MODEL}"


def run_demo(endpoint: str, protocol: str, service: str) -> str:
    """Runs the CLI as a user would (a fresh process, the stand-in model); returns the trace id."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptrecorder",
            "demo",
            "--endpoint",
            endpoint,
            "--protocol",
            protocol,
            "--service-name",
            service,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_environ(),
        check=False,
    )
    assert result.returncode == 0, f"demo exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    match = re.search(r"^trace ([0-9a-f]{32}) ", result.stdout, re.MULTILINE)
    assert match, f"no trace id in the demo's output:\n{result.stdout}"
    return match.group(1)


def _environ() -> dict[str, str]:
    """This process's environment without OTEL_* and OPENAI_* (the stand-in model, our flags only)."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "OPENAI_"))}


def _events_by_name(spans: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["name"] for span in spans for event in span.get("events", []))


def _complete(answer: Any) -> bool:
    spans = v3_spans(answer)
    events = _events_by_name(spans)
    calls = sum(1 for span in spans if span["name"] == CALL_SPAN)
    return events[semconv.EVENT_PROMPT] == 3 and events[semconv.EVENT_RESPONSE] == 3 and calls == 3


@PROTOCOLS
def test_the_demo_trace_arrives_in_jaeger_with_every_pair_in_otlp_json(
    protocol: str, collector: Collector, jaeger: Jaeger
) -> None:
    """/api/v3: service name, span names, parent links, and each pair's text, model and usage.

    The demo's recorder span `invoke_workflow demo-session` is the root; `invoke_workflow
    demo-incident-title` is its child; each prompt and response is a span event
    (`promptrecorder.prompt`/`.response`) on the recorder span that was active, with the
    text, the model and the token counts (`promptrecorder.usage.*`); each call is a CLIENT
    span `chat <model>` under it with the GenAI attributes Jaeger's GenAI tab reads, and
    `gen_ai.usage.*` is on those call spans only: summed over the trace, each call once.
    """
    service = f"{SERVICE}-{protocol.replace('/', '-')}"
    trace_id = run_demo(collector.endpoint(protocol), protocol, service)
    spans = v3_spans(wait_for_trace(jaeger, trace_id, _complete))

    assert {span["_resource"]["service.name"]["stringValue"] for span in spans} == {service}
    assert all(span["traceId"] == trace_id for span in spans)
    by_name = {span["name"]: span for span in spans if span["name"] in PROMPTS}
    root, title = by_name["invoke_workflow demo-session"], by_name["invoke_workflow demo-incident-title"]
    assert not root.get("parentSpanId")
    assert title["parentSpanId"] == root["spanId"]
    ids = {span["spanId"] for span in spans}
    assert all(span.get("parentSpanId", "") in ids for span in spans if span is not root)

    for name, prompts in PROMPTS.items():
        events = [(event["name"], attributes(event)) for event in by_name[name]["events"]]
        prompt_events = [a for n, a in events if n == semconv.EVENT_PROMPT]
        response_events = [a for n, a in events if n == semconv.EVENT_RESPONSE]
        assert [a[semconv.PROMPT_TEXT] for a in prompt_events] == prompts
        assert [a[semconv.RESPONSE_TEXT] for a in response_events] == [scripted_answer(p) for p in prompts]
        for prompt, response in zip(prompt_events, response_events, strict=True):
            assert prompt[semconv.RECORD_ID] == response[semconv.RECORD_ID]
            assert prompt[semconv.GEN_AI_REQUEST_MODEL] == STAND_IN_MODEL
            assert response[semconv.GEN_AI_RESPONSE_MODEL] == STAND_IN_MODEL
            assert response[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ["stop"]
            assert prompt[semconv.USAGE_INPUT_TOKENS] > 0
            assert response[semconv.USAGE_OUTPUT_TOKENS] > 0
            assert prompt[semconv.PROMPT_TEXT] in prompt[semconv.GEN_AI_INPUT_MESSAGES]
            assert response[semconv.RESPONSE_TEXT] in response[semconv.GEN_AI_OUTPUT_MESSAGES]
        calls = [
            span
            for span in spans
            if span.get("parentSpanId") == by_name[name]["spanId"] and span["name"] == CALL_SPAN
        ]
        assert len(calls) == len(prompts)
        for call, prompt in zip(calls, prompt_events, strict=True):
            call_attributes = attributes(call)
            assert call["kind"] in (3, "SPAN_KIND_CLIENT")
            assert call_attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
            assert call_attributes[semconv.GEN_AI_REQUEST_MODEL] == STAND_IN_MODEL
            assert call_attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == prompt[semconv.USAGE_INPUT_TOKENS]
            assert prompt[semconv.PROMPT_TEXT] in call_attributes[semconv.GEN_AI_INPUT_MESSAGES]

    # What a trace summary summing gen_ai.usage.* over spans and events gets: each call once.
    summed = sum(
        int(each.get(semconv.GEN_AI_USAGE_INPUT_TOKENS, 0))
        for span in spans
        for each in [attributes(span), *(attributes(event) for event in span.get("events", []))]
    )
    recorded = sum(
        int(attributes(event).get(semconv.USAGE_INPUT_TOKENS, 0))
        for span in spans
        for event in span.get("events", [])
    )
    assert summed == recorded > 0


@PROTOCOLS
def test_the_demo_trace_reads_back_from_the_ui_api_with_each_pair_as_a_span_log(
    protocol: str, collector: Collector, jaeger: Jaeger
) -> None:
    """/api/traces (what the UI shows): process service name, CHILD_OF references, pairs as Logs.

    Each span event is a Log whose field `event` is the event name and whose other fields
    are its attributes: the text, model and token counts, as typed tags.
    """
    service = f"{SERVICE}-ui-{protocol.replace('/', '-')}"
    trace_id = run_demo(collector.endpoint(protocol), protocol, service)
    wait_for_trace(jaeger, trace_id, _complete)
    status, answer = jaeger.get_json(f"/api/traces/{trace_id}")
    assert status == 200, answer
    [trace] = answer["data"]
    assert trace["traceID"] == trace_id
    spans = {span["operationName"]: span for span in trace["spans"]}
    assert {trace["processes"][span["processID"]]["serviceName"] for span in trace["spans"]} == {service}
    root, title = spans["invoke_workflow demo-session"], spans["invoke_workflow demo-incident-title"]
    assert not root.get("references")
    assert title["references"] == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": root["spanID"]}]

    for name, prompts in PROMPTS.items():
        logs = [{field["key"]: field for field in log["fields"]} for log in spans[name]["logs"]]
        prompt_logs = [log for log in logs if log["event"]["value"] == semconv.EVENT_PROMPT]
        response_logs = [log for log in logs if log["event"]["value"] == semconv.EVENT_RESPONSE]
        assert [log[semconv.PROMPT_TEXT]["value"] for log in prompt_logs] == prompts
        assert [log[semconv.RESPONSE_TEXT]["value"] for log in response_logs] == [
            scripted_answer(p) for p in prompts
        ]
        for prompt, response in zip(prompt_logs, response_logs, strict=True):
            assert prompt[semconv.GEN_AI_REQUEST_MODEL] == {
                "key": semconv.GEN_AI_REQUEST_MODEL,
                "type": "string",
                "value": STAND_IN_MODEL,
            }
            assert response[semconv.GEN_AI_RESPONSE_MODEL]["value"] == STAND_IN_MODEL
            # An array attribute becomes its JSON text in the UI's JSON (in /api/v3 it stays an array).
            assert response[semconv.GEN_AI_RESPONSE_FINISH_REASONS]["type"] == "string"
            assert response[semconv.GEN_AI_RESPONSE_FINISH_REASONS]["value"] == '["stop"]'
            assert prompt[semconv.USAGE_INPUT_TOKENS]["type"] == "int64"
            assert prompt[semconv.USAGE_INPUT_TOKENS]["value"] > 0
            assert response[semconv.USAGE_OUTPUT_TOKENS]["value"] > 0
            assert (
                semconv.GEN_AI_USAGE_INPUT_TOKENS not in prompt
            )  # only the call span carries gen_ai.usage.*
            assert prompt[semconv.RECORD_ID]["value"] == response[semconv.RECORD_ID]["value"]


def test_the_demo_arrives_through_the_collector_config_exactly_as_compose_runs_it(
    start_collector: Callable[..., Collector], jaeger: Jaeger
) -> None:
    """Only addresses moved: the limits are config/otel-collector.yaml's own defaults (16 MiB gRPC, 20 MiB HTTP)."""
    shipped = start_collector(stock_limits=False)
    assert not any("MAX" in name for name in shipped.env)
    trace_id = run_demo(shipped.grpc_endpoint, "grpc", f"{SERVICE}-shipped")
    spans = v3_spans(wait_for_trace(jaeger, trace_id, _complete))
    assert {span["name"] for span in spans} >= set(PROMPTS)

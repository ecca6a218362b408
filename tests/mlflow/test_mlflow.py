"""A whole recorded session in MLflow's trace views, read back with ``MlflowClient().search_traces``.

Issue 14: MLflow's trace list showed Input "-" and Output "-" for a recorder trace, and its
token total counted only the CLIENT spans' 40 tokens and none of the ~95k recorded through
``autorecord``. Here the session of ``tests/phoenix/genai_session.py`` (nested recorders,
segments, a 200,000-character prompt, lone surrogates, an error in a block, bot calls) goes to
a real MLflow server over OTLP/HTTP with the ``x-mlflow-experiment-id`` header, and comes back
compared with ``recorder.records``: the list's Input/Output are the first prompt and the last
response, the trace's token total is the records' sum, every pair is a CHAT_MODEL span.

What MLflow 3.17.2 cannot show, asserted as what it does show instead:
- OTLP/gRPC: MLflow ingests OTLP over HTTP only; the tier sends http/protobuf.
- ``service.name`` is a trace tag (the list's Tags column), not a span attribute: MLflow copies
  it onto the root span only for a short allow-list of client names (Claude Code, Codex...).
- The list's Input/Output previews show the recorder span's ``gen_ai.{input,output}.messages``
  as their raw JSON (``[{"role":"user","parts":[...``), cut to the preview's length.
- Span events (the transcript kept for Jaeger's Logs) are stored but not read as GenAI data:
  everything the trace views show comes from span attributes.
- ``invoke_workflow`` has no MLflow span type; recorder spans show as CHAIN only because
  MLflow reads ``openinference.span.kind`` (set for Phoenix) before the GenAI attributes.
- A trace's ``total_tokens`` leaves out a call that reported input tokens only: MLflow sums a
  span into the total only when it has both counts (input and output totals are exact).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from promptrecorder import PromptRecorder, autorecord, configure, flush
from promptrecorder.cli.main import EXIT_OK, main
from tests.phoenix.genai_session import (
    FIRST_PROMPT,
    LAST_RESPONSE,
    TRIAGE_PAIRS,
    exported_text,
    record_session,
    tokens,
)

from .conftest import Mlflow

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("global_tracing")]

HEADER = "x-mlflow-experiment-id"
_READ_BACK_TIMEOUT_S = 60.0
_CALL_TYPES = {"CHAT_MODEL", "LLM"}


@pytest.fixture
def client(mlflow_server: Mlflow) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.url)


@pytest.fixture
def experiment(client: Any) -> str:
    return str(client.create_experiment(f"promptrecorder-{uuid.uuid4().hex[:8]}"))


def _calls(trace: Any) -> list[Any]:
    return [span for span in trace.data.spans if span.span_type in _CALL_TYPES]


def read_traces(client: Any, experiment: str, calls: int) -> list[Any]:
    """The experiment's traces, polled until ``calls`` call spans and every root arrived."""
    deadline = time.monotonic() + _READ_BACK_TIMEOUT_S
    traces: list[Any] = []
    while time.monotonic() < deadline:
        traces = list(client.search_traces(locations=[experiment], max_results=100, include_spans=True))
        complete = all(any(span.parent_id is None for span in trace.data.spans) for trace in traces)
        if traces and complete and sum(len(_calls(trace)) for trace in traces) >= calls:
            return traces
        time.sleep(0.5)
    found = sum(len(_calls(trace)) for trace in traces)
    raise AssertionError(
        f"{found} of {calls} call spans reached MLflow experiment {experiment} in {len(traces)} traces"
    )


def _strings(value: Any) -> list[str]:
    """Every string inside a span's inputs or outputs (a str, or messages as lists and dicts), in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def _last_input(span: Any) -> str | None:
    texts = _strings(span.inputs)
    return texts[-1] if texts else None


def _root(trace: Any) -> Any:
    [root] = [span for span in trace.data.spans if span.parent_id is None]
    return root


def test_a_whole_session_shows_in_mlflows_trace_list_and_spans(
    mlflow_server: Mlflow, client: Any, experiment: str
) -> None:
    """One trace: Input/Output previews, session, token total = records' sum, a CHAT_MODEL span per pair."""
    configure(
        service_name="promptrecorder-mlflow-session",
        endpoint=mlflow_server.url,
        protocol="http/protobuf",
        headers={HEADER: experiment},
    )
    session = record_session(f"conv-{uuid.uuid4().hex}")
    assert flush(timeout=60), "the session was not delivered to MLflow"
    records = session.records
    assert len(records) == 2 + TRIAGE_PAIRS + 2 + 1 + 4 + 1 + 1

    [trace] = read_traces(client, experiment, len(records))
    info = trace.info
    assert str(records[0].trace_id) in info.trace_id

    # the trace list: Input and Output are the turn's first prompt and last response, not "-"
    assert info.request_preview
    assert info.response_preview
    assert FIRST_PROMPT in info.request_preview
    assert LAST_RESPONSE in info.response_preview
    assert info.trace_metadata["mlflow.trace.session"] == session.conversation_id
    input_tokens, output_tokens = tokens(records)
    usage = info.token_usage
    assert (usage["input_tokens"], usage["output_tokens"]) == (input_tokens, output_tokens)
    # MLflow adds a span's input and output into its total only when the span has both
    both = [r for r in records if r.input_tokens is not None and r.output_tokens is not None]
    assert usage["total_tokens"] == sum(r.input_tokens + r.output_tokens for r in both)  # type: ignore[operator]

    root = _root(trace)
    assert root.name == "invoke_workflow support-session"
    # MLflow maps no type to invoke_workflow; it reads openinference.span.kind first (set for Phoenix)
    assert root.span_type == "CHAIN"
    assert info.tags["service.name"] == "promptrecorder-mlflow-session"
    assert root.get_attribute("service.name") is None  # copied to the root only for MLflow's allow-list
    lookup = next(span for span in trace.data.spans if span.name == "invoke_workflow lookup")
    assert lookup.status.status_code.value == "ERROR"

    calls = _calls(trace)
    assert len(calls) == len(records), "one call span per pair: none missing, none twice"
    by_prompt = {_last_input(span): span for span in calls}
    assert len(by_prompt) == len(calls), "two call spans end with the same input text"
    for record in records:
        span = by_prompt.get(exported_text(record.prompt))
        assert span is not None, f"no call span shows the prompt of {record.id}: {record.prompt[:60]!r}"
        assert span.span_type == "CHAT_MODEL"
        models = {span.get_attribute("gen_ai.request.model"), span.get_attribute("gen_ai.response.model")}
        assert record.model in models
        assert span.get_attribute("mlflow.llm.model") in models
        usage = span.get_attribute("mlflow.chat.tokenUsage") or {}
        assert usage.get("input_tokens") == record.input_tokens, record
        assert usage.get("output_tokens") == record.output_tokens, record
        if record.error is not None:
            assert span.status.status_code.value == "ERROR", record
        else:
            assert exported_text(record.response) in _strings(span.outputs), record

    # usage only on call spans: MLflow's total counts a span only when no ancestor has usage
    with_usage = {span.span_id for span in trace.data.spans if span.get_attribute("mlflow.chat.tokenUsage")}
    assert with_usage <= {span.span_id for span in calls}


def test_the_experiment_header_can_come_from_the_environment(
    mlflow_server: Mlflow, client: Any, experiment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS carries x-mlflow-experiment-id: a short recorder trace lands there."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"{HEADER}={experiment}")
    configure(service_name="promptrecorder-mlflow-env", endpoint=mlflow_server.url, protocol="http/protobuf")
    with PromptRecorder("env-header") as recorder:
        autorecord("What is 2+2?", "4", model="gpt-4o-mini", input_tokens=11, output_tokens=3)
        autorecord("And 3+3?", "6", model="gpt-4o-mini", input_tokens=13, output_tokens=2)
    assert flush(timeout=15)

    [trace] = read_traces(client, experiment, 2)
    assert "What is 2+2?" in trace.info.request_preview
    assert "6" in trace.info.response_preview
    usage = trace.info.token_usage
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (24, 5, 29)
    assert [_last_input(span) for span in _calls(trace)] == [r.prompt for r in recorder.records]


def test_promptrecorder_check_is_accepted_by_mlflow(
    mlflow_server: Mlflow, client: Any, experiment: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`promptrecorder check` exits 0 against MLflow (header from the environment) and its trace is there."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"{HEADER}={experiment}")
    assert main(["check", "--endpoint", mlflow_server.url, "--protocol", "http/protobuf"]) == EXIT_OK, (
        capsys.readouterr()
    )
    deadline = time.monotonic() + _READ_BACK_TIMEOUT_S
    while not list(client.search_traces(locations=[experiment], max_results=10)):
        assert time.monotonic() < deadline, "the check's trace never reached MLflow"
        time.sleep(0.5)

"""The demo session: which model it picks, the offline stand-in server, and a failing real server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from promptrecorder.cli.demo import (
    STAND_IN_MODEL,
    DemoModel,
    DemoModelError,
    choose_model,
    openai_http_module,
    run_session,
    scripted_answer,
    stand_in_model,
)
from promptrecorder.llm.bots import ChatBot, SimpleBot
from promptrecorder.recording.recorder import PromptRecorder
from tests.conftest import Tracing
from tests.fake_openai import FakeOpenAI, error_reply, http, raising

LABEL = "[offline stand-in model] "


@pytest.fixture(autouse=True)
def _no_openai_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """openai reads these itself; a developer's own key must not reach a test."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PROMPTRECORDER_DEMO_MODEL"):
        monkeypatch.delenv(name, raising=False)


# --- which model ----------------------------------------------------------------------------


def test_without_openai_variables_the_demo_uses_the_offline_stand_in() -> None:
    """No OPENAI_API_KEY and no OPENAI_BASE_URL: the stand-in, and the line says so and how to change it."""
    model = choose_model({})
    assert (model.offline, model.name) == (True, STAND_IN_MODEL)
    assert "offline stand-in" in model.describe()
    assert "OPENAI_API_KEY" in model.describe()


def test_with_an_api_key_the_demo_asks_openai_for_gpt_4o_mini() -> None:
    """OPENAI_API_KEY alone: api.openai.com with that key, model gpt-4o-mini."""
    model = choose_model({"OPENAI_API_KEY": "sk-demo"})
    assert (model.offline, model.name, model.client.api_key) == (False, "gpt-4o-mini", "sk-demo")
    assert model.describe() == "model gpt-4o-mini at https://api.openai.com/v1"


def test_a_base_url_alone_points_the_demo_at_a_local_server() -> None:
    """OPENAI_BASE_URL without a key (Ollama, llama.cpp): that server, a placeholder key, the chosen model."""
    model = choose_model(
        {"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "PROMPTRECORDER_DEMO_MODEL": "llama3.2"}
    )
    assert (model.offline, model.name) == (False, "llama3.2")
    assert model.client.api_key
    assert model.describe() == "model llama3.2 at http://127.0.0.1:11434/v1"


def test_openai_http_module_is_the_library_openais_client_is_built_on() -> None:
    """The stand-in's transport comes from the HTTP library openai itself uses (httpx2 for 3.x, httpx for 1.x)."""
    module = openai_http_module()
    client = openai.OpenAI(api_key="sk-test")
    try:
        assert isinstance(client._client, module.Client)
    finally:
        client.close()


# --- the offline session --------------------------------------------------------------------


def test_the_offline_session_runs_through_the_bots_and_the_openai_client(tracing: Tracing) -> None:
    """Three labelled replies: two pairs on demo-session, one on its child, each with a CLIENT span under it."""
    lines: list[str] = []
    result = run_session(say=lines.append, tracer_provider=tracing.provider)
    assert len(lines) == 1
    assert "offline stand-in" in lines[0]
    session, title = (
        tracing.span("invoke_workflow demo-session"),
        tracing.span("invoke_workflow demo-incident-title"),
    )
    assert result.trace_id == format(session.context.trace_id, "032x")
    assert title.parent is not None
    assert title.parent.span_id == session.context.span_id
    assert (len(session.events), len(title.events)) == (4, 2)
    calls = [span for span in tracing.spans() if span.kind == SpanKind.CLIENT]
    assert [span.name for span in calls] == [f"chat {STAND_IN_MODEL}"] * 3
    parents = [span.parent.span_id if span.parent else None for span in calls]
    assert parents == [session.context.span_id, session.context.span_id, title.context.span_id]
    assert [(span.attributes or {}).get("gen_ai.request.stream") for span in calls] == [None, True, None]
    records = result.recorder.records
    assert [record.recorder for record in records] == ["demo-session", "demo-session", "demo-incident-title"]
    for record in records:
        assert record.response.startswith(LABEL)
        assert (record.model, record.provider, record.complete) == (
            STAND_IN_MODEL,
            "offline-stand-in.invalid",
            True,
        )
        assert record.input_tokens is not None
        assert record.output_tokens is not None
        assert record.latency_s is not None
        assert record.latency_s >= 0.01
    # The second call is the ChatBot's follow-up: it sent the first turn too, and paid for it in tokens.
    assert records[1].messages is not None
    assert len(records[1].messages) == 4
    assert records[1].input_tokens > records[0].input_tokens  # type: ignore[operator]


def test_the_stand_in_answers_by_the_last_user_messages_keyword() -> None:
    """The script is matched against the newest user message only; anything else gets a labelled refusal."""
    assert scripted_answer("Please SUMMARISE this") == LABEL + (
        "Ticket 42: the third-floor printer jams on every duplex job since Monday."
    )
    assert (
        scripted_answer("What is the weather?")
        == LABEL + "I have no scripted answer for 'What is the weather?'."
    )
    bot = ChatBot("s", model=STAND_IN_MODEL, client=stand_in_model().client)
    bot("Summarise ticket 7")
    assert "technician" in bot("Now a reply, please").content


def test_the_stand_in_sends_realistic_usage_in_whole_replies() -> None:
    """A whole reply carries usage with token details, growing with the prompt, like OpenAI's."""
    client = stand_in_model().client
    short = client.chat.completions.create(
        model=STAND_IN_MODEL, messages=[{"role": "user", "content": "title"}]
    )
    long = client.chat.completions.create(
        model=STAND_IN_MODEL, messages=[{"role": "user", "content": "title " + "word " * 200}]
    )
    assert short.usage is not None
    assert long.usage is not None
    assert short.usage.prompt_tokens_details is not None
    assert short.usage.prompt_tokens_details.cached_tokens == 0
    assert short.usage.total_tokens == short.usage.prompt_tokens + short.usage.completion_tokens
    assert long.usage.prompt_tokens > short.usage.prompt_tokens + 200


@pytest.mark.parametrize(("stream_options", "usage_sent"), [({"include_usage": True}, True), (None, False)])
def test_the_stand_in_streams_and_sends_usage_only_when_asked(
    tracing: Tracing, stream_options: Any, usage_sent: bool
) -> None:
    """Streamed, the stand-in sends word chunks and a usage chunk only when stream_options asks for one."""
    bot = SimpleBot("s", model=STAND_IN_MODEL, client=stand_in_model().client, stream_options=stream_options)
    with PromptRecorder("stream", tracer_provider=tracing.provider) as recorder:
        pieces = list(bot.stream("Suggest a title"))
    assert "".join(pieces) == LABEL + "Third-floor printer: duplex jams"
    assert len(pieces) > 3
    (record,) = recorder.records
    assert (record.input_tokens is not None, record.complete) == (usage_sent, True)


def test_the_stand_in_serves_async_calls_too() -> None:
    """The stand-in's async client answers acall() the same way."""
    model = stand_in_model()
    bot = SimpleBot("s", model=STAND_IN_MODEL, client=model.client, async_client=model.async_client)
    assert asyncio.run(bot.acall("title?")).content == LABEL + "Third-floor printer: duplex jams"


# --- a real server that fails -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "cause", "says"),
    [
        (
            error_reply(401),
            openai.AuthenticationError,
            "refused the API key (HTTP 401): check OPENAI_API_KEY",
        ),
        (
            error_reply(404),
            openai.NotFoundError,
            "has no model 'gpt-4o-mini' (HTTP 404): set PROMPTRECORDER_DEMO_MODEL",
        ),
        (
            raising(http.ConnectError("[Errno 111] Connection refused")),
            openai.APIConnectionError,
            "Connection refused",
        ),
        (raising(http.ReadTimeout("timed out")), openai.APITimeoutError, "did not answer in time"),
        (error_reply(503), openai.InternalServerError, "answered HTTP 503"),
    ],
    ids=["401", "404", "refused", "timeout", "503"],
)
def test_a_failing_model_server_is_one_sentence_and_a_recorded_error(
    tracing: Tracing, reply: Any, cause: type[Exception], says: str
) -> None:
    """run_session raises DemoModelError: one line naming the server, what failed and the way out; the trace keeps it."""
    server = FakeOpenAI(reply)
    model = DemoModel(server.client(base_url="http://127.0.0.1:8000/v1"), None, "gpt-4o-mini", offline=False)
    lines: list[str] = []
    with pytest.raises(DemoModelError) as raised:
        run_session(model, say=lines.append, tracer_provider=tracing.provider)
    message = str(raised.value)
    assert type(raised.value.__cause__) is cause
    assert "\n" not in message
    assert "http://127.0.0.1:8000/v1" in message
    assert says in message
    assert message.endswith("; unset OPENAI_API_KEY and OPENAI_BASE_URL to use the offline stand-in instead.")
    assert message.count(". ") == message.count("?") == 0
    assert lines == ["model gpt-4o-mini at http://127.0.0.1:8000/v1"]
    session = tracing.span("invoke_workflow demo-session")
    assert session.status.status_code == StatusCode.ERROR
    (call,) = [span for span in tracing.spans() if span.kind == SpanKind.CLIENT]
    assert (call.attributes or {})["error.type"] == cause.__name__
    assert json.loads((call.attributes or {})["gen_ai.input.messages"])[-1]["role"] == "user"  # type: ignore[arg-type]

"""instrument_openai(): which clients it covers, idempotence, undo, and what passes through."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

from promptrecorder.llm import instrument as instrument_module
from promptrecorder.llm.instrument import Instrumentation, _client_targets, _endpoint, instrument_openai
from promptrecorder.llm.openai_adapter import CHAT
from promptrecorder.llm.openai_calls import RecordedStream, record_create
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import Endpoint, describe_endpoint
from tests.conftest import Tracing
from tests.fake_openai import (
    COMPLETION_ID,
    MODEL,
    RESPONSE_MODEL,
    FakeOpenAI,
    chunks,
    completion,
    error_reply,
    http,
    stream_reply,
)
from tests.unit.metrics_capture import capture_metrics
from tests.unit.recorded_calls import (
    azure_client,
    call_span,
    chat_usage_details,
    client_spans,
    has_responses_api,
    normalised,
    openai_left_as_found,
    recorder,
    request_attributes,
    resource_classes,
    text_output,
)

QUESTION = "What is the capital of France?"
MESSAGES = [{"role": "user", "content": QUESTION}]
ANSWER = "Paris."


@pytest.fixture(autouse=True)
def _openai_left_as_found() -> Iterator[None]:
    with openai_left_as_found():
        yield


@pytest.fixture
def every_client() -> Iterator[Instrumentation]:
    with instrument_openai() as handle:
        yield handle


def _ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model=MODEL, messages=MESSAGES)


# --- scopes --------------------------------------------------------------------------------


def test_a_call_of_an_instrumented_client_gets_a_client_span_and_a_record(tracing: Tracing) -> None:
    """Inside a recorder the call returns openai's ChatCompletion and leaves a CLIENT span and a record."""
    server = FakeOpenAI(completion(ANSWER))
    client = server.client()
    with instrument_openai(client), recorder(tracing) as session:
        reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, seed=7)
    assert type(reply) is openai.types.chat.ChatCompletion
    assert reply.choices[0].message.content == ANSWER
    span = call_span(tracing)
    assert (span.name, span.status.status_code) == (f"chat {MODEL}", StatusCode.UNSET)
    assert normalised(span) == {
        **request_attributes(QUESTION),
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL,
        semconv.GEN_AI_RESPONSE_ID: COMPLETION_ID,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 19,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 10,
        **chat_usage_details(cached=0, reasoning=0),
        semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        semconv.GEN_AI_OUTPUT_MESSAGES: text_output(ANSWER),
    }
    (record,) = session.records
    assert (record.prompt, record.response, record.model, record.provider) == (
        QUESTION,
        ANSWER,
        RESPONSE_MODEL,
        "openai",
    )
    assert (record.input_tokens, record.output_tokens, record.complete, record.error) == (19, 10, True, None)
    assert record.messages == tuple(MESSAGES)
    assert server.bodies[0]["temperature"] == 0.2


def test_one_client_is_recorded_and_another_is_not(tracing: Tracing) -> None:
    """instrument_openai(client) patches that client's resources only."""
    mine = FakeOpenAI(completion(ANSWER)).client()
    other_server = FakeOpenAI(completion(ANSWER))
    other = other_server.client()
    with instrument_openai(mine), recorder(tracing) as session:
        _ask(mine)
        _ask(other)
    assert "create" not in vars(other.chat.completions)
    assert len(other_server.requests) == 1
    assert len(session) == 1
    assert len(client_spans(tracing)) == 1


def test_every_client_is_recorded_including_clients_made_afterwards(
    tracing: Tracing, every_client: Instrumentation
) -> None:
    """instrument_openai() patches openai's resource classes, so every client, Azure too, is recorded."""
    server = FakeOpenAI(completion(ANSWER))
    with recorder(tracing) as session:
        _ask(server.client())
        azure_client(server).chat.completions.create(model="my-deployment", messages=MESSAGES)
    assert [record.provider for record in session.records] == ["openai", "azure.ai.openai"]
    azure_span = normalised(client_spans(tracing)[1])
    assert (azure_span[semconv.SERVER_ADDRESS], azure_span[semconv.SERVER_PORT]) == (
        "contoso.openai.azure.com",
        443,
    )
    assert "/openai/deployments/my-deployment/" in server.requests[1].url


def test_an_async_client_is_recorded_in_either_scope(tracing: Tracing) -> None:
    """AsyncOpenAI calls are recorded whether that client or every client is instrumented."""
    one = FakeOpenAI(completion(ANSWER)).async_client()
    another = FakeOpenAI(completion(ANSWER)).async_client()

    async def ask() -> list[str]:
        with recorder(tracing) as session:
            reply = await one.chat.completions.create(model=MODEL, messages=MESSAGES)
            assert type(reply) is openai.types.chat.ChatCompletion
            with instrument_openai():
                await another.chat.completions.create(model=MODEL, messages=MESSAGES)
        return [record.response for record in session.records]

    with instrument_openai(one):
        assert asyncio.run(ask()) == [ANSWER, ANSWER]
    assert len(client_spans(tracing)) == 2


def test_calls_outside_any_recorder_pass_through_untouched(
    tracing: Tracing, every_client: Instrumentation
) -> None:
    """With no recorder active a call reaches the server and returns openai's own objects, unrecorded."""
    server = FakeOpenAI(completion(ANSWER), stream_reply(chunks(["Par", "is."])))
    client = server.client()
    assert type(_ask(client)) is openai.types.chat.ChatCompletion
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert type(stream) is openai.Stream
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Paris."
    assert len(server.requests) == 2
    assert tracing.spans() == []


def test_a_client_not_from_openai_is_refused_with_the_rule() -> None:
    """Anything but an openai client or None fails at once with a message naming the rule."""
    with pytest.raises(TypeError, match=r"`client` must be an openai.OpenAI or openai.AsyncOpenAI client"):
        instrument_openai("https://api.openai.com")


def test_the_base_url_is_read_at_each_call(tracing: Tracing, every_client: Instrumentation) -> None:
    """A client whose base_url changes is described by the URL each call went to."""
    server = FakeOpenAI(completion(ANSWER))
    client = server.client()
    with recorder(tracing):
        _ask(client)
        client.base_url = "http://127.0.0.1:8000/v1"  # type: ignore[assignment]
        _ask(client)
    spans = [normalised(span) for span in client_spans(tracing)]
    described = [
        (s[semconv.GEN_AI_PROVIDER_NAME], s[semconv.SERVER_ADDRESS], s[semconv.SERVER_PORT]) for s in spans
    ]
    assert described == [("openai", "api.openai.com", 443), ("127.0.0.1", "127.0.0.1", 8000)]


def test_a_client_without_openais_private_url_is_described_by_its_base_url() -> None:
    """The endpoint falls back to the public base_url when a client keeps no _base_url."""
    resource = SimpleNamespace(_client=SimpleNamespace(base_url="http://10.0.0.7:8080/v1"))
    assert _endpoint(resource) == Endpoint("10.0.0.7", "10.0.0.7", 8080)
    client = openai.OpenAI(api_key="k", base_url="http://10.0.0.8:8081/v1")
    assert _endpoint(client.chat.completions) == Endpoint("10.0.0.8", "10.0.0.8", 8081)


# --- undo ------------------------------------------------------------------------------------


def test_undoing_every_client_restores_the_very_functions_on_openais_classes(tracing: Tracing) -> None:
    """uninstrument() puts back the original function objects; later calls are not recorded."""
    originals = {cls: vars(cls)["create"] for cls in resource_classes()}
    handle = instrument_openai()
    assert all(vars(cls)["create"] is not original for cls, original in originals.items())
    handle.uninstrument()
    assert all(vars(cls)["create"] is original for cls, original in originals.items())
    with recorder(tracing) as session:
        _ask(FakeOpenAI().client())
    assert len(session) == 0


def test_undoing_one_client_removes_its_instance_attributes(tracing: Tracing) -> None:
    """After undo the client's resources have no `create` of their own and its calls are not recorded."""
    client = FakeOpenAI().client()
    with instrument_openai(client) as handle:
        assert "create" in vars(client.chat.completions)
        assert handle.active
    assert not handle.active
    assert "create" not in vars(client.chat.completions)
    if has_responses_api():
        assert "create" not in vars(client.responses)
    with recorder(tracing) as session:
        _ask(client)
    assert len(session) == 0


def test_clients_derived_with_with_options_or_copy_are_recorded_too(tracing: Tracing) -> None:
    """A client derived from an instrumented one (and one derived from that) records its calls, once."""
    server = FakeOpenAI(completion(ANSWER))
    client = server.client()
    with instrument_openai(client), recorder(tracing) as session:
        _ask(client.with_options(timeout=5))
        _ask(client.copy(max_retries=1).with_options(timeout=7))
    assert len(server.requests) == 2
    assert [record.response for record in session.records] == [ANSWER, ANSWER]
    assert len(client_spans(tracing)) == 2


def test_clients_derived_per_request_are_not_remembered_once_gone() -> None:
    """A service deriving a client per request must not grow the handle without end."""
    client = FakeOpenAI(completion(ANSWER)).client()
    with instrument_openai(client) as handle:
        for _ in range(50):
            client.with_options(timeout=5)
        gc.collect()
        kept = client.with_options(timeout=5)
        assert len(handle.targets) == 2 * len(_client_targets(kept))


def test_an_async_clients_derived_client_is_recorded(tracing: Tracing) -> None:
    server = FakeOpenAI(completion(ANSWER))
    client = server.async_client()

    async def ask() -> None:
        await client.with_options(timeout=5).chat.completions.create(model=MODEL, messages=MESSAGES)

    with instrument_openai(client), recorder(tracing) as session:
        asyncio.run(ask())
    assert [record.response for record in session.records] == [ANSWER]


def test_undoing_a_client_undoes_its_derived_clients_and_stops_following(tracing: Tracing) -> None:
    """After undo no client in the family records, and none keeps an attribute of ours."""
    client = FakeOpenAI(completion(ANSWER)).client()
    with instrument_openai(client):
        derived = client.with_options(timeout=5)
        assert "create" in vars(derived.chat.completions)
        assert {"copy", "with_options"} <= set(vars(client))
    later = client.with_options(timeout=5)
    with recorder(tracing) as session:
        for member in (client, derived, later):
            _ask(member)
    assert len(session) == 0
    for member in (client, derived, later):
        assert "create" not in vars(member.chat.completions)
        assert not {"copy", "with_options"} & set(vars(member))


@pytest.mark.parametrize("first_undone", [0, 1])
def test_a_client_derived_from_one_instrumented_twice_records_once_until_the_last_undo(
    tracing: Tracing, first_undone: int
) -> None:
    client = FakeOpenAI(completion(ANSWER)).client()
    handles = [instrument_openai(client), instrument_openai(client)]
    first, second = handles[first_undone], handles[1 - first_undone]
    derived = client.with_options(timeout=5)
    with recorder(tracing) as session:
        _ask(derived)
    first.uninstrument()
    with recorder(tracing) as still:
        _ask(derived)
    second.uninstrument()
    with recorder(tracing) as after:
        _ask(derived)
    assert (len(session), len(still), len(after)) == (1, 1, 0)
    assert not {"copy", "with_options"} & set(vars(client))


def test_a_derived_client_that_cannot_be_followed_is_returned_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Instrumenting what copy() returned must never break the caller's copy()."""
    client = FakeOpenAI(completion(ANSWER)).client()

    def broken(*args: object) -> list[object]:
        raise RuntimeError("resource lookup failed")

    with instrument_openai(client), caplog.at_level(logging.WARNING, logger="promptrecorder"):
        monkeypatch.setattr(instrument_module, "_client_targets", broken)
        derived = client.with_options(timeout=5)
    assert isinstance(derived, openai.OpenAI)
    assert any("could not instrument a derived client" in message for message in caplog.messages)


def test_leaving_the_handles_block_by_an_exception_undoes_it() -> None:
    """The exception passes through unchanged and openai's classes are restored."""
    original = vars(openai.resources.chat.completions.Completions)["create"]
    error = KeyError("boom")
    with pytest.raises(KeyError) as raised, instrument_openai():
        raise error
    assert raised.value is error
    assert vars(openai.resources.chat.completions.Completions)["create"] is original


def test_instrumenting_twice_wraps_once_and_restores_with_the_last_handle(tracing: Tracing) -> None:
    """A second instrument_openai() shares the patch; each handle lets go once; the last restores."""
    cls = openai.resources.chat.completions.Completions
    original = vars(cls)["create"]
    first = instrument_openai()
    wrapper = vars(cls)["create"]
    second = instrument_openai()
    assert vars(cls)["create"] is wrapper
    assert wrapper.__wrapped__ is original
    with recorder(tracing) as session:
        _ask(FakeOpenAI().client())
    assert len(session) == 1
    first.uninstrument()
    first.uninstrument()  # a second undo of the same handle does not take the other's share
    assert vars(cls)["create"] is wrapper
    second.close()
    assert vars(cls)["create"] is original


def test_instrumenting_one_client_twice_wraps_once(tracing: Tracing) -> None:
    """The same client instrumented twice has one wrapper and records each call once."""
    client = FakeOpenAI().client()
    with instrument_openai(client):
        wrapper = vars(client.chat.completions)["create"]
        with instrument_openai(client), recorder(tracing) as session:
            assert vars(client.chat.completions)["create"] is wrapper
            _ask(client)
        assert vars(client.chat.completions)["create"] is wrapper
    assert "create" not in vars(client.chat.completions)
    assert len(session) == 1
    assert len(client_spans(tracing)) == 1


def test_a_wrapper_still_held_after_undo_passes_calls_through(tracing: Tracing) -> None:
    """A with_raw_response accessor built while instrumented calls openai plainly once undone."""
    client = FakeOpenAI(completion(ANSWER)).client()
    with instrument_openai(client):
        raw = client.chat.completions.with_raw_response
    with recorder(tracing) as session:
        reply = raw.create(model=MODEL, messages=MESSAGES)
    assert reply.parse().choices[0].message.content == ANSWER
    assert len(session) == 0
    assert client_spans(tracing) == []


def test_undo_leaves_a_later_wrapper_of_someone_else_in_place(tracing: Tracing) -> None:
    """If another library wrapped our wrapper, undo keeps theirs, and ours then passes through."""
    client = FakeOpenAI().client()
    handle = instrument_openai(client)
    ours = client.chat.completions.create
    seen: list[str] = []

    def theirs(*args: Any, **kwargs: Any) -> Any:
        seen.append("theirs")
        return ours(*args, **kwargs)

    client.chat.completions.create = theirs  # type: ignore[method-assign]
    handle.uninstrument()
    assert vars(client.chat.completions)["create"] is theirs
    with recorder(tracing) as session:
        _ask(client)
    assert seen == ["theirs"]
    assert len(session) == 0


def test_instrumenting_a_client_does_not_keep_it_alive() -> None:
    """The patch holds the client weakly: a dropped client is collected while its handle lives."""
    client = FakeOpenAI().client()
    handle = instrument_openai(client)
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None
    handle.uninstrument()  # undoing for a collected client is harmless


def test_the_handle_names_what_it_instruments() -> None:
    """targets and repr say which methods are patched and whether the handle is still active."""
    client = FakeOpenAI().client()
    with instrument_openai(client) as handle:
        assert handle.targets[0].startswith("OpenAI.chat.completions.create of client 0x")
        assert repr(handle).startswith("<Instrumentation active: OpenAI.chat.completions.create")
    assert repr(handle).startswith("<Instrumentation undone:")
    with instrument_openai() as every:
        assert "openai.resources.chat.completions.Completions.create" in every.targets
        assert len(every.targets) == len(resource_classes())


def test_the_class_wrapper_looks_like_the_method_it_wraps(every_client: Instrumentation) -> None:
    """help() and introspection still find openai's create: its name, docstring and __wrapped__."""
    create = openai.resources.chat.completions.Completions.create
    assert (create.__name__, create.__qualname__) == ("create", "Completions.create")
    assert create.__doc__ == create.__wrapped__.__doc__
    assert create.__module__ == create.__wrapped__.__module__


# --- never twice ------------------------------------------------------------------------------


def test_a_client_instrumented_alone_and_with_every_client_records_each_call_once(tracing: Tracing) -> None:
    """Both scopes cover the call, whole or streamed; each call is recorded once, with one span."""
    server = FakeOpenAI(completion(ANSWER), stream_reply(chunks(["Paris."])))
    client = server.client()
    with instrument_openai(client), instrument_openai(), recorder(tracing) as session:
        _ask(client)
        with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
            assert type(stream) is RecordedStream
            assert type(stream._stream) is openai.Stream  # not a proxy inside a proxy
            list(stream)
    assert [record.response for record in session.records] == [ANSWER, "Paris."]
    assert len(client_spans(tracing)) == 2


def test_a_bot_calling_an_instrumented_client_records_once(tracing: Tracing) -> None:
    """record_create (the bots' path) over an instrumented client makes one record and one span."""
    client = FakeOpenAI().client()
    endpoint = describe_endpoint(client.base_url, type(client).__name__)
    kwargs = {"model": MODEL, "messages": MESSAGES}
    with instrument_openai(client), recorder(tracing) as session:
        record_create(client.chat.completions.create, (), kwargs, api=CHAT, endpoint=endpoint)
    assert len(session) == 1
    assert len(client_spans(tracing)) == 1


# --- raw and streaming-response accessors --------------------------------------------------


def test_with_raw_response_returns_the_raw_response_and_records_its_parsed_reply(tracing: Tracing) -> None:
    """The caller still gets openai's raw response; its parse() is the ChatCompletion that was recorded."""
    client = FakeOpenAI(completion(ANSWER)).client()
    with instrument_openai(client), recorder(tracing) as session:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.headers["x-request-id"]
    parsed = raw.parse()
    assert type(parsed) is openai.types.chat.ChatCompletion
    assert parsed.choices[0].message.content == ANSWER
    assert [(record.response, record.complete) for record in session.records] == [(ANSWER, True)]
    assert normalised(call_span(tracing))[semconv.GEN_AI_OUTPUT_MESSAGES] == text_output(ANSWER)


def test_async_with_raw_response_is_recorded(tracing: Tracing) -> None:
    """The async raw accessor hands back the raw response and records the parsed reply."""
    client = FakeOpenAI(completion(ANSWER)).async_client()

    async def ask() -> tuple[Any, list[str]]:
        with recorder(tracing) as session:
            raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        return raw, [record.response for record in session.records]

    with instrument_openai(client):
        raw, responses = asyncio.run(ask())
    assert raw.parse().choices[0].message.content == ANSWER
    assert responses == [ANSWER]


def test_bodies_the_caller_reads_itself_are_recorded_incomplete(tracing: Tracing) -> None:
    """A raw stream and with_streaming_response keep their body for the caller; the record says incomplete."""
    client = FakeOpenAI(stream_reply(chunks(["Paris."])), completion(ANSWER)).client()
    with instrument_openai(client), recorder(tracing) as session:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == "Paris."
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES
        ) as response:
            assert response.parse().choices[0].message.content == ANSWER
    assert [(record.response, record.complete) for record in session.records] == [("", False), ("", False)]
    assert len(client_spans(tracing)) == 2


def test_a_reply_that_cannot_be_read_is_returned_and_logged_once(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A raw reply whose JSON body is broken: the caller still gets it, and promptrecorder warns once."""

    def handler(request: Any) -> Any:
        return http.Response(
            200, headers={"content-type": "application/json"}, content=b"<html>gateway</html>"
        )

    client = openai.OpenAI(
        base_url="https://api.openai.com/v1",
        api_key="test",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )
    with instrument_openai(client), recorder(tracing) as session:
        first = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert first.text == "<html>gateway</html>"
    with pytest.raises(ValueError, match="Expecting value"):
        first.parse()
    said = [r for r in caplog.records if r.levelno == logging.WARNING and "could not read" in r.getMessage()]
    assert len(said) == 1
    assert [record.response for record in session.records] == ["", ""]


# --- metrics -------------------------------------------------------------------------------


def test_token_usage_and_duration_histograms_are_recorded_per_call(tracing: Tracing) -> None:
    """With a MeterProvider set, each call records its duration and its input and output tokens."""
    client = FakeOpenAI(completion(ANSWER), error_reply(429)).client()
    with capture_metrics() as metrics, instrument_openai(client), recorder(tracing):
        _ask(client)
        with pytest.raises(openai.RateLimitError):
            _ask(client)
        points = metrics.points()
    common = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.GEN_AI_REQUEST_MODEL: MODEL,
        semconv.SERVER_ADDRESS: "api.openai.com",
        semconv.SERVER_PORT: 443,
    }
    durations = [p for p in points if p.name == semconv.METRIC_INFERENCE_DURATION]
    assert sorted(
        (p.attributes for p in durations), key=lambda attributes: semconv.ERROR_TYPE in attributes
    ) == [
        {**common, semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL},
        {**common, semconv.ERROR_TYPE: "RateLimitError"},
    ]
    assert all((p.unit, p.count) == ("s", 1) and p.sum > 0 for p in durations)
    assert durations[0].bounds[:3] == (0.01, 0.02, 0.04)
    # Totals on the per-direction counters (no error.type; the failed call counts 0), the
    # per-call distribution on the operation histograms (with error.type).
    answered = {**common, semconv.GEN_AI_RESPONSE_MODEL: RESPONSE_MODEL}
    modality = {semconv.GEN_AI_TOKEN_MODALITY: "unknown"}
    counted = sorted(
        (p.name, p.sum, p.unit, sorted(p.attributes.items()))
        for p in points
        if p.name in (semconv.METRIC_USAGE_INPUT_TOKENS, semconv.METRIC_USAGE_OUTPUT_TOKENS)
    )
    assert counted == sorted(
        [
            (semconv.METRIC_USAGE_INPUT_TOKENS, 19, "{token}", sorted({**answered, **modality}.items())),
            (semconv.METRIC_USAGE_OUTPUT_TOKENS, 10, "{token}", sorted({**answered, **modality}.items())),
            (semconv.METRIC_USAGE_INPUT_TOKENS, 0, "{token}", sorted({**common, **modality}.items())),
            (semconv.METRIC_USAGE_OUTPUT_TOKENS, 0, "{token}", sorted({**common, **modality}.items())),
        ]
    )
    per_call = sorted(
        (p.name, p.sum, p.count, p.bounds[:3], semconv.ERROR_TYPE in p.attributes)
        for p in points
        if p.name in (semconv.METRIC_OPERATION_INPUT_TOKENS, semconv.METRIC_OPERATION_OUTPUT_TOKENS)
    )
    assert per_call == [
        (semconv.METRIC_OPERATION_INPUT_TOKENS, 0, 1, (1, 4, 16), True),
        (semconv.METRIC_OPERATION_INPUT_TOKENS, 19, 1, (1, 4, 16), False),
        (semconv.METRIC_OPERATION_OUTPUT_TOKENS, 0, 1, (1, 4, 16), True),
        (semconv.METRIC_OPERATION_OUTPUT_TOKENS, 10, 1, (1, 4, 16), False),
    ]


def test_no_metrics_are_recorded_outside_a_recorder(every_client: Instrumentation) -> None:
    """Calls that pass through unrecorded add no metric points either."""
    with capture_metrics() as metrics:
        _ask(FakeOpenAI().client())
        assert metrics.points() == []

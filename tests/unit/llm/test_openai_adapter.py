"""Reading openai requests and replies into CallRequest / CallResult, with openai's own types."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage

from promptrecorder.llm.openai_adapter import (
    ChatStreamReader,
    ResponsesStreamReader,
    chat_request,
    chat_result,
    chunk_text,
    given,
    response_result,
    responses_request,
)
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import CallResult, Endpoint
from promptrecorder.recording.content import last_user_text
from tests.fake_openai import RESPONSE_MODEL, chunks, completion, token_usage, tool_call
from tests.unit.recorded_calls import has_responses_api, response_events, response_object

ENDPOINT = Endpoint("openai", "api.openai.com", 443)
needs_responses = pytest.mark.skipif(not has_responses_api(), reason="this openai has no Responses API")
# openai 3.x marks omitted arguments with `omit`; older ones with NOT_GIVEN only.
OMIT = getattr(openai, "omit", openai.NOT_GIVEN)


def _response(body: dict[str, Any]) -> Any:
    from openai.types.responses import Response

    return Response.model_validate(body)


def _events(bodies: list[dict[str, Any]]) -> list[Any]:
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    return [adapter.validate_python(body) for body in bodies]


# --- the not-given sentinels ---------------------------------------------------------------


@pytest.mark.parametrize("value", [None, openai.NOT_GIVEN, OMIT])
def test_none_and_openais_sentinels_are_not_given(value: object) -> None:
    """None, NOT_GIVEN and omit mean the caller did not pass the argument."""
    assert not given(value)


@pytest.mark.parametrize("value", [0, 0.0, "", False, []])
def test_falsy_values_are_given(value: object) -> None:
    """A temperature of 0 or an empty stop list was passed on purpose."""
    assert given(value)


# --- Chat Completions requests -----------------------------------------------------------


def test_a_chat_request_maps_the_parameters_to_genai_attributes() -> None:
    """Sampling parameters become gen_ai.request.* attributes; omitted ones are left out."""
    request = chat_request(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0,
            "top_p": 0.9,
            "max_completion_tokens": 64,
            "seed": 7,
            "stop": "END",
            "frequency_penalty": 0.5,
            "presence_penalty": OMIT,
            "n": 2,
            "stream": True,
        },
        ENDPOINT,
    )
    assert (request.endpoint, request.model, request.stream, request.operation) == (
        ENDPOINT,
        "gpt-4o-mini",
        True,
        "chat",
    )
    assert request.messages == ({"role": "user", "content": "Hi"},)
    assert dict(request.params) == {
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0,
        semconv.GEN_AI_REQUEST_TOP_P: 0.9,
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 64,
        semconv.GEN_AI_REQUEST_SEED: 7,
        semconv.GEN_AI_REQUEST_STOP_SEQUENCES: ["END"],
        semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.5,
        semconv.GEN_AI_REQUEST_CHOICE_COUNT: 2,
    }


def test_a_chat_request_takes_stop_lists_and_ignores_unknown_shapes() -> None:
    """A stop tuple becomes a list of str; a model that is not a str is not named; stream must be True."""
    request = chat_request(
        {"model": OMIT, "messages": [{"role": "user", "content": "Hi"}], "stop": ("a", "b"), "stream": "yes"},
        ENDPOINT,
    )
    assert request.model is None
    assert request.stream is False
    assert request.params[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] == ["a", "b"]


def test_messages_given_as_a_generator_are_read_once_and_still_sent() -> None:
    """A generator would be used up by reading it: the kwargs get a list that the request also holds."""
    kwargs: dict[str, Any] = {"model": "m", "messages": (m for m in [{"role": "user", "content": "Hi"}])}
    request = chat_request(kwargs, ENDPOINT)
    assert kwargs["messages"] == [{"role": "user", "content": "Hi"}]
    assert request.messages == ({"role": "user", "content": "Hi"},)


def test_openai_message_objects_in_the_history_are_read_as_plain_messages() -> None:
    """A ChatCompletionMessage appended to the history is dumped without its None fields."""
    reply = ChatCompletionMessage.model_validate(
        {"role": "assistant", "content": None, "tool_calls": [tool_call("lookup", {"q": "x"}, "call_1")]}
    )
    request = chat_request({"model": "m", "messages": [{"role": "user", "content": "Hi"}, reply]}, ENDPOINT)
    assert request.messages[1] == {
        "role": "assistant",
        "tool_calls": [tool_call("lookup", {"q": "x"}, "call_1")],
    }


# --- Chat Completions replies -----------------------------------------------------------


def test_a_chat_completion_gives_text_finish_reasons_tool_calls_and_usage() -> None:
    """The first choice's text and tool calls, every choice's finish reason, and all usage details."""
    body = completion("Paris.", usage=token_usage(12, 3, cached_tokens=2, reasoning_tokens=1))
    second = {**body["choices"][0], "index": 1, "finish_reason": "length"}
    called = tool_call("lookup", {"q": "x"}, "call_1")
    body["choices"][0]["message"]["tool_calls"] = [called]
    body["choices"].append(second)
    result = chat_result(ChatCompletion.model_validate(body))
    assert result == CallResult(
        text="Paris.",
        response_model=RESPONSE_MODEL,
        response_id=body["id"],
        finish_reasons=("stop", "length"),
        tool_calls=(called,),
        input_tokens=12,
        output_tokens=3,
        cache_read_tokens=2,
        reasoning_tokens=1,
    )


def test_a_reply_with_no_choices_and_no_usage_gives_an_empty_result() -> None:
    """A compatible server's bare reply: nothing to read is not an error."""
    result = chat_result(SimpleNamespace(model="local", id="x", choices=[], usage=None))
    assert result == CallResult(response_model="local", response_id="x")


def test_chunk_text_reads_chat_chunks_and_responses_deltas() -> None:
    """The text a streamed item adds: the first choice's delta, or a Responses text delta."""
    chunk = ChatCompletionChunk.model_validate(chunks(["Par"])[1])
    assert chunk_text(chunk) == "Par"
    assert chunk_text(SimpleNamespace(type="response.output_text.delta", delta="is")) == "is"
    other_choice = SimpleNamespace(choices=[SimpleNamespace(index=1, delta=SimpleNamespace(content="no"))])
    assert chunk_text(other_choice) == ""


def test_a_chat_stream_reader_assembles_text_tool_calls_finish_and_usage() -> None:
    """Chunks in order give the joined text, each tool call merged from its fragments, and the usage."""
    calls = [tool_call("lookup", {"q": "x"}, "call_1"), tool_call("fetch", {"url": "u"}, "call_2")]
    reader = ChatStreamReader()
    added = [
        reader.add(ChatCompletionChunk.model_validate(c)) for c in chunks(["Par", "is."], tool_calls=calls)
    ]
    assert "".join(added) == "Paris."
    result = reader.finish()
    assert (result.text, result.finish_reasons, result.tool_calls) == (
        "Paris.",
        ("tool_calls",),
        tuple(calls),
    )
    assert (result.input_tokens, result.output_tokens, result.response_model) == (19, 10, RESPONSE_MODEL)


def test_a_chat_stream_reader_keeps_the_first_choice_text_and_every_finish_reason() -> None:
    """With n=2 the text is choice 0's; finish reasons are listed by choice index."""
    reader = ChatStreamReader()

    def chunk(index: int, content: str | None, finish: str | None = None) -> Any:
        choice = SimpleNamespace(
            index=index, delta=SimpleNamespace(content=content, tool_calls=None), finish_reason=finish
        )
        return SimpleNamespace(model="m", id="c", usage=None, choices=[choice])

    for item in (chunk(1, "B"), chunk(0, "A"), chunk(1, None, "length"), chunk(0, None, "stop")):
        reader.add(item)
    result = reader.finish()
    assert (result.text, result.finish_reasons) == ("A", ("stop", "length"))


def test_a_chat_stream_reader_read_partway_gives_what_arrived() -> None:
    """finish() on a stream left early: the text so far, no finish reason, no usage."""
    reader = ChatStreamReader()
    for body in chunks(["Par", "is."])[:2]:
        reader.add(ChatCompletionChunk.model_validate(body))
    result = reader.finish()
    assert (result.text, result.finish_reasons, result.input_tokens) == ("Par", (), None)


# --- Responses requests ---------------------------------------------------------------------


def test_a_responses_request_turns_instructions_and_text_input_into_messages() -> None:
    """instructions is the system message, a str input the user message; max_output_tokens is max tokens."""
    request = responses_request(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": "Hi",
            "max_output_tokens": 50,
            "temperature": 0.3,
        },
        ENDPOINT,
    )
    assert request.messages == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"})
    assert dict(request.params) == {
        semconv.GEN_AI_REQUEST_MAX_TOKENS: 50,
        semconv.GEN_AI_REQUEST_TEMPERATURE: 0.3,
    }


def test_responses_input_items_become_chat_messages() -> None:
    """Messages with input_text parts, function calls and their outputs map to user, assistant and tool."""
    items = [
        {"role": "developer", "content": "Use tools."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    ]
    request = responses_request({"model": "m", "input": items}, ENDPOINT)
    assert request.messages == (
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    )
    assert last_user_text(request.messages) == "Weather?"


def test_responses_input_given_as_an_iterator_is_read_once_and_still_sent() -> None:
    """Like chat messages, an iterator input is replaced in the kwargs by the list that was read."""
    kwargs: dict[str, Any] = {"model": "m", "input": iter([{"role": "user", "content": "Hi"}])}
    request = responses_request(kwargs, ENDPOINT)
    assert kwargs["input"] == [{"role": "user", "content": "Hi"}]
    assert request.messages == ({"role": "user", "content": "Hi"},)


def test_reasoning_items_passed_back_do_not_become_the_users_prompt() -> None:
    """`input += response.output` passes reasoning items back; the prompt is still the user's question."""
    items = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
    ]
    request = responses_request({"model": "m", "input": items}, ENDPOINT)
    assert last_user_text(request.messages) == "Weather in Paris?"
    assert [m["role"] for m in request.messages if m["role"] == "user"] == ["user"]


# --- Responses replies --------------------------------------------------------------------


@needs_responses
def test_a_response_gives_output_text_usage_and_stop() -> None:
    """A completed Response: its output_text, id, model, usage details, finish reason stop."""
    result = response_result(_response(response_object("Paris.")))
    assert result == CallResult(
        text="Paris.",
        response_model=RESPONSE_MODEL,
        response_id="resp_1",
        finish_reasons=("stop",),
        input_tokens=20,
        output_tokens=5,
        cache_read_tokens=4,
        reasoning_tokens=1,
    )


@needs_responses
def test_a_response_calling_a_function_finishes_with_tool_calls() -> None:
    """Function-call output items become tool calls in chat form, and the finish reason tool_calls."""
    called = {"call_id": "call_2", "name": "get_time", "arguments": '{"tz": "CET"}'}
    result = response_result(_response(response_object(None, function_call=called)))
    assert result.tool_calls == (
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    )
    assert (result.text, result.finish_reasons) == ("", ("tool_calls",))


@needs_responses
@pytest.mark.parametrize(
    ("status", "incomplete_details", "finish"),
    [
        ("incomplete", {"reason": "max_output_tokens"}, ("max_output_tokens",)),
        ("failed", None, ("error",)),
        ("in_progress", None, ()),
    ],
)
def test_a_response_status_becomes_a_finish_reason(
    status: str, incomplete_details: Any, finish: tuple[str, ...]
) -> None:
    """An incomplete response says why; a failed one is error; one still in progress has none."""
    body = {**response_object("Par"), "status": status, "incomplete_details": incomplete_details}
    assert response_result(_response(body)).finish_reasons == finish


def test_a_response_like_object_without_output_text_joins_its_message_parts() -> None:
    """A compatible server's object with no output_text property: the text parts of message items."""
    part = SimpleNamespace(type="output_text", text="Par")
    message = SimpleNamespace(type="message", content=[part, SimpleNamespace(type="output_text", text="is.")])
    reply = SimpleNamespace(
        id="r", model="m", status="completed", output=[message], usage=None, incomplete_details=None
    )
    assert response_result(reply).text == "Paris."


@needs_responses
def test_a_responses_stream_reader_takes_the_completed_response() -> None:
    """Deltas then response.completed: the completed response's text, usage and finish reason."""
    reader = ResponsesStreamReader()
    added = [reader.add(event) for event in _events(response_events(["Par", "is."]))]
    assert added == ["", "Par", "is.", ""]
    result = reader.finish()
    assert (result.text, result.input_tokens, result.finish_reasons, result.response_id) == (
        "Paris.",
        20,
        ("stop",),
        "resp_1",
    )


@needs_responses
def test_a_responses_stream_reader_left_early_keeps_the_deltas() -> None:
    """Only created and one delta arrived: the delta's text, the id, no usage and no finish reason."""
    reader = ResponsesStreamReader()
    for event in _events(response_events(["Par", "is."])[:2]):
        reader.add(event)
    result = reader.finish()
    assert (result.text, result.response_id, result.input_tokens, result.finish_reasons) == (
        "Par",
        "resp_1",
        None,
        (),
    )


def test_usage_details_given_as_plain_dicts_are_read() -> None:
    """Older openai 1.x keeps usage details as dicts; cached and reasoning tokens still arrive."""
    from types import SimpleNamespace

    usage = SimpleNamespace(
        prompt_tokens=10,
        completion_tokens=4,
        prompt_tokens_details={"cached_tokens": 6},
        completion_tokens_details={"reasoning_tokens": 2},
    )
    completion = SimpleNamespace(model="m", id="c", choices=[], usage=usage)
    result = chat_result(completion)
    assert (result.input_tokens, result.output_tokens, result.cache_read_tokens, result.reasoning_tokens) == (
        10,
        4,
        6,
        2,
    )

"""Values that cannot be exported are refused at the call, or made the same in memory and export.

And every exported text (metadata, model names, recorder attributes, error messages) is
bounded with the truncation markers and passes the recorder's content policy.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.export.otlp_encode import EncodedSpan, encode_request, encode_span
from promptrecorder.recording import semconv
from promptrecorder.recording.calls import CallRequest, CallResult, Endpoint, LLMCall
from promptrecorder.recording.redaction import DEFAULT_SCRUBBER
from tests.conftest import Tracing
from tests.unit.recording.test_redaction import SECRETS


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for you")

    __repr__ = __str__


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


def _deep(levels: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(levels):
        inner.append([])
        inner = inner[0]
    return outer


def assert_exports(spans: list[ReadableSpan]) -> None:
    """Both our encoder and the stock one take every span."""
    encoded = [encode_span(span) for span in spans]
    assert all(isinstance(span, EncodedSpan) for span in encoded)
    encode_request(encoded)
    encode_spans(spans).SerializeToString()


def prompt_event(tracing: Tracing) -> dict[str, Any]:
    events = [e for s in tracing.spans() for e in s.events if e.name == semconv.EVENT_PROMPT]
    assert len(events) == 1
    return dict(events[0].attributes or {})


def response_event(tracing: Tracing) -> dict[str, Any]:
    events = [e for s in tracing.spans() for e in s.events if e.name == semconv.EVENT_RESPONSE]
    assert len(events) == 1
    return dict(events[0].attributes or {})


# --- refused at the call ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"metadata": {"c": _circular()}}, ValueError, r"`metadata\['c'\]` must not contain itself"),
        ({"metadata": {"d": _deep(100_000)}}, ValueError, r"`metadata\['d'\]` must be nested at most 64"),
        ({"metadata": {"t": {(1, 2): 3}}}, TypeError, r"`metadata\['t'\]` keys must be str, got \(1, 2\)"),
        (
            {"metadata": {"u": Unprintable()}},
            TypeError,
            r"`metadata\['u'\]` must be a value that str\(\) can show",
        ),
        (
            {"metadata": {"b": b"\xff\x00"}},
            TypeError,
            r"`metadata\['b'\]` must be text, not bytes: decode it",
        ),
        ({"metadata": {"s\ud800": 1}}, ValueError, "`metadata` keys must be valid Unicode text"),
        ({"metadata": {"k" * 2000: 1}}, ValueError, "`metadata` keys must be at most 1024 characters"),
        ({"blob": bytearray(b"x")}, TypeError, r"`metadata\['blob'\]` must be text, not bytearray"),
        (
            {"started_at": datetime(1, 1, 1, tzinfo=timezone.utc)},
            ValueError,
            "`started_at` must be between 1970",
        ),
        (
            {"ended_at": datetime(9999, 12, 31, tzinfo=timezone.utc)},
            ValueError,
            "`ended_at` must be between 1970",
        ),
        (
            {"started_at": datetime(1969, 12, 31, 23, 59, tzinfo=timezone.utc)},
            ValueError,
            "`started_at` must be",
        ),
        (
            {"ended_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))},
            ValueError,
            "`ended_at` must be between",
        ),
        ({"started_at": datetime(1, 1, 1)}, ValueError, "`started_at` must be timezone-aware"),
        ({"ended_at": datetime(9999, 1, 1)}, ValueError, "`ended_at` must be timezone-aware"),
        ({"model": b"gpt"}, TypeError, "`model` must be a str or None"),
    ],
    ids=lambda value: str(value)[:40] if isinstance(value, str) else None,
)
def test_a_value_that_cannot_be_exported_is_refused_naming_the_argument(
    tracing: Tracing, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """The call raises before anything is kept: no record in memory, no event on the span."""
    with (
        PromptRecorder("refuses", tracer_provider=tracing.provider) as recorder,
        pytest.raises(error, match=message),
    ):
        autorecord("p", "r", **options)
    assert len(recorder) == 0
    assert [event.name for span in tracing.spans() for event in span.events] == []


@pytest.mark.parametrize(
    ("attributes", "error", "message"),
    [
        ({"c": _circular()}, ValueError, r"`attributes\['c'\]` must not contain itself"),
        ({"u": Unprintable()}, TypeError, r"`attributes\['u'\]` must be a value that str\(\) can show"),
        ({"": 1}, TypeError, "`attributes` keys must be non-empty str"),
        ({"k\udfff": 1}, ValueError, "`attributes` keys must be valid Unicode text"),
    ],
)
def test_recorder_attributes_that_cannot_be_exported_are_refused(
    attributes: dict[str, Any], error: type[Exception], message: str
) -> None:
    """The recorder's own attributes are checked as metadata is, when it is made."""
    with pytest.raises(error, match=message):
        PromptRecorder("r", attributes=attributes)


def test_timestamps_at_the_edges_of_what_otlp_holds_are_kept_and_encode(tracing: Tracing) -> None:
    """1970-01-01 and 2554 are within unsigned 64-bit nanoseconds: kept, stamped, encoded."""
    start = datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
    end = datetime(2554, 7, 21, tzinfo=timezone(timedelta(hours=2)))
    with PromptRecorder("edges", tracer_provider=tracing.provider):
        record = autorecord("p", "r", started_at=start, ended_at=end)
    assert record is not None
    assert (record.started_at, record.ended_at) == (start, end)
    events = tracing.span("invoke_workflow edges").events
    assert [event.timestamp for event in events] == [
        1_000_000_000,
        int((end - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 1_000_000_000,
    ]
    assert_exports(tracing.spans())


# --- converted the same way in memory and in the export --------------------------------------


def test_nan_and_infinities_are_kept_and_exported_as_numbers(tracing: Tracing) -> None:
    """Floats OTLP carries as doubles, NaN and infinities too; nested, they are JSON's NaN/Infinity."""
    with PromptRecorder("nan", tracer_provider=tracing.provider):
        record = autorecord(
            "p", "r", metadata={"n": math.nan, "i": -math.inf, "l": [math.inf, 1.0], "d": {"x": math.nan}}
        )
    assert record is not None
    assert math.isnan(record.metadata["n"])
    assert record.metadata["i"] == -math.inf
    event = prompt_event(tracing)
    assert math.isnan(event["promptrecorder.metadata.n"])
    assert event["promptrecorder.metadata.i"] == -math.inf
    assert list(event["promptrecorder.metadata.l"]) == [math.inf, 1.0]
    assert event["promptrecorder.metadata.d"] == '{"x": NaN}'
    assert_exports(tracing.spans())


def test_objects_json_does_not_know_become_their_text_in_memory_and_export(tracing: Tracing) -> None:
    """A datetime or a Decimal is kept and exported as its str(), nested or not."""
    moment = datetime(2026, 12, 6, tzinfo=timezone.utc)
    with PromptRecorder("objects", tracer_provider=tracing.provider):
        record = autorecord("p", "r", metadata={"at": moment, "nested": {"price": Decimal("1.50")}})
    assert record is not None
    assert dict(record.metadata) == {"at": str(moment), "nested": {"price": "1.50"}}
    event = prompt_event(tracing)
    assert event["promptrecorder.metadata.at"] == str(moment)
    assert json.loads(event["promptrecorder.metadata.nested"]) == {"price": "1.50"}


def test_tool_arguments_given_as_a_dict_become_json_text_in_both_places(tracing: Tracing) -> None:
    """openai's format carries arguments as JSON text: a dict is turned into it, for the record and the span."""
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": {"city": "Paris"}}}
    messages = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
    ]
    with PromptRecorder("tools", tracer_provider=tracing.provider):
        record = autorecord(messages, "Sunny")
    assert record is not None
    assert record.messages is not None
    arguments = record.messages[1]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(arguments, str)
    assert json.loads(arguments) == {"city": "Paris"}
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {
        "city": "Paris"
    }  # the caller's list untouched
    exported = json.loads(prompt_event(tracing)[semconv.GEN_AI_INPUT_MESSAGES])
    assert exported[1]["parts"][0] == {
        "type": "tool_call",
        "id": "c1",
        "name": "lookup",
        "arguments": {"city": "Paris"},
    }


@pytest.mark.parametrize(
    ("tool_calls", "message"),
    [
        ("lookup()", r"`prompt\[0\]\['tool_calls'\]` must be a list of tool call dicts"),
        (
            [{"function": "lookup"}],
            r"`prompt\[0\]\['tool_calls'\]\[0\]` must be a dict with a 'function' dict",
        ),
        ([{"function": {"arguments": 3}}], r"\['arguments'\]` must be JSON text or a dict"),
        (
            [{"function": {"arguments": {"c": _circular()}}}],
            "tool call 0's `arguments` must not contain itself",
        ),
    ],
)
def test_tool_calls_that_cannot_be_exported_are_refused(
    tracing: Tracing, tool_calls: object, message: str
) -> None:
    """Tool calls of another shape than openai's are refused at the call, naming where."""
    with (
        PromptRecorder("tools", tracer_provider=tracing.provider) as recorder,
        pytest.raises((TypeError, ValueError), match=message),
    ):
        autorecord([{"role": "assistant", "content": None, "tool_calls": tool_calls}], "r")
    assert len(recorder) == 0


TEXT = "a\ud800b\x00c\udfffd"  # lone surrogates and NUL


def test_lone_surrogates_and_nul_in_every_text_field_are_kept_and_export(tracing: Tracing) -> None:
    """Every text field takes them: memory keeps them as given, the export has U+FFFD and encodes."""
    messages = [
        {"role": "system", "content": TEXT, "name": "n"},
        {
            "role": "user",
            "content": [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": TEXT}}],
        },
        {
            "role": "assistant",
            "content": TEXT,
            "tool_calls": [{"id": TEXT, "type": "function", "function": {"name": TEXT, "arguments": TEXT}}],
        },
        {"role": "tool", "tool_call_id": TEXT, "content": TEXT},
    ]
    recorder = PromptRecorder(TEXT, attributes={"a": TEXT, "l": [TEXT]}, tracer_provider=tracing.provider)
    with recorder:
        first = autorecord(TEXT, TEXT, model=TEXT, metadata={"m": TEXT, "nested": {TEXT: [TEXT]}})
        second = autorecord(messages, TEXT, model=TEXT)
    assert first is not None
    assert second is not None
    assert (first.prompt, first.response, first.model, first.metadata["m"]) == (TEXT, TEXT, TEXT, TEXT)
    assert second.messages is not None
    assert second.messages[0]["content"] == TEXT
    assert first.trace_id is not None
    assert second.trace_id is not None
    assert prompt_event_texts(tracing)
    assert all("\ud800" not in text for text in prompt_event_texts(tracing))
    assert_exports(tracing.spans())


def prompt_event_texts(tracing: Tracing) -> list[str]:
    texts = []
    for span in tracing.spans():
        texts.append(span.name)
        values = [*(span.attributes or {}).values()]
        for event in span.events:
            values.extend((event.attributes or {}).values())
        for value in values:
            items = value if isinstance(value, (list, tuple)) else [value]
            texts.extend(item for item in items if isinstance(item, str))
    return texts


# --- exceptions whose str() raises -------------------------------------------------------------


def test_a_block_failing_with_an_unprintable_exception_still_raises_it_unchanged(tracing: Tracing) -> None:
    """The very exception reaches the caller; the span is ERROR with the type only."""
    error = UnprintableError()
    with pytest.raises(UnprintableError) as raised, PromptRecorder("fails", tracer_provider=tracing.provider):
        raise error
    assert raised.value is error
    span = tracing.span("invoke_workflow fails")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[semconv.ERROR_TYPE] == "UnprintableError"  # type: ignore[index]
    assert span.events[-1].name == "exception"
    assert_exports(tracing.spans())


def test_a_call_failing_with_an_unprintable_exception_is_recorded(tracing: Tracing) -> None:
    """LLMCall.fail with an error whose str() raises: the record says so; the span encodes."""
    request = CallRequest(Endpoint("openai"), "m", ({"role": "user", "content": "q"},))
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(request)
        assert call is not None
        call.fail(UnprintableError())
    (record,) = recorder.records
    assert record.error == "UnprintableError: <UnprintableError whose str() raised RuntimeError>"
    assert record.trace_id is not None
    assert_exports(tracing.spans())


# --- bounded: the truncation markers on every value --------------------------------------------


def test_every_exported_value_is_cut_with_the_truncation_markers(tracing: Tracing) -> None:
    """Metadata, recorder attributes, model names and error texts are cut in the export, whole in memory."""
    big = "m" * 5_000_000
    with PromptRecorder(
        "bounded", attributes={"team": big}, tracer_provider=tracing.provider, max_content_length=1_000
    ) as recorder:
        autorecord("p", "r", model="x" * 5_000, metadata={"blob": big, "list": ["y" * 600, "z" * 600]})
    (record,) = recorder.records
    assert record.metadata["blob"] == big
    assert record.model == "x" * 5_000
    event = prompt_event(tracing)
    assert event["promptrecorder.metadata.blob"] == "m" * 1_000 + "…[truncated]"
    assert event["promptrecorder.metadata.blob.original_length"] == 5_000_000
    assert len(event["promptrecorder.metadata.blob.sha256"]) == 64
    assert event["promptrecorder.metadata.list"].endswith("…[truncated]")  # too long as a list: JSON text
    assert event[semconv.GEN_AI_REQUEST_MODEL] == "x" * 1024 + "…[truncated]"
    assert event["promptrecorder.gen_ai.request.model.original_length"] == 5_000
    span = tracing.span("invoke_workflow bounded")
    assert span.attributes["team"] == "m" * 1_000 + "…[truncated]"  # type: ignore[index]
    assert span.attributes["promptrecorder.team.original_length"] == 5_000_000  # type: ignore[index]
    assert sum(len(str(v)) for e in span.events for v in (e.attributes or {}).values()) < 20_000


def test_a_long_error_is_cut_on_the_span_and_kept_in_the_record(tracing: Tracing) -> None:
    """A call's error message and stack trace are bounded on both the events and the CLIENT span."""
    request = CallRequest(Endpoint("openai"), "m", ({"role": "user", "content": "q"},))
    with PromptRecorder("errors", tracer_provider=tracing.provider, max_content_length=2_000) as recorder:
        call = LLMCall.start(request)
        assert call is not None
        call.fail(ValueError("e" * 100_000))
    (record,) = recorder.records
    assert record.error == "ValueError: " + "e" * 100_000
    response = response_event(tracing)
    assert response[semconv.RESPONSE_ERROR].endswith("…[truncated]")
    assert response["promptrecorder.response.error.original_length"] == 100_012
    (client,) = [span for span in tracing.spans() if span.name == "chat m"]
    exception = client.events[-1]
    assert exception.name == "exception"
    assert len(exception.attributes["exception.message"]) == 2_000 + len("…[truncated]")  # type: ignore[index]
    assert exception.attributes["promptrecorder.exception.message.original_length"] == 100_000  # type: ignore[index]
    assert len(client.status.description or "") <= 1024 + len("…[truncated]")


# --- scrubbed: the content policy on every exported text ---------------------------------------


@pytest.mark.parametrize(("kind", "secret"), SECRETS.items(), ids=list(SECRETS))
def test_a_secret_in_metadata_model_or_attributes_is_redacted_in_record_and_span(
    tracing: Tracing, kind: str, secret: str
) -> None:
    """Metadata values (nested too), model names and recorder attributes pass the scrubber, as content does."""
    redacted, found = DEFAULT_SCRUBBER(secret)  # what content would become: the same here
    assert found == 1
    assert f"[REDACTED:{kind}]" in redacted
    recorder = PromptRecorder(
        "scrub", attributes={"note": f"key {secret} here"}, tracer_provider=tracing.provider
    )
    with recorder:
        record = autorecord(
            "p",
            "r",
            model=f"m {secret} m",
            metadata={"flat": f"x {secret} y", "nested": {"deep": [f"{secret}"]}},
        )
    assert record is not None
    assert record.model == f"m {redacted} m"
    assert record.metadata["flat"] == f"x {redacted} y"
    assert record.metadata["nested"] == {"deep": [redacted]}
    prompt, response = prompt_event(tracing), response_event(tracing)
    assert (
        prompt[semconv.GEN_AI_REQUEST_MODEL] == response[semconv.GEN_AI_RESPONSE_MODEL] == f"m {redacted} m"
    )
    assert prompt["promptrecorder.metadata.flat"] == f"x {redacted} y"
    assert json.loads(prompt["promptrecorder.metadata.nested"]) == {"deep": [redacted]}
    assert tracing.span("invoke_workflow scrub").attributes["note"] == f"key {redacted} here"  # type: ignore[index]
    assert all(secret not in text for text in prompt_event_texts(tracing))
    assert recorder.redactions.secrets == 4  # attribute, model (once for both), flat, nested


def test_a_secret_in_an_error_message_is_redacted_in_record_and_spans(tracing: Tracing) -> None:
    """A call's error message (openai's 401 quotes the key) is scrubbed in the record, the event and the CLIENT span."""
    secret = SECRETS["openai_api_key"]
    request = CallRequest(Endpoint("openai"), f"model-{secret}", ({"role": "user", "content": "q"},))
    with PromptRecorder("session", tracer_provider=tracing.provider) as recorder:
        call = LLMCall.start(request)
        assert call is not None
        call.fail(PermissionError(f"Incorrect API key provided: {secret}"), CallResult(response_model=secret))
    (record,) = recorder.records
    assert record.error == "PermissionError: Incorrect API key provided: [REDACTED:openai_api_key]"
    assert secret not in (record.model or "")
    assert all(secret not in text for text in prompt_event_texts(tracing))
    (client,) = [span for span in tracing.spans() if span.name.startswith("chat ")]
    assert client.name == "chat model-[REDACTED:openai_api_key]"


def test_a_redact_hook_sees_metadata_and_model_names(tracing: Tracing) -> None:
    """The recorder's redact= hook runs on the same texts, with the same result in record and span."""
    with PromptRecorder(
        "hook", tracer_provider=tracing.provider, redact=lambda text: text.replace("alice", "***")
    ):
        record = autorecord("p", "r", model="alice-model", metadata={"user": "alice"})
    assert record is not None
    assert (record.model, record.metadata["user"]) == ("***-model", "***")
    event = prompt_event(tracing)
    assert (event[semconv.GEN_AI_REQUEST_MODEL], event["promptrecorder.metadata.user"]) == (
        "***-model",
        "***",
    )


# --- no record without its events ---------------------------------------------------------------


def test_a_record_always_has_its_events_even_when_building_them_fails(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should building a pair's attributes fail (a bug), the pair is still exported with its id and the error."""

    def broken(**_: object) -> dict[str, Any]:
        raise RuntimeError("bug")

    monkeypatch.setattr("promptrecorder.recording.pairs.prompt_event_attributes", broken)
    with PromptRecorder("stub", tracer_provider=tracing.provider):
        record = autorecord("p", "r")
    assert record is not None
    assert record.trace_id is not None
    event = prompt_event(tracing)
    assert event == {semconv.RECORD_ID: record.id, semconv.EXPORT_ERROR: "bug"}

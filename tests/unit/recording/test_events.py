"""Tests of ``promptrecorder.recording.events``: the attributes of the prompt and response events."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from promptrecorder.recording import semconv
from promptrecorder.recording.content import TRUNCATION_MARKER, messages_json, to_genai_messages
from promptrecorder.recording.events import (
    as_attribute_value,
    metadata_attributes,
    prompt_event_attributes,
    response_event_attributes,
)


def prompt_attributes(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "record_id": "r1",
        "prompt": "What is 2+2?",
        "messages": None,
        "model": None,
        "input_tokens": None,
        "metadata": {},
        "limit": None,
    }
    arguments.update(changes)
    return dict(prompt_event_attributes(**arguments))


def response_attributes(**changes: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "record_id": "r1",
        "response": "4",
        "model": None,
        "output_tokens": None,
        "limit": None,
    }
    arguments.update(changes)
    return dict(response_event_attributes(**arguments))


# --- prompt event ---------------------------------------------------------------------


def test_plain_prompt_has_id_text_and_input_messages_only() -> None:
    """A str prompt without extras gives exactly the record id, the text and one user message."""
    assert prompt_attributes() == {
        semconv.RECORD_ID: "r1",
        semconv.PROMPT_TEXT: "What is 2+2?",
        semconv.GEN_AI_INPUT_MESSAGES: '[{"role":"user","parts":[{"type":"text","content":"What is 2+2?"}]}]',
    }


def test_prompt_model_and_tokens_are_present_when_given() -> None:
    """model becomes gen_ai.request.model and input_tokens promptrecorder.usage.input_tokens (the
    call span alone has gen_ai.usage.*), 0 included."""
    attributes = prompt_attributes(model="gpt-4o-mini", input_tokens=0)
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attributes[semconv.USAGE_INPUT_TOKENS] == 0
    assert semconv.GEN_AI_USAGE_INPUT_TOKENS not in attributes
    assert semconv.GEN_AI_RESPONSE_MODEL not in attributes


def test_prompt_messages_are_exported_as_genai_messages() -> None:
    """A message list is exported whole as GenAI input messages, while the text is the prompt's."""
    messages = (
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    )
    attributes = prompt_attributes(messages=messages)
    assert attributes[semconv.PROMPT_TEXT] == "What is 2+2?"
    assert json.loads(attributes[semconv.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is 2+2?"}]},
    ]
    assert attributes[semconv.GEN_AI_INPUT_MESSAGES] == messages_json(to_genai_messages(messages, None))


def test_prompt_truncation_attributes_only_when_cut() -> None:
    """A prompt over the limit is cut and reports its original length and SHA-256; one within it does not."""
    prompt = "x" * 50
    cut = prompt_attributes(prompt=prompt, limit=10)
    assert cut[semconv.PROMPT_TEXT] == "x" * 10 + TRUNCATION_MARKER
    assert cut[semconv.PROMPT_ORIGINAL_LENGTH] == 50
    assert cut[semconv.PROMPT_SHA256] == hashlib.sha256(prompt.encode()).hexdigest()
    assert (
        json.loads(cut[semconv.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"]
        == "x" * 10 + TRUNCATION_MARKER
    )

    whole = prompt_attributes(prompt=prompt, limit=50)
    assert whole[semconv.PROMPT_TEXT] == prompt
    assert semconv.PROMPT_ORIGINAL_LENGTH not in whole
    assert semconv.PROMPT_SHA256 not in whole


def test_prompt_with_lone_surrogate_is_exported_clean() -> None:
    """A lone surrogate in the prompt is exported as U+FFFD, in the text and in the input messages."""
    attributes = prompt_attributes(prompt="bad \ud800 text")
    assert attributes[semconv.PROMPT_TEXT] == "bad \ufffd text"
    assert "\ud800" not in attributes[semconv.GEN_AI_INPUT_MESSAGES]
    attributes[semconv.GEN_AI_INPUT_MESSAGES].encode("utf-8")


def test_prompt_metadata_is_exported_under_the_prefix() -> None:
    """Each metadata key becomes METADATA_PREFIX + key, with its value made attribute-safe."""
    attributes = prompt_attributes(metadata={"user": "alice", "attempt": 2, "cfg": {"t": 0.5}})
    assert attributes[semconv.METADATA_PREFIX + "user"] == "alice"
    assert attributes[semconv.METADATA_PREFIX + "attempt"] == 2
    assert attributes[semconv.METADATA_PREFIX + "cfg"] == '{"t": 0.5}'
    assert not any(key.startswith(semconv.METADATA_PREFIX) for key in prompt_attributes())


def test_metadata_attributes_prefix_every_key() -> None:
    """metadata_attributes maps every key to METADATA_PREFIX + key and nothing else."""
    assert metadata_attributes({"a": 1, "b": "two"}) == {
        "promptrecorder.metadata.a": 1,
        "promptrecorder.metadata.b": "two",
    }


# --- response event -------------------------------------------------------------------


def test_plain_response_has_id_text_and_output_messages_only() -> None:
    """A response without extras gives exactly the record id, the text and one assistant message."""
    assert response_attributes() == {
        semconv.RECORD_ID: "r1",
        semconv.RESPONSE_TEXT: "4",
        semconv.GEN_AI_OUTPUT_MESSAGES: '[{"role":"assistant","parts":[{"type":"text","content":"4"}]}]',
    }


def test_response_model_and_tokens_are_present_when_given() -> None:
    """model becomes gen_ai.response.model and output_tokens promptrecorder.usage.output_tokens,
    0 included."""
    attributes = response_attributes(model="gpt-4o-mini", output_tokens=0)
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert attributes[semconv.USAGE_OUTPUT_TOKENS] == 0
    assert semconv.GEN_AI_USAGE_OUTPUT_TOKENS not in attributes
    assert semconv.GEN_AI_REQUEST_MODEL not in attributes


def test_response_truncation_attributes_only_when_cut() -> None:
    """A response over the limit is cut and reports its original length and SHA-256; one within it does not."""
    response = "é" * 30
    cut = response_attributes(response=response, limit=4)
    assert cut[semconv.RESPONSE_TEXT] == "éééé" + TRUNCATION_MARKER
    assert cut[semconv.RESPONSE_ORIGINAL_LENGTH] == 30
    assert cut[semconv.RESPONSE_SHA256] == hashlib.sha256(response.encode()).hexdigest()
    assert (
        json.loads(cut[semconv.GEN_AI_OUTPUT_MESSAGES])[0]["parts"][0]["content"]
        == "éééé" + TRUNCATION_MARKER
    )
    assert semconv.PROMPT_ORIGINAL_LENGTH not in cut

    whole = response_attributes(response=response, limit=None)
    assert whole[semconv.RESPONSE_TEXT] == response
    assert semconv.RESPONSE_ORIGINAL_LENGTH not in whole
    assert semconv.RESPONSE_SHA256 not in whole


# --- as_attribute_value ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("text", "text", id="str"),
        pytest.param("", "", id="empty-str"),
        pytest.param(True, True, id="bool"),
        pytest.param(7, 7, id="int"),
        pytest.param(-(2**63), -(2**63), id="int64-min"),
        pytest.param(2**63 - 1, 2**63 - 1, id="int64-max"),
        pytest.param(2.5, 2.5, id="float"),
        pytest.param(["a", "b"], ["a", "b"], id="str-list"),
        pytest.param(("a", "b"), ["a", "b"], id="str-tuple"),
        pytest.param([1, 2, 3], [1, 2, 3], id="int-list"),
        pytest.param([True, False], [True, False], id="bool-list"),
        pytest.param((0.5, 1.5), [0.5, 1.5], id="float-tuple"),
    ],
)
def test_attribute_values_opentelemetry_takes_are_kept(value: object, expected: object) -> None:
    """Primitives and homogeneous lists of them are kept as they are (tuples as lists)."""
    result = as_attribute_value(value)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([1, "a"], '[1, "a"]', id="mixed-list"),
        pytest.param([1, True], "[1, true]", id="int-and-bool"),
        pytest.param([1, 2.0], "[1, 2.0]", id="int-and-float"),
        pytest.param([], "[]", id="empty-list"),
        pytest.param([None], "[null]", id="list-of-none"),
        pytest.param({"k": "é", "n": [1]}, '{"k": "é", "n": [1]}', id="dict"),
        pytest.param(None, "null", id="none"),
        pytest.param([["a"], ["b"]], '[["a"], ["b"]]', id="nested-list"),
        pytest.param([1, 2**64], "[1, 18446744073709551616]", id="int-list-beyond-int64"),
    ],
)
def test_other_attribute_values_become_json_text(value: object, expected: str) -> None:
    """Mixed or nested lists, dicts and None become their JSON text."""
    assert as_attribute_value(value) == expected


def test_unserialisable_values_become_their_str_in_json() -> None:
    """A value JSON cannot encode is exported as the JSON of its str()."""

    class Opaque:
        def __str__(self) -> str:
            return "opaque!"

    assert as_attribute_value(Opaque()) == '"opaque!"'
    assert as_attribute_value({"when": Opaque()}) == '{"when": "opaque!"}'


def test_attribute_strings_are_cleaned_of_lone_surrogates() -> None:
    """Lone surrogates in string values, in string lists and in JSON text become U+FFFD."""
    assert as_attribute_value("a\ud800") == "a\ufffd"
    assert as_attribute_value(["a\ud800", "b"]) == ["a\ufffd", "b"]
    assert as_attribute_value({"k": "\udfff"}) == '{"k": "\ufffd"}'


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 10**30])
def test_ints_outside_int64_become_text(value: int) -> None:
    """An int OTLP cannot encode (outside signed 64 bits) is exported as its JSON text, not dropped."""
    result = as_attribute_value(value)
    assert isinstance(result, str)
    assert json.loads(result) == value

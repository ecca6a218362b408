"""Tests of ``promptrecorder.recording.content``: prompt checks, GenAI messages and export safety."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptrecorder.recording.content import (
    TRUNCATION_MARKER,
    Truncation,
    assistant_message_json,
    check_prompt,
    check_response,
    export_text,
    input_messages_json,
    json_string,
    messages_json,
    output_message,
    output_messages_json,
    to_genai_messages,
    user_message_json,
)

# Any text, often with surrogates in it (hypothesis leaves category Cs out by default).
any_text = st.text(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)))


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --- check_prompt ---------------------------------------------------------------------


def test_str_prompt_is_its_own_text() -> None:
    """A str prompt gives itself as text and no messages."""
    assert check_prompt("What is 2+2?") == ("What is 2+2?", None)
    assert check_prompt("") == ("", None)


def test_message_list_gives_last_user_text_and_a_tuple() -> None:
    """A message list gives the last user message's text and the messages as a tuple."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": None},
    ]
    text, kept = check_prompt(messages)
    assert text == "second question"
    assert kept == tuple(messages)
    assert isinstance(kept, tuple)


def test_message_tuple_is_kept() -> None:
    """A tuple of messages is accepted and kept as an equal tuple."""
    messages = ({"role": "user", "content": "hi"},)
    assert check_prompt(messages) == ("hi", messages)


def test_kept_messages_do_not_follow_later_list_changes() -> None:
    """Appending to the caller's list afterwards does not change the kept messages."""
    messages = [{"role": "user", "content": "hi"}]
    _, kept = check_prompt(messages)
    messages.append({"role": "assistant", "content": "hello"})
    assert kept == ({"role": "user", "content": "hi"},)


def test_content_parts_are_joined_with_newlines() -> None:
    """A user content given as parts gives the texts of its text parts joined with a newline."""
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "this image."},
            ],
        }
    ]
    assert check_prompt(messages)[0] == "Describe\nthis image."


def test_without_a_user_message_the_last_message_gives_the_text() -> None:
    """With no user message, the text is the last message's."""
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
    ]
    assert check_prompt(messages)[0] == "Answer in French."


def test_empty_message_list_is_a_value_error() -> None:
    """An empty message list raises ValueError saying a non-empty list is needed."""
    with pytest.raises(ValueError, match=re.escape("`prompt` must be a non-empty list")):
        check_prompt([])


@pytest.mark.parametrize(
    ("prompt", "type_name"),
    [
        (b"What is 2+2?", "bytes"),
        (42, "int"),
        ({"role": "user", "content": "hi"}, "dict"),
        (None, "NoneType"),
    ],
)
def test_other_prompt_types_are_type_errors(prompt: object, type_name: str) -> None:
    """A prompt neither str nor list raises TypeError naming its type and what is accepted."""
    with pytest.raises(TypeError) as caught:
        check_prompt(prompt)
    message = str(caught.value)
    assert message.startswith("`prompt` must be a str or a list of chat messages")
    assert f"got {type_name}: " in message


def test_long_bad_prompt_is_shortened_in_the_error() -> None:
    """The error message shows at most a short repr of a huge bad value."""
    with pytest.raises(TypeError) as caught:
        check_prompt(b"x" * 10_000)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("messages", "where"),
    [
        pytest.param([{"role": "user", "content": "ok"}, "hi"], "`prompt[1]`", id="not-a-dict"),
        pytest.param([{"content": "hi"}], "`prompt[0]['role']`", id="missing-role"),
        pytest.param([{"role": "", "content": "hi"}], "`prompt[0]['role']`", id="empty-role"),
        pytest.param([{"role": 1, "content": "hi"}], "`prompt[0]['role']`", id="role-not-str"),
        pytest.param([{"role": "user", "content": 5}], "`prompt[0]['content']`", id="content-int"),
        pytest.param([{"role": "user", "content": b"hi"}], "`prompt[0]['content']`", id="content-bytes"),
        pytest.param(
            [
                {"role": "system", "content": "s"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, "b"]},
            ],
            "`prompt[1]['content'][1]`",
            id="part-not-a-dict",
        ),
    ],
)
def test_bad_messages_are_type_errors_naming_the_index(messages: list[Any], where: str) -> None:
    """A malformed message raises TypeError whose message starts with the offending index."""
    with pytest.raises(TypeError) as caught:
        check_prompt(messages)
    assert str(caught.value).startswith(where + " must be")


# --- check_response -------------------------------------------------------------------


def test_str_response_is_accepted() -> None:
    """A str response is returned as it is."""
    assert check_response("4") == "4"
    assert check_response("") == ""


@pytest.mark.parametrize(("response", "type_name"), [(b"4", "bytes"), (None, "NoneType"), (4, "int")])
def test_other_response_types_are_type_errors(response: object, type_name: str) -> None:
    """A response that is not a str raises TypeError naming its type."""
    with pytest.raises(TypeError, match=re.escape(f"`response` must be a str, got {type_name}: ")):
        check_response(response)


# --- to_genai_messages ----------------------------------------------------------------

IMAGE_DATA = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
DATA_URL = "data:image/png;base64," + IMAGE_DATA


def test_openai_conversation_becomes_genai_parts() -> None:
    """A whole openai conversation converts to GenAI 'parts' messages, role by role."""
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris?", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "broken", "arguments": '{"city": '},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21°C"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And these?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "image_url", "image_url": {"url": DATA_URL}},
            ],
        },
    ]
    assert to_genai_messages(messages, None) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "system", "parts": [{"type": "text", "content": "You are a weather bot."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}], "name": "alice"},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris", "days": 2},
                },
                {"type": "tool_call", "id": "call_2", "name": "broken", "arguments": '{"city": '},
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "sunny, 21°C"}],
        },
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "And these?"},
                {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
                {"type": "blob", "modality": "image", "content": f"<inline data, {len(DATA_URL)} chars>"},
            ],
        },
    ]


def test_assistant_text_and_tool_calls_are_both_kept() -> None:
    """An assistant message with text and tool calls gives a text part, then the tool calls."""
    message = {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
    }
    assert to_genai_messages([message], None) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "c", "name": "f", "arguments": {}},
            ],
        }
    ]


def test_inline_image_bytes_are_not_exported() -> None:
    """A data: image URL becomes a size placeholder; its base64 bytes are not in the output."""
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": DATA_URL}}]}]
    exported = messages_json(to_genai_messages(messages, None))
    assert IMAGE_DATA not in exported
    assert "base64" not in exported
    assert json.loads(exported)[0]["parts"][0]["type"] == "blob"


def test_message_texts_are_cut_to_the_limit() -> None:
    """Each text in the converted messages is cut to the limit with the truncation marker."""
    messages = [
        {"role": "system", "content": "abcdefghij"},
        {"role": "tool", "tool_call_id": "c", "content": "0123456789"},
        {"role": "user", "content": "short"},
    ]
    converted = to_genai_messages(messages, 5)
    assert converted[0]["parts"][0]["content"] == "abcde" + TRUNCATION_MARKER
    assert converted[1]["parts"][0]["response"] == "01234" + TRUNCATION_MARKER
    assert converted[2]["parts"][0]["content"] == "short"


def test_cut_tool_arguments_stay_a_string() -> None:
    """Tool-call arguments cut by the limit are kept as the cut string, not parsed."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"city": "Paris"}'}}],
    }
    part = to_genai_messages([message], 8)[0]["parts"][0]
    assert part["arguments"] == '{"city":' + TRUNCATION_MARKER


@pytest.mark.parametrize("arguments", ["NaN", "Infinity", "-Infinity", '{"x": NaN}'])
def test_tool_arguments_with_non_standard_constants_keep_the_json_strict(arguments: str) -> None:
    """Arguments holding NaN or Infinity stay a string, so the messages JSON is strict RFC 8259 JSON."""
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}],
    }
    exported = messages_json(to_genai_messages([message], None))

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    assert json.loads(exported, parse_constant=reject)[0]["parts"][0]["arguments"] == arguments


# --- hand-built JSON ------------------------------------------------------------------

TRICKY = [
    "",
    "plain",
    '"quoted"',
    "back\\slash",
    "NUL \x00 and \x01 \x1f \x7f",
    "new\nline\r\ttab\b\f",
    "\u2028\u2029",
    "héllo 日本語 😀",
    "</script>",
    "\ud800 lone",
    "\ufeff BOM",
]


@pytest.mark.parametrize("text", TRICKY)
def test_single_message_json_equals_json_dumps(text: str) -> None:
    """user_message_json and assistant_message_json equal compact json.dumps of the same list."""
    assert user_message_json(text) == compact(
        [{"role": "user", "parts": [{"type": "text", "content": text}]}]
    )
    assert assistant_message_json(text) == compact(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]
    )


# Long texts take json_string's own path when they are ASCII with nothing to escape but "\n".
LONG = [
    "plain prose, nothing to escape. " * 40,
    "line one\nline two\n" * 60,
    *(("x" * 600) + character + ("y" * 10) for character in '"\\\t\r\b\f\x00\x1f\x7f'),
    "\n" * 700,
    "ascii then one é at the end " * 30 + "é",
    *(text * (600 // max(len(text), 1) + 1) for text in TRICKY if text),
]


@pytest.mark.parametrize("text", LONG)
def test_json_string_of_a_long_text_equals_json_dumps(text: str) -> None:
    assert len(text) >= 512
    assert json_string(text) == json.dumps(text, ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=0x7F), min_size=500, max_size=3000) | any_text)
def test_json_string_equals_json_dumps_for_any_text(text: str) -> None:
    assert json_string(text) == json.dumps(text, ensure_ascii=False)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_single_message_json_equals_json_dumps_for_any_text(text: str) -> None:
    """For any text, the hand-built JSON equals json.dumps and parses back to the text."""
    built = user_message_json(text)
    assert built == compact([{"role": "user", "parts": [{"type": "text", "content": text}]}])
    assert json.loads(built)[0]["parts"][0]["content"] == text
    answer = assistant_message_json(text)
    assert answer == compact([{"role": "assistant", "parts": [{"type": "text", "content": text}]}])
    assert json.loads(answer)[0]["parts"][0]["content"] == text


# Messages the hand-built path takes (a system, user or assistant role and a str content)
# mixed with ones it must leave to the generic path.
any_role = st.sampled_from(["system", "user", "assistant", "developer", "tool", "function", "critic"])
any_message = st.one_of(
    st.builds(lambda role, text: {"role": role, "content": text}, any_role, any_text),
    st.builds(lambda role, text: {"role": role, "content": text, "name": "ada"}, any_role, any_text),
    st.builds(lambda text: {"role": "user", "content": [{"type": "text", "text": text}]}, any_text),
    st.builds(lambda role: {"role": role, "content": None}, any_role),
    st.just({"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}),
)
any_limit = st.one_of(st.none(), st.integers(0, 40))


@settings(max_examples=300, deadline=None)
@given(st.lists(any_message, min_size=1, max_size=4), any_limit)
def test_input_messages_json_equals_the_generic_path(
    messages: list[dict[str, Any]], limit: int | None
) -> None:
    """input_messages_json gives exactly messages_json(to_genai_messages(...)), whatever the messages."""
    assert input_messages_json(messages, limit) == messages_json(to_genai_messages(messages, limit))


@settings(max_examples=300, deadline=None)
@given(
    any_text,
    st.one_of(st.none(), st.lists(st.one_of(any_text, st.none()), max_size=2).map(tuple)),
    st.sampled_from([None, (), ({"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}},)]),
    any_limit,
)
def test_output_messages_json_equals_the_generic_path(
    text: str, finish_reasons: Any, tool_calls: Any, limit: int | None
) -> None:
    """output_messages_json gives exactly messages_json([output_message(...)])."""
    expected = messages_json([output_message(text, finish_reasons, tool_calls, limit)])
    assert output_messages_json(text, finish_reasons, tool_calls, limit) == expected


def test_messages_json_is_compact_and_readable() -> None:
    """messages_json uses no spaces after separators and keeps non-ASCII as it is."""
    assert messages_json([{"role": "user", "parts": [{"type": "text", "content": "é"}]}]) == (
        '[{"role":"user","parts":[{"type":"text","content":"é"}]}]'
    )


# --- export_text ----------------------------------------------------------------------


def test_ascii_text_is_exported_unchanged() -> None:
    """ASCII text within the limit is exported unchanged, with nothing cut."""
    assert export_text("What is 2+2?", 100) == ("What is 2+2?", None)


@pytest.mark.parametrize(
    "text", ["héllo wörld", "日本語のテキスト", "😀👩‍💻🇫🇷", "\ufeff\u2028\U0010ffff", "\ue000 private use"]
)
def test_valid_non_ascii_text_is_exported_unchanged(text: str) -> None:
    """Non-ASCII text without lone surrogates is exported unchanged."""
    assert export_text(text, None) == (text, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ids, because ruff reads every surrogate literal as U+FFFD and calls them duplicates (PT014).
        pytest.param("\ud800", "\ufffd", id="high"),
        pytest.param("\udfff", "\ufffd", id="low"),
        pytest.param("a\ud800b", "a\ufffdb", id="inside"),
        pytest.param("end \ud800", "end \ufffd", id="at-end"),
        pytest.param("\ud800\ud800", "\ufffd\ufffd", id="two-highs"),
        pytest.param("\udc00\ud800", "\ufffd\ufffd", id="low-then-high"),
        pytest.param("é \udc80 😀", "é \ufffd 😀", id="among-non-ascii"),
    ],
)
def test_lone_surrogates_are_replaced(text: str, expected: str) -> None:
    """Each lone surrogate becomes U+FFFD, every other character stays, and the result encodes to UTF-8."""
    exported, cut = export_text(text, None)
    assert exported == expected
    assert cut is None
    exported.encode("utf-8")


def _expected_export(text: str) -> str:
    """A high surrogate followed by a low one is the character they encode; any other surrogate is U+FFFD."""
    out = []
    index = 0
    while index < len(text):
        char = text[index]
        following = text[index + 1] if index + 1 < len(text) else ""
        if "\ud800" <= char <= "\udbff" and "\udc00" <= following <= "\udfff":
            out.append(chr(0x10000 + ((ord(char) - 0xD800) << 10) + (ord(following) - 0xDC00)))
            index += 2
            continue
        out.append("\ufffd" if "\ud800" <= char <= "\udfff" else char)
        index += 1
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_exported_text_always_encodes_to_utf8(text: str) -> None:
    """Whatever the text, the exported text encodes to UTF-8 and only lone surrogates are replaced."""
    exported, cut = export_text(text, None)
    exported.encode("utf-8")
    assert cut is None
    assert exported == _expected_export(text)
    if not any("\ud800" <= char <= "\udfff" for char in text):
        assert exported == text


def test_long_text_is_cut_at_the_limit_with_a_marker() -> None:
    """Text over the limit is cut to limit characters plus the marker, reporting length and SHA-256."""
    text = "0123456789" * 10
    exported, cut = export_text(text, 25)
    assert exported == text[:25] + TRUNCATION_MARKER
    assert cut == Truncation(original_length=100, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def test_text_of_exactly_the_limit_is_not_cut() -> None:
    """Text exactly as long as the limit is not cut."""
    assert export_text("x" * 25, 25) == ("x" * 25, None)


def test_cut_non_ascii_text_reports_the_original() -> None:
    """Cutting text with a lone surrogate reports the original's length and hash, and exports clean text."""
    text = "é\ud800" * 20
    exported, cut = export_text(text, 5)
    assert exported == "é\ufffdé\ufffdé" + TRUNCATION_MARKER
    assert cut is not None
    assert cut.original_length == 40
    assert cut.sha256 == hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    exported.encode("utf-8")


def test_no_limit_never_cuts() -> None:
    """limit=None exports even a megabyte of text whole."""
    text = "a" * 1_000_000
    exported, cut = export_text(text, None)
    assert exported == text
    assert cut is None


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 7, 50])
def test_json_built_from_cut_text_stays_valid(limit: int) -> None:
    """JSON built from cut text parses, whatever character the cut lands next to."""
    text = '\\"\n😀é\x00' * 20
    exported, cut = export_text(text, limit)
    assert cut is not None
    assert json.loads(user_message_json(exported))[0]["parts"][0]["content"] == exported
    built = messages_json(to_genai_messages([{"role": "user", "content": text}], limit))
    assert json.loads(built)[0]["parts"][0]["content"] == exported

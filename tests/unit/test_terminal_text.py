"""Tests of ``promptrecorder.terminal_text``: data made safe to print on a terminal."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest

from promptrecorder.terminal_text import json_printable, printable
from tests.unit.terminal_controls import BIDI_CONTROLS, is_control

EVERY_CODE_POINT = "".join(map(chr, range(0x110000)))
MUST_BE_ESCAPED = frozenset(char for char in EVERY_CODE_POINT if is_control(char))


def must_be_escaped(char: str) -> bool:
    return char in MUST_BE_ESCAPED


def test_printable_changes_exactly_the_characters_that_must_be_escaped() -> None:
    """Over all of Unicode: the characters the oracle names each become an ASCII escape that
    Python reads back as that character; every other character is left as it is."""
    escaped = [char for char in EVERY_CODE_POINT if must_be_escaped(char)]
    kept = "".join(char for char in EVERY_CODE_POINT if not must_be_escaped(char))
    assert len(escaped) == 2 * 32 + 1 + 2048 + 2 + len(BIDI_CONTROLS)  # C0 C1 DEL, surrogates, Zl Zp
    assert printable(kept) == kept
    for char in escaped:
        shown = printable(char)
        assert re.fullmatch(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[tnr])", shown), shown
        assert shown.encode("ascii").decode("unicode_escape") == char
    assert not [char for char in printable(EVERY_CODE_POINT) if must_be_escaped(char)]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("\x1b]0;pwned\x07\x1b[2J", "\\x1b]0;pwned\\x07\\x1b[2J", id="osc-title-and-csi-clear"),
        pytest.param("\x9b31mred", "\\x9b31mred", id="c1-csi-without-esc"),
        pytest.param("\x9d0;title\x9c", "\\x9d0;title\\x9c", id="c1-osc-and-st"),
        pytest.param("a\tb\nc\rd", "a\\tb\\nc\\rd", id="tab-newline-return"),
        pytest.param("\x00\x7f", "\\x00\\x7f", id="nul-and-del"),
        pytest.param(
            "admin\u202e\u2066txt.exe", "admin\\u202e\\u2066txt.exe", id="bidi-override-and-isolate"
        ),
        pytest.param("one\u2028two", "one\\u2028two", id="line-separator"),
        pytest.param("lone \ud800", "lone \\ud800", id="lone-surrogate"),
        pytest.param("Ünïcode ✓ 😀 \\ plain", "Ünïcode ✓ 😀 \\ plain", id="ordinary-text-unchanged"),
    ],
)
def test_printable_writes_controls_as_python_style_escapes(text: str, shown: str) -> None:
    """Tab, newline and CR read \\t \\n \\r; others \\xNN up to U+00FF and \\uNNNN above."""
    assert printable(text) == shown


def test_json_printable_escapes_the_same_characters_and_parses_back_to_the_same_text() -> None:
    """json_printable(json.dumps(text)) holds no character to escape and json.loads gives the text back."""
    # Each surrogate followed by "x": JSON cannot keep a high and a low one apart (next test).
    text = "".join(char + "x" if unicodedata.category(char) == "Cs" else char for char in EVERY_CODE_POINT)
    encoded = json_printable(json.dumps({"all": text}, ensure_ascii=False))
    assert not [char for char in encoded if must_be_escaped(char)]
    assert json.loads(encoded) == {"all": text}
    assert json_printable(json.dumps("\x9b\u202e", ensure_ascii=False)) == '"\\u009b\\u202e"'


def test_json_printable_of_a_high_then_a_low_lone_surrogate_reads_back_as_their_pair() -> None:
    """The documented exception: the two escapes read back as the character they encode together."""
    encoded = json_printable(json.dumps("\ud83d\ude00", ensure_ascii=False))
    assert encoded == '"\\ud83d\\ude00"'
    assert json.loads(encoded) == "\U0001f600"

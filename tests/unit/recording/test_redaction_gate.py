"""The scrubber's literal pre-check never changes what the built-in patterns scrub.

``SecretScrubber`` skips its regex for text that holds none of the literals every match of
a built-in pattern contains. A scrubber with one extra (never matching) pattern has no
pre-check, so both must agree on every text.
"""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promptrecorder.recording.redaction import (
    _BUILTIN_CHARACTERS,
    _BUILTIN_LITERALS,
    BUILTIN_SECRET_PATTERNS,
    GATED_LENGTH,
    NON_ASCII_CASES,
    SecretScrubber,
)

GATED = SecretScrubber()
UNGATED = SecretScrubber(extra={"never": r"(?!)"})

# Pieces of secrets and their surroundings, in several cases, with the characters that
# case-insensitive matching equates with ASCII letters (U+017F LONG S, U+212A KELVIN SIGN).
FRAGMENTS = [
    "sk-",
    "sk-ant-",
    "sk-proj-",
    "SK-",
    "AIza",
    "aiza",
    "ghp_",
    "gho_",
    "GHP_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "XOXB-",
    "AKIA",
    "ASIA",
    "akia",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "aw\u017f_\u017fecret_acce\u017f\u017f_key",
    "Aws",
    "Bearer",
    "BEARER",
    "bearer",
    "beareR",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "-----BEGIN",
    "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "ABCDEFGHIJKLMNOP",
    "0123456789",
    "=",
    ":",
    '"',
    "'",
    " ",
    "\n",
    "_",
    "-",
    "/",
    "+",
    "é",
    "K",
    "\u017f",
]
texts = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS), st.text(alphabet="aAbBkKsSwWeErR\u017fK_-: =\n0123456789", max_size=6)
    ),
    max_size=24,
).map("".join)


def test_the_ungated_scrubber_is_the_reference():
    assert UNGATED._cased is None
    assert GATED._cased is not None
    assert set(GATED.kinds) == set(BUILTIN_SECRET_PATTERNS)


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_the_pre_check_never_changes_the_result(text):
    assert GATED(text) == UNGATED(text)


def test_case_insensitive_patterns_match_through_unicode_case_folding():
    text = "aw\u017f_\u017fecret_acce\u017f\u017f_key = abcdefghijklmnopqrstuvwxyz0123456789ABCD and beareR abcdefghijklmnop1234"
    assert GATED(text) == UNGATED(text)
    assert GATED(text)[1] == 2


def test_a_subset_of_the_built_in_patterns_keeps_the_pre_check():
    scrubber = SecretScrubber({"slack_token": BUILTIN_SECRET_PATTERNS["slack_token"]})
    assert scrubber._cased == ("xox",)
    assert scrubber("token xoxb-1234567890abc") == ("token [REDACTED:slack_token]", 1)
    assert scrubber("sk-proj-abcdefghijklmnopqrstuvwx") == ("sk-proj-abcdefghijklmnopqrstuvwx", 0)


# Holds every group's characters and none of its literals: in a text this long each group
# passes its character check and its gates (searched from GATED_LENGTH characters on) decide.
FILLER = ("G-k-A9_x-/:= Bb " * (GATED_LENGTH // 8))[: GATED_LENGTH + 1]


def test_a_long_text_with_every_character_and_no_literal_searches_no_kind():
    every_set = [characters for sets in _BUILTIN_CHARACTERS.values() for characters in sets]
    assert all(character in FILLER for characters in every_set for character in characters)
    assert GATED._candidates(FILLER) == []
    assert GATED._candidates(FILLER[: GATED_LENGTH - 1]) == []  # the same answer without the gates


@pytest.mark.parametrize(
    ("kind", "literal"),
    [(kind, literal) for kind, (cased, _) in _BUILTIN_LITERALS.items() for literal in cased],
)
def test_each_cased_literal_passes_its_gates_anywhere_in_a_long_text(kind, literal):
    """The gates stand for every literal: a kind whose literal a long text holds, at its start,
    middle or end, is searched."""
    index = GATED.kinds.index(kind)
    for text in (literal + FILLER, FILLER + literal + FILLER, FILLER + literal):
        assert len(text) >= GATED_LENGTH
        assert index in GATED._candidates(text)


@settings(max_examples=1500, deadline=None)
@given(texts)
def test_the_gates_never_change_the_result(text):
    for long_text in (FILLER + text, text + FILLER):
        assert GATED(long_text) == UNGATED(long_text)


def test_the_non_ascii_characters_ignorecase_takes_for_ascii_letters_are_all_known():
    """The pre-check folds these onto their letter (not casefold(), which is slow on text that
    is not ASCII): every code point past ASCII is tried against every ASCII letter."""
    everything = "".join(chr(point) for point in range(0x80, 0x110000) if not 0xD800 <= point <= 0xDFFF)
    found = {}
    for letter in string.ascii_lowercase:
        for character in re.findall(f"(?i:{letter})", everything):
            found[character] = letter
    assert found == NON_ASCII_CASES


@pytest.mark.parametrize("filler", ["", "→ “quoted” café 😀 " * 20])
@pytest.mark.parametrize(
    "secret",
    [
        "aws_secret_access_key = " + "A" * 40,
        "AW\u017f_\u017fECRET_ACCE\u017f\u017f_KEY: " + "b" * 40,
        "Authorization: BeArEr abcdefghijklmnop1234",
    ],
)
def test_case_insensitive_kinds_are_found_in_text_that_is_not_ascii(filler, secret):
    text = filler + secret + filler
    assert GATED(text) == UNGATED(text)
    assert GATED(text)[1] == 1

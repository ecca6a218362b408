"""Capture modes, secret scrubbing and the redaction hook: the same in memory and in the export."""

from __future__ import annotations

import json
import logging
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.recording import semconv
from promptrecorder.recording.redaction import (
    _BUILTIN_CHARACTERS,
    _BUILTIN_LITERALS,
    BUILTIN_SECRET_PATTERNS,
    SecretScrubber,
    _fold,
    capture_from_environment,
)
from tests.conftest import Tracing

SECRETS = {
    "openai_api_key": "sk-proj-Ab3dEfGhIjKlMnOpQrStUvWxYz0123456789",
    "anthropic_api_key": "sk-ant-api03-Ab3dEfGhIjKlMnOpQrStUvWxYz",
    "google_api_key": "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
    "github_token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "slack_token": "xoxb-1234567890-abcdefghij",
    "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "bearer_token": "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "pgp_private_key": (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGXabcdEF\n=abCD\n-----END PGP PRIVATE KEY BLOCK-----"
    ),
    "slack_app_token": "xapp-1-A0123456789-1234567890123-abcdef0123",
    "slack_webhook_url": "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/abcdefghijklmnopqrstuvwx",
    "google_oauth_client_secret": "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",
    "google_oauth_access_token": "ya29.a0AfH6SMBx-abcdefghijklmnopqrstuvwxyz0123",
}


@pytest.fixture(autouse=True)
def _no_capture_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTRECORDER_CAPTURE_CONTENT", raising=False)
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)


def _exported_texts(tracing: Tracing) -> str:
    """Every attribute value of every exported event, as one string to search."""
    return json.dumps(
        [dict(event.attributes or {}) for span in tracing.spans() for event in span.events], default=str
    )


# --- the scrubber ------------------------------------------------------------------------


def test_every_builtin_pattern_is_exercised_here() -> None:
    """The table above covers each built-in kind (a new kind needs a sample)."""
    assert set(SECRETS) == set(BUILTIN_SECRET_PATTERNS)


@pytest.mark.parametrize(("kind", "secret"), SECRETS.items(), ids=list(SECRETS))
def test_each_kind_of_secret_is_replaced(kind: str, secret: str) -> None:
    """A secret in the middle of a sentence becomes [REDACTED:<kind>] and is counted."""
    scrubbed, count = SecretScrubber()(f"before {secret} after")
    assert count == 1
    assert f"[REDACTED:{kind}]" in scrubbed
    assert scrubbed.startswith("before ")
    assert scrubbed.endswith(" after")


@pytest.mark.parametrize(
    "text",
    [
        "Ask me anything about the task-list, sk-short",
        "The bearer of bad news",
        "AKIA is a prefix, AKIA123 is not a key",
        "ghp_short",
        "-----BEGIN CERTIFICATE----- is public",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    """Words that merely resemble a secret's prefix are not replaced."""
    assert SecretScrubber()(text) == (text, 0)


def test_extra_patterns_are_added_and_bad_ones_refused() -> None:
    """Callers can add kinds; a name that is not an identifier or a broken regex fails at once."""
    scrubber = SecretScrubber(extra={"employee_id": r"\bEMP-\d{6}\b"})
    assert scrubber("badge EMP-123456 and sk-proj-Ab3dEfGhIjKlMnOpQrStUvWx")[0] == (
        "badge [REDACTED:employee_id] and [REDACTED:openai_api_key]"
    )
    with pytest.raises(ValueError, match="identifiers"):
        SecretScrubber(extra={"not valid": "x"})
    with pytest.raises(ValueError, match="not a valid regular expression"):
        SecretScrubber(extra={"broken": "(unclosed"})
    with pytest.raises(ValueError, match="not a valid regular expression"):
        SecretScrubber(extra={"global_flag": "(?i)abc"})


# --- kinds the first scrubber missed ------------------------------------------------------

PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKB\nwEAAQ=="


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # AWS key ids with no label, glued to one, or in a URL-encoded query.
        ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws_access_key_id]"),
        ("AWS_KEY_AKIAIOSFODNN7EXAMPLE", "AWS_KEY_[REDACTED:aws_access_key_id]"),
        ("id=ASIAY34FZKBOKMUTVV7A&x=1", "id=[REDACTED:aws_access_key_id]&x=1"),
        ("X-Amz-Credential%3DAKIAIOSFODNN7EXAMPLE%2F", "X-Amz-Credential%3D[REDACTED:aws_access_key_id]%2F"),
        ("export KEY=AKIAIOSFODNN7EXAMPLEwJalrXUtn", "export KEY=[REDACTED:aws_access_key_id]wJalrXUtn"),
        # PEM keys with no END line: from BEGIN to the end of the base64 run, in every layout.
        (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n\nThanks!", "[REDACTED:private_key]\n\nThanks!"),
        (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\nThat is all", "[REDACTED:private_key]\nThat is all"),
        (
            '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkq\\nhkiG9w0BAQEF\\n", "id": 1}',
            '{"private_key": "[REDACTED:private_key]\\n", "id": 1}',
        ),
        (
            "tls:\n  key: |\n    -----BEGIN EC PRIVATE KEY-----\n    MHcCAQEEIIrYSSNQFaA2Hwf1\n    oAoGCCqGSM49==\n  cert: x",
            "tls:\n  key: |\n    [REDACTED:private_key]\n  cert: x",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,0A1B\n\nMIIEpAIB\n",
            "[REDACTED:private_key]\n",
        ),
        (
            "KEY=-----BEGIN PRIVATE KEY----- " + "A" * 64 + " " + "B" * 64 + " Cc==",
            "KEY=[REDACTED:private_key]",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----b3BlbnNzaC1rZXk", "[REDACTED:private_key]"),
        # PGP private key blocks, with and without their END line.
        (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBGX\n=abCD\n-- me",
            "[REDACTED:pgp_private_key]\n-- me",
        ),
        (f"a {SECRETS['pgp_private_key']} b", "a [REDACTED:pgp_private_key] b"),
        # Slack app tokens and webhook URLs, Google OAuth client secrets and access tokens.
        (f"token {SECRETS['slack_app_token']}.", "token [REDACTED:slack_app_token]."),
        (f"POST {SECRETS['slack_webhook_url']} now", "POST [REDACTED:slack_webhook_url] now"),
        ("hooks.slack.com/workflows/T01/A02/abc123", "[REDACTED:slack_webhook_url]"),
        (f"secret={SECRETS['google_oauth_client_secret']}", "secret=[REDACTED:google_oauth_client_secret]"),
        (
            f"Bearer-less {SECRETS['google_oauth_access_token']}",
            "Bearer-less [REDACTED:google_oauth_access_token]",
        ),
    ],
)
def test_kinds_the_first_scrubber_missed_are_caught(text: str, expected: str) -> None:
    """Each of these leaked before issue 11; each is now replaced, and what follows it is kept."""
    assert SecretScrubber()(text)[0] == expected


@pytest.mark.parametrize(
    "text",
    [
        "The Slack docs describe hooks.slack.com/services/ in general",
        "ya29. is how Google access tokens start",
        "GOCSPX- prefixes a client secret",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQENBFabc\n-----END PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----",
        "xapp- alone, and AKIAIOSFODNN7EXAMPLEABC is 23 characters long",
    ],
)
def test_look_alikes_of_the_new_kinds_are_left_alone(text: str) -> None:
    """A prefix with no secret after it, public keys and certificates are not secrets."""
    assert SecretScrubber()(text) == (text, 0)


def test_each_begin_line_without_an_end_line_is_one_secret() -> None:
    """BEGIN lines repeated with no END: each is replaced on its own, the line breaks kept."""
    assert SecretScrubber()("-----BEGIN PRIVATE KEY-----\n" * 3) == ("[REDACTED:private_key]\n" * 3, 3)


def test_an_end_line_closes_the_block_as_before() -> None:
    """With an END line the whole block goes, whatever lies between (as the first scrubber did)."""
    text = "a -----BEGIN PRIVATE KEY-----\nnot base64: here!\n-----END RSA PRIVATE KEY----- b"
    assert SecretScrubber()(text) == ("a [REDACTED:private_key] b", 1)


def test_only_the_kinds_whose_literal_a_text_holds_are_searched() -> None:
    """Ordinary English with "task-" and "risk-" runs the OpenAI pattern (the one "sk-" may
    start), no other, and text without any literal runs none."""
    scrubber = SecretScrubber()
    prose = "The task-list and the risk-register were reviewed. " * 20
    searched = {scrubber.kinds[index] for index in scrubber._candidates(prose)}
    assert searched == {"openai_api_key"}
    assert scrubber(prose) == (prose, 0)
    assert scrubber._candidates("The quick brown fox jumps over the lazy dog.") == []


@pytest.mark.parametrize("kind", list(BUILTIN_SECRET_PATTERNS))
# The autouse fixture only clears environment variables, which nothing here reads.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_match_holds_what_the_pre_check_looks_for(kind: str, data: st.DataObject) -> None:
    """Any text a built-in pattern matches holds every character of one of its kind's sets and
    one of its literals (a case-insensitive one in its fold): the pre-check that skips
    kinds lacking them never skips a kind that matches."""
    match = data.draw(st.from_regex(re.compile(BUILTIN_SECRET_PATTERNS[kind]), fullmatch=True))
    assert any(
        all(character in match for character in characters) for characters in _BUILTIN_CHARACTERS[kind]
    )
    cased, case_insensitive = _BUILTIN_LITERALS[kind]
    folded = _fold(match)
    assert any(literal in match for literal in cased) or any(
        literal in folded for literal in case_insensitive
    )
    assert SecretScrubber()._candidates(match) != []


@pytest.mark.parametrize(
    "text",
    [
        "gpt-4o-mini",
        "claude-3-5-sonnet-20241022",
        "text-embedding-3-small",
        '{"user": "alice", "team": "support", "temperature": 0.2}',
        "Please summarise the following support ticket in two sentences.",
    ],
)
def test_model_names_and_metadata_run_no_pattern(text: str) -> None:
    """Everyday short texts lack the characters and literals of every kind: no regex runs."""
    scrubber = SecretScrubber()
    assert scrubber._candidates(text) == []
    assert scrubber(text) == (text, 0)


# --- the first scrubber as the reference --------------------------------------------------

# The patterns as they were before issue 11 (e580f4b), in one alternation as they ran then.
# The PEM one is quadratic on BEGIN lines without END: only small texts are given to it.
OLD_PATTERNS = {
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    "anthropic_api_key": r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
    "openai_api_key": r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_\-]{35}",
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9\-]{10,}",
    "aws_access_key_id": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "aws_secret_access_key": r"(?i:\baws_?secret_?access_?key\b)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}",
    "bearer_token": r"(?i:\bbearer)\s+[A-Za-z0-9._~+/=\-]{16,}",
}
OLD_REGEX = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in OLD_PATTERNS.items()))


def old_scrub(text: str) -> tuple[str, int]:
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return f"[REDACTED:{match.lastgroup}]"

    return OLD_REGEX.sub(replace, text), count


OLD_KINDS = [kind for kind in SECRETS if kind in OLD_PATTERNS]
OLD_KIND_REGEXES = [re.compile(pattern) for pattern in OLD_PATTERNS.values()]


def old_left_a_secret_half_done(text: str) -> bool:
    """Whether a secret the first scrubber replaced swallowed the start of another one, whose
    rest it then left in clear (the new scrubber replaces both whole)."""
    replaced = list(OLD_REGEX.finditer(text))
    return any(
        first.start() < other.start() < first.end() < other.end()
        for regex in OLD_KIND_REGEXES
        for other in regex.finditer(text)
        for first in replaced
    )


# Every kind the first scrubber caught, in the places a secret turns up, and look-alikes.
CORPUS = [
    *(f"before {SECRETS[kind]} after" for kind in OLD_KINDS),
    *(f"{SECRETS[kind]}" for kind in OLD_KINDS),
    *(f'{{"{kind}": "{SECRETS[kind]}"}}' for kind in OLD_KINDS),
    *(f"export {kind.upper()}={SECRETS[kind]}\n" for kind in OLD_KINDS),
    " ".join(SECRETS[kind] for kind in OLD_KINDS),
    "Ask me anything about the task-list, sk-short",
    "The bearer of bad news",
    "AKIA is a prefix, AKIA123 is not a key",
    "ghp_short",
    "-----BEGIN CERTIFICATE----- is public",
    "AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
    "aw\u017f_\u017fecret_acce\u017f\u017f_key = abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "curl -H 'authorization: BEARER abcdefghijklmnop1234' https://api",
    "sk-ant-api03-" + "x" * 90 + " and sk-" + "y" * 48,
    "github_pat_" + "a" * 82,
    "two blocks: " + SECRETS["private_key"] + " and " + SECRETS["private_key"],
    "-----BEGIN PRIVATE KEY-----\nA\n-----BEGIN RSA PRIVATE KEY-----\nB\n-----END RSA PRIVATE KEY-----\ntail",
    "an END line alone: -----END PRIVATE KEY-----",
    "",
]


@pytest.mark.parametrize("text", CORPUS)
def test_the_corpus_is_scrubbed_exactly_as_before(text: str) -> None:
    """Every secret the first scrubber caught is caught the same way, with the same count."""
    assert SecretScrubber()(text) == old_scrub(text)


# Pieces whose concatenations the first scrubber handled as the new one must: only kinds
# it knew, PEM blocks complete (a BEGIN with no END is a new kind of catch), AWS key ids
# set apart by spaces (one glued to a word is a new catch).
OLD_FRAGMENTS = [
    *(SECRETS[kind] for kind in OLD_KINDS if kind != "aws_access_key_id"),
    " AKIAIOSFODNN7EXAMPLE ",
    " ASIAY34FZKBOKMUTVV7A ",
    "sk-",
    "sk-ant-",
    "sk-proj-",
    "AIza",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "aws_secret_access_key",
    "AWS_SECRET_ACCESS_KEY",
    "aw\u017f_\u017fecret_acce\u017f\u017f_key",
    "Bearer",
    "bearer",
    "-----END RSA PRIVATE KEY-----",
    "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
    "ABCDEFGHIJKLMNOP",
    "0123456789",
    "task-",
    *"=:\"' \n_-/+.é\u017f",
]
NEW_FRAGMENTS = [
    *OLD_FRAGMENTS,
    *SECRETS.values(),
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\n",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n",
    "-----END PGP PRIVATE KEY BLOCK-----",
    "\\n",
    "AKIA",
    "ASIA",
    "xapp-",
    "GOCSPX-",
    "ya29.",
    "https://hooks.slack.com/services/",
    "hooks.slack.com/",
    "T0AAA/",
]


def _random_texts(fragments: list[str], seed: int, count: int = 20_000) -> list[str]:
    """Seeded concatenations of fragments and random characters near them, up to ~24 pieces."""
    rng = random.Random(seed)
    alphabet = "aAbBkKsSwWeErRxX_-: =\n0123456789/+."
    texts = []
    for _ in range(count):
        pieces = []
        for _ in range(rng.randrange(1, 25)):
            if rng.random() < 0.6:
                pieces.append(rng.choice(fragments))
            else:
                pieces.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 7))))
        texts.append("".join(pieces))
    return texts


def test_random_texts_of_the_old_kinds_are_scrubbed_exactly_as_before() -> None:
    """20,000 random texts made of the kinds the first scrubber knew: the same output, the same count."""
    scrubber = SecretScrubber()
    texts = _random_texts(OLD_FRAGMENTS, seed=11)
    assert sum(old_scrub(text)[1] for text in texts) > 20_000  # the texts are full of secrets
    changed = [text for text in texts if scrubber(text) != old_scrub(text)]
    # Only where the first scrubber left half a secret in clear may the results differ.
    different = [text for text in changed if not old_left_a_secret_half_done(text)]
    assert len(changed) < 2_000
    assert different == []


@pytest.mark.parametrize(
    "text",
    [
        "xoxb-1234567890-" + SECRETS["private_key"],
        SECRETS["google_oauth_client_secret"] + SECRETS["private_key"],
        SECRETS["slack_webhook_url"] + SECRETS["pgp_private_key"],
        "ya29." + SECRETS["aws_secret_access_key"],
    ],
)
def test_a_secret_glued_to_the_one_before_it_is_replaced_whole(text: str) -> None:
    """When one secret's characters run into the next one, both go (the first scrubber left
    the rest of the second in clear)."""
    scrubbed, count = SecretScrubber()(text)
    assert (count, scrubbed.count("[REDACTED:")) == (1, 1)
    assert scrubbed.startswith("[REDACTED:")
    assert scrubbed.endswith("]")


def test_no_secret_the_first_scrubber_found_survives_in_random_texts() -> None:
    """20,000 random texts with every kind, old and new, and broken key blocks: whatever the
    first scrubber replaced is gone from the new output too."""
    scrubber = SecretScrubber()
    survivors = []
    for text in _random_texts(NEW_FRAGMENTS, seed=12):
        replaced = [(start, end) for start, end, _ in scrubber.secrets(text)]
        survivors += [
            (text, match.group())
            for match in OLD_REGEX.finditer(text)
            if not any(start <= match.start() and match.end() <= end for start, end in replaced)
        ]
    assert survivors == []


def test_the_pre_check_never_changes_what_the_new_kinds_catch() -> None:
    """Skipping the kinds whose literals a text lacks changes nothing: a scrubber with an
    extra pattern (which has no pre-check, so searches every kind) agrees on every text."""
    gated, ungated = SecretScrubber(), SecretScrubber(extra={"never": r"(?!)"})
    assert ungated._literals is None
    texts = _random_texts(NEW_FRAGMENTS, seed=13, count=5_000)
    assert [text for text in texts if gated(text) != ungated(text)] == []


def test_secrets_lists_what_the_scrubber_replaces() -> None:
    """secrets() gives the spans and kinds that __call__ replaces, left to right."""
    text = f"a {SECRETS['github_token']} b {SECRETS['private_key']}"
    found = list(SecretScrubber().secrets(text))
    assert [(text[start:end], kind) for start, end, kind in found] == [
        (SECRETS["github_token"], "github_token"),
        (SECRETS["private_key"], "private_key"),
    ]


# --- linear time on hostile text ---------------------------------------------------------

MEGABYTE = 1 << 20


def _repeated(unit: str, size: int = MEGABYTE) -> str:
    return (unit * (size // len(unit) + 1))[:size]


# Each of these, at 1 MB, is what made or could make a regex backtrack over the rest of the
# text at every start; with the old scrubber the first took 384 s. No time is asserted here
# (bench/scrub.py measures it): a quadratic pattern would make this test run for minutes.
ADVERSARIAL = {
    # The last line is cut short by the megabyte's end, so one fewer than the lines begun.
    "begin_lines_without_end": (_repeated("-----BEGIN PRIVATE KEY-----\n"), 37_449),
    "pgp_begin_lines_without_end": (_repeated("-----BEGIN PGP PRIVATE KEY BLOCK-----\n"), 27_594),
    "begin_then_base64": ("-----BEGIN PRIVATE KEY-----\n" + _repeated("QUJDREVGR0hJSktMTU5P\n"), 1),
    "begin_then_line_breaks": ("-----BEGIN PRIVATE KEY-----" + _repeated("\n"), 1),
    "begin_then_spaced_pieces": ("-----BEGIN PRIVATE KEY-----\n" + _repeated("A" * 39 + " "), 1),
    "end_lines_only": (_repeated("-----END PRIVATE KEY-----\n"), 0),
    "openai_prefix": (_repeated("sk-"), 1),
    "anthropic_prefix": (_repeated("sk-ant-"), 1),
    # Only the last 20 characters are an id (AKIA and 16 more, then the end of the text).
    "aws_key_id_prefix": (_repeated("AKIA"), 1),
    "slack_prefix": (_repeated("xoxb-"), 1),
    "github_prefix": (_repeated("ghp_"), 0),
    "github_pat_prefix": (_repeated("github_pat_!"), 0),
    "bearer_words": (_repeated("bearer "), 0),
    "aws_secret_labels": (_repeated("aws_secret_access_key = "), 0),
    "webhook_prefix": (_repeated("hooks.slack.com/services/a"), 0),
    "task_dashes": (_repeated("task-"), 0),
    "one_character": (_repeated("a"), 0),
}


class CountingPattern:
    """A compiled regex that notes where each search starts."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.starts: list[int] = []

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        self.starts.append(pos)
        return self.pattern.search(text, pos)


@pytest.mark.parametrize(
    "text",
    [
        ADVERSARIAL["begin_lines_without_end"][0],
        ADVERSARIAL["begin_lines_without_end"][0] + "-----END PRIVATE KEY-----",
        _repeated("xoxb-1234567890-----BEGIN PRIVATE KEY-----\n"),
        _repeated(f"{SECRETS['github_token']} {SECRETS['private_key']} {SECRETS['bearer_token']}\n"),
    ],
    ids=["begin_lines", "begin_lines_then_end", "slack_glued_to_begin_lines", "three_kinds"],
)
def test_each_kind_and_each_end_line_is_searched_for_forwards_only(text: str) -> None:
    """Without timing anything: every search of a kind starts after the previous one (so the
    text is scanned once per kind), and an END line is searched for once per END line found,
    not once per BEGIN line (which made the first scrubber quadratic)."""
    scrubber = SecretScrubber()
    kinds = [CountingPattern(regex) for regex in scrubber._regexes]
    ends = [None if end is None else CountingPattern(end) for end in scrubber._block_ends]
    scrubber._regexes = kinds  # type: ignore[assignment]  # counts, then searches as before
    scrubber._block_ends = ends  # type: ignore[assignment]
    assert scrubber(text)[1] > 0
    for counted in [*kinds, *ends]:
        if counted is not None:
            assert counted.starts == sorted(set(counted.starts))
    private_key_ends = ends[scrubber.kinds.index("private_key")]
    assert private_key_ends is not None
    assert len(private_key_ends.starts) <= text.count("-----END") + 1


@pytest.mark.parametrize(("text", "secrets"), ADVERSARIAL.values(), ids=list(ADVERSARIAL))
def test_megabytes_of_hostile_text_are_scrubbed_in_one_pass(text: str, secrets: int) -> None:
    """Each finishes (in well under a second on an idle core) and finds what it holds."""
    scrubbed, count = SecretScrubber()(text)
    assert count == secrets
    if secrets == 0:
        assert scrubbed == text


# --- applied by a recorder ------------------------------------------------------------------


def test_secrets_are_scrubbed_in_memory_and_in_the_export_by_default(tracing: Tracing) -> None:
    """A key in a prompt, a message, a tool call and a response never reaches memory or the exporter."""
    key = SECRETS["openai_api_key"]
    messages = [
        {"role": "system", "content": f"Use key {key}"},
        {"role": "user", "content": [{"type": "text", "text": f"my key is {key}"}]},
    ]
    with PromptRecorder("scrub", tracer_provider=tracing.provider) as recorder:
        record = autorecord(messages, f"Your key {key} is noted.")
    assert record is not None
    assert key not in repr(record)
    assert record.prompt == "my key is [REDACTED:openai_api_key]"
    assert record.response == "Your key [REDACTED:openai_api_key] is noted."
    assert key not in _exported_texts(tracing)
    assert "[REDACTED:openai_api_key]" in _exported_texts(tracing)
    assert recorder.redactions.secrets == 3


def test_scrubbing_can_be_turned_off(tracing: Tracing) -> None:
    """scrub_secrets=False keeps text exactly as given."""
    key = SECRETS["openai_api_key"]
    with PromptRecorder("raw", tracer_provider=tracing.provider, scrub_secrets=False):
        record = autorecord(f"key {key}", "ok")
    assert record is not None
    assert record.prompt == f"key {key}"


def test_the_redaction_hook_applies_identically_to_memory_and_export(tracing: Tracing) -> None:
    """The hook sees every text; its result is what is kept and exported, and changes are counted."""
    seen: list[str] = []

    def hide_emails(text: str) -> str:
        seen.append(text)
        return text.replace("ada@example.com", "<email>")

    with PromptRecorder("hook", tracer_provider=tracing.provider, redact=hide_emails) as recorder:
        record = autorecord("Write to ada@example.com", "Sent to ada@example.com")
        autorecord("nothing to hide", "fine")
    assert record is not None
    assert (record.prompt, record.response) == ("Write to <email>", "Sent to <email>")
    exported = _exported_texts(tracing)
    assert "ada@example.com" not in exported
    assert exported.count("<email>") >= 4  # text and messages JSON of both events
    assert recorder.redactions.redacted == 2
    assert "nothing to hide" in seen


def test_metadata_capture_keeps_no_text(tracing: Tracing) -> None:
    """capture='metadata': model, tokens and timings only, in memory and in the export."""
    with PromptRecorder("meta", tracer_provider=tracing.provider, capture="metadata"):
        record = autorecord(
            [{"role": "user", "content": "secret plan"}],
            "secret answer",
            model="m",
            input_tokens=3,
            output_tokens=4,
        )
    assert record is not None
    assert (record.prompt, record.response, record.messages) == ("", "", None)
    assert (record.model, record.input_tokens, record.output_tokens) == ("m", 3, 4)
    exported = _exported_texts(tracing)
    assert "secret" not in exported
    prompt_event = tracing.span("invoke_workflow meta").events[0]
    assert prompt_event.attributes is not None
    assert prompt_event.attributes[semconv.GEN_AI_REQUEST_MODEL] == "m"


def test_no_capture_records_nothing(tracing: Tracing) -> None:
    """capture='none': autorecord returns None and adds no events; the block's span still exists."""
    with PromptRecorder("off", tracer_provider=tracing.provider, capture="none") as recorder:
        assert autorecord("p", "r") is None
    assert len(recorder) == 0
    assert tracing.span("invoke_workflow off").events == ()


@pytest.mark.parametrize(
    ("ours", "official", "expected"),
    [
        (None, None, "full"),
        ("metadata", None, "metadata"),
        ("NONE", "SPAN_AND_EVENT", "none"),
        (None, "NO_CONTENT", "metadata"),
        (None, "false", "metadata"),
        (None, "SPAN_ONLY", "full"),
        (None, "true", "full"),
    ],
)
def test_the_capture_default_follows_the_variables(
    monkeypatch: pytest.MonkeyPatch, ours: str | None, official: str | None, expected: str
) -> None:
    """PROMPTRECORDER_CAPTURE_CONTENT wins; the official GenAI variable is honoured otherwise."""
    if ours is not None:
        monkeypatch.setenv("PROMPTRECORDER_CAPTURE_CONTENT", ours)
    if official is not None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", official)
    assert capture_from_environment() == expected


def test_the_variable_applies_to_recorders_without_their_own_setting(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recorder with capture=None reads the process default when it is entered; its own setting wins."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    with PromptRecorder("default", tracer_provider=tracing.provider):
        default = autorecord("text", "text")
    with PromptRecorder("explicit", tracer_provider=tracing.provider, capture="full"):
        explicit = autorecord("text", "text")
    assert default is not None
    assert explicit is not None
    assert (default.prompt, explicit.prompt) == ("", "text")


def test_a_bad_capture_variable_falls_back_to_metadata_and_says_so(
    tracing: Tracing, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A misspelt mode never stops the block and never leaks more than metadata."""
    monkeypatch.setenv("PROMPTRECORDER_CAPTURE_CONTENT", "everything")
    with (
        caplog.at_level(logging.WARNING, logger="promptrecorder"),
        PromptRecorder("typo", tracer_provider=tracing.provider),
    ):
        record = autorecord("text", "text")
    assert record is not None
    assert record.prompt == ""
    assert any("PROMPTRECORDER_CAPTURE_CONTENT must be one of" in message for message in caplog.messages)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"capture": "all"}, ValueError),
        ({"redact": "not callable"}, TypeError),
        ({"scrub_secrets": "yes"}, TypeError),
    ],
)
def test_bad_content_arguments_fail_at_construction(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    """capture, redact and scrub_secrets are checked when the recorder is made."""
    with pytest.raises(error, match="`"):
        PromptRecorder("bad", **kwargs)  # type: ignore[arg-type]


def test_the_openai_api_key_never_reaches_spans_records_or_logs(
    tracing: Tracing, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 whose message quotes the whole key: the caller's exception is untouched, but the
    record, the CLIENT span and promptrecorder's logs only ever hold the redacted form."""
    import openai

    from promptrecorder import SimpleBot
    from tests.fake_openai import FakeOpenAI, error_reply

    key = SECRETS["openai_api_key"]
    server = FakeOpenAI(error_reply(401, f"Incorrect API key provided: {key}."))
    bot = SimpleBot("system", client=server.client(api_key=key))
    with (
        caplog.at_level(logging.DEBUG, logger="promptrecorder"),
        PromptRecorder("auth", tracer_provider=tracing.provider) as recorder,
        pytest.raises(openai.AuthenticationError) as raised,
    ):
        bot("hello")
    assert key in str(raised.value)  # what the caller gets is never changed
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    (record,) = recorder.records
    assert record.error is not None
    assert "[REDACTED:openai_api_key]" in record.error
    everything = repr(recorder.records) + repr([span.to_json() for span in tracing.spans()])
    assert key not in everything
    assert all(key not in message for message in caplog.messages)


def test_an_exception_leaving_a_block_is_scrubbed_on_the_span(tracing: Tracing) -> None:
    """The recorder span's status and exception event never carry a key the exception quoted."""
    key = SECRETS["github_token"]
    with pytest.raises(RuntimeError), PromptRecorder("leaky", tracer_provider=tracing.provider):
        raise RuntimeError(f"token {key} rejected")
    span = tracing.span("invoke_workflow leaky")
    assert key not in span.to_json()
    assert "[REDACTED:github_token]" in (span.status.description or "")


def test_with_metadata_capture_an_exception_keeps_only_its_type(tracing: Tracing) -> None:
    """No text captured: the exception's message and stack trace stay out of the span too."""
    with (
        pytest.raises(ValueError, match="customer"),
        PromptRecorder("quiet", tracer_provider=tracing.provider, capture="metadata"),
    ):
        raise ValueError("customer said: my password is hunter2")
    span = tracing.span("invoke_workflow quiet")
    assert "hunter2" not in span.to_json()
    assert span.status.description == "ValueError"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ValueError"

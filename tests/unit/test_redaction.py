"""Capture modes, secret scrubbing and the redaction hook: the same in memory and in the export."""

from __future__ import annotations

import json
import logging

import pytest

from promptrecorder import PromptRecorder, autorecord, semconv
from promptrecorder.redaction import (
    BUILTIN_SECRET_PATTERNS,
    SecretScrubber,
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
    prompt_event = tracing.span("meta").events[0]
    assert prompt_event.attributes is not None
    assert prompt_event.attributes[semconv.GEN_AI_REQUEST_MODEL] == "m"


def test_no_capture_records_nothing(tracing: Tracing) -> None:
    """capture='none': autorecord returns None and adds no events; the block's span still exists."""
    with PromptRecorder("off", tracer_provider=tracing.provider, capture="none") as recorder:
        assert autorecord("p", "r") is None
    assert len(recorder) == 0
    assert tracing.span("off").events == ()


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
    span = tracing.span("leaky")
    assert key not in span.to_json()
    assert "[REDACTED:github_token]" in (span.status.description or "")


def test_with_metadata_capture_an_exception_keeps_only_its_type(tracing: Tracing) -> None:
    """No text captured: the exception's message and stack trace stay out of the span too."""
    with (
        pytest.raises(ValueError, match="customer"),
        PromptRecorder("quiet", tracer_provider=tracing.provider, capture="metadata"),
    ):
        raise ValueError("customer said: my password is hunter2")
    span = tracing.span("quiet")
    assert "hunter2" not in span.to_json()
    assert span.status.description == "ValueError"
    assert span.attributes is not None
    assert span.attributes["error.type"] == "ValueError"

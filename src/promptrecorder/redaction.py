"""What content a recorder keeps and exports: capture modes, secret scrubbing, a redaction hook.

One ``ContentPolicy`` is applied to every text of a pair (prompt, response, each message's
text, tool-call arguments) *before* the record is built, so what is kept in memory and
what is exported are the same, and the counts of what was changed are exact.

Capture modes:

- ``full``: text is kept and exported (after scrubbing and the hook);
- ``metadata``: no text at all, only model, tokens, timings, finish reasons, errors;
- ``none``: nothing is recorded (a kill switch; spans of recorders still exist).

The built-in scrubbers replace common secrets (OpenAI, Anthropic, Google, GitHub, Slack and
AWS keys, bearer tokens, private keys) with ``[REDACTED:<kind>]``. They are on by default.
"""

from __future__ import annotations

import re
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from promptrecorder import settings

CaptureMode = Literal["full", "metadata", "none"]
CAPTURE_MODES: Final = ("full", "metadata", "none")
Redactor = Callable[[str], str]

# Ordered: the more specific prefix first (Anthropic keys also start with "sk-").
BUILTIN_SECRET_PATTERNS: Final[Mapping[str, str]] = {
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

# What any match of each built-in pattern contains: (case-sensitive literals, literals of a
# case-insensitive part, found in the text's casefold()). Python's regex engine spends
# ~10 ns per character on the alternation (a leading \b defeats its literal-prefix search);
# `in` finds these literals at well under 1 ns per character, so text holding none of
# them (nearly every prompt) skips the regex. casefold() maps every character that
# IGNORECASE matches to an ASCII letter (such as U+017F to "s") onto that letter.
_BUILTIN_LITERALS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "private_key": (("-----BEGIN",), ()),
    "anthropic_api_key": (("sk-",), ()),
    "openai_api_key": (("sk-",), ()),
    "google_api_key": (("AIza",), ()),
    "github_token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), ()),
    "slack_token": (("xox",), ()),
    "aws_access_key_id": (("AKIA", "ASIA"), ()),
    "aws_secret_access_key": ((), ("aws",)),
    "bearer_token": ((), ("bearer",)),
}


class SecretScrubber:
    """Replaces secrets in text with ``[REDACTED:<kind>]``, in one regex pass.

    Example:
        >>> SecretScrubber()("my key is sk-proj-abcdefghijklmnopqrstuvwx")
        ('my key is [REDACTED:openai_api_key]', 1)

    Args:
        patterns: kind -> regular expression; the built-in set by default.
        extra: more kind -> regular expression pairs, added after the built-in ones.
    """

    def __init__(
        self,
        patterns: Mapping[str, str] = BUILTIN_SECRET_PATTERNS,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        combined = {**patterns, **(extra or {})}
        for kind, pattern in combined.items():
            if not kind.isidentifier():
                raise ValueError(f"secret pattern names must be identifiers, got {kind!r}")
            try:
                # Compiled as it will be used, inside a named group (so global flags are refused).
                re.compile(f"(?P<{kind}>{pattern})")
            except re.error as error:
                raise ValueError(
                    f"secret pattern {kind!r} is not a valid regular expression: {error}"
                ) from error
        self.kinds = tuple(combined)
        self._regex = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in combined.items()))
        # A pre-check, only when every pattern is a built-in one (others may match anything).
        self._cased: tuple[str, ...] | None = None
        self._folded: tuple[str, ...] = ()
        if all(BUILTIN_SECRET_PATTERNS.get(kind) == pattern for kind, pattern in combined.items()):
            self._cased = tuple({literal for kind in combined for literal in _BUILTIN_LITERALS[kind][0]})
            self._folded = tuple({literal for kind in combined for literal in _BUILTIN_LITERALS[kind][1]})

    def _may_match(self, text: str) -> bool:
        """False only when no pattern can match ``text``."""
        if self._cased is None:
            return True
        for literal in self._cased:
            if literal in text:
                return True
        if self._folded:
            folded = text.casefold()
            for literal in self._folded:
                if literal in folded:
                    return True
        return False

    def __call__(self, text: str) -> tuple[str, int]:
        """Return the scrubbed text and how many secrets were replaced."""
        if not self._may_match(text):
            return text, 0
        count = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal count
            count += 1
            return f"[REDACTED:{match.lastgroup}]"

        return self._regex.sub(replace, text), count


DEFAULT_SCRUBBER = SecretScrubber()


@dataclass(frozen=True)
class ContentPolicy:
    """How a recorder treats content: capture mode, secret scrubbing, the caller's hook."""

    capture: CaptureMode = "full"
    scrubber: SecretScrubber | None = DEFAULT_SCRUBBER
    redact: Redactor | None = None

    @property
    def keeps_text(self) -> bool:
        return self.capture == "full"

    @property
    def records(self) -> bool:
        return self.capture != "none"

    def text(self, text: str, counter: RedactionCounter) -> str:
        """``text`` as it may be kept and exported under this policy."""
        if not text:
            return text
        if self.scrubber is not None:
            text, found = self.scrubber(text)
            if found:
                counter.add_secrets(found)
        if self.redact is not None:
            redacted = self.redact(text)
            if not isinstance(redacted, str):
                raise TypeError(f"the `redact` hook must return a str, got {type(redacted).__name__}")
            if redacted != text:
                counter.add_redacted()
            text = redacted
        return text

    def messages(
        self, messages: Iterable[Mapping[str, Any]], counter: RedactionCounter
    ) -> tuple[Mapping[str, Any], ...]:
        """Chat messages with every text (content, text parts, tool arguments) passed through ``text``."""
        return tuple(self._message(message, counter) for message in messages)

    def tool_calls(
        self, calls: Iterable[Mapping[str, Any]], counter: RedactionCounter
    ) -> tuple[Mapping[str, Any], ...]:
        return tuple(self._tool_call(call, counter) for call in calls)

    def _message(self, message: Mapping[str, Any], counter: RedactionCounter) -> Mapping[str, Any]:
        copy = dict(message)
        content = copy.get("content")
        if isinstance(content, str):
            copy["content"] = self.text(content, counter)
        elif isinstance(content, (list, tuple)):
            copy["content"] = [self._part(part, counter) for part in content]
        if copy.get("tool_calls"):
            copy["tool_calls"] = [self._tool_call(call, counter) for call in copy["tool_calls"]]
        return copy

    def _part(self, part: Any, counter: RedactionCounter) -> Any:
        if isinstance(part, Mapping) and isinstance(part.get("text"), str):
            return {**part, "text": self.text(part["text"], counter)}
        return part

    def _tool_call(self, call: Mapping[str, Any], counter: RedactionCounter) -> Mapping[str, Any]:
        function = call.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
            return {**call, "function": {**function, "arguments": self.text(function["arguments"], counter)}}
        return dict(call)


class RedactionCounter:
    """Counts of what scrubbing and the hook changed, for one recorder (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.secrets = 0
        self.redacted = 0

    def add_secrets(self, count: int) -> None:
        with self._lock:
            self.secrets += count

    def add_redacted(self) -> None:
        with self._lock:
            self.redacted += 1

    def add(self, other: RedactionCounter) -> None:
        """Add what ``other`` counted (a pass made ahead of time) to this counter."""
        with self._lock:
            self.secrets += other.secrets
            self.redacted += other.redacted


def capture_from_environment() -> CaptureMode:
    """The process-wide default capture mode from the environment.

    ``PROMPTRECORDER_CAPTURE_CONTENT`` (full | metadata | none) wins; otherwise the official
    instrumentation's ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is honoured when
    set (NO_CONTENT or false: metadata; SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT or true: full).
    A recorder exists to record content, so with neither set the default is full.
    """
    ours = settings.env(settings.PROMPTRECORDER_CAPTURE_CONTENT)
    if ours is not None:
        mode = ours.lower()
        if mode not in CAPTURE_MODES:
            raise ValueError(
                f"{settings.PROMPTRECORDER_CAPTURE_CONTENT} must be one of {CAPTURE_MODES}, got {ours!r}"
            )
        return mode  # type: ignore[return-value]  # checked just above
    official = (settings.env(settings.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT) or "").upper()
    if official in ("NO_CONTENT", "FALSE"):
        return "metadata"
    return "full"


def check_capture(value: object) -> CaptureMode:
    if value not in CAPTURE_MODES:
        raise ValueError(f"`capture` must be one of {CAPTURE_MODES}, got {value!r}")
    return value


def exception_details(policy: ContentPolicy, error: BaseException) -> tuple[str, dict[str, str]]:
    """A span status description and ``exception.*`` attributes for ``error``, under ``policy``.

    An error's message and stack trace can quote content or a key (openai's 401 quotes the
    key it was given), so they pass the same scrubbing and hook as content; with no text
    captured, only the type is kept.
    """
    kind = type(error).__qualname__
    if not policy.keeps_text:
        return kind, {"exception.message": "", "exception.stacktrace": ""}
    uncounted = RedactionCounter()
    message = policy.text(str(error), uncounted)
    stack = policy.text(
        "".join(traceback.format_exception(type(error), error, error.__traceback__)), uncounted
    )
    return f"{type(error).__name__}: {message}", {"exception.message": message, "exception.stacktrace": stack}

"""What content a recorder keeps and exports: capture modes, secret scrubbing, a redaction hook.

One ``ContentPolicy`` is applied to every text of a pair (prompt, response, each message's
text, tool-call arguments) *before* the record is built, so what is kept in memory and
what is exported are the same, and the counts of what was changed are exact.

Capture modes:

- ``full``: text is kept and exported (after scrubbing and the hook);
- ``metadata``: no text at all, only model, tokens, timings, finish reasons, errors;
- ``none``: nothing is recorded (a kill switch; spans of recorders still exist).

The built-in scrubbers replace common secrets (OpenAI, Anthropic, Google, GitHub, Slack and
AWS keys, bearer tokens, PEM and PGP private keys) with ``[REDACTED:<kind>]``. They are on
by default, and take time linear in the length of the text whatever the text is.
"""

from __future__ import annotations

import re
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from promptrecorder import settings

CaptureMode = Literal["full", "metadata", "none"]
CAPTURE_MODES: Final = ("full", "metadata", "none")
Redactor = Callable[[str], str]

# Each pattern starts with a literal (or a class of two letters), so that the regex engine
# jumps from one occurrence of it to the next at str.find speed; a leading \b would make it
# try every position (the first scrubber's alternation took ~300 ns per character). So the
# \b comes just after the literal, as a lookbehind: `sk-(?<!\wsk-)` is `\bsk-`. Linear:
# every open-ended repeat ({20,}, *, +) is last in its pattern (once it has run, the pattern
# has matched), or followed by a character it cannot match, or (the [A-Z ]* of a BEGIN
# line) in a run that no other start of the pattern can reach; so no run is rescanned from
# each of its positions. tests/unit/recording/test_redaction.py runs each kind on a megabyte of
# hostile text; bench/scrub.py measures it.
# The PEM and PGP patterns are their BEGIN line only: the scrubber carries the match on to
# the END line (searched for once, not once per BEGIN line) or, with none, to the end of
# the base64 run. Ordered: at one position the first kind that matches wins (Anthropic
# keys also start with "sk-").
BUILTIN_SECRET_PATTERNS: Final[Mapping[str, str]] = {
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "pgp_private_key": r"-----BEGIN PGP PRIVATE KEY BLOCK-----",
    "anthropic_api_key": r"sk-ant-(?<!\wsk-ant-)[A-Za-z0-9_\-]{20,}",
    "openai_api_key": r"sk-(?<!\wsk-)(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}",
    "google_api_key": r"AIza(?<!\wAIza)[0-9A-Za-z_\-]{35}",
    "google_oauth_client_secret": r"GOCSPX-(?<!\wGOCSPX-)[A-Za-z0-9_\-]{20,}",
    "google_oauth_access_token": r"ya29\.(?<!\wya29\.)[A-Za-z0-9_\-]{20,}",
    "github_token": r"g(?<!\wg)(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{40,})",
    "slack_token": r"xox(?<!\wxox)[abprs]-[A-Za-z0-9\-]{10,}",
    "slack_app_token": r"xapp-(?<!\wxapp-)[A-Za-z0-9\-]{10,}",
    "slack_webhook_url": (
        r"h(?:ttps?://h)?ooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_\-]+/[A-Za-z0-9_/\-]+"
    ),
    # Key ids are 20 characters of [A-Z0-9]; glued to a label ("KEY_AKIA...") they still count.
    "aws_access_key_id": r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Z0-9])",
    # Case-insensitive but for a first letter (which has no other case-insensitive match)
    # that the engine can jump to.
    "aws_secret_access_key": (
        r"[aA](?<!\w[aA])(?i:ws_?secret_?access_?key\b)[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}"
    ),
    "bearer_token": r"[bB](?<!\w[bB])(?i:earer)\s+[A-Za-z0-9._~+/=\-]{16,}",
}

# What any match of each built-in pattern contains: (case-sensitive literals, literals of a
# case-insensitive part, in lower case, found in the text folded by `_fold`). Only the kinds
# whose literal a text holds are searched for, and text holding none (nearly every prompt,
# every model name) skips the regexes altogether.
_BUILTIN_LITERALS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "private_key": (("-----BEGIN ",), ()),
    "pgp_private_key": (("-----BEGIN PGP PRIVATE KEY BLOCK-----",), ()),
    "anthropic_api_key": (("sk-ant-",), ()),
    "openai_api_key": (("sk-",), ()),
    "google_api_key": (("AIza",), ()),
    "google_oauth_client_secret": (("GOCSPX-",), ()),
    "google_oauth_access_token": (("ya29.",), ()),
    "github_token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), ()),
    "slack_token": (("xox",), ()),
    "slack_app_token": (("xapp-",), ()),
    "slack_webhook_url": (("hooks.slack.com/",), ()),
    "aws_access_key_id": (("AKIA", "ASIA"), ()),
    "aws_secret_access_key": ((), ("secret",)),
    "bearer_token": ((), ("bearer",)),
}
# Characters that every match of each built-in pattern holds, looked for before its
# literals: `in` finds one character at memchr speed (~0.01 ns per character, where a
# literal of several costs 0.2-0.7 ns), and most texts lack them (model names have no "k",
# "x", "A" or "G"; prose no "-", "_" or "/"). Per kind, sets of characters: every match
# holds all the characters of one of its sets (the AWS secret holds ":" or "="; the bearer
# token "b" or "B", so text in a script without Latin letters skips it). Kinds with the same
# set are checked together, and a kind in two groups once. The Slack token's "-", the AWS
# secret's ":" and "=" and the bearer token's "B" come from the pattern, not the literal;
# tests/unit/recording/test_redaction.py draws matches of every pattern and checks that each
# holds its characters and a literal.
_BUILTIN_CHARACTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "private_key": ("G-",),
    "pgp_private_key": ("G-",),
    "anthropic_api_key": ("k-",),
    "openai_api_key": ("k-",),
    "google_api_key": ("A",),
    "google_oauth_client_secret": ("G-",),
    "google_oauth_access_token": ("9",),
    "github_token": ("_",),
    "slack_token": ("x-",),
    "slack_app_token": ("x-",),
    "slack_webhook_url": ("/",),
    "aws_access_key_id": ("A",),
    "aws_secret_access_key": (":", "="),
    "bearer_token": ("b", "B"),
}
# The characters past ASCII that IGNORECASE matches to an ASCII letter, and that letter
# (tests/unit/recording/test_redaction_gate.py searches every code point for others).
NON_ASCII_CASES: Final[Mapping[str, str]] = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
# Those whose letter a case-insensitive built-in literal holds (U+017F, for "secret"), in
# UTF-8, with that letter.
_FOLDS: Final = tuple(
    (character.encode(), letter.encode())
    for character, letter in NON_ASCII_CASES.items()
    if any(letter in literal for _, insensitive in _BUILTIN_LITERALS.values() for literal in insensitive)
)


def _fold(text: str) -> str:
    """``text`` with its ASCII letters lowered and every character IGNORECASE matches to a
    letter of a case-insensitive literal written as that letter, so that it holds such a
    literal wherever a case-insensitive match holds it; other characters past ASCII become
    other characters past ASCII, never an ASCII one.

    Not ``casefold()``: on text that is not all ASCII (curly quotes, accents, emoji, other
    scripts) that runs Unicode's full case folding, 6-10 ns a character; this is 1-2 ns:
    the UTF-8 bytes are lowered (ASCII letters only) and read back as Latin-1, one
    character per byte, where a multi-byte character's bytes are all past ASCII.
    """
    if text.isascii():
        return text.lower()
    folded = text.encode("utf-8", "surrogatepass").lower()
    for character, letter in _FOLDS:
        folded = folded.replace(character, letter)
    return folded.decode("latin-1")


# A kind in the pre-check: its index, its cased literals, its case-insensitive ones.
_Member = tuple[int, tuple[str, ...], tuple[str, ...]]
# The pre-check: groups of (the first character every match of the group's kinds holds,
# the others, the group's gates, its kinds).
_PreCheck = tuple[tuple[str, str, tuple[re.Pattern[str], ...], tuple[_Member, ...]], ...]


def _pre_check(kinds: Iterable[str]) -> _PreCheck:
    """The pre-check for ``kinds``, every one of them built in."""
    groups: dict[str, list[_Member]] = {}
    for index, kind in enumerate(kinds):
        for characters in _BUILTIN_CHARACTERS[kind]:
            groups.setdefault(characters, []).append((index, *_BUILTIN_LITERALS[kind]))
    return tuple(
        (characters[:1], characters[1:], _gates(members), tuple(members))
        for characters, members in groups.items()
    )


# From this length on a group's gates are searched before its literals; below it the `in`
# of each literal costs less than a regex call (measured from 100 to 2,000 characters, the
# gates pay from ~200 characters of markdown or code and ~300 of prose).
GATED_LENGTH = 256


def _gates(members: list[_Member]) -> tuple[re.Pattern[str], ...]:
    """Regexes of which one matches any text holding a cased literal of ``members``: one per
    first character of those literals (none when a member has a case-insensitive literal,
    which they cannot stand for).

    A text that holds a group's characters but none of its literals (markdown or code holds
    nearly every group's) is then scanned once per gate, not once per literal: ``re`` runs
    an alternation whose branches share their first character as that character's scan
    (``AIza|AKIA|ASIA`` is ``A(?:Iza|KIA|SIA)``), ~0.3 ns a character, no slower than one
    ``in``; the six GitHub prefixes took six scans. Branches with different first characters
    would make ``re`` try every position that starts one, many times slower: so one gate each.
    """
    if any(case_insensitive for _, _, case_insensitive in members):
        return ()
    by_first: dict[str, set[str]] = {}
    for _, cased, _ in members:
        for literal in cased:
            by_first.setdefault(literal[:1], set()).add(literal)
    return tuple(
        re.compile("|".join(re.escape(literal) for literal in sorted(literals)))
        for literals in by_first.values()
    )


# The END line that closes each kind of key block. A block with no END line ends where
# its base64 run does: armor headers ("Proc-Type: ...") then base64, in lines broken by
# real line breaks or JSON's escaped "\n", or in pieces joined by spaces (a key pasted on
# one line). A piece shorter than 40 characters counts only when its line ends there, at a
# quote or at the next "-----" line, so ordinary words after the key are left alone. Every
# repeat is followed by a character it cannot match, and a run of line breaks is taken
# whole, never given back one at a time, by `(?=(?P<b>...))(?P=b)` (an atomic group;
# Python has those only from 3.11): so the run is scanned once.
_BLOCK_ENDS: Final[Mapping[str, re.Pattern[str]]] = {
    "private_key": re.compile(r"-----END [A-Z ]*PRIVATE KEY-----"),
    "pgp_private_key": re.compile(r"-----END PGP PRIVATE KEY BLOCK-----"),
}
_ESCAPED_NEWLINE = r"(?:\\r)?\\n"
_LINE_END_PIECE = r"[A-Za-z0-9+/=]+[ \t]*(?:[\r\n\\\"']|-----|$)"
_BREAK = (
    rf"[ \t]*(?:\r?\n|{_ESCAPED_NEWLINE})[ \t\r\n]*(?:{_ESCAPED_NEWLINE}[ \t]*)?"
    rf"|[ \t]+(?=[A-Za-z0-9+/=]{{40}}|{_LINE_END_PIECE})"
)
_BASE64_RUN: Final = re.compile(
    rf"[A-Za-z0-9+/=]*"
    rf"(?:(?=(?P<b1>{_BREAK}))(?P=b1)[A-Za-z][A-Za-z0-9-]{{0,63}}:[^\r\n\\]*)*"
    rf"(?:(?=(?P<b2>{_BREAK}))(?P=b2)(?:[A-Za-z0-9+/=]{{40,}}|(?={_LINE_END_PIECE})[A-Za-z0-9+/=]+))*"
)


class SecretScrubber:
    """Replaces secrets in text with ``[REDACTED:<kind>]``, in time linear in the text.

    Example:
        >>> SecretScrubber()("my key is sk-proj-abcdefghijklmnopqrstuvwx")
        ('my key is [REDACTED:openai_api_key]', 1)

    At each position the first kind (in order) that matches there wins, and the text is
    scanned left to right as by one alternation of all the patterns. A pattern of your own
    runs as it is: keep its repeats bounded or at its end, or it can be slow on hostile text.

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
        compiled: list[re.Pattern[str]] = []
        for kind, pattern in combined.items():
            if not kind.isidentifier():
                raise ValueError(f"secret pattern names must be identifiers, got {kind!r}")
            try:
                # Inside a group, as one alternation of them all would be (global flags are refused).
                re.compile(f"(?P<{kind}>{pattern})")
                compiled.append(re.compile(pattern))
            except re.error as error:
                raise ValueError(
                    f"secret pattern {kind!r} is not a valid regular expression: {error}"
                ) from error
        self.kinds = tuple(combined)
        self._regexes = tuple(compiled)
        builtin = [BUILTIN_SECRET_PATTERNS.get(kind) == pattern for kind, pattern in combined.items()]
        # Built-in block kinds run on to their END line or the end of their base64 run.
        self._block_ends: tuple[re.Pattern[str] | None, ...] = tuple(
            _BLOCK_ENDS.get(kind) if is_builtin else None
            for kind, is_builtin in zip(self.kinds, builtin, strict=True)
        )
        # A pre-check, only when every pattern is a built-in one (others may match anything).
        self._literals: _PreCheck | None = _pre_check(self.kinds) if all(builtin) else None

    @property
    def _cased(self) -> tuple[str, ...] | None:
        """Every case-sensitive literal the pre-check looks for; None without a pre-check."""
        if self._literals is None:
            return None
        return tuple({literal for kind in self.kinds for literal in _BUILTIN_LITERALS[kind][0]})

    def _candidates(self, text: str) -> list[int]:
        """Indexes of the kinds that may match ``text``, in order (every kind without the pre-check)."""
        if self._literals is None:
            return list(range(len(self.kinds)))
        found: list[int] = []
        looked_at: list[int] = []  # kinds whose literals were searched for
        folded: str | None = None
        # Plain loops, no any() or generators: a text with no candidate (nearly all of them)
        # costs one `in` per group, and the loops' own overhead is most of what is left.
        for first, others, gates, members in self._literals:
            if first not in text:  # the usual end of a group
                continue
            for character in others:
                if character not in text:
                    break
            else:
                if gates and len(text) >= GATED_LENGTH:
                    for gate in gates:
                        if gate.search(text) is not None:
                            break
                    else:  # none of the group's literals: the usual end for markdown and code
                        continue
                for index, cased, case_insensitive in members:
                    if index in looked_at:  # a kind in two groups (":" and "=", "b" and "B")
                        continue
                    looked_at.append(index)
                    for literal in cased:
                        if literal in text:
                            found.append(index)
                            break
                    else:
                        if case_insensitive:
                            if folded is None:
                                folded = _fold(text)
                            for literal in case_insensitive:
                                if literal in folded:
                                    found.append(index)
                                    break
        if len(found) > 1:
            found.sort()
        return found

    def __call__(self, text: str) -> tuple[str, int]:
        """Return the scrubbed text and how many secrets were replaced."""
        candidates = self._candidates(text)
        if not candidates:  # checked here, not in secrets(): a generator costs more than the check
            return text, 0
        pieces: list[str] = []
        copied = 0  # text[:copied] is in pieces already
        for start, end, kind in self._secrets_among(text, candidates):
            pieces.append(text[copied:start])
            pieces.append(f"[REDACTED:{kind}]")
            copied = end
        if not pieces:
            return text, 0
        pieces.append(text[copied:])
        return "".join(pieces), len(pieces) // 2

    def secrets(self, text: str) -> Iterator[tuple[int, int, str]]:
        """The secrets in ``text``, left to right, as (start, end, kind).

        Example:
            >>> list(SecretScrubber().secrets("key: AKIAIOSFODNN7EXAMPLE"))
            [(5, 25, 'aws_access_key_id')]
        """
        return self._secrets_among(text, self._candidates(text))

    def _secrets_among(self, text: str, candidates: list[int]) -> Iterator[tuple[int, int, str]]:
        """``secrets`` where only the kinds in ``candidates`` can match."""
        if not candidates:
            return
        if len(candidates) == 1:  # the usual case, and that of BEGIN lines repeated: ~1.7x faster
            yield from self._secrets_of_one_kind(text, candidates[0])
            return
        # The next match of each candidate kind at or after `resume`; a kind's match is
        # searched for again only once the text before it has been consumed, so each kind
        # scans the text once, and the earliest match (the first kind on a tie) wins.
        regexes = [self._regexes[index] for index in candidates]
        upcoming: list[re.Match[str] | None] = [regex.search(text) for regex in regexes]
        block_ends: dict[int, re.Match[str] | None] = {}  # per block kind: the END line found
        while True:
            first, match = -1, None
            for slot, pending in enumerate(upcoming):
                if pending is not None and (match is None or pending.start() < match.start()):
                    first, match = slot, pending
            if match is None:
                return
            start = match.start()
            end = self._extent(text, match, candidates[first], block_ends)
            # A secret that starts inside this one and runs on past it is taken whole with it:
            # otherwise its rest would be left in clear (the dashes a Slack token may hold
            # can swallow the "-----BEGIN" of a key block right after it).
            upcoming[first] = regexes[first].search(text, match.end() if match.end() > start else start + 1)
            overlapping = True
            while overlapping:
                overlapping = False
                for slot, pending in enumerate(upcoming):
                    while pending is not None and pending.start() < end:
                        other_end = self._extent(text, pending, candidates[slot], block_ends)
                        if other_end > end:
                            end, overlapping = other_end, True
                        pending = regexes[slot].search(text, max(pending.end(), pending.start() + 1))
                        upcoming[slot] = pending
            yield start, end, self.kinds[candidates[first]]
            # After an empty match (a caller's pattern can make one) step over a character, as re.sub does.
            resume = end if end > start else end + 1
            for slot, pending in enumerate(upcoming):
                if pending is not None and pending.start() < resume:
                    upcoming[slot] = regexes[slot].search(text, resume) if resume <= len(text) else None

    def _secrets_of_one_kind(self, text: str, kind: int) -> Iterator[tuple[int, int, str]]:
        """``secrets`` where only ``kind`` can match: the same walk with one kind to follow."""
        regex, name, end_line = self._regexes[kind], self.kinds[kind], self._block_ends[kind]
        block_ends: dict[int, re.Match[str] | None] = {}
        match = regex.search(text)
        while match is not None:
            start, end = match.span()
            if end_line is not None:
                end = self._block_end(text, end, end_line, block_ends, kind)
            following = regex.search(text, match.end() if match.end() > start else start + 1)
            while following is not None and following.start() < end:
                if end_line is not None:
                    end = max(end, self._block_end(text, following.end(), end_line, block_ends, kind))
                following = regex.search(text, max(following.end(), following.start() + 1))
            yield start, end, name
            match = following

    def _extent(
        self, text: str, match: re.Match[str], kind: int, found: dict[int, re.Match[str] | None]
    ) -> int:
        """Where the secret ``match`` begins ends: the match's end, or its key block's."""
        end_line = self._block_ends[kind]
        if end_line is None:
            return match.end()
        return self._block_end(text, match.end(), end_line, found, kind)

    @staticmethod
    def _block_end(
        text: str,
        header_end: int,
        end_line: re.Pattern[str],
        found: dict[int, re.Match[str] | None],
        kind: int,
    ) -> int:
        """Where a key block whose BEGIN line ends at ``header_end`` ends."""
        # The END line is searched for once per END line, not once per BEGIN line: a BEGIN
        # line repeated with no END after it would otherwise scan the rest of the text each time.
        if kind not in found or ((known := found[kind]) is not None and known.start() < header_end):
            found[kind] = end_line.search(text, header_end)
        closing = found[kind]
        if closing is not None:
            return closing.end()
        run = _BASE64_RUN.match(text, header_end)
        assert run is not None  # it can match nothing
        return run.end()


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

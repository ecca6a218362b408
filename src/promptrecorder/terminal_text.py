"""Text from records and spans made safe to print on a terminal.

A prompt, a recorder name or a span name is data, and data can hold control characters: an
``ESC]0;...BEL`` retitles the terminal, ``ESC[2J`` clears it, a C1 ``CSI`` (U+009B) starts a
sequence without any ESC, and bidi overrides (U+202E...) reorder what the reader sees
("Trojan Source"). Everything ``promptrecorder`` prints from data goes through one of the two
functions here, which show such characters as escapes instead of sending them to the terminal.

Escaped: C0 (U+0000-U+001F, including tab and newline), DEL (U+007F), C1 (U+0080-U+009F),
the bidi controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), the line and
paragraph separators (U+2028, U+2029), and lone surrogates (which a UTF-8 stdout cannot even
encode). Without a raw ESC or C1 control no escape sequence can start, so every CSI and OSC
sequence is neutralised.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _python_escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character written as a Python-style escape.

    Example:
        >>> printable("title\\x1b]0;pwned\\x07 \\u202eevil")
        'title\\\\x1b]0;pwned\\\\x07 \\\\u202eevil'

    Tab, newline and carriage return read ``\\t``, ``\\n``, ``\\r``; other characters up to
    U+00FF read ``\\xNN`` and the rest ``\\uNNNN``. Backslashes are left as they are, so a
    text that already holds the four characters ``\\x1b`` looks the same as an escaped ESC:
    this is a view for people, and ``show --json`` is the exact one.
    """
    return _UNSAFE.sub(_python_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_printable(json_text: str) -> str:
    """JSON text with the characters ``printable`` escapes written as ``\\uNNNN`` escapes.

    ``json.dumps(..., ensure_ascii=False)`` escapes C0 but leaves DEL, C1, the bidi controls and
    lone surrogates raw; they can only occur inside JSON strings, where a ``\\uNNNN`` escape
    means the same character, so the result parses back to the same value. One exception, as
    JSON has no way to say it: a lone high surrogate directly followed by a lone low one (two
    code points) reads back as the one character the pair encodes.
    """
    return _UNSAFE.sub(_json_escape, json_text)

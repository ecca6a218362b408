"""The tests' oracle for what a terminal acts on, from Unicode's own categories (not from our code)."""

from __future__ import annotations

import unicodedata

BIDI_CONTROLS = frozenset(
    {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}
)


def is_control(char: str) -> bool:
    """C0, DEL, C1 (category Cc), surrogates (Cs), line and paragraph separators, bidi controls."""
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in BIDI_CONTROLS


def raw_controls(printed: str) -> list[str]:
    """The characters of ``printed`` a terminal would act on, apart from its own line ends."""
    return [char for char in printed if char != "\n" and is_control(char)]

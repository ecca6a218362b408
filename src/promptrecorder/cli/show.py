"""``promptrecorder show``: read records saved by ``recorder.to_jsonl`` and render them.

A file that cannot be read, or a line that is not a record, is one ``UnreadableRecordsError``
whose message names the file (and the line) in one sentence. The file is read line by line
and reading stops at the limit, so ``--limit 1`` on a huge (or endless) file reads its first
lines only. What is printed passes through ``terminal_text``: nothing from the file can send
a control character to the terminal.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from promptrecorder.errors import UnreadableRecordsError
from promptrecorder.export.console import format_records_table
from promptrecorder.recording.records import PromptRecord, record_from_json_line
from promptrecorder.terminal_text import json_printable, printable

# Fields a record must have, with the types the table and the JSON view rely on.
_TEXT_FIELDS = ("prompt", "response", "recorder", "id")
_OPTIONAL_TEXT_FIELDS = ("model",)
_OPTIONAL_INT_FIELDS = ("input_tokens", "output_tokens")
# Deeper values are refused: printing them (json.dumps, repr) recurses once per level and
# would otherwise meet Python's recursion limit (about 1,000) with a traceback.
MAX_NESTING = 200
# Past the limit, this much of the rest is looked at to say whether more records follow.
_PEEK_BYTES = 64 * 1024
# A value quoted in an error is cut short (a bad line may be a megabyte) and at depth 6.
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 60
_brief = _short_repr.repr
_MAX_REASON = 200


@dataclass(frozen=True)
class RecordsRead:
    """The records read from a file, and whether reading stopped at the limit before its end."""

    records: list[PromptRecord]
    more: bool


def read_records(path: str | os.PathLike[str], limit: int | None = None) -> RecordsRead:
    """The first ``limit`` records in ``path`` (all when None), each checked enough to be shown.

    Lines after the ``limit``-th record are not parsed, so a broken line there is no error.

    Raises:
        UnreadableRecordsError: the file is missing or unreadable, or a line before the
            limit is not a record.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"`limit` must be a whole number of 1 or more, or None, got {limit!r}")
    name = os.fspath(path)
    records: list[PromptRecord] = []
    try:
        with open(path, "rb") as stream:
            for number, line in _numbered_lines(stream, name):
                records.append(_record(line, f"{name}:{number}"))
                if len(records) == limit:  # stop before the next line is even split off
                    return RecordsRead(records, more=_more_follows(stream))
    except FileNotFoundError:
        raise UnreadableRecordsError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UnreadableRecordsError(f"{name} is a directory, not a .jsonl file") from None
    except OSError as error:
        raise UnreadableRecordsError(f"cannot read {name}: {error.strerror or error}") from None
    return RecordsRead(records, more=False)


def _numbered_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines with their line numbers, decoded as ``to_jsonl`` encoded them."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8", errors="surrogatepass")
        except UnicodeDecodeError as error:
            raise UnreadableRecordsError(
                f"{name}:{number} is not UTF-8 text (byte {error.start} of that line cannot be decoded)"
            ) from None
        if line.strip():
            yield number, line


def _more_follows(stream: IO[bytes]) -> bool:
    """Whether anything but blank lines follows, looking at no more than ``_PEEK_BYTES``."""
    rest = stream.read(_PEEK_BYTES)
    return bool(rest.strip()) or len(rest) == _PEEK_BYTES


def _record(line: str, where: str) -> PromptRecord:
    try:
        record = record_from_json_line(line)
    except ValueError as error:  # its text may quote the line (fromisoformat does): cut it short
        reason = str(error) if len(str(error)) <= _MAX_REASON else str(error)[: _MAX_REASON - 1] + "…"
        raise UnreadableRecordsError(f"{where}: not a prompt record: {reason}") from None
    problem = _problem(record)
    if problem is not None:
        raise UnreadableRecordsError(f"{where}: not a prompt record: {problem}")
    return record


def _problem(record: PromptRecord) -> str | None:
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(record, name), str):
            return f"`{name}` must be a string, got {_brief(getattr(record, name))}"
    for name in _OPTIONAL_TEXT_FIELDS:
        value = getattr(record, name)
        if value is not None and not isinstance(value, str):
            return f"`{name}` must be a string or null, got {_brief(value)}"
    for name in _OPTIONAL_INT_FIELDS:
        value = getattr(record, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"`{name}` must be an integer or null, got {_brief(value)}"
    # from_dict() parses ISO strings and passes anything else through unchecked.
    ended: object = record.ended_at
    started: object = record.started_at
    if not isinstance(ended, datetime):
        return f"`ended_at` must be an ISO 8601 time, got {_brief(ended)}"
    if started is not None and not isinstance(started, datetime):
        return f"`started_at` must be an ISO 8601 time or null, got {_brief(started)}"
    try:
        as_json = record.to_dict()
    except (TypeError, ValueError, AttributeError) as error:
        return str(error)
    if _deeper_than(MAX_NESTING, as_json):
        return f"its values are nested more than {MAX_NESTING} levels deep"
    return None


def _deeper_than(limit: int, value: object) -> bool:
    """Whether ``value`` (parsed JSON: dicts, lists, tuples, scalars) nests deeper than ``limit``."""
    pending: list[tuple[object, int]] = [(value, 1)]  # a stack, not recursion, on purpose
    while pending:
        item, depth = pending.pop()
        if isinstance(item, Mapping):
            children: Iterable[object] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def render_table(records: Sequence[PromptRecord], source: str, *, more: bool = False) -> str:
    """The records as a table, with a line saying how many, from where, and whether more follow."""
    source = printable(source)
    if not records and not more:
        return f"{source} holds no records."
    count = "1 record" if len(records) == 1 else f"{len(records)} records"
    if more:
        shown = f"the first {count} from {source} (--limit: the rest was not read)"
    else:
        shown = f"{count} from {source}"
    return f"{format_records_table(records)}\n\n{shown}"


def json_lines(records: Iterable[PromptRecord]) -> Iterator[str]:
    """One JSON object per line, as ``to_jsonl`` writes them (``read_jsonl`` reads them back).

    DEL, C1 and bidi controls and lone surrogates are written as ``\\uNNNN`` escapes (json
    already escapes C0), so the lines parse back to the same records and print safely.
    Written one by one, a reader that closes the pipe stops the writer at its next line.
    """
    for record in records:
        yield json_printable(json.dumps(record.to_dict(), ensure_ascii=False, default=str)) + "\n"

"""``promptrecorder show``: read records saved by ``recorder.to_jsonl`` and render them.

A file that cannot be read, or a line that is not a record, is one ``UnreadableRecordsError``
whose message names the file (and the line) in one sentence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime

from promptrecorder.console import format_records_table
from promptrecorder.errors import PromptRecorderError
from promptrecorder.records import PromptRecord, read_jsonl

# Fields a record must have, with the types the table and the JSON view rely on.
_TEXT_FIELDS = ("prompt", "response", "recorder", "id")
_OPTIONAL_TEXT_FIELDS = ("model",)
_OPTIONAL_INT_FIELDS = ("input_tokens", "output_tokens")


class UnreadableRecordsError(PromptRecorderError):
    """The records file could not be read; the message is one sentence naming where."""


def load_records(path: str | os.PathLike[str]) -> list[PromptRecord]:
    """Every record in ``path``, checked enough to be shown.

    Raises:
        UnreadableRecordsError: the file is missing or unreadable, or a line is not a record.
    """
    name = os.fspath(path)
    try:
        records = read_jsonl(path)
    except FileNotFoundError:
        raise UnreadableRecordsError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UnreadableRecordsError(f"{name} is a directory, not a .jsonl file") from None
    except UnicodeDecodeError as error:
        raise UnreadableRecordsError(
            f"{name} is not UTF-8 text (byte {error.start} cannot be decoded)"
        ) from None
    except ValueError as error:  # read_jsonl names the file and the line
        raise UnreadableRecordsError(str(error)) from None
    except OSError as error:
        raise UnreadableRecordsError(f"cannot read {name}: {error.strerror or error}") from None
    for index, record in enumerate(records):
        problem = _problem(record)
        if problem is not None:
            line = _line_of_record(path, index)
            raise UnreadableRecordsError(f"{name}:{line}: not a prompt record: {problem}")
    return records


def _problem(record: PromptRecord) -> str | None:
    for name in _TEXT_FIELDS:
        if not isinstance(getattr(record, name), str):
            return f"`{name}` must be a string, got {getattr(record, name)!r}"
    for name in _OPTIONAL_TEXT_FIELDS:
        value = getattr(record, name)
        if value is not None and not isinstance(value, str):
            return f"`{name}` must be a string or null, got {value!r}"
    for name in _OPTIONAL_INT_FIELDS:
        value = getattr(record, name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            return f"`{name}` must be an integer or null, got {value!r}"
    # from_dict() parses ISO strings and passes anything else through unchecked.
    ended: object = record.ended_at
    started: object = record.started_at
    if not isinstance(ended, datetime):
        return f"`ended_at` must be an ISO 8601 time, got {ended!r}"
    if started is not None and not isinstance(started, datetime):
        return f"`started_at` must be an ISO 8601 time or null, got {started!r}"
    try:
        record.to_dict()
    except (TypeError, ValueError, AttributeError) as error:
        return str(error)
    return None


def _line_of_record(path: str | os.PathLike[str], index: int) -> int:
    """The line number of the ``index``-th record (``read_jsonl`` skips blank lines)."""
    with open(path, encoding="utf-8", errors="surrogatepass") as stream:
        numbers = [number for number, line in enumerate(stream, start=1) if line.strip()]
    return numbers[index]


def render_table(records: Sequence[PromptRecord], total: int, source: str) -> str:
    """The records as a table, with a line saying how many of how many, and from where."""
    if not total:
        return f"{source} holds no records."
    shown = f"{len(records)} of {total} records" if len(records) < total else f"{total} records"
    return f"{format_records_table(records)}\n\n{shown} from {source}"


def render_json(records: Sequence[PromptRecord]) -> str:
    """One JSON object per line, as ``to_jsonl`` writes them (``read_jsonl`` reads them back)."""
    return "".join(json.dumps(record.to_dict(), ensure_ascii=False, default=str) + "\n" for record in records)

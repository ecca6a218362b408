"""The in-memory side: ``PromptRecord``, the bounded store, and DataFrame / JSONL / HTML views."""

from __future__ import annotations

import html
import json
import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from promptrecorder.errors import MissingDependencyError

if TYPE_CHECKING:
    import pandas

# A long-lived recorder in a service keeps at most this many records by default; older
# ones are evicted first and counted. About 10,000 pairs of 2,000 characters is ~50 MB.
DEFAULT_MAX_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """One prompt and its response, as recorded inside ``with recorder:``.

    Example:
        >>> record = autorecord("Hi", "Hello!", model="gpt-4o-mini")  # doctest: +SKIP
        >>> record.prompt, record.response, record.model  # doctest: +SKIP
        ('Hi', 'Hello!', 'gpt-4o-mini')

    ``trace_id`` and ``span_id`` are the lowercase hex ids of the span that carries the
    record's events, exactly as exported; they are ``None`` when no tracing is set up.
    ``messages`` is the chat message list when the prompt was given as one. The bots and
    the openai instrumentation also fill ``provider``, ``finish_reasons``, ``tool_calls``
    (openai's format), ``error`` (``"Type: message"`` of a failed call) and ``complete``
    (False for a stream that ended early or failed midway). ``conversation_id`` is the
    conversation the pair belongs to: its ``ChatBot``'s, else its recorder's
    (``PromptRecorder(conversation_id=...)``), else None.
    """

    prompt: str
    response: str
    ended_at: datetime
    recorder: str
    id: str
    model: str | None = None
    started_at: datetime | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    trace_id: str | None = None
    span_id: str | None = None
    messages: tuple[Mapping[str, Any], ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    provider: str | None = None
    finish_reasons: tuple[str, ...] | None = None
    tool_calls: tuple[Mapping[str, Any], ...] | None = None
    error: str | None = None
    complete: bool = True
    conversation_id: str | None = None

    @property
    def latency_s(self) -> float | None:
        """Seconds between ``started_at`` and ``ended_at``, when the start is known."""
        if self.started_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``PromptRecord.from_dict`` turns it back into an equal record."""
        return {
            "id": self.id,
            "recorder": self.recorder,
            "prompt": self.prompt,
            "response": self.response,
            "model": self.model,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "messages": None if self.messages is None else [dict(m) for m in self.messages],
            "metadata": dict(self.metadata),
            "provider": self.provider,
            "finish_reasons": None if self.finish_reasons is None else list(self.finish_reasons),
            "tool_calls": None if self.tool_calls is None else [dict(c) for c in self.tool_calls],
            "error": self.error,
            "complete": self.complete,
            "conversation_id": self.conversation_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptRecord:
        """Rebuild a record from ``to_dict()`` output (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        for key in ("started_at", "ended_at"):
            if isinstance(values.get(key), str):
                values[key] = datetime.fromisoformat(values[key])
        for key in ("messages", "finish_reasons", "tool_calls"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["metadata"] = MappingProxyType(dict(values.get("metadata") or {}))
        return cls(**values)

    def __reduce__(self) -> tuple[Any, ...]:
        # A mappingproxy cannot be pickled, so the record travels with a plain copy of its
        # metadata and _unpickle_record makes it read-only again: pickle, copy.copy and
        # copy.deepcopy (which go through this method) give an equal, still immutable record.
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["metadata"] = dict(self.metadata)
        return (_unpickle_record, (values,))


def _unpickle_record(values: dict[str, Any]) -> PromptRecord:
    values["metadata"] = MappingProxyType(values["metadata"])
    return PromptRecord(**values)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


class RecordStore:
    """A thread-safe, bounded, insertion-ordered store of records.

    When full, the oldest record is evicted and counted in ``evicted``.
    """

    def __init__(self, max_records: int | None) -> None:
        self._records: deque[PromptRecord] = deque(maxlen=max_records)
        self._lock = threading.RLock()  # reentrant for the same reason as an activation's lock
        self.evicted = 0

    @property
    def max_records(self) -> int | None:
        return self._records.maxlen

    def append(self, record: PromptRecord) -> None:
        with self._lock:
            if len(self._records) == self._records.maxlen:
                self.evicted += 1
            self._records.append(record)

    def extend(self, records: Iterable[PromptRecord]) -> None:
        for record in records:
            self.append(record)

    def snapshot(self) -> list[PromptRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self.evicted = 0

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[PromptRecord]:
        return iter(self.snapshot())


# --- views ---------------------------------------------------------------------------


def to_dataframe(records: Sequence[PromptRecord]) -> pandas.DataFrame:
    """One row per record, one column per ``PromptRecord`` field (pandas is an extra)."""
    try:
        import pandas  # optional dependency, imported on use
    except ImportError as error:
        raise MissingDependencyError(
            "recorder.dataframe() needs pandas: install it with `pip install 'promptrecorder[pandas]'`"
        ) from error
    columns = [f.name for f in fields(PromptRecord)]
    rows = [{name: getattr(record, name) for name in columns} for record in records]
    for row in rows:  # a plain dict, so that the frame pickles (to_pickle) as records do
        row["metadata"] = dict(row["metadata"])
    frame = pandas.DataFrame(rows, columns=columns)
    frame["latency_s"] = [record.latency_s for record in records] if rows else []
    return frame


def write_jsonl(records: Iterable[PromptRecord], path: str | os.PathLike[str]) -> int:
    """Write one JSON object per line; return how many records were written."""
    count = 0
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as stream:
        for record in records:
            stream.write(json.dumps(record.to_dict(), ensure_ascii=False, default=str))
            stream.write("\n")
            count += 1
    return count


def read_jsonl(path: str | os.PathLike[str]) -> list[PromptRecord]:
    """Read records written by ``recorder.to_jsonl(path)``.

    Raises:
        ValueError: a line is not a JSON object of a record, with its line number.
    """
    records = []
    with open(path, encoding="utf-8", errors="surrogatepass") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from_json_line(line))
            except ValueError as error:
                raise ValueError(f"{os.fspath(path)}:{number}: not a prompt record: {error}") from error
    return records


def record_from_json_line(line: str) -> PromptRecord:
    """The record one line of a ``to_jsonl`` file holds.

    Raises:
        ValueError: the line is not a JSON object of a record; the message says why.
    """
    try:
        data = json.loads(line)
    except RecursionError:  # json's parser recurses once per level: a line of 100,000 "[" gets here
        raise ValueError("its JSON is nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return PromptRecord.from_dict(data)
    except TypeError as error:  # a missing field, or a value of a shape from_dict cannot take
        raise ValueError(str(error)) from error


def token_summary(record: PromptRecord) -> str | None:
    """``"in→out"`` token usage, ``?`` for an unknown side, None when neither is known."""
    if record.input_tokens is None and record.output_tokens is None:
        return None
    known = ("?" if count is None else str(count) for count in (record.input_tokens, record.output_tokens))
    return "→".join(known)


def records_html(name: str, records: list[PromptRecord], limit: int = 20) -> str:
    """A small HTML table for Jupyter; needs no pandas."""

    def cell(value: object, width: int = 200) -> str:
        text = "" if value is None else str(value)
        if len(text) > width:
            text = text[: width - 1] + "…"
        return f"<td>{html.escape(text)}</td>"

    head = "".join(f"<th>{title}</th>" for title in ("#", "prompt", "response", "model", "tokens", "latency"))
    rows = []
    first = max(0, len(records) - limit)
    for index, record in enumerate(records[first:], start=first + 1):
        tokens = token_summary(record)
        latency = None if record.latency_s is None else f"{record.latency_s:.3f}s"
        rows.append(
            "<tr>"
            + cell(index)
            + cell(record.prompt)
            + cell(record.response)
            + cell(record.model)
            + cell(tokens)
            + cell(latency)
            + "</tr>"
        )
    shown = f"last {limit} of {len(records)}" if len(records) > limit else f"{len(records)}"
    return (
        f"<div><strong>PromptRecorder {html.escape(name)!s}</strong>: {shown} records"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )

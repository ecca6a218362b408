"""Tests of ``promptrecorder.recording.records``: the record, the bounded store and its views."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import re
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.errors import MissingDependencyError, PromptRecorderError
from promptrecorder.recording.records import (
    PromptRecord,
    RecordStore,
    read_jsonl,
    records_html,
    to_dataframe,
    write_jsonl,
)

IST = timezone(timedelta(hours=5, minutes=30))
PDT = timezone(timedelta(hours=-7), "PDT")
ENDED = datetime(2024, 5, 17, 9, 30, 1, 250_000, tzinfo=timezone.utc)


def make_record(index: int = 0, **changes: Any) -> PromptRecord:
    values: dict[str, Any] = {
        "prompt": f"prompt {index}",
        "response": f"response {index}",
        "ended_at": ENDED,
        "recorder": "test",
        "id": f"{index:016x}",
    }
    values.update(changes)
    return PromptRecord(**values)


def full_record() -> PromptRecord:
    return make_record(
        prompt="What is 2+2?",
        response="4",
        started_at=datetime(2024, 5, 17, 15, 0, 0, 123_456, tzinfo=IST),
        ended_at=datetime(2024, 5, 17, 2, 30, 2, 654_321, tzinfo=PDT),
        model="gpt-4o-mini",
        input_tokens=12,
        output_tokens=1,
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        messages=(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
        ),
        metadata=MappingProxyType({"user": "alice", "attempt": 2, "tags": ["a", "b"], "cfg": {"t": 0.5}}),
    )


# --- PromptRecord ----------------------------------------------------------------------


def test_record_is_frozen() -> None:
    """Assigning to a field of a PromptRecord raises FrozenInstanceError."""
    record = make_record()
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.prompt = "changed"  # type: ignore[misc]
    assert record.prompt == "prompt 0"


def test_to_dict_from_dict_round_trip_keeps_every_field() -> None:
    """from_dict(to_dict()) gives an equal record, also after a trip through JSON text."""
    record = full_record()
    assert PromptRecord.from_dict(record.to_dict()) == record
    assert PromptRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_round_trip_keeps_non_utc_offsets_and_microseconds() -> None:
    """Aware datetimes come back with their own UTC offset and microseconds, not just the same instant."""
    record = full_record()
    back = PromptRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.started_at is not None
    assert back.started_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert back.ended_at.utcoffset() == timedelta(hours=-7)
    assert back.started_at.microsecond == 123_456
    assert back.ended_at.microsecond == 654_321


def test_round_trip_keeps_messages_as_a_tuple_and_metadata_read_only() -> None:
    """Messages come back as a tuple of equal dicts; metadata as an equal, read-only mapping."""
    record = full_record()
    back = PromptRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert isinstance(back.messages, tuple)
    assert back.messages == record.messages
    assert dict(back.metadata) == {"user": "alice", "attempt": 2, "tags": ["a", "b"], "cfg": {"t": 0.5}}
    with pytest.raises(TypeError):
        back.metadata["user"] = "mallory"  # type: ignore[index]


def test_round_trip_keeps_none_fields() -> None:
    """A record with every optional field None round-trips with those fields still None."""
    record = make_record()
    data = record.to_dict()
    assert data["started_at"] is None
    assert data["messages"] is None
    assert data["model"] is None
    back = PromptRecord.from_dict(data)
    assert back == record
    assert back.started_at is None
    assert back.messages is None
    assert back.input_tokens is None
    assert back.trace_id is None


def test_to_dict_is_json_ready() -> None:
    """to_dict() holds only JSON types: datetimes as ISO 8601 text, messages as a list."""
    data = full_record().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["started_at"] == "2024-05-17T15:00:00.123456+05:30"
    assert isinstance(data["messages"], list)


def test_from_dict_ignores_unknown_keys() -> None:
    """Keys that are not PromptRecord fields (say, from a newer version) are ignored."""
    record = full_record()
    data = {**record.to_dict(), "future_field": 1, "latency_s": 99.0}
    assert PromptRecord.from_dict(data) == record


def test_latency_is_seconds_between_start_and_end() -> None:
    """latency_s is ended_at - started_at in seconds, across different UTC offsets."""
    started = datetime(2024, 5, 17, 11, 30, 0, tzinfo=timezone(timedelta(hours=2)))
    ended = datetime(2024, 5, 17, 9, 30, 1, 500_000, tzinfo=timezone.utc)
    assert make_record(started_at=started, ended_at=ended).latency_s == pytest.approx(1.5)


def test_latency_is_none_without_a_start() -> None:
    """latency_s is None when started_at is unknown."""
    assert make_record().latency_s is None


# --- RecordStore ---------------------------------------------------------------------


def test_store_evicts_oldest_first_and_counts() -> None:
    """A full store drops its oldest record for each new one and counts it in evicted."""
    store = RecordStore(max_records=3)
    store.extend(make_record(i) for i in range(10))
    assert [record.prompt for record in store.snapshot()] == ["prompt 7", "prompt 8", "prompt 9"]
    assert len(store) == 3
    assert store.evicted == 7
    assert store.max_records == 3


def test_store_below_its_bound_evicts_nothing() -> None:
    """Until the bound is reached nothing is evicted."""
    store = RecordStore(max_records=3)
    store.extend(make_record(i) for i in range(3))
    assert len(store) == 3
    assert store.evicted == 0


def test_unbounded_store_keeps_everything() -> None:
    """With max_records=None no record is ever evicted."""
    store = RecordStore(max_records=None)
    store.extend(make_record(i) for i in range(1_000))
    assert len(store) == 1_000
    assert store.evicted == 0
    assert store.max_records is None


def test_snapshot_is_a_copy() -> None:
    """Changing a snapshot does not change the store, and later appends do not change the snapshot."""
    store = RecordStore(max_records=None)
    store.append(make_record(0))
    snapshot = store.snapshot()
    snapshot.clear()
    assert len(store) == 1
    before = store.snapshot()
    store.append(make_record(1))
    assert [record.prompt for record in before] == ["prompt 0"]
    assert len(store) == 2


def test_iterating_while_appending_does_not_fail() -> None:
    """Iterating a store walks a snapshot, so appending meanwhile raises nothing."""
    store = RecordStore(max_records=None)
    store.extend(make_record(i) for i in range(3))
    seen = []
    for record in store:
        seen.append(record.prompt)
        store.append(make_record(99))
    assert seen == ["prompt 0", "prompt 1", "prompt 2"]
    assert len(store) == 6


def test_clear_resets_records_and_evicted() -> None:
    """clear() empties the store and sets evicted back to 0; the bound stays."""
    store = RecordStore(max_records=2)
    store.extend(make_record(i) for i in range(5))
    store.clear()
    assert len(store) == 0
    assert store.snapshot() == []
    assert store.evicted == 0
    store.extend(make_record(i) for i in range(3))
    assert store.evicted == 1


def _append_from_threads(store: RecordStore, threads: int, per_thread: int) -> None:
    barrier = threading.Barrier(threads)
    record = make_record()

    def work() -> None:
        barrier.wait()
        for _ in range(per_thread):
            store.append(record)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_unbounded_store_loses_nothing_under_concurrent_appends() -> None:
    """8 threads x 1,000 appends into an unbounded store leave exactly 8,000 records."""
    store = RecordStore(max_records=None)
    _append_from_threads(store, threads=8, per_thread=1_000)
    assert len(store) == 8_000
    assert len(store.snapshot()) == 8_000
    assert store.evicted == 0


def test_bounded_store_counts_every_eviction_under_concurrent_appends() -> None:
    """8 threads x 1,000 appends into a store of 100 leave 100 records and 7,900 evictions."""
    store = RecordStore(max_records=100)
    _append_from_threads(store, threads=8, per_thread=1_000)
    assert len(store) == 100
    assert store.evicted == 8_000 - 100


# --- JSONL ---------------------------------------------------------------------------

AWKWARD_TEXTS = [
    "plain ascii",
    "héllo wörld, 日本語, Ελληνικά",
    "emoji 😀👩‍💻 and flags 🇫🇷",
    "NUL \x00 inside",
    "line one\nline two\r\nline three\rend",
    "tab\tand form feed\f and \x1b escape",
    "separators \u2028 \u2029 and NEL \x85",
    'quotes " and backslash \\ and </script>',
    "lone high surrogate \ud800 here",
    "lone low surrogate \udfff here",
    "\ud83d\ude00 a surrogate pair as two code points",
    "",
]


def test_jsonl_round_trip_is_lossless(tmp_path: Path) -> None:
    """write_jsonl then read_jsonl gives equal records, whatever characters the texts hold."""
    records = [
        make_record(i, prompt=text, response=text[::-1], metadata=MappingProxyType({"text": text}))
        for i, text in enumerate(AWKWARD_TEXTS)
    ]
    records.append(full_record())
    path = tmp_path / "records.jsonl"
    assert write_jsonl(records, path) == len(records)
    assert read_jsonl(path) == records


def test_jsonl_writes_one_line_per_record(tmp_path: Path) -> None:
    """Newlines inside texts are escaped, so the file has exactly one line per record."""
    records = [make_record(i, prompt=text) for i, text in enumerate(AWKWARD_TEXTS)]
    path = tmp_path / "records.jsonl"
    write_jsonl(records, path)
    assert path.read_bytes().count(b"\n") == len(records)


def test_jsonl_of_no_records_is_empty(tmp_path: Path) -> None:
    """Writing no records writes an empty file, and reading it gives no records."""
    path = tmp_path / "empty.jsonl"
    assert write_jsonl([], path) == 0
    assert path.read_bytes() == b""
    assert read_jsonl(path) == []


def test_read_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    """Blank and whitespace-only lines are skipped."""
    first, second = make_record(1), make_record(2)
    path = tmp_path / "records.jsonl"
    path.write_text(
        "\n" + json.dumps(first.to_dict()) + "\n   \n\t\n" + json.dumps(second.to_dict()) + "\n\n",
        encoding="utf-8",
    )
    assert read_jsonl(path) == [first, second]


@pytest.mark.parametrize(
    "bad_line",
    [
        pytest.param("this is not json", id="not-json"),
        pytest.param('{"prompt": "only a prompt"}', id="missing-fields"),
        pytest.param(
            '{"prompt": "x", "response": "y", "recorder": "r", "id": "1", "ended_at": "soon"}', id="bad-date"
        ),
        pytest.param("[1, 2]", id="json-array"),
        pytest.param("42", id="json-number"),
        pytest.param("null", id="json-null"),
        pytest.param('"a string"', id="json-string"),
    ],
)
def test_read_jsonl_error_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    """A line that is not a record raises ValueError naming the file and its line number."""
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(make_record().to_dict()) + "\n\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: not a prompt record")):
        read_jsonl(path)


def test_read_jsonl_of_a_line_nested_100000_deep_is_a_value_error_naming_the_line(tmp_path: Path) -> None:
    """json's parser would raise RecursionError; read_jsonl says which line, as for any bad line."""
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(make_record().to_dict()) + "\n" + "[" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=re.escape(f"{path}:2: not a prompt record: its JSON is nested too deeply")
    ):
        read_jsonl(path)


# --- DataFrame -----------------------------------------------------------------------

FIELD_NAMES = [field.name for field in dataclasses.fields(PromptRecord)]


def test_dataframe_has_a_column_per_field_and_a_row_per_record() -> None:
    """to_dataframe has the PromptRecord fields plus latency_s as columns and one row per record."""
    pytest.importorskip("pandas")
    records = [full_record(), make_record(1), make_record(2)]
    frame = to_dataframe(records)
    assert list(frame.columns) == [*FIELD_NAMES, "latency_s"]
    assert len(frame) == 3
    assert frame["prompt"].tolist() == ["What is 2+2?", "prompt 1", "prompt 2"]
    assert frame["latency_s"].iloc[0] == pytest.approx(records[0].latency_s)


def test_dataframe_of_no_records_keeps_the_columns() -> None:
    """An empty record list gives an empty frame with the same columns."""
    pytest.importorskip("pandas")
    frame = to_dataframe([])
    assert list(frame.columns) == [*FIELD_NAMES, "latency_s"]
    assert len(frame) == 0


def test_dataframe_without_pandas_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without pandas, to_dataframe raises MissingDependencyError with the pip install hint."""
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError) as caught:
        to_dataframe([make_record()])
    assert isinstance(caught.value, ImportError)
    assert isinstance(caught.value, PromptRecorderError)
    assert "pip install 'promptrecorder[pandas]'" in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)


# --- pickle and copy -------------------------------------------------------------------


def _assert_still_immutable(record: PromptRecord) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.prompt = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        record.metadata["user"] = "mallory"  # type: ignore[index]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_record_pickles_to_an_equal_immutable_record(protocol: int) -> None:
    """pickle.loads(pickle.dumps(record)) is equal to the record and still read-only, at every protocol."""
    record = full_record()
    copied = pickle.loads(pickle.dumps(record, protocol=protocol))
    assert copied == record
    assert copied.to_dict() == record.to_dict()  # the time zones and nested metadata too
    assert isinstance(copied.metadata, MappingProxyType)
    _assert_still_immutable(copied)


def test_a_record_deep_copies_to_an_equal_record_sharing_nothing_mutable() -> None:
    """copy.deepcopy(record) is equal, read-only, and its nested metadata and messages are copies."""
    record = full_record()
    copied = copy.deepcopy(record)
    assert copied == record
    assert copied.metadata["tags"] is not record.metadata["tags"]
    assert record.messages is not None
    assert copied.messages is not None
    assert copied.messages[0] is not record.messages[0]
    _assert_still_immutable(copied)
    assert copy.copy(record) == record


def test_a_dataframe_of_records_round_trips_through_to_pickle(tmp_path: Path) -> None:
    """recorder.dataframe().to_pickle() then pandas.read_pickle() gives an equal frame holding the records'
    values (metadata as a plain dict)."""
    pandas = pytest.importorskip("pandas")
    from promptrecorder import PromptRecorder, autorecord

    recorder = PromptRecorder("notebook")
    with recorder:
        autorecord("Hi", "Hello!", model="m", metadata={"user": "alice", "cfg": {"t": 0.5}})
        autorecord([{"role": "user", "content": "2+2?"}], "4", input_tokens=3, output_tokens=1)
    frame = recorder.dataframe()
    path = tmp_path / "records.pkl"
    frame.to_pickle(path)
    back = pandas.read_pickle(path)
    pandas.testing.assert_frame_equal(back, frame)
    records = recorder.records
    for name in ("id", "prompt", "metadata", "messages", "ended_at"):
        assert back[name].tolist() == [getattr(record, name) for record in records], name
    assert back["metadata"].iloc[0] == {"user": "alice", "cfg": {"t": 0.5}}


@pytest.mark.parametrize(
    "attempt",
    [pickle.dumps, copy.copy, copy.deepcopy],
    ids=["pickle", "copy", "deepcopy"],
)
def test_a_recorder_refuses_to_be_pickled_or_copied_and_points_to_its_records(attempt: Any) -> None:
    """A PromptRecorder holds locks and a tracer: pickling or copying it is a TypeError naming
    `recorder.records`, which does pickle."""
    from promptrecorder import PromptRecorder, autorecord

    recorder = PromptRecorder("svc")
    with recorder:
        autorecord("p", "r")
    with pytest.raises(TypeError, match=re.escape("pickle or copy `recorder.records`")) as refused:
        attempt(recorder)
    assert "PromptRecorder('svc'" in str(refused.value)
    assert pickle.loads(pickle.dumps(recorder.records)) == recorder.records


# --- HTML ----------------------------------------------------------------------------


def test_html_escapes_prompts_responses_and_name() -> None:
    """HTML in the recorder name, prompts and responses is escaped, never rendered."""
    record = make_record(prompt="<script>alert(1)</script>", response='<img src=x onerror="y">')
    page = records_html("<b>name</b>", [record])
    assert "<script>" not in page
    assert "<img" not in page
    assert "<b>name</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;name&lt;/b&gt;" in page


def test_html_shows_only_the_last_rows() -> None:
    """With more records than limit, only the last limit rows are shown, and it says 'last N of M'."""
    records = [make_record(i) for i in range(25)]
    page = records_html("nb", records, limit=20)
    assert page.count("<tr>") == 1 + 20  # the header row, then one per shown record
    assert "last 20 of 25 records" in page
    assert "<td>prompt 4</td>" not in page
    assert "<td>prompt 5</td>" in page
    assert "<td>prompt 24</td>" in page


def test_html_with_few_records_shows_all() -> None:
    """With no more records than limit, every record is shown and the count is plain."""
    page = records_html("nb", [make_record(i) for i in range(3)], limit=20)
    assert page.count("<tr>") == 1 + 3
    assert ": 3 records" in page
    assert "last" not in page


def test_html_with_limit_zero_shows_no_rows() -> None:
    """limit=0 shows no record rows, matching its 'last 0 of M' caption."""
    page = records_html("nb", [make_record(i) for i in range(5)], limit=0)
    assert "last 0 of 5 records" in page
    assert page.count("<tr>") == 1


def test_html_shows_tokens_and_latency() -> None:
    """Tokens show as 'in→out' and latency in seconds with three decimals."""
    record = make_record(
        input_tokens=12, output_tokens=34, started_at=ENDED - timedelta(seconds=1, milliseconds=250)
    )
    page = records_html("nb", [record])
    assert "<td>12→34</td>" in page
    assert "<td>1.250s</td>" in page


def test_the_conversation_id_travels_through_jsonl_and_the_dataframe(tmp_path: Path) -> None:
    """PromptRecord.conversation_id is kept by to_jsonl/from_jsonl and is a DataFrame column."""
    with PromptRecorder("conv", conversation_id="ticket-42") as recorder:
        autorecord("p", "r")
    path = tmp_path / "records.jsonl"
    recorder.to_jsonl(path)
    assert json.loads(path.read_text(encoding="utf-8"))["conversation_id"] == "ticket-42"
    assert PromptRecorder.from_jsonl(path).records == recorder.records
    pytest.importorskip("pandas")
    assert list(recorder.dataframe()["conversation_id"]) == ["ticket-42"]

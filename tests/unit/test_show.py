"""`promptrecorder show FILE.jsonl`: saved records as a table or JSON lines; bad files exit 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptrecorder import PromptRecorder, autorecord, read_jsonl
from promptrecorder.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    """A file with three records written by recorder.to_jsonl()."""
    recorder = PromptRecorder("notebook", max_records=None)
    with recorder:
        autorecord("Summarise ticket 42", "Printer jam.", model="stand-in", input_tokens=3, output_tokens=2)
        autorecord([{"role": "user", "content": "Title?"}], "Duplex jams", model="stand-in")
        autorecord("Ünïcode prompt ✓", "réponse", metadata={"run": 7})
    path = tmp_path / "runs.jsonl"
    assert recorder.to_jsonl(path) == 3
    return path


def test_show_prints_the_records_as_a_table(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each record is one row with its recorder, model, prompt, response and tokens."""
    assert main(["show", str(saved)]) == EXIT_OK
    out = capsys.readouterr().out
    header, rule, *rows = out.splitlines()[:5]
    assert header.split() == ["#", "recorder", "model", "prompt", "response", "tokens"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert rows[0].split()[:3] == ["1", "notebook", "stand-in"]
    assert "Summarise ticket 42" in rows[0]
    assert "3→2" in rows[0]
    assert "Ünïcode prompt ✓" in out
    assert out.rstrip().endswith(f"3 records from {saved}")


def test_limit_shows_the_first_records_and_says_how_many_of_how_many(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit N keeps the first N rows and the footer says N of the total."""
    assert main(["show", str(saved), "--limit", "2"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Title?" in out
    assert "Ünïcode" not in out
    assert out.rstrip().endswith(f"2 of 3 records from {saved}")


def test_json_output_round_trips_to_equal_records(
    saved: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints to_jsonl's lines; reading them back gives records equal to the saved ones."""
    assert main(["show", str(saved), "--json"]) == EXIT_OK
    out = capsys.readouterr().out
    assert all(isinstance(json.loads(line), dict) for line in out.splitlines())
    copy = tmp_path / "copy.jsonl"
    copy.write_text(out, encoding="utf-8")
    assert read_jsonl(copy) == read_jsonl(saved)


def test_json_with_limit_prints_only_those_lines(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json --limit 1 prints exactly one JSON line and nothing else."""
    assert main(["show", str(saved), "--json", "--limit", "1"]) == EXIT_OK
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["prompt"] == "Summarise ticket 42"


def test_an_empty_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with no records is shown as such, with exit 0."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert main(["show", str(empty)]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"{empty} holds no records."


def _failure(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "recorder.to_jsonl(path)" in captured.err  # the next step
    return captured.err


def test_a_missing_file_is_exit_1_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that does not exist is one sentence naming it."""
    missing = tmp_path / "nope.jsonl"
    assert f"{missing}: no such file" in _failure(["show", str(missing)], capsys)


def test_a_directory_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory given as the file is refused plainly."""
    assert "is a directory" in _failure(["show", str(tmp_path)], capsys)


def test_a_line_that_is_not_json_is_exit_1_naming_the_line(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken line is reported as FILE:LINE."""
    lines = saved.read_text(encoding="utf-8").splitlines()
    saved.write_text("\n".join([lines[0], "", "{not json", *lines[1:]]) + "\n", encoding="utf-8")
    assert f"{saved}:3: not a prompt record" in _failure(["show", str(saved)], capsys)


def test_a_record_with_fields_of_the_wrong_type_names_its_line(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON object whose prompt is not a string is caught before it breaks the table."""
    lines = saved.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[1])
    broken["prompt"] = 42
    saved.write_text("\n\n".join([lines[0], json.dumps(broken), lines[2]]) + "\n", encoding="utf-8")
    err = _failure(["show", str(saved)], capsys)
    assert f"{saved}:3: not a prompt record: `prompt` must be a string" in err


def test_a_file_that_is_not_utf8_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Binary content is refused as not UTF-8 text."""
    binary = tmp_path / "image.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert "is not UTF-8 text" in _failure(["show", str(binary)], capsys)


@pytest.mark.parametrize("argv", [["show"], ["show", "x.jsonl", "--limit", "0"], ["show", "--help"]])
def test_usage(argv: list[str]) -> None:
    """A missing FILE or a bad --limit is exit 2; --help is exit 0."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == (EXIT_OK if "--help" in argv else EXIT_USAGE)

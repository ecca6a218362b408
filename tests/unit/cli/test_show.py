"""`promptrecorder show FILE.jsonl`: saved records as a table or JSON lines; bad files exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

import pytest

from promptrecorder import PromptRecorder, autorecord, read_jsonl
from promptrecorder.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from promptrecorder.cli.show import MAX_NESTING
from promptrecorder.recording.records import PromptRecord, write_jsonl
from tests.unit.terminal_controls import raw_controls


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


def test_limit_shows_the_first_records_and_says_the_rest_was_not_read(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit N keeps the first N rows; the footer says reading stopped there (it cannot know the total)."""
    assert main(["show", str(saved), "--limit", "2"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Title?" in out
    assert "Ünïcode" not in out
    assert out.rstrip().endswith(f"the first 2 records from {saved} (--limit: the rest was not read)")


def test_a_limit_that_reaches_the_end_of_the_file_says_how_many_plainly(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit 3 on a file of 3 records (and trailing blank lines) gives the plain count."""
    with saved.open("a", encoding="utf-8") as stream:
        stream.write("\n  \n")
    assert main(["show", str(saved), "--limit", "3"]) == EXIT_OK
    assert capsys.readouterr().out.rstrip().endswith(f"\n3 records from {saved}")


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


# --- control characters from the file never reach the terminal ------------------------

HOSTILE = "\x1b]0;pwned\x07\x1b[2J\x9b31m\x7f\u202eevil\u2066\x00"
HOSTILE_SHOWN = "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x7f\\u202eevil\\u2066\\x00"


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, list[PromptRecord]]:
    """A file, itself named with an escape sequence, whose records hold control characters in every field."""
    records = [
        PromptRecord(
            prompt=f"prompt {HOSTILE}\nsecond line",
            response=f"response {HOSTILE}",
            ended_at=datetime(2024, 5, 17, tzinfo=timezone.utc),
            recorder=f"name {HOSTILE}",
            id=f"id{HOSTILE}",
            model=f"model {HOSTILE}",
            metadata=MappingProxyType({f"key {HOSTILE}": f"value {HOSTILE}", "lone": "\ud800"}),
            error=f"Oops: {HOSTILE}",
        ),
        PromptRecord(
            prompt="\x9d0;title\x9c plain",
            response="ok",
            ended_at=datetime(2024, 5, 17, tzinfo=timezone.utc),
            recorder="r",
            id="2",
        ),
    ]
    path = tmp_path / "runs\x1b[2J.jsonl"
    write_jsonl(records, path)
    return path, records


def test_the_table_escapes_control_characters_in_every_field_and_the_file_name(
    hostile: tuple[Path, list[PromptRecord]], capsys: pytest.CaptureFixture[str]
) -> None:
    """ESC, BEL, C1, DEL, NUL and bidi controls from the file are printed as escapes, never raw."""
    path, _ = hostile
    assert main(["show", str(path)]) == EXIT_OK
    out = capsys.readouterr().out
    assert raw_controls(out) == []
    _header, _rule, first, second = out.splitlines()[:4]
    assert first.split()[:2] == ["1", "name"]
    assert f"name {HOSTILE_SHOWN}"[:30] in first  # the recorder column, escaped
    assert "model \\x1b]0;pwned" in first
    assert "prompt \\x1b]0;pwned" in first
    assert "\\x9d0;title\\x9c plain" in second
    assert out.rstrip().endswith("2 records from " + str(path).replace("\x1b", "\\x1b"))


def test_json_lines_escape_control_characters_and_still_read_back_to_the_same_records(
    hostile: tuple[Path, list[PromptRecord]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json writes DEL, C1, bidi controls and lone surrogates as \\uNNNN: safe to print, and exact."""
    path, records = hostile
    assert main(["show", str(path), "--json"]) == EXIT_OK
    out = capsys.readouterr().out
    assert raw_controls(out) == []
    assert "\\u009b31m" in out
    assert "\\u202eevil" in out
    copy = tmp_path / "copy.jsonl"
    copy.write_text(out, encoding="utf-8")
    assert read_jsonl(copy) == records


def test_an_error_quoting_the_file_name_and_a_bad_value_prints_no_control_character(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The one-sentence error escapes what it quotes from the file name and from the line."""
    path = tmp_path / "bad\x1b]0;t\x07.jsonl"
    good = json.dumps(make_record().to_dict())
    bad = json.dumps({**make_record().to_dict(), "prompt": [HOSTILE]}, ensure_ascii=False)
    path.write_text(f"{good}\n{bad}\n", encoding="utf-8")
    err = _failure(["show", str(path)], capsys)
    assert raw_controls(err) == []
    assert "bad\\x1b]0;t\\x07.jsonl:2: not a prompt record: `prompt` must be a string, got ['\\x1b]0;" in err


def test_an_error_quoting_a_huge_value_stays_one_short_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A megabyte-long bad date (which fromisoformat quotes whole) is cut short in the sentence."""
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({**make_record().to_dict(), "ended_at": "x" * 2**20}) + "\n", encoding="utf-8")
    err = _failure(["show", str(path)], capsys)
    assert f"{path}:1: not a prompt record: Invalid isoformat string: 'xxxx" in err
    assert len(err) < 500


def make_record() -> PromptRecord:
    return PromptRecord(
        prompt="p", response="r", ended_at=datetime(2024, 5, 17, tzinfo=timezone.utc), recorder="n", id="1"
    )


# --- absurd nesting: one sentence, not a traceback -------------------------------------

DEEP = 100_000


def record_line_with_metadata(value_json: str) -> str:
    """A record's JSON line whose metadata value is the given JSON text, written out by hand."""
    head = json.dumps({**make_record().to_dict(), "metadata": {}})[:-1]
    return head.replace('"metadata": {}', '"metadata": {"deep": ' + value_json + "}") + "}"


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("[" * DEEP + "]" * DEEP, id="bare-list"),
        pytest.param('{"a": ' * DEEP + "1" + "}" * DEEP, id="bare-object"),
        pytest.param(record_line_with_metadata("[" * DEEP + "]" * DEEP), id="inside-metadata"),
        pytest.param("[" * DEEP, id="unclosed"),
    ],
)
def test_a_line_nested_100000_deep_stops_show_with_one_sentence_naming_the_line(
    line: str, tmp_path: Path
) -> None:
    """Run as a user runs it: exit 1, no traceback, one line on stderr naming FILE:LINE."""
    path = tmp_path / "deep.jsonl"
    path.write_text(json.dumps(make_record().to_dict()) + "\n" + line + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "promptrecorder", "show", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_FAILURE
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    [sentence] = done.stderr.strip().splitlines()
    assert sentence == (
        f"promptrecorder show: {path}:2: not a prompt record: its JSON is nested too deeply to read. "
        "Give a file written by recorder.to_jsonl(path)."
    )


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_nesting_python_can_parse_but_not_print_is_refused_naming_the_line(
    as_json: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metadata 900 levels deep parses under Python's recursion limit, yet printing it would not:
    it is refused with the limit in the sentence, before anything is printed."""
    path = tmp_path / "deep.jsonl"
    path.write_text(record_line_with_metadata("[" * 900 + "]" * 900) + "\n", encoding="utf-8")
    err = _failure(["show", str(path), *(["--json"] if as_json else [])], capsys)
    assert f"{path}:1: not a prompt record: its values are nested more than {MAX_NESTING} levels deep" in err


def test_nesting_up_to_the_limit_is_shown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A record whose JSON is exactly MAX_NESTING levels deep is shown, in both views."""
    inner = MAX_NESTING - 2  # the record object and its metadata object are two levels
    path = tmp_path / "deep.jsonl"
    path.write_text(record_line_with_metadata("[" * inner + "]" * inner) + "\n", encoding="utf-8")
    assert main(["show", str(path), "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["metadata"]["deep"] == json.loads("[" * inner + "]" * inner)
    path.write_text(record_line_with_metadata("[" * (inner + 1) + "]" * (inner + 1)) + "\n", encoding="utf-8")
    assert "nested more than" in _failure(["show", str(path)], capsys)


# --- --limit streams the file ---------------------------------------------------------


def test_a_bad_line_past_the_limit_is_never_read(saved: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --limit 2 a broken third record is no error; without the limit it is."""
    with saved.open("r+", encoding="utf-8") as stream:
        lines = stream.read().splitlines()
        stream.seek(0)
        stream.write("\n".join([*lines[:2], "{broken", "\x00\xff"]) + "\n")
        stream.truncate()
    assert main(["show", str(saved), "--limit", "2"]) == EXIT_OK
    assert "the rest was not read" in capsys.readouterr().out
    assert main(["show", str(saved), "--json", "--limit", "2"]) == EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert f"{saved}:3: not a prompt record" in _failure(["show", str(saved)], capsys)


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts bytes read with Linux's /proc/self/io")
def test_limit_reads_a_bounded_number_of_bytes_of_a_huge_file(
    saved: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--limit 1 on a file with a 64 MB line after the first record reads well under 1 MB of it."""
    with saved.open("r+b") as stream:
        first = stream.readline()
        stream.seek(0)
        stream.write(first)
        stream.truncate(len(first) + 64 * 2**20)  # a sparse 64 MB tail of NUL bytes: one huge line

    def bytes_read() -> int:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return int(fields["rchar"])

    before = bytes_read()
    assert main(["show", str(saved), "--limit", "1"]) == EXIT_OK
    read = bytes_read() - before
    assert read < 2**20, read
    assert "the first 1 record from" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_limit_stops_reading_an_endless_stream(as_json: bool, tmp_path: Path) -> None:
    """`show PIPE --limit 2`, run as a user runs it, exits 0 after two records although the writer
    never stops: the writer sees the pipe closed after at most a few hundred KB."""
    pipe = tmp_path / "endless.jsonl"
    os.mkfifo(pipe)
    good = (json.dumps(make_record().to_dict()) + "\n").encode()
    written = [0]
    outcome: list[BaseException] = []

    def write_forever() -> None:
        chunk = b"x" * 4096  # one endless line after the two records
        try:
            with open(pipe, "wb", buffering=0) as stream:
                for piece in (good, good):
                    written[0] += stream.write(piece)
                while written[0] < 2**30:  # bounded, so a broken reader fails the test, not hangs it
                    written[0] += stream.write(chunk)
        except BrokenPipeError as error:
            outcome.append(error)

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    done = subprocess.run(
        [sys.executable, "-m", "promptrecorder", "show", str(pipe), "--limit", "2", *(["--json"] * as_json)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    writer.join(timeout=60)
    assert done.returncode == EXIT_OK, done.stderr
    assert not writer.is_alive()
    assert len(outcome) == 1  # the reader closed the pipe: the writer was stopped, it did not finish
    assert written[0] < 2**20
    if as_json:
        assert [json.loads(line)["id"] for line in done.stdout.splitlines()] == ["1", "1"]
    else:
        assert done.stdout.rstrip().endswith(
            f"the first 2 records from {pipe} (--limit: the rest was not read)"
        )


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_a_reader_that_closes_the_pipe_stops_show_quietly(as_json: bool, tmp_path: Path) -> None:
    """`promptrecorder show FILE | head -1`: exit 141 (128 + SIGPIPE), no traceback."""
    path = tmp_path / "many.jsonl"
    write_jsonl([make_record() for _ in range(5_000)], path)
    command = [sys.executable, "-m", "promptrecorder", "show", str(path)] + (["--json"] if as_json else [])
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.readline()
        process.stdout.close()  # what `head -1` does once it has its line
        stderr = process.stderr.read().decode()
        returncode = process.wait(timeout=60)
    assert (returncode, stderr) == (141, "")

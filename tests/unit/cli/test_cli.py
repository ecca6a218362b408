"""The `promptrecorder` command line, run in-process."""

from __future__ import annotations

import pytest

from promptrecorder.cli.main import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main

pytestmark = pytest.mark.usefixtures("global_tracing")


def test_demo_without_an_endpoint_prints_spans_and_records_to_the_console(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no collector configured the demo exits 0, showing the trace and the table."""
    # Without a collector, and without a real model server even on a machine that has a key.
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "offline stand-in" in out
    assert "[span] invoke_workflow demo-session" in out
    assert "[span] invoke_workflow demo-incident-title" in out
    assert "Summarise ticket 42" in out
    assert "sent to the console" in out


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["check", "--help"], ["show", "--help"]])
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints usage and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_OK
    assert "usage: promptrecorder" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["nonsense"], ["demo", "--protocol", "carrier-pigeon"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    """A missing or unknown command, or a bad flag value, is a usage error."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_USAGE


def test_a_bad_endpoint_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """An endpoint that is not a URL is refused plainly, without a traceback."""
    assert main(["demo", "--endpoint", "localhost:4318"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "`endpoint` must be a URL" in err
    assert "Traceback" not in err


def test_demo_against_a_model_server_that_is_not_there_is_one_sentence_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real-model demo whose server refuses the connection fails plainly, without a traceback."""
    import socket

    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert main(["demo"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("promptrecorder:")]) == 1

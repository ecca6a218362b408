"""The scripts in examples/ run as they are: no API key, no collector, bounded in time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from promptrecorder import read_jsonl

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_TIMEOUT_S = 60


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    # No OTEL_* from the developer's shell: the examples must work with nothing configured.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_the_notebook_session_records_saves_and_reloads(tmp_path: Path) -> None:
    """The notebook script records four pairs in two recorders and saves a JSONL that reads back."""
    out = tmp_path / "session.jsonl"
    result = _run(str(EXAMPLES / "notebook_session.py"), "--out", str(out))
    assert "follow-up recorded 1 pair; the experiment recorded 4" in result.stdout
    assert f"saved 4 records to {out}" in result.stdout
    records = read_jsonl(out)
    assert [record.recorder for record in records] == ["rainbow-prompts"] * 3 + ["follow-up"]
    assert records[1].prompt == "Explain rainbows to a child."
    assert records[1].metadata == {"style": "child"}


def test_the_web_service_answers_one_request_with_its_recorded_pairs() -> None:
    """--self-test serves on 127.0.0.1:0, asks itself one question over HTTP and exits 0."""
    result = _run(str(EXAMPLES / "web_service.py"), "--self-test")
    assert "serving on http://127.0.0.1:" in result.stdout
    assert "self-test passed" in result.stdout
    body = json.loads(result.stdout[result.stdout.index("{") : result.stdout.rindex("}") + 1])
    assert [pair["model"] for pair in body["pairs"]] == ["stand-in-1", "stand-in-1"]
    assert body["pairs"][1]["response"] == body["answer"]
    assert len(body["trace_id"]) == 32  # configure() ran: the request's recorder had a real span
    assert "stopped; spans delivered" in result.stdout

"""Every Python block of the README runs as written, pasted into a fresh interpreter.

Each block runs in a process of its own (``configure()`` sets a process-wide provider), in an
empty directory, with what a reader's machine would give it: ``OTEL_EXPORTER_OTLP_*`` pointing
at a real OTLP receiver on 127.0.0.1 and ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` at a real
OpenAI-compatible server (fakellm), so that the blocks that export or call a model do so for
real. A block must exit 0 with no traceback; a block that records inside ``configure()``'s
pipeline must have its spans arrive.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .llm_server import FakeLLMServer
from .receivers import HttpReceiver

README = Path(__file__).resolve().parents[2] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [(text[: match.start()].count("\n") + 1, match.group(1)) for match in _BLOCK.finditer(text)]


BLOCKS = _blocks()


def test_the_readme_has_its_python_blocks() -> None:
    assert len(BLOCKS) >= 7  # a change of the pattern that found none would pass every block


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_every_python_block_of_the_readme_runs_as_written(
    line: int, code: str, tmp_path: Path, http_receiver: HttpReceiver, llm_server: FakeLLMServer
) -> None:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "OPENAI_", "PROMPTRECORDER_"))
    }
    environment |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": http_receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OPENAI_API_KEY": "test",
        "OPENAI_BASE_URL": llm_server.base_url,
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"README.md:{line} failed:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    statements = re.sub(r"#.*", "", code)  # what the block does, not what its comments say
    if "configure(" in statements and "autorecord(" in statements:
        assert http_receiver.wait_for_spans(1), f"README.md:{line} exported nothing"

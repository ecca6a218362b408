"""promptrecorder on the oldest and the newest httpx-based openai, each in a throwaway venv.

Opt in with ``PROMPTRECORDER_COMPAT=1`` (about 18 s per version with pip's cache warm).
The same runs from the shell: ``python tests/compat/run_openai1.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .run_openai1 import DEFAULT_VERSIONS, run_version

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(
        os.environ.get("PROMPTRECORDER_COMPAT") != "1",
        reason="builds a venv per openai version; opt in with PROMPTRECORDER_COMPAT=1",
    ),
]


@pytest.mark.parametrize("version", DEFAULT_VERSIONS)
def test_promptrecorder_records_calls_made_with_this_openai(version: str, tmp_path: Path) -> None:
    """The smoke module and the openai unit tests pass against ``openai==version`` from the registry."""
    result = run_version(version, tmp_path)
    assert result.ok, f"{result.summary()}\n{result.output}"

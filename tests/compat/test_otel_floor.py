"""The unit suite on the OpenTelemetry floor pyproject.toml claims, in a throwaway venv.

Opt in with ``PROMPTRECORDER_COMPAT=1`` (about 2 minutes with pip's cache warm).
The same runs from the shell: ``python -m tests.compat.run_otel_floor``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .run_openai1 import ROOT
from .run_otel_floor import FLOOR, run_version

pytestmark = [
    pytest.mark.compat,
    pytest.mark.skipif(
        os.environ.get("PROMPTRECORDER_COMPAT") != "1",
        reason="builds a venv with the OpenTelemetry floor; opt in with PROMPTRECORDER_COMPAT=1",
    ),
]


def test_the_floor_is_the_one_pyproject_claims() -> None:
    """pyproject.toml's three OpenTelemetry requirements name FLOOR (major.minor) as their minimum."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    floors = set(re.findall(r'"opentelemetry-(?:api|sdk|exporter-otlp)>=([\d.]+)"', text))
    assert floors == {FLOOR.rsplit(".", 1)[0]}


def test_the_unit_suite_passes_on_the_opentelemetry_floor(tmp_path: Path) -> None:
    """tests/unit passes with opentelemetry-api/-sdk/-exporter-otlp at the floor release."""
    result = run_version(FLOOR, tmp_path)
    assert result.ok, f"{result.summary()}\n{result.output[-6000:]}"

"""Running a benchmark script as a user runs it, for the tests that check it still works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, out: Path, *arguments: str, timeout: float = 120) -> tuple[dict[str, Any], str]:
    """Run ``bench/<script>.py`` with ``arguments`` and ``--out out``; return the JSON it wrote
    and what it printed."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py"), *arguments, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report, result.stdout

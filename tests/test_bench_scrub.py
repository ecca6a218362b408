"""bench/scrub.py runs end to end and reports every input, the worst and the old reference.

Its numbers are not asserted (speed is measured in bench/, not in tests): only that a tiny
run covers each adversarial input at both sizes and finds what the inputs hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_scrub_quick_run_reports_every_input_and_the_worst(tmp_path: Path) -> None:
    out = tmp_path / "scrub.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scrub.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = {(row["input"], row["size"]): row for row in report["rows"]}
    for size in (16 * 1024, 64 * 1024):
        for name in ("begin_lines_without_end", "begin_then_base64_lines", "sk-", "AKIA", "xoxb-", "ghp_"):
            assert rows[(name, size)]["us_per_kb"] > 0
        assert rows[("begin_lines_without_end", size)]["secrets"] == size // len(
            "-----BEGIN PRIVATE KEY-----\n"
        )
        assert rows[("one_char_a", size)]["secrets"] == 0
    assert set(report["worst"]) == {"16 KB", "64 KB"}
    assert report["old_scrubber"][-1]["size"] == 8 * 1024
    assert "worst at 64 KB" in result.stdout

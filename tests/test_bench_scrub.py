"""bench/scrub.py runs end to end and reports every input, the worst and the old reference.

Its numbers are not asserted (speed is measured in bench/, not in tests): only that a tiny
run covers each adversarial input at both sizes and finds what the inputs hold.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.bench_run import run_bench

# What bench/scrub.py loads the first scrubber from (git show); a shallow clone may lack it.
FIRST_SCRUBBER = "e580f4b:src/promptrecorder/redaction.py"

ROOT = Path(__file__).resolve().parent.parent


def test_scrub_quick_run_reports_every_input_and_the_worst(tmp_path: Path) -> None:
    report, printed = run_bench("scrub", tmp_path / "scrub.json", "--quick")
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
    assert "worst at 64 KB" in printed
    # Texts with no secret, per call, beside the first scrubber where git can show it.
    ordinary = {row["input"]: row for row in report["ordinary"]}
    assert set(ordinary) == {"model_name", "sentence", "prose", "markdown", "python_source", "prose_1mb"}
    assert all(row["us_per_call"] > 0 for row in ordinary.values())
    if _git_can_show(FIRST_SCRUBBER):
        assert all(row["first_scrubber_us_per_call"] > 0 for row in ordinary.values())


def _git_can_show(revision_path: str) -> bool:
    try:
        subprocess.run(["git", "cat-file", "-e", revision_path], cwd=ROOT, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True

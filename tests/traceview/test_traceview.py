"""A whole recorded session in trace-view's conversation view, read back from its session page.

Issue 14 found none of the plain ``autorecord`` pairs in trace-view's conversation view and
each bot call's tokens counted twice. Here every record must show as a user turn and an
assistant turn with its exported prompt and response, its model and token counts, and the
session's totals must equal the records' sum.

What trace-view 0.1.0 shows otherwise, asserted as such: the turns are read from the call
spans' messages, so a request that replays earlier turns (a ``ChatBot``'s second call) shows
them again, labelled with that request's usage; a refused call shows its prompt only.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.phoenix.genai_session import exported_text

pytestmark = pytest.mark.traceview

_SCRIPT = Path(__file__).with_name("in_private_network.py")


def _visible_text(page: str) -> str:
    body = page[page.find("<body") :]
    body = re.sub(r"<script.*?</script>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    binary = shutil.which("tv", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.fail(f"PROMPTRECORDER_TRACEVIEW=1 but trace-view's `tv` is not beside {sys.executable}")
    workdir = tmp_path_factory.mktemp("traceview")
    result = subprocess.run(
        ["unshare", "-n", sys.executable, str(_SCRIPT), binary, str(workdir)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    assert data["page"], "trace-view served no session page"
    return data


def test_every_pair_shows_in_the_conversation_view(session: dict[str, Any]) -> None:
    text = _visible_text(session["page"])
    records = session["records"]
    assert len(records) == 151
    missing = []
    for record in records:
        prompt = exported_text(record["prompt"])[:80]
        if prompt not in text:
            missing.append(f"{record['recorder']}/{record['id']} prompt {prompt!r}")
        if record["error"] is None and exported_text(record["response"])[:80] not in text:
            missing.append(f"{record['recorder']}/{record['id']} response {record['response'][:60]!r}")
    assert not missing, f"{len(missing)} texts not in the conversation view:\n" + "\n".join(missing[:20])
    # each call's usage on its assistant turn (`17 in / 11 out`; `30 in` when there is no
    # output count). trace-view also labels the earlier assistant turns a ChatBot's request
    # replays with that request's usage, so a usage may show more often than it was recorded;
    # the totals (the other test) count it once.
    shown = Counter((int(a), int(b or 0)) for a, b in re.findall(r"(\d+) in(?: / (\d+) out)?(?= )", text))
    recorded = Counter(
        (r["input_tokens"] or 0, r["output_tokens"] or 0)
        for r in records
        if r["input_tokens"] is not None or r["output_tokens"] is not None
    )
    assert not recorded - shown, f"usage recorded but not shown: {recorded - shown}"


def test_the_session_totals_count_each_calls_tokens_once(session: dict[str, Any]) -> None:
    text = _visible_text(session["page"])
    records = session["records"]
    inputs = sum(r["input_tokens"] or 0 for r in records)
    outputs = sum(r["output_tokens"] or 0 for r in records)
    totals = re.search(r"([\d.]+k?) input ([\d.]+k?) output", text)
    assert totals is not None, text[:500]

    def shown(value: int) -> str:  # trace-view abbreviates thousands: 3499 -> "3.5k"
        return f"{value / 1000:.1f}k" if value >= 1000 else str(value)

    assert totals.groups() == (shown(inputs), shown(outputs))

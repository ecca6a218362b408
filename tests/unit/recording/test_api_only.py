"""Recording needs the OpenTelemetry API alone: with no SDK, or an SDK and no provider set."""

from __future__ import annotations

import subprocess
import sys

_BLOCK_SDK = """
import importlib.abc
import sys

class BlockSdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockSdk())
"""

_RECORD = """
import asyncio
from opentelemetry import trace
from promptrecorder import PromptRecorder, autorecord, current_recorder

outer = PromptRecorder("outer", capture="full")
with outer:
    with PromptRecorder("inner") as inner:
        autorecord("What is 2+2?", "4", model="m", input_tokens=3, output_tokens=1)
        span = trace.get_current_span()
        assert not span.is_recording(), span
    autorecord("again", "yes")

async def task():
    async with PromptRecorder("async") as recorder:
        await asyncio.sleep(0)
        autorecord("a", "b")
    return recorder

recorder = asyncio.run(task())
assert current_recorder() is None
assert [(r.prompt, r.response) for r in outer.records] == [("What is 2+2?", "4"), ("again", "yes")]
assert [r.response for r in inner.records] == ["4"]
assert inner.records[0].input_tokens == 3
assert [r.prompt for r in recorder.records] == ["a"]
assert all(r.trace_id is None for r in outer.records), [r.trace_id for r in outer.records]
print("sdk loaded:", any(m.startswith("opentelemetry.sdk") for m in sys.modules))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no warning, no traceback
    return done.stdout


def test_recording_works_when_the_sdk_cannot_be_imported() -> None:
    """Records in memory, spans no-op, nothing logged, when `opentelemetry.sdk` is absent."""
    assert _run(_BLOCK_SDK + "import sys\n" + _RECORD).strip() == "sdk loaded: False"


def test_recording_works_with_the_sdk_installed_and_no_provider_set() -> None:
    """The SDK importable but no TracerProvider configured: the API's no-op spans, records kept."""
    code = "import sys, opentelemetry.sdk.trace\n" + _RECORD
    assert _run(code).strip() == "sdk loaded: True"

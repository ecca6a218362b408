"""The scripted session behind ``promptrecorder demo``, on an offline stand-in model.

The stand-in needs no API key and no network: it answers from a small script, clearly
labelled as such, and records through the same ``autorecord`` path a real bot uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from promptrecorder.recorder import PromptRecorder, autorecord

STAND_IN_MODEL = "offline-stand-in"
_LABEL = "[offline stand-in model] "

_SCRIPT = {
    "summarise": "Ticket 42: the third-floor printer jams on every duplex job since Monday.",
    "reply": "Thanks for the report; a technician will look at the duplex unit today.",
    "title": "Third-floor printer: duplex jams",
}


def offline_model(prompt: str) -> str:
    """Answer ``prompt`` from the script (by keyword), recording the pair like a real bot."""
    started = datetime.now(timezone.utc)
    key = next((word for word in _SCRIPT if word in prompt.lower()), None)
    reply = _LABEL + (_SCRIPT[key] if key else f"I have no scripted answer for {prompt!r}.")
    time.sleep(0.01)  # a stand-in for network latency, so the trace shows a duration
    autorecord(
        prompt,
        reply,
        model=STAND_IN_MODEL,
        started_at=started,
        ended_at=datetime.now(timezone.utc),
        input_tokens=len(prompt.split()),
        output_tokens=len(reply.split()),
        stand_in=True,
    )
    return reply


@dataclass(frozen=True)
class DemoResult:
    recorder: PromptRecorder
    trace_id: str | None


def run_session(ask: Callable[[str], str] = offline_model) -> DemoResult:
    """Two prompts in an outer recorder and one in a nested recorder."""
    recorder = PromptRecorder("demo-session", attributes={"demo": True})
    with recorder:
        ask("Summarise ticket 42: the printer on floor 3 jams on duplex jobs.")
        ask("Draft a one-line reply to the ticket.")
        with PromptRecorder("demo-incident-title"):
            ask("Suggest a title for the incident report.")
    records = recorder.records
    return DemoResult(recorder, records[0].trace_id if records else None)

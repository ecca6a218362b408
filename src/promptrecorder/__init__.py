"""promptrecorder: record every LLM prompt and response made inside ``with recorder:``.

The prompts and responses become span events on an OpenTelemetry span, exported over OTLP
to Jaeger or any collector, and stay in memory on the recorder.

Example:
    >>> from promptrecorder import PromptRecorder, autorecord
    >>> with PromptRecorder("notebook") as recorder:
    ...     _ = autorecord("What is 2+2?", "4")
    >>> recorder.prompts_and_responses
    [{'prompt': 'What is 2+2?', 'response': '4'}]

Importing the package is cheap: each public name is imported from its module the first time
it is used (PEP 562), so a notebook that only records loads neither openai nor the
OpenTelemetry SDK, protobuf, requests or grpc.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptrecorder._version import __version__

if TYPE_CHECKING:
    from promptrecorder.errors import (
        MissingDependencyError,
        PromptRecorderError,
        TraceNotFoundError,
        TraceReadError,
    )
    from promptrecorder.export.delivery import DeliveryStats
    from promptrecorder.export.telemetry import configure, delivery_stats, flush, shutdown
    from promptrecorder.llm.bots import BotResponse, ChatBot, SimpleBot
    from promptrecorder.llm.instrument import Instrumentation, instrument_openai
    from promptrecorder.readback.jaeger_query import read_jaeger
    from promptrecorder.readback.otlp_json import read_otlp_json
    from promptrecorder.recording.activation import current_recorder
    from promptrecorder.recording.ledger import DeliverySummary
    from promptrecorder.recording.pairs import autorecord
    from promptrecorder.recording.recorder import PromptRecorder
    from promptrecorder.recording.records import PromptRecord, read_jsonl
    from promptrecorder.recording.redaction import SecretScrubber

# Where each public name lives; imported on first use.
_EXPORTS = {
    "BotResponse": "promptrecorder.llm.bots",
    "ChatBot": "promptrecorder.llm.bots",
    "DeliveryStats": "promptrecorder.export.delivery",
    "DeliverySummary": "promptrecorder.recording.ledger",
    "Instrumentation": "promptrecorder.llm.instrument",
    "MissingDependencyError": "promptrecorder.errors",
    "PromptRecord": "promptrecorder.recording.records",
    "PromptRecorder": "promptrecorder.recording.recorder",
    "PromptRecorderError": "promptrecorder.errors",
    "SecretScrubber": "promptrecorder.recording.redaction",
    "SimpleBot": "promptrecorder.llm.bots",
    "TraceNotFoundError": "promptrecorder.errors",
    "TraceReadError": "promptrecorder.errors",
    "autorecord": "promptrecorder.recording.pairs",
    "configure": "promptrecorder.export.telemetry",
    "current_recorder": "promptrecorder.recording.activation",
    "delivery_stats": "promptrecorder.export.telemetry",
    "flush": "promptrecorder.export.telemetry",
    "instrument_openai": "promptrecorder.llm.instrument",
    "read_jaeger": "promptrecorder.readback.jaeger_query",
    "read_jsonl": "promptrecorder.recording.records",
    "read_otlp_json": "promptrecorder.readback.otlp_json",
    "shutdown": "promptrecorder.export.telemetry",
}

__all__ = [
    "BotResponse",
    "ChatBot",
    "DeliveryStats",
    "DeliverySummary",
    "Instrumentation",
    "MissingDependencyError",
    "PromptRecord",
    "PromptRecorder",
    "PromptRecorderError",
    "SecretScrubber",
    "SimpleBot",
    "TraceNotFoundError",
    "TraceReadError",
    "__version__",
    "autorecord",
    "configure",
    "current_recorder",
    "delivery_stats",
    "flush",
    "instrument_openai",
    "read_jaeger",
    "read_jsonl",
    "read_otlp_json",
    "shutdown",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptrecorder' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""promptrecorder: record every LLM prompt and response made inside ``with recorder:``.

The prompts and responses become span events on an OpenTelemetry span, exported over OTLP
to Jaeger or any collector, and stay in memory on the recorder.

Example:
    >>> from promptrecorder import PromptRecorder, autorecord
    >>> with PromptRecorder("notebook") as recorder:
    ...     _ = autorecord("What is 2+2?", "4")
    >>> recorder.prompts_and_responses
    [{'prompt': 'What is 2+2?', 'response': '4'}]
"""

from __future__ import annotations

from promptrecorder._version import __version__
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

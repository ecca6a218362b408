"""The public surface: what `import promptrecorder` offers, pinned."""

from __future__ import annotations

import promptrecorder


def test_all_is_pinned_and_sorted() -> None:
    """Adding or removing a public name is a decision: this list changes with it."""
    assert promptrecorder.__all__ == [
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
    assert promptrecorder.__all__ == sorted(promptrecorder.__all__)


def test_every_public_name_exists_and_is_documented() -> None:
    """Each exported object is importable and has a docstring."""
    for name in promptrecorder.__all__:
        value = getattr(promptrecorder, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_version_matches_the_package_metadata() -> None:
    """__version__ and the installed distribution agree."""
    from importlib.metadata import version

    assert promptrecorder.__version__ == version("promptrecorder")

"""Importing promptrecorder and recording with it load only the OpenTelemetry API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import promptrecorder

# Top-level packages (or prefixes) a recording-only user must not pay for.
HEAVY = ("openai", "httpx", "requests", "grpc", "google.protobuf", "opentelemetry.sdk", "opentelemetry.proto")

_PROBE = """
import sys
import promptrecorder
from promptrecorder import PromptRecorder, autorecord, current_recorder
with PromptRecorder("x") as recorder:
    autorecord("p", "r")
    assert current_recorder() is recorder
assert [r.response for r in recorder.records] == ["r"]
print("\\n".join(sorted(sys.modules)))
"""


def _loaded(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


def test_recording_loads_neither_openai_nor_the_sdk_nor_protobuf_requests_or_grpc() -> None:
    """`import promptrecorder`, a recorder and autorecord load the OpenTelemetry API alone."""
    loaded = _loaded(_PROBE)
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
    assert "opentelemetry.trace" in loaded
    ours = {m for m in loaded if m.startswith("promptrecorder.")}
    assert not any(
        m.startswith(("promptrecorder.export", "promptrecorder.llm", "promptrecorder.cli")) for m in ours
    )


def test_bare_import_loads_no_submodule_but_the_version() -> None:
    """`import promptrecorder` alone imports nothing of ours beyond the package and its version."""
    loaded = _loaded("import sys, promptrecorder\nprint('\\n'.join(sys.modules))")
    assert {m for m in loaded if m.startswith("promptrecorder")} == {
        "promptrecorder",
        "promptrecorder._version",
    }


@pytest.mark.parametrize("name", sorted(promptrecorder.__all__))
def test_every_public_name_resolves_lazily(name: str) -> None:
    """Each name in __all__ is there when asked for, and is the object of its home module."""
    assert getattr(promptrecorder, name) is not None
    assert name in dir(promptrecorder)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        promptrecorder.nope  # type: ignore[attr-defined]  # noqa: B018

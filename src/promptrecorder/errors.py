"""The exceptions promptrecorder raises.

::

    PromptRecorderError            every error this library raises derives from it
    ├── MissingDependencyError     an optional extra is not installed (also an ImportError)
    └── TraceReadError             traces could not be read back (Jaeger unreachable or
        │                          answering an error, data that is not OTLP JSON)
        └── TraceNotFoundError     Jaeger has no trace with the id asked for

Argument mistakes raise the built-in ``TypeError`` / ``ValueError`` with a message of the
form "`<param>` must be <rule>, got <value>". Telemetry failures are never raised into the
application: they are logged once and counted.
"""

from __future__ import annotations


class PromptRecorderError(Exception):
    """Base class of the errors promptrecorder raises."""


class MissingDependencyError(PromptRecorderError, ImportError):
    """An optional dependency is needed for this call; the message says how to install it."""


class TraceReadError(PromptRecorderError):
    """Recorded pairs could not be read back from Jaeger or OTLP JSON; the message says why."""


class TraceNotFoundError(TraceReadError):
    """Jaeger has no trace with the id asked for (not yet ingested, expired, or a wrong id)."""

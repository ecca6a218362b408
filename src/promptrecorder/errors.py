"""The exceptions promptrecorder raises, all defined here.

::

    PromptRecorderError                every error this library raises derives from it
    ├── MissingDependencyError         an optional extra is not installed (also an ImportError)
    ├── TraceReadError                 traces could not be read back (Jaeger unreachable or
    │   │                              answering an error, data that is not OTLP JSON)
    │   └── TraceNotFoundError         Jaeger has no trace with the id asked for
    ├── UnreadableRecordsError         ``promptrecorder show``: the records file cannot be read
    ├── DemoModelError                 ``promptrecorder demo``: the real model server failed
    ├── SpoolUnavailableError          the spool directory cannot be used
    ├── CorruptSpoolFileError          a spooled file does not match its name
    ├── MalformedRequestError          bytes that are not an OTLP request we can take apart
    │                                  (also a ValueError)
    └── UndecodableBatchError          bytes that are not a valid OTLP request (also a ValueError)

Argument mistakes raise the built-in ``TypeError`` (wrong type) or ``ValueError`` (right
type, wrong value) with a message of the form "`<param>` must be <rule>, got <value>".
Telemetry failures are never raised into the application: they are logged once and counted.
Only the first four are public (exported by ``promptrecorder``); the others stay inside the
export pipeline and the command line, which catch them.
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


class UnreadableRecordsError(PromptRecorderError):
    """The records file could not be read; the message is one sentence naming where."""


class DemoModelError(PromptRecorderError):
    """The demo's real model server failed; the message is one sentence saying what to do."""


class SpoolUnavailableError(PromptRecorderError):
    """The spool directory cannot be used (not creatable, or held by another process)."""


class CorruptSpoolFileError(PromptRecorderError):
    """A spooled file's content does not match its name (truncated or damaged)."""


class MalformedRequestError(PromptRecorderError, ValueError):
    """Bytes that are not an OTLP ``ExportTraceServiceRequest`` our encoder can take apart."""


class UndecodableBatchError(PromptRecorderError, ValueError):
    """Bytes that are not a valid OTLP ``ExportTraceServiceRequest``."""

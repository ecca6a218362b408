"""What the replies mean: reading the server's answer, or the exporter's words, into an ``Outcome``.

For OTLP/HTTP a ``requests`` session of our own (``_RecordingSession``) keeps the server's
reply: status, body text, redirect target; for gRPC the exporter's log line holds the status
code and details. Server messages are shortened to one line of ``_MAX_MESSAGE_CHARS``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests  # the OTLP/HTTP exporter's own dependency

from promptrecorder.check_outcome import Outcome, Problem
from promptrecorder.check_probe import _PLAIN_TEXT_REPLIES
from promptrecorder.telemetry import PinnedCaSession

# Longest server message kept; a proxy's HTML error page need not be printed whole.
_MAX_MESSAGE_CHARS = 300


class _RecordingSession(PinnedCaSession):
    """A requests session that keeps the last reply or transport error the exporter saw.

    It keeps the OTLP CA file as ``configure()``'s session does, so the check exports as the
    application would."""

    def __init__(self) -> None:
        super().__init__()
        self.last_response: Any = None
        self.last_body = b""
        self.last_error: Exception | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.last_response, self.last_body, self.last_error = None, b"", None
        try:
            response = super().request(*args, **kwargs)
        except Exception as error:
            self.last_error = error
            raise
        self.last_response, self.last_body = response, response.content or b""
        return response


def _http_outcome(session: _RecordingSession, accepted: bool, exporter_said: str | None) -> Outcome:
    response = session.last_response
    if response is not None:
        code = int(response.status_code)
        status = f"{code} {response.reason or ''}".strip()
        content_type = str(response.headers.get("content-type", ""))
        if 300 <= code < 400:
            # The stock exporter counts any status below 400 as delivered, without following.
            where = response.headers.get("location") or "an unnamed location"
            return Outcome(Problem.REDIRECTED, f"to {where}", status, code)
        if code >= 400:
            return Outcome(Problem.HTTP_STATUS, server_message(session.last_body, content_type), status, code)
        rejected = _partially_rejected(session.last_body, content_type)
        if rejected is not None:
            return Outcome(Problem.REJECTED, rejected, status, code)
        if accepted:
            return Outcome(Problem.NONE, status=status, http_status=code)
    error = session.last_error
    if error is not None:
        return http_error_outcome(error)
    return Outcome(Problem.UNKNOWN, exporter_said or "the exporter reported a failure")


def http_error_outcome(error: Exception) -> Outcome:
    """Classify a transport error of ``requests`` (no reply was received)."""
    text = _one_line(str(error))
    exceptions = requests.exceptions
    if isinstance(error, exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return Outcome(Problem.TLS_UNTRUSTED, text)
        if any(reason in text for reason in _PLAIN_TEXT_REPLIES):
            return Outcome(Problem.TLS_NOT_SPOKEN, text)
        return Outcome(Problem.TLS_FAILED, text)
    if isinstance(error, exceptions.Timeout):
        return Outcome(Problem.TIMEOUT, text)
    if isinstance(error, exceptions.ConnectionError):
        if "refused" in text.lower():
            return Outcome(Problem.REFUSED, text)
        if "BadStatusLine" in text and "\\x00\\x00" in text:
            # The reply began with binary HTTP/2 frames: a gRPC server's answer to HTTP/1.1.
            return Outcome(Problem.WRONG_PROTOCOL, "it answered with HTTP/2 frames, as a gRPC port does")
        if "NameResolution" in text or "not known" in text:
            return Outcome(Problem.UNRESOLVED, text)
        return Outcome(Problem.CONNECTION_CLOSED, text)
    return Outcome(Problem.UNKNOWN, f"{type(error).__name__}: {text}")


def server_message(body: bytes, content_type: str) -> str:
    """The text of an error reply: a ``google.rpc.Status`` message, JSON ``message``, or the text."""
    if not body:
        return ""
    if "protobuf" in content_type:
        from google.rpc import status_pb2  # type: ignore[import-untyped]  # ships no py.typed

        status = status_pb2.Status()
        try:
            status.ParseFromString(body)
        except Exception:  # not a Status after all: show what can be shown
            return _shorten(body.decode("utf-8", "replace"))
        return _shorten(status.message)
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text)
        except ValueError:
            return _shorten(text)
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return _shorten(data["message"])
    return _shorten(text)


def _partially_rejected(body: bytes, content_type: str) -> str | None:
    """``"N spans: message"`` when a 2xx reply says some spans were rejected, else None."""
    if not body:
        return None
    rejected, message = 0, ""
    if "protobuf" in content_type:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        response = ExportTraceServiceResponse()
        try:
            response.ParseFromString(body)
        except Exception:  # a 2xx with a body that is not OTLP: not ours to judge
            return None
        rejected = response.partial_success.rejected_spans
        message = response.partial_success.error_message
    elif "json" in content_type:
        try:
            partial = json.loads(body).get("partialSuccess") or {}
            rejected, message = int(partial.get("rejectedSpans") or 0), str(partial.get("errorMessage") or "")
        except (ValueError, AttributeError, TypeError):
            return None
    if rejected <= 0:
        return None
    return f"{rejected} span{'s' if rejected != 1 else ''}" + (f": {_shorten(message)}" if message else "")


_GRPC_CODE = re.compile(r"StatusCode\.([A-Z_]+)")
_GRPC_DETAILS = re.compile(r"error details: (.*)$", re.IGNORECASE | re.DOTALL)


def grpc_outcome(exporter_said: str | None) -> Outcome:
    """Classify what the stock gRPC exporter logged about its failed export."""
    said = exporter_said or ""
    code_match = _GRPC_CODE.search(said)
    if code_match is None:
        return Outcome(Problem.UNKNOWN, said or "the exporter reported a failure")
    code = code_match.group(1)
    details_match = _GRPC_DETAILS.search(said)
    details = _one_line(details_match.group(1)) if details_match else ""
    lowered = details.lower()
    if code == "UNAVAILABLE":
        if "http1" in lowered or "http status" in lowered or "parsing http/2" in lowered:
            return Outcome(Problem.WRONG_PROTOCOL, details, code)
        if "refused" in lowered:
            return Outcome(Problem.REFUSED, details, code)
        if "handshake" in lowered or "ssl" in lowered or "certificate" in lowered:
            return Outcome(Problem.TLS_FAILED, details, code)
        if "socket closed" in lowered or "reset" in lowered or "end of tcp stream" in lowered:
            return Outcome(Problem.CONNECTION_CLOSED, details, code)
    if code == "DEADLINE_EXCEEDED":
        return Outcome(Problem.TIMEOUT, details, code)
    return Outcome(Problem.GRPC_STATUS, details, code)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _shorten(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[: _MAX_MESSAGE_CHARS - 1] + "…"

"""What the reply means: the sender's ``SendResult`` for the test span, read into an ``Outcome``.

The senders (``promptrecorder.export.otlp_send``) already classify every attempt and name what a
failed one ran into (``SendResult.cause``), in words with credentials masked; here that
becomes the ``Problem`` the check's sentences are about.
"""

from __future__ import annotations

from http import HTTPStatus

from promptrecorder.cli.check_outcome import Outcome, Problem
from promptrecorder.export import otlp_send
from promptrecorder.export.otlp_send import SendResult

# What a failed attempt ran into -> the problem a person acts on.
_PROBLEMS = {
    otlp_send.CAUSE_REFUSED: Problem.REFUSED,
    otlp_send.CAUSE_UNRESOLVED: Problem.UNRESOLVED,
    otlp_send.CAUSE_TIMEOUT: Problem.TIMEOUT,
    otlp_send.CAUSE_TLS_UNTRUSTED: Problem.TLS_UNTRUSTED,
    otlp_send.CAUSE_TLS_NOT_SPOKEN: Problem.TLS_NOT_SPOKEN,
    otlp_send.CAUSE_TLS: Problem.TLS_FAILED,
    otlp_send.CAUSE_WRONG_PROTOCOL: Problem.WRONG_PROTOCOL,
    otlp_send.CAUSE_CLOSED_CONNECTION: Problem.CONNECTION_CLOSED,
    otlp_send.CAUSE_CONNECTION: Problem.CONNECTION_CLOSED,
    otlp_send.CAUSE_REDIRECT: Problem.REDIRECTED,
}


def outcome_of(result: SendResult) -> Outcome:
    """The ``Outcome`` of the test span from what its one send attempt came to."""
    http_status = result.status if isinstance(result.status, int) else None
    status = _status_text(result.status)
    if result.delivered:
        if result.rejected_spans:
            spans = "span" if result.rejected_spans == 1 else "spans"
            detail = f"{result.rejected_spans} {spans}" + (f": {result.detail}" if result.detail else "")
            return Outcome(Problem.REJECTED, detail, status, http_status)
        return Outcome(Problem.NONE, status=status, http_status=http_status)
    problem = _PROBLEMS.get(result.cause or "")
    if problem is not None:
        return Outcome(problem, result.detail, status, http_status)
    if http_status is not None:
        return Outcome(Problem.HTTP_STATUS, result.detail, status, http_status)
    if isinstance(result.status, str):
        return Outcome(Problem.GRPC_STATUS, result.detail, status)
    return Outcome(Problem.UNKNOWN, result.reason)


def _status_text(status: int | str | None) -> str | None:
    """``"413 Request Entity Too Large"`` for an HTTP code, the name for a gRPC status."""
    if isinstance(status, int):
        try:
            return f"{status} {HTTPStatus(status).phrase}"
        except ValueError:
            return str(status)
    return status

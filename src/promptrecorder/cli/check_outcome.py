"""What ``promptrecorder check`` found: a ``Problem`` and the ``Outcome`` that carries it.

``promptrecorder.cli.check`` re-exports both; the probe (``check_probe``) and the reading of
replies (``check_replies``) build them, ``check_report`` turns them into sentences.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Problem(enum.Enum):
    """What stood between the test span and the collector (``NONE``: it was accepted)."""

    NONE = "accepted"
    UNRESOLVED = "unknown host"
    REFUSED = "connection refused"
    UNREACHABLE = "network unreachable"
    TIMEOUT = "timeout"
    TLS_NOT_SPOKEN = "the server does not speak TLS"
    TLS_UNTRUSTED = "TLS certificate not trusted"
    TLS_FAILED = "TLS handshake failed"
    TLS_REQUIRED = "the server speaks only TLS"
    CONNECTION_CLOSED = "connection closed without an answer"
    WRONG_PROTOCOL = "wrong protocol for this port"
    REDIRECTED = "redirected"
    HTTP_STATUS = "HTTP error status"
    GRPC_STATUS = "gRPC error status"
    REJECTED = "spans rejected"
    UNKNOWN = "export failed"


@dataclass(frozen=True)
class Outcome:
    """What happened to the test span.

    ``status`` is the server's verdict when it gave one (``"400 Bad Request"``, a gRPC code
    name such as ``"UNAUTHENTICATED"``); ``detail`` what was observed, in the words of the
    server, the TLS library or the exporter.
    """

    problem: Problem
    detail: str = ""
    status: str | None = None
    http_status: int | None = None
    trace_id: str | None = None
    elapsed_s: float = 0.0

    @property
    def accepted(self) -> bool:
        return self.problem is Problem.NONE

"""Sending OTLP trace request bytes: one attempt, one classified answer.

Work in progress: the contract (``SendResult``, ``OtlpSender``, ``build_sender``) is final;
the senders follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SendResult:
    """What one export attempt came to.

    ``delivered``: accepted (HTTP 2xx, gRPC OK). ``retryable``: a transient failure, the same
    request may pass later. ``splittable``: a permanent refusal that a smaller request may pass.
    Neither retryable nor splittable: a permanent refusal (401, UNIMPLEMENTED, TLS...).
    """

    delivered: bool
    retryable: bool
    splittable: bool
    reason: str
    retry_after: float | None = None
    rejected_spans: int = 0
    status: int | str | None = None


class OtlpSender(Protocol):
    """Sends one ``ExportTraceServiceRequest`` per call; never raises, never logs."""

    protocol: str
    destination: str

    def send(self, body: bytes, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


def build_sender(
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> OtlpSender:
    """A sender for ``protocol`` to ``endpoint``, resolved as the stock OTLP exporters resolve them."""
    raise NotImplementedError("otlp_send.build_sender: being implemented")

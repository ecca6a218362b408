"""``build_sender``: the one place that picks an OTLP sender for a protocol.

The contract every sender keeps (one attempt, one classified ``SendResult``) is in
``otlp_send``; the HTTP and gRPC senders are in ``otlp_send_http`` and ``otlp_send_grpc``.
This module sits above all three, so none of them imports another round a circle.
"""

from __future__ import annotations

from collections.abc import Mapping

from promptrecorder.export import otlp_send
from promptrecorder.export.otlp_send import OtlpSender


def build_sender(
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
    *,
    compression: str | None = None,
) -> OtlpSender:
    """A sender to ``endpoint`` over ``protocol``, resolved as the stock OTLP exporters resolve them.

    Each argument left None falls back to its ``OTEL_EXPORTER_OTLP_TRACES_*`` variable, then
    the general ``OTEL_EXPORTER_OTLP_*`` one, then the default (see ``settings.ENVIRONMENT``):
    protocol, endpoint (``/v1/traces`` appended to a general HTTP endpoint), headers, timeout
    (the variables in milliseconds, as the specification says), compression, CA file, client
    certificate and key, and for gRPC whether to use plain text (``INSECURE``). grpc is
    imported only when a gRPC sender is built.

    Example::

        sender = build_sender("http/protobuf", "http://localhost:4318", {"authorization": "Bearer T"}, 10)

    Args:
        protocol: ``"grpc"`` or ``"http/protobuf"``.
        endpoint: the collector URL (for HTTP a base URL or the full traces URL).
        headers: sent with every request (gRPC metadata); replace the header variables.
        timeout: seconds; the sender's ``timeout`` attribute, for callers that have no other.
        compression: ``"gzip"``, ``"deflate"`` or ``"none"``.

    Raises:
        ValueError: an argument or the variable it falls back to is malformed (credentials masked).
        TypeError: an argument has the wrong type.
    """
    chosen = otlp_send.resolve_protocol(protocol)
    options = otlp_send.resolve_options(chosen, endpoint, headers, timeout, compression)
    if chosen == "grpc":
        from promptrecorder.export.otlp_send_grpc import GrpcSender  # grpc loads only here

        return GrpcSender(options)
    from promptrecorder.export.otlp_send_http import HttpSender

    return HttpSender(options)

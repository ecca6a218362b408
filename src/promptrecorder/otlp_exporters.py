"""The stock OTLP span exporters, encoding with ``otlp_encode`` instead of protobuf objects.

Everything else is the stock exporters': endpoint, TLS, headers, compression, timeouts,
retries, their own metrics. Only the step that turns spans into request bytes changes,
and it produces the same bytes (``promptrecorder.otlp_encode``).

Each hooks in where the stock code leaves a seam. The gRPC exporter's is
``_translate_data``, which its base class calls for every attempt. The HTTP exporter has
none: its ``export`` encodes inline, so ours repeats that method around our encoder, using
the stock internals of opentelemetry-exporter-otlp-proto-http 1.45. With any other layout
it falls back to the stock ``export``: slower, never wrong.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as StockHttpExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from promptrecorder.otlp_encode import encode_request

# The stock HTTP exporter's logger: its messages stay where the stock exporter puts them
# (promptrecorder.delivery captures that logger's failure lines).
_http_logger = logging.getLogger(StockHttpExporter.__module__)


def grpc_exporter(**options: Any) -> Any:
    """The stock OTLP/gRPC span exporter, encoding with ``otlp_encode``; grpc loads only here."""
    return _grpc_exporter_class()(**options)


@functools.cache
def _grpc_exporter_class() -> type:
    """Defined on first use, once, so that importing this module does not load grpc."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    class GrpcSpanExporter(OTLPSpanExporter):
        takes_encoded_spans = True  # otlp_encode.EncodedSpan as well as ReadableSpan

        def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
            # Parsing our bytes is C code and costs a few percent of building the message.
            request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(encode_request(data))
            return request

    return GrpcSpanExporter


class HttpSpanExporter(StockHttpExporter):
    """The stock OTLP/HTTP span exporter, encoding with ``otlp_encode``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Our export, which takes otlp_encode.EncodedSpan as well as ReadableSpan, needs the
        # stock internals; without them, the stock export, which takes only the latter.
        self.takes_encoded_spans = _HTTP_INTERNALS is not None and all(
            hasattr(self, name) for name in ("_client", "_metrics", "_max_request_size", "_shutdown")
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.takes_encoded_spans or _HTTP_INTERNALS is None:
            return super().export(spans)
        too_large, too_large_error, status_code_key = _HTTP_INTERNALS
        # From here on, the stock method with one call changed: the encoder.
        if self._shutdown:
            _http_logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                payload = encode_request(spans)
            except Exception as error:  # a bug of ours fails the batch, not the processor thread
                _http_logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if too_large(payload, self._max_request_size):
                _http_logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(payload),
                    self._max_request_size,
                )
                result.error = too_large_error(
                    f"Serialized span request size {len(payload)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            outcome = self._client.export(payload)
            if not outcome.success:
                result.error = outcome.error
                if outcome.status_code is not None:
                    result.error_attrs = {status_code_key: outcome.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _http_internals() -> tuple[Any, Any, str] | None:
    """What the stock HTTP ``export`` uses besides the encoder, if this SDK has it (1.45's layout)."""
    try:
        from opentelemetry.exporter.otlp.proto.http._common import (
            RequestPayloadTooLargeError,
            _is_request_too_large,
        )
        from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
    except ImportError:
        return None
    return _is_request_too_large, RequestPayloadTooLargeError, HTTP_RESPONSE_STATUS_CODE


_HTTP_INTERNALS = _http_internals()

"""The Logs pipeline behind ``configure(log_events=True)``: OTLP logs to the span collector.

Pairs become ``gen_ai.client.inference.operation.details`` log records
(``promptrecorder.recording.log_events``) only when asked. They go to the same collector,
over the same protocol, with the same headers and timeout as the spans, through the stock
OTLP log exporters and the SDK's ``BatchLogRecordProcessor``: log records are small (one
per pair, no span-sized batches to bound), so the stock path serves, with no SDK private
touched. An application that set its own LoggerProvider keeps it, and records go there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from opentelemetry import _logs
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource

from promptrecorder.export import otlp_send

logger = logging.getLogger(__name__)

_TRACES_PATH = "/v1/traces"
_LOGS_PATH = "/v1/logs"


def start_logs(
    resource: Resource,
    protocol: str | None,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> LoggerProvider | None:
    """Set a global LoggerProvider exporting OTLP logs beside the spans; None when the
    application already set one (it is used as it is)."""
    current = _logs.get_logger_provider()
    if isinstance(current, LoggerProvider):
        logger.info("promptrecorder: log events go to the application's own LoggerProvider")
        return None
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(_exporter(protocol, endpoint, headers, timeout))
    )
    _logs.set_logger_provider(provider)
    return provider


def _exporter(
    protocol: str | None, endpoint: str | None, headers: Mapping[str, str] | None, timeout: float | None
) -> LogRecordExporter:
    chosen = otlp_send.resolve_protocol(protocol)
    options = otlp_send.resolve_options(chosen, endpoint, headers, timeout, None)
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter

        return GrpcLogExporter(
            endpoint=options.url,
            insecure=options.insecure,
            headers=dict(options.headers),
            timeout=options.timeout,
        )
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

    url = options.url
    url = (
        url[: -len(_TRACES_PATH)] + _LOGS_PATH if url.endswith(_TRACES_PATH) else url.rstrip("/") + _LOGS_PATH
    )
    return HttpLogExporter(
        endpoint=url,
        certificate_file=options.certificate_file,
        client_key_file=options.client_key_file,
        client_certificate_file=options.client_certificate_file,
        headers=dict(options.headers),
        timeout=options.timeout,
    )

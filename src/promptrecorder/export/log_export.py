"""The Logs pipeline behind ``configure(log_events=True)``: OTLP logs to the span collector.

Pairs become ``gen_ai.client.inference.operation.details`` log records
(``promptrecorder.recording.log_events``) only when asked. They go to the same collector,
over the same protocol, with the same headers and timeout as the spans, through the stock
OTLP log exporters and the SDK's ``BatchLogRecordProcessor``: log records are small (one
per pair, no span-sized batches to bound), so the stock path serves, with no SDK private
touched. The LoggerProvider built here is promptrecorder's own and is not made global (the
application's logging is not ours to redirect); an application that set its own SDK
LoggerProvider gets the records there instead.
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
    """A LoggerProvider exporting OTLP logs beside the spans; None when the application set
    its own SDK LoggerProvider globally (records go there)."""
    if isinstance(_logs.get_logger_provider(), LoggerProvider):
        logger.info("promptrecorder: log events go to the application's own LoggerProvider")
        return None
    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(_exporter(protocol, endpoint, headers, timeout))
    )
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

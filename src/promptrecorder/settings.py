"""Every environment variable promptrecorder reads, with its default, in one table.

The ``OTEL_*`` variables are the standard OpenTelemetry ones; their meaning is the
specification's. An explicit argument to ``configure()`` always wins over the variable.
"""

from __future__ import annotations

import os
from typing import Final

OTEL_SDK_DISABLED: Final = "OTEL_SDK_DISABLED"
OTEL_SERVICE_NAME: Final = "OTEL_SERVICE_NAME"
OTEL_TRACES_EXPORTER: Final = "OTEL_TRACES_EXPORTER"
OTEL_EXPORTER_OTLP_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_ENDPOINT"
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Final = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
OTEL_EXPORTER_OTLP_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_PROTOCOL"
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: Final = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
OTEL_EXPORTER_OTLP_HEADERS: Final = "OTEL_EXPORTER_OTLP_HEADERS"
OTEL_EXPORTER_OTLP_TRACES_HEADERS: Final = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
OTEL_EXPORTER_OTLP_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TIMEOUT"
OTEL_EXPORTER_OTLP_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_CERTIFICATE"
OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"
OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: Final = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
OTEL_EXPORTER_OTLP_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_COMPRESSION"
OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: Final = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"
OTEL_EXPORTER_OTLP_CLIENT_KEY: Final = "OTEL_EXPORTER_OTLP_CLIENT_KEY"
OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: Final = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY"
OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: Final = "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE"
OTEL_EXPORTER_OTLP_INSECURE: Final = "OTEL_EXPORTER_OTLP_INSECURE"
OTEL_EXPORTER_OTLP_TRACES_INSECURE: Final = "OTEL_EXPORTER_OTLP_TRACES_INSECURE"
OTEL_RESOURCE_ATTRIBUTES: Final = "OTEL_RESOURCE_ATTRIBUTES"
OTEL_SPAN_EVENT_COUNT_LIMIT: Final = "OTEL_SPAN_EVENT_COUNT_LIMIT"
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: Final = (
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
)
PROMPTRECORDER_CAPTURE_CONTENT: Final = "PROMPTRECORDER_CAPTURE_CONTENT"
OPENAI_API_KEY: Final = "OPENAI_API_KEY"
OPENAI_BASE_URL: Final = "OPENAI_BASE_URL"
PROMPTRECORDER_DEMO_MODEL: Final = "PROMPTRECORDER_DEMO_MODEL"
DEFAULT_DEMO_MODEL: Final = "gpt-4o-mini"
PROMPTRECORDER_SPOOL_DIR: Final = "PROMPTRECORDER_SPOOL_DIR"
PROMPTRECORDER_SPOOL_MAX_BYTES: Final = "PROMPTRECORDER_SPOOL_MAX_BYTES"
PROMPTRECORDER_MAX_REQUEST_BYTES: Final = "PROMPTRECORDER_MAX_REQUEST_BYTES"
PROMPTRECORDER_MAX_QUEUE_BYTES: Final = "PROMPTRECORDER_MAX_QUEUE_BYTES"
OTEL_BSP_MAX_QUEUE_SIZE: Final = "OTEL_BSP_MAX_QUEUE_SIZE"
OTEL_BSP_MAX_EXPORT_BATCH_SIZE: Final = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
OTEL_BSP_SCHEDULE_DELAY: Final = "OTEL_BSP_SCHEDULE_DELAY"
PROMPTRECORDER_MAX_SPAN_BYTES: Final = "PROMPTRECORDER_MAX_SPAN_BYTES"
PROMPTRECORDER_LOG_EVENTS: Final = "PROMPTRECORDER_LOG_EVENTS"
PROMPTRECORDER_CALL_SPANS: Final = "PROMPTRECORDER_CALL_SPANS"
# The most bytes of OTLP one span of a recorder carries before its pairs continue on a
# segment span: 1 MiB, a quarter of a stock gRPC receiver's 4 MiB message limit.
DEFAULT_MAX_SPAN_BYTES: Final = 1024 * 1024

# The most disk a spool may use unless told otherwise: 256 MiB.
DEFAULT_SPOOL_MAX_BYTES: Final = 256 * 1024 * 1024

# The most bytes one export request carries unless told otherwise: 4 MiB - 64 KiB. A stock
# Collector and Jaeger accept it over both protocols (gRPC: 4 MiB per message; the
# Collector's HTTP receiver: 20 MiB per body); the 64 KiB leave room for a proxy's framing.
DEFAULT_MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024 - 64 * 1024
# The most bytes of encoded spans waiting to be sent: 64 MiB.
DEFAULT_MAX_QUEUE_BYTES: Final = 64 * 1024 * 1024

# name -> (default, what it does). The table the README's configuration reference follows.
ENVIRONMENT: Final[dict[str, tuple[str | None, str]]] = {
    OTEL_SDK_DISABLED: ("false", "`true` makes configure() set nothing up; records stay in memory"),
    OTEL_SERVICE_NAME: (None, "service.name of the resource (configure(service_name=) wins)"),
    OTEL_RESOURCE_ATTRIBUTES: (None, "extra resource attributes, `key=value,key2=value2`"),
    OTEL_TRACES_EXPORTER: ("otlp", "comma-separated: `otlp`, `console`, `none`"),
    OTEL_EXPORTER_OTLP_PROTOCOL: ("http/protobuf", "`grpc` or `http/protobuf`"),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: (None, "as above, for traces only (wins over the general one)"),
    OTEL_EXPORTER_OTLP_ENDPOINT: (
        None,
        "collector base URL; default http://localhost:4318 (HTTP, /v1/traces appended) "
        "or http://localhost:4317 (gRPC)",
    ),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: (None, "full traces URL, used as it is"),
    OTEL_EXPORTER_OTLP_HEADERS: (None, "auth headers, `key=value,key2=value2`"),
    OTEL_EXPORTER_OTLP_TRACES_HEADERS: (None, "as above, for traces only"),
    OTEL_EXPORTER_OTLP_TIMEOUT: ("10000", "export timeout in milliseconds"),
    OTEL_EXPORTER_OTLP_CERTIFICATE: (
        None,
        "CA bundle trusted for an https:// collector (kept even when REQUESTS_CA_BUNDLE is set)",
    ),
    OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: (None, "as above, for traces only"),
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: (None, "as OTEL_EXPORTER_OTLP_TIMEOUT, for traces only"),
    OTEL_EXPORTER_OTLP_COMPRESSION: ("none", "`gzip`, `deflate` or `none`: compression of export requests"),
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: (None, "as above, for traces only"),
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: (None, "client certificate (PEM) for mutual TLS"),
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE: (None, "as above, for traces only"),
    OTEL_EXPORTER_OTLP_CLIENT_KEY: (None, "the client certificate's private key (PEM) for mutual TLS"),
    OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY: (None, "as above, for traces only"),
    OTEL_EXPORTER_OTLP_INSECURE: (
        None,
        "gRPC only, for an endpoint without http:// or https://: `true` sends plain text, else TLS",
    ),
    OTEL_EXPORTER_OTLP_TRACES_INSECURE: (None, "as above, for traces only"),
    OTEL_SPAN_EVENT_COUNT_LIMIT: ("128", "events one span keeps; more pairs continue on segment spans"),
    PROMPTRECORDER_MAX_SPAN_BYTES: (
        str(DEFAULT_MAX_SPAN_BYTES),
        "bytes of OTLP one recorder span carries (1 MiB); more pairs continue on segment spans",
    ),
    PROMPTRECORDER_CAPTURE_CONTENT: (
        "full",
        "what recorders keep and export by default: `full`, `metadata` (no text) or `none`",
    ),
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: (
        None,
        "honoured when PROMPTRECORDER_CAPTURE_CONTENT is unset: `NO_CONTENT`/`false` mean metadata",
    ),
    PROMPTRECORDER_LOG_EVENTS: (
        "false",
        "`true`: configure() also emits each pair as a gen_ai.client.inference.operation.details "
        "log record, sent as OTLP logs",
    ),
    PROMPTRECORDER_CALL_SPANS: (
        "true",
        "`false`: a plain autorecord pair is its two events only, with no `chat <model>` call span "
        "(GenAI views then do not show it); read when a PromptRecorder is made",
    ),
    PROMPTRECORDER_SPOOL_DIR: (
        None,
        "directory where spans that cannot be delivered wait to be re-sent; unset: no spool",
    ),
    PROMPTRECORDER_SPOOL_MAX_BYTES: (
        str(DEFAULT_SPOOL_MAX_BYTES),
        "the most disk the spool may use, in bytes (256 MiB); the newest batches are dropped beyond it",
    ),
    PROMPTRECORDER_MAX_REQUEST_BYTES: (
        str(DEFAULT_MAX_REQUEST_BYTES),
        "the most bytes one export request carries (4 MiB - 64 KiB: a stock Collector and Jaeger "
        "take it over gRPC and HTTP); a single larger span is sent alone",
    ),
    PROMPTRECORDER_MAX_QUEUE_BYTES: (
        str(DEFAULT_MAX_QUEUE_BYTES),
        "the most bytes of spans waiting to be sent (64 MiB); beyond it spans go to the spool, or are "
        "dropped and counted",
    ),
    OTEL_BSP_MAX_QUEUE_SIZE: ("2048", "the most spans waiting to be sent"),
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: ("512", "the most spans in one export request"),
    OTEL_BSP_SCHEDULE_DELAY: ("5000", "milliseconds between exports when no batch is full"),
    OPENAI_API_KEY: (
        None,
        "read by openai clients the bots build; set, `promptrecorder demo` uses a real model",
    ),
    OPENAI_BASE_URL: (
        None,
        "an OpenAI-compatible server for the bots and the demo (vLLM, llama.cpp, Ollama...)",
    ),
    PROMPTRECORDER_DEMO_MODEL: (DEFAULT_DEMO_MODEL, "the model `promptrecorder demo` asks a real server for"),
}

DEFAULT_PROTOCOL: Final = "http/protobuf"
PROTOCOLS: Final = ("grpc", "http/protobuf")
EXPORTERS: Final = ("otlp", "console", "none")
DEFAULT_GRPC_ENDPOINT: Final = "http://localhost:4317"
DEFAULT_HTTP_ENDPOINT: Final = "http://localhost:4318"
HTTP_TRACES_PATH: Final = "/v1/traces"
# How long process exit (or shutdown()) waits for spans still queued for delivery.
DEFAULT_SHUTDOWN_TIMEOUT_S: Final = 5.0
# How long one export attempt may take when neither configure(timeout=) nor a variable says.
DEFAULT_EXPORT_TIMEOUT_S: Final = 10.0


def env(name: str) -> str | None:
    """The variable's value, stripped, or None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_flag(name: str) -> bool:
    return (env(name) or "").lower() == "true"

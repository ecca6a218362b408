"""``configure()``: an SDK TracerProvider that exports over OTLP, plus ``flush()`` / ``shutdown()``.

This is the only module that touches the OpenTelemetry *SDK* set-up; recorders need only
the API. It never replaces a TracerProvider the application already set. The provider it
creates is set once per process (OpenTelemetry allows no other); calling ``configure()``
again rebuilds the export pipeline behind it, so a notebook can switch from the console to
a collector without restarting.
"""

from __future__ import annotations

import atexit
import inspect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from promptrecorder import settings
from promptrecorder._diagnostics import logger, warn_once
from promptrecorder.console import CompactConsoleExporter
from promptrecorder.delivery import DeliveryExporter, DeliveryStats


@dataclass
class _Pipeline:
    """What one configure() call built: the processors and where they send spans."""

    processors: list[SpanProcessor] = field(default_factory=list)
    deliveries: list[DeliveryExporter] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)


class _SwitchableProcessor(SpanProcessor):
    """Delegates to the current pipeline, so configure() can replace it on a live provider."""

    def __init__(self) -> None:
        self.pipeline = _Pipeline()

    def on_start(self, span: SDKSpan, parent_context: object = None) -> None:
        for processor in self.pipeline.processors:
            processor.on_start(span, parent_context)  # type: ignore[arg-type]

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.pipeline.processors:
            processor.on_end(span)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return all(processor.force_flush(timeout_millis) for processor in self.pipeline.processors)

    def shutdown(self, timeout_millis: int = 30_000) -> None:
        _stop_pipeline(self.pipeline, timeout_millis / 1000)


@dataclass
class _State:
    provider: TracerProvider
    switch: _SwitchableProcessor
    shutdown_timeout: float
    is_shut_down: bool = False


_lock = threading.Lock()
_state: _State | None = None


def configure(
    *,
    service_name: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    exporter: str | Sequence[str] | SpanExporter | None = None,
    headers: Mapping[str, str] | str | None = None,
    timeout: float | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    shutdown_timeout: float = settings.DEFAULT_SHUTDOWN_TIMEOUT_S,
) -> trace.TracerProvider | None:
    """Send recorded prompts to an OTLP collector (or the console), honouring ``OTEL_*``.

    Example:
        >>> configure(service_name="support-bot", endpoint="http://localhost:4317", protocol="grpc")  # doctest: +SKIP

    Every argument left as ``None`` falls back to the standard variable (see
    ``promptrecorder.settings.ENVIRONMENT``), then to the OpenTelemetry default. Spans go
    through a ``BatchSpanProcessor``, so recording never waits on the network.

    Args:
        service_name: the resource's ``service.name`` (``OTEL_SERVICE_NAME``).
        endpoint: the collector's URL. For HTTP a base URL gets ``/v1/traces`` appended
            unless it already ends with it.
        protocol: ``"grpc"`` or ``"http/protobuf"`` (``OTEL_EXPORTER_OTLP_PROTOCOL``).
        exporter: ``"otlp"``, ``"console"``, ``"none"``, a list of those, or a
            ``SpanExporter`` instance (``OTEL_TRACES_EXPORTER``).
        headers: headers for every export, as a dict or ``"k=v,k2=v2"``.
        timeout: seconds one export may take (``OTEL_EXPORTER_OTLP_TIMEOUT``).
        resource_attributes: more resource attributes (merged over ``OTEL_RESOURCE_ATTRIBUTES``).
        shutdown_timeout: the most seconds process exit, or ``shutdown()``, waits for spans
            still queued; what is not delivered by then is counted and reported.

    Returns:
        The TracerProvider recorders will use: the application's own when it already set
        one (it is left untouched), else the one created here; None when
        ``OTEL_SDK_DISABLED=true`` (records are then kept in memory only).

    Raises:
        ValueError, TypeError: an argument, or the variable it falls back to, is invalid.
    """
    global _state
    if settings.env_flag(settings.OTEL_SDK_DISABLED):
        warn_once(
            "sdk-disabled", "promptrecorder: OTEL_SDK_DISABLED=true; prompts are recorded in memory only"
        )
        return None
    pipeline = _build_pipeline(endpoint, protocol, exporter, _parse_headers(headers), timeout)
    with _lock:
        if _state is None:
            current = trace.get_tracer_provider()
            if not isinstance(current, trace.ProxyTracerProvider):
                for processor in pipeline.processors:
                    processor.shutdown()
                warn_once(
                    "foreign-provider",
                    "promptrecorder: the application already set a TracerProvider (%s); "
                    "recorders use it and configure() adds no exporter to it",
                    type(current).__name__,
                )
                return current
            provider = TracerProvider(
                resource=_resource(service_name, resource_attributes), shutdown_on_exit=False
            )
            switch = _SwitchableProcessor()
            provider.add_span_processor(switch)
            trace.set_tracer_provider(provider)
            _state = _State(provider, switch, shutdown_timeout)
            atexit.register(shutdown)
        else:
            if service_name is not None or resource_attributes is not None:
                warn_once(
                    "resource-fixed",
                    "promptrecorder: configure() was called again; the export pipeline is "
                    "replaced, but the resource (service name) set first stays",
                )
            _state.shutdown_timeout = shutdown_timeout
            _state.is_shut_down = False
        previous, _state.switch.pipeline = _state.switch.pipeline, pipeline
        provider = _state.provider
    _stop_pipeline(previous, shutdown_timeout)
    logger.info("promptrecorder: exporting spans to %s", ", ".join(pipeline.destinations) or "nowhere")
    return provider


def destinations() -> list[str]:
    """Where configure() currently sends spans, for people and log lines."""
    with _lock:
        return [] if _state is None else list(_state.switch.pipeline.destinations)


def delivery_stats() -> list[DeliveryStats]:
    """Delivery counters of each exporter configure() built, in the order of ``destinations()``."""
    with _lock:
        deliveries = [] if _state is None else list(_state.switch.pipeline.deliveries)
    return [delivery.stats() for delivery in deliveries]


def flush(timeout: float = settings.DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
    """Export every finished span now; True when all of them were delivered.

    Works on the provider configure() created, or on the application's own SDK provider.
    Never raises: a failure is logged and reported as False.
    """
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return True
    before = [stats.failed_spans for stats in delivery_stats()]
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(bool(force_flush(int(timeout * 1000))))
        except Exception as error:  # flushing is telemetry: report, never raise
            logger.warning("promptrecorder: flush failed: %s", error)
            outcome.append(False)

    # The SDK's batch processor ignores force_flush's timeout (opentelemetry-python#4568),
    # so the wait is bounded here; an unfinished flush carries on in the background.
    worker = threading.Thread(target=run, name="promptrecorder-flush", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        logger.warning("promptrecorder: flush did not finish within %.1f s", timeout)
        return False
    after = [stats.failed_spans for stats in delivery_stats()]
    return outcome[0] and before == after


def shutdown(timeout: float | None = None) -> None:
    """Flush and stop the exporters configure() set up, waiting at most ``timeout`` seconds.

    Registered to run at interpreter exit. Calling it more than once is harmless; a later
    configure() sets exporting up again.
    """
    with _lock:
        if _state is None or _state.is_shut_down:
            return
        _state.is_shut_down = True
        pipeline, _state.switch.pipeline = _state.switch.pipeline, _Pipeline()
        wait = _state.shutdown_timeout if timeout is None else timeout
    _stop_pipeline(pipeline, wait)


def _stop_pipeline(pipeline: _Pipeline, timeout: float) -> None:
    for delivery in pipeline.deliveries:
        delivery.begin_shutdown()
    for processor in pipeline.processors:
        try:
            abandoned = _shutdown_processor(processor, timeout)
        except Exception as error:  # a broken exporter must not break shutdown of the others
            logger.warning("promptrecorder: an exporter failed to shut down: %s", error)
            continue
        exporter = getattr(processor, "span_exporter", None)
        if isinstance(exporter, DeliveryExporter):
            exporter.abandon(abandoned)


def _shutdown_processor(processor: SpanProcessor, timeout: float) -> int:
    """Shut ``processor`` down within ``timeout``; return how many spans it had to leave behind."""
    # BatchSpanProcessor.shutdown() waits up to 30 s; the batcher inside it takes a timeout
    # but the SDK does not pass one through, so reach it where it exists (SDK >= 1.34).
    batcher = getattr(processor, "_batch_processor", None)
    shutdown_batcher = getattr(batcher, "shutdown", None)
    if shutdown_batcher is None or "timeout_millis" not in inspect.signature(shutdown_batcher).parameters:
        processor.shutdown()
        return 0
    shutdown_batcher(timeout_millis=int(timeout * 1000))
    return len(getattr(batcher, "_queue", ()))


# --- building the pipeline --------------------------------------------------------


def _build_pipeline(
    endpoint: str | None,
    protocol: str | None,
    exporter: str | Sequence[str] | SpanExporter | None,
    headers: dict[str, str] | None,
    timeout: float | None,
) -> _Pipeline:
    pipeline = _Pipeline()
    if isinstance(exporter, SpanExporter):
        delivery = DeliveryExporter(exporter, type(exporter).__name__)
        pipeline.processors.append(BatchSpanProcessor(delivery))
        pipeline.deliveries.append(delivery)
        pipeline.destinations.append(delivery.destination)
        return pipeline
    for name in _exporter_names(exporter):
        if name == "console":
            pipeline.processors.append(SimpleSpanProcessor(CompactConsoleExporter()))
            pipeline.destinations.append("the console")
        elif name == "otlp":
            otlp, destination = _otlp_exporter(endpoint, protocol, headers, timeout)
            delivery = DeliveryExporter(otlp, destination)
            pipeline.processors.append(BatchSpanProcessor(delivery))
            pipeline.deliveries.append(delivery)
            pipeline.destinations.append(destination)
    return pipeline


def _exporter_names(exporter: str | Sequence[str] | None) -> list[str]:
    if exporter is None:
        names = (settings.env(settings.OTEL_TRACES_EXPORTER) or "otlp").split(",")
        source = settings.OTEL_TRACES_EXPORTER
    elif isinstance(exporter, str):
        names, source = exporter.split(","), "`exporter`"
    elif isinstance(exporter, Sequence) and all(isinstance(item, str) for item in exporter):
        names, source = list(exporter), "`exporter`"
    else:
        raise TypeError(
            "`exporter` must be 'otlp', 'console', 'none', a list of those or a SpanExporter, "
            f"got {type(exporter).__name__}: {exporter!r}"
        )
    cleaned = [name.strip().lower() for name in names if name.strip()]
    for name in cleaned:
        if name not in settings.EXPORTERS:
            raise ValueError(f"{source} must name exporters among {settings.EXPORTERS}, got {name!r}")
    return [] if "none" in cleaned else list(dict.fromkeys(cleaned))


def _otlp_exporter(
    endpoint: str | None, protocol: str | None, headers: dict[str, str] | None, timeout: float | None
) -> tuple[SpanExporter, str]:
    chosen = resolve_protocol(protocol)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    url = resolve_endpoint(endpoint, chosen)
    if chosen == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # loads grpc only when used
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=url, headers=headers, timeout=timeout), f"{url} (OTLP/gRPC)"
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=url, headers=headers, timeout=timeout), f"{url} (OTLP/HTTP)"


def resolve_protocol(protocol: str | None) -> str:
    """``protocol``, else the traces or general ``OTEL_*`` protocol variable, else the default.

    Raises:
        ValueError: the chosen protocol is not one of ``settings.PROTOCOLS``.
    """
    chosen = (
        protocol
        or settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
        or settings.env(settings.OTEL_EXPORTER_OTLP_PROTOCOL)
        or settings.DEFAULT_PROTOCOL
    )
    if chosen not in settings.PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {settings.PROTOCOLS}, got {chosen!r}")
    return chosen


def resolve_endpoint(endpoint: str | None, protocol: str) -> str:
    """The traces URL for ``protocol``, by the OTLP exporter specification's rules."""
    if endpoint is not None and (not isinstance(endpoint, str) or "://" not in endpoint):
        raise ValueError(f"`endpoint` must be a URL such as 'http://localhost:4318', got {endpoint!r}")
    if endpoint is None:
        traces = settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
        if traces is not None:
            return traces
        endpoint = settings.env(settings.OTEL_EXPORTER_OTLP_ENDPOINT)
    if protocol == "grpc":
        return endpoint or settings.DEFAULT_GRPC_ENDPOINT
    base = (endpoint or settings.DEFAULT_HTTP_ENDPOINT).rstrip("/")
    return base if base.endswith(settings.HTTP_TRACES_PATH) else base + settings.HTTP_TRACES_PATH


def _parse_headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    if headers is None:
        return None  # the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)HEADERS itself
    if isinstance(headers, Mapping):
        return {str(key).lower(): str(value) for key, value in headers.items()}
    if isinstance(headers, str):
        parsed = {}
        for item in headers.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"`headers` must be 'key=value,key2=value2', got an item {item!r}")
            parsed[key.strip().lower()] = value.strip()
        return parsed
    raise TypeError(f"`headers` must be a dict or a 'k=v,k2=v2' str, got {type(headers).__name__}")


def _resource(service_name: str | None, attributes: Mapping[str, str] | None) -> Resource:
    extra: dict[str, str] = dict(attributes or {})
    if service_name is not None:
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"`service_name` must be a non-empty str, got {service_name!r}")
        extra[SERVICE_NAME] = service_name
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME under `extra`.
    return Resource.create(extra)

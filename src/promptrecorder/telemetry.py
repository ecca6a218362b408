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
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from promptrecorder import ledger, settings
from promptrecorder._diagnostics import logger, warn_once
from promptrecorder.console import CompactConsoleExporter
from promptrecorder.delivery import DeliveryExporter, DeliveryStats
from promptrecorder.delivery_processor import DeliveryProcessor
from promptrecorder.spool import Spool, SpoolUnavailableError


@dataclass
class _Pipeline:
    """What one configure() call built: the processors and where they send spans."""

    processors: list[SpanProcessor] = field(default_factory=list)
    deliveries: list[DeliveryExporter] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)


class _SwitchableProcessor(SpanProcessor):
    """Delegates to the current pipeline, so configure() can replace it on a live provider.

    It also keeps the per-recorder delivery ledger: a span a recorder starts is noted when
    the pipeline accounts for delivery, and handed to each delivery when it ends.
    """

    def __init__(self) -> None:
        self.pipeline = _Pipeline()

    def on_start(self, span: SDKSpan, parent_context: object = None) -> None:
        pipeline = self.pipeline
        if pipeline.deliveries and span.context is not None:
            ledger.note_start(span.context.span_id)
        for processor in pipeline.processors:
            processor.on_start(span, parent_context)  # type: ignore[arg-type]

    def on_end(self, span: ReadableSpan) -> None:
        pipeline = self.pipeline
        context = span.context
        if context is not None:
            deliveries = pipeline.deliveries if context.trace_flags.sampled else []
            tally = ledger.take(context.span_id, len(deliveries))
            if tally is not None:
                for delivery in deliveries:
                    delivery.track(context.span_id, tally)
        for processor in pipeline.processors:
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
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int | None = None,
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
            still queued; what is not delivered by then is counted and reported (or, with a
            spool, left in it for the next process).
        spool_dir: a directory where spans that cannot be delivered are kept, as OTLP, and
            re-sent in order when the collector answers again, also by a later process
            configured with the same directory (``PROMPTRECORDER_SPOOL_DIR``). One process
            per directory. ``None``: no spool; undelivered spans are counted and reported.
        spool_max_bytes: the most disk the spool may use (``PROMPTRECORDER_SPOOL_MAX_BYTES``,
            default 256 MiB); beyond it the newest batches are dropped, counted and reported.

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
    spool = _spool_settings(spool_dir, spool_max_bytes)
    pipeline = _build_pipeline(endpoint, protocol, exporter, _parse_headers(headers), timeout, spool)
    with _lock:
        if _state is None:
            current = trace.get_tracer_provider()
            if not isinstance(current, trace.ProxyTracerProvider):
                _stop_pipeline(pipeline, 0)
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
    for delivery in pipeline.deliveries:
        delivery.start()
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

    False when a span was lost (failed, or dropped by a full queue or spool) since the
    previous ``flush()``, or since ``configure()`` for the first one. With a spool, it
    also waits, within ``timeout``, for the spool to be re-sent: spans spooled but not yet
    re-sent when the time is up make it False too (they are not lost: they wait on disk).
    Works on the provider configure() created, or on the application's own SDK provider.
    Never raises: a failure is logged and reported as False.

    Example:
        >>> if not promptrecorder.flush(timeout=10):  # doctest: +SKIP
        ...     log.warning("telemetry behind: %s", promptrecorder.delivery_stats())
    """
    deadline = time.monotonic() + timeout
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return True
    with _lock:
        deliveries = [] if _state is None else list(_state.switch.pipeline.deliveries)
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
    drained = all([delivery.wait_for_spool(deadline) for delivery in deliveries])  # noqa: C419 - wait on each
    lost = sum(delivery.lost_since_last_flush() for delivery in deliveries)
    return outcome[0] and drained and not lost


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
    deadline = time.monotonic() + timeout
    for delivery in pipeline.deliveries:
        delivery.begin_shutdown()
    for processor in pipeline.processors:
        left: list[ReadableSpan] = []
        try:
            left = _shutdown_processor(processor, max(0.0, deadline - time.monotonic()))
        except Exception as error:  # a broken exporter must not break shutdown of the others
            logger.warning("promptrecorder: an exporter failed to shut down: %s", error)
        if isinstance(processor, DeliveryProcessor):
            # Counts (or spools) what was left, reports, and releases the spool.
            processor.delivery.abandon(left)


def _shutdown_processor(processor: SpanProcessor, timeout: float) -> list[ReadableSpan]:
    """Shut ``processor`` down within ``timeout``; return the spans it had to leave behind."""
    # BatchSpanProcessor.shutdown() waits up to 30 s; the batcher inside it takes a timeout
    # but the SDK does not pass one through, so reach it where it exists (SDK >= 1.34).
    batcher = getattr(processor, "_batch_processor", None)
    shutdown_batcher = getattr(batcher, "shutdown", None)
    if shutdown_batcher is None or "timeout_millis" not in inspect.signature(shutdown_batcher).parameters:
        processor.shutdown()
        return []
    shutdown_batcher(timeout_millis=int(timeout * 1000))
    return processor.queued() if isinstance(processor, DeliveryProcessor) else []


# --- building the pipeline --------------------------------------------------------


def _build_pipeline(
    endpoint: str | None,
    protocol: str | None,
    exporter: str | Sequence[str] | SpanExporter | None,
    headers: dict[str, str] | None,
    timeout: float | None,
    spool: tuple[str, int] | None = None,
) -> _Pipeline:
    pipeline = _Pipeline()
    if isinstance(exporter, SpanExporter):
        _add_delivery(pipeline, exporter, type(exporter).__name__, spool)
        return pipeline
    for name in _exporter_names(exporter):
        if name == "console":
            pipeline.processors.append(SimpleSpanProcessor(CompactConsoleExporter()))
            pipeline.destinations.append("the console")
        elif name == "otlp":
            otlp, destination = _otlp_exporter(endpoint, protocol, headers, timeout)
            _add_delivery(pipeline, otlp, destination, spool)
    return pipeline


def _add_delivery(
    pipeline: _Pipeline, exporter: SpanExporter, destination: str, spool: tuple[str, int] | None
) -> None:
    opened = None
    if spool is not None:
        try:
            opened = Spool.acquire(*spool)
        except SpoolUnavailableError as error:
            # Telemetry must not stop the application from starting: say so and carry on.
            logger.warning(
                "promptrecorder: %s; spans that cannot be delivered will be counted and reported, not spooled",
                error,
            )
    delivery = DeliveryExporter(exporter, destination, opened)
    encode_at_end = getattr(exporter, "takes_encoded_spans", False) is True
    pipeline.processors.append(DeliveryProcessor(delivery, encode_at_end=encode_at_end))
    pipeline.deliveries.append(delivery)
    pipeline.destinations.append(destination)


def _spool_settings(
    spool_dir: str | os.PathLike[str] | None, spool_max_bytes: int | None
) -> tuple[str, int] | None:
    """The spool's directory and bound from the arguments, else the variables; None for no spool."""
    if spool_dir is None:
        spool_dir = settings.env(settings.PROMPTRECORDER_SPOOL_DIR)
    elif not isinstance(spool_dir, (str, os.PathLike)) or not os.fspath(spool_dir):
        raise TypeError(
            f"`spool_dir` must be a directory path (str or os.PathLike) or None, got {spool_dir!r}"
        )
    if spool_max_bytes is None:
        raw = settings.env(settings.PROMPTRECORDER_SPOOL_MAX_BYTES)
        try:
            spool_max_bytes = settings.DEFAULT_SPOOL_MAX_BYTES if raw is None else int(raw)
        except ValueError:
            raise ValueError(
                f"{settings.PROMPTRECORDER_SPOOL_MAX_BYTES} must be a whole number of bytes, got {raw!r}"
            ) from None
    if not isinstance(spool_max_bytes, int) or isinstance(spool_max_bytes, bool) or spool_max_bytes < 1:
        raise ValueError(f"`spool_max_bytes` must be a positive int (bytes), got {spool_max_bytes!r}")
    if spool_dir is None:
        return None
    return os.fspath(spool_dir), spool_max_bytes


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
    # The exporters (protobuf, grpc, requests) load when a pipeline is built, not at import.
    from promptrecorder.otlp_exporters import HttpSpanExporter, grpc_exporter

    if chosen == "grpc":
        return grpc_exporter(endpoint=url, headers=headers, timeout=timeout), f"{url} (OTLP/gRPC)"
    return (
        HttpSpanExporter(endpoint=url, headers=headers, timeout=timeout, session=_otlp_session()),
        f"{url} (OTLP/HTTP)",
    )


def _otlp_session() -> requests.Session | None:
    """A session that keeps the CA bundle the OTLP variables name, when they name one.

    The requests library lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own
    CA (psf/requests#3829), so an OTEL_EXPORTER_OTLP_CERTIFICATE would be silently ignored
    on machines that set either; proxies and other environment settings still apply.
    """
    if not (
        settings.env(settings.OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE)
        or settings.env(settings.OTEL_EXPORTER_OTLP_CERTIFICATE)
    ):
        return None
    return PinnedCaSession()


class PinnedCaSession(requests.Session):
    """A requests session whose own CA file (set by the OTLP/HTTP exporter from
    ``OTEL_EXPORTER_OTLP_CERTIFICATE``) is not overridden by the environment's bundle.

    Used by ``configure()`` and by ``promptrecorder check``, so that both trust what the
    OTLP variables say.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        merged: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        if isinstance(self.verify, str):
            merged["verify"] = self.verify
        return merged


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

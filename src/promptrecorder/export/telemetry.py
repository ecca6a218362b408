"""``configure()``: an SDK TracerProvider that exports over OTLP, plus ``flush()`` / ``shutdown()``.

This is the only module that touches the OpenTelemetry *SDK* set-up; recorders need only
the API. It never replaces a TracerProvider the application already set. The provider it
creates is set once per process (OpenTelemetry allows no other); calling ``configure()``
again rebuilds the export pipeline behind it, so a notebook can switch from the console to
a collector without restarting.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Span as SDKSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from promptrecorder import _diagnostics, settings
from promptrecorder._diagnostics import warn_once
from promptrecorder.credentials import mask_url
from promptrecorder.errors import SpoolUnavailableError
from promptrecorder.export import delivery_processor, senders
from promptrecorder.export.configure_options import (
    PipelineLimits,
    build_resource,
    exporter_names,
    parse_headers,
    spool_settings,
)
from promptrecorder.export.console import CompactConsoleExporter
from promptrecorder.export.delivery import Delivery, DeliveryStats, ExporterSender
from promptrecorder.export.delivery_processor import DeliveryProcessor
from promptrecorder.export.otlp_send import OtlpSender
from promptrecorder.export.spool import Spool
from promptrecorder.recording import ledger

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import LoggerProvider
from promptrecorder.recording import log_events as recording_log_events

logger = logging.getLogger(__name__)


@dataclass
class _Pipeline:
    """What one configure() call built: the processors and where they send spans.

    ``stopped``: ``shutdown()`` stopped it; spans that end afterwards are counted as
    dropped and said once, until ``configure()`` builds a new pipeline.
    """

    processors: list[SpanProcessor] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    stopped: bool = False


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
        if pipeline.stopped:
            return
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
        if pipeline.stopped:
            if context is not None and context.trace_flags.sampled:
                for delivery in pipeline.deliveries:
                    delivery.after_shutdown(context.span_id)  # counted, said once
                if pipeline.destinations and not pipeline.deliveries:
                    warn_once(
                        logger,
                        "ended-after-shutdown",
                        "promptrecorder: a span ended after shutdown(); it is not exported. Call "
                        "promptrecorder.configure() again to resume.",
                    )
            return
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
    logs: LoggerProvider | None = None  # built by the first configure(log_events=True)


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
    max_request_bytes: int | None = None,
    log_events: bool | None = None,
) -> trace.TracerProvider | None:
    """Send recorded prompts to an OTLP collector (or the console), honouring ``OTEL_*``.

    Example:
        >>> configure(service_name="support-bot", endpoint="http://localhost:4317", protocol="grpc")  # doctest: +SKIP

    Every argument left as ``None`` falls back to the standard variable (see
    ``promptrecorder.settings.ENVIRONMENT``), then to the OpenTelemetry default. Spans are
    queued as their OTLP bytes and sent by a background thread in requests bounded in spans
    and in bytes (``promptrecorder.export.delivery_processor``), so recording never waits on the
    network and no request is too big for a stock receiver.

    Args:
        service_name: the resource's ``service.name`` (``OTEL_SERVICE_NAME``).
        endpoint: the collector's URL. For HTTP a base URL gets ``/v1/traces`` appended
            unless it already ends with it.
        protocol: ``"grpc"`` or ``"http/protobuf"`` (``OTEL_EXPORTER_OTLP_PROTOCOL``).
        exporter: ``"otlp"``, ``"console"``, ``"none"``, a list of those, or a
            ``SpanExporter`` instance (``OTEL_TRACES_EXPORTER``). An exporter instance gets
            the same queue, byte-bounded batches, counting and spool as the OTLP senders
            (its batches are decoded back to spans for it); it does its own retrying.
        headers: headers for every export, as a dict or ``"k=v,k2=v2"``.
        timeout: seconds one export attempt may take (``OTEL_EXPORTER_OTLP_TIMEOUT``);
            transient failures are retried with back-off within it.
        resource_attributes: more resource attributes (merged over ``OTEL_RESOURCE_ATTRIBUTES``).
        shutdown_timeout: the most seconds process exit, or ``shutdown()``, waits for spans
            still queued; what is not delivered by then is counted and reported (or, with a
            spool, left in it for the next process).
        spool_dir: a directory where spans that cannot be delivered are kept, as OTLP, and
            re-sent in order when the collector answers again, also by a later process
            configured with the same directory (``PROMPTRECORDER_SPOOL_DIR``). One process
            per directory (and its forked children); it must be private to this user.
            ``None``: no spool; undelivered spans are counted and reported.
        spool_max_bytes: the most disk the spool may use (``PROMPTRECORDER_SPOOL_MAX_BYTES``,
            default 256 MiB); beyond it the newest batches are dropped, counted and reported.
        max_request_bytes: the most bytes one export request may carry
            (``PROMPTRECORDER_MAX_REQUEST_BYTES``, default 4 MiB - 64 KiB, which a stock
            Collector and Jaeger accept over gRPC and HTTP). A single span larger than this
            is sent alone.
        log_events: also emit each pair as a ``gen_ai.client.inference.operation.details``
            log record (OpenTelemetry Logs API, correlated with the pair's call span), sent
            as OTLP logs to the same endpoint (``PROMPTRECORDER_LOG_EVENTS=true``; off by
            default). Span events are recorded either way.

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
            logger,
            "sdk-disabled",
            "promptrecorder: OTEL_SDK_DISABLED=true; prompts are recorded in memory only",
        )
        return None
    if log_events is None:
        log_events = settings.env_flag(settings.PROMPTRECORDER_LOG_EVENTS)
    elif not isinstance(log_events, bool):
        raise TypeError(f"`log_events` must be a bool or None, got {log_events!r}")
    spool = spool_settings(spool_dir, spool_max_bytes)
    limits = PipelineLimits.resolve(max_request_bytes)
    pipeline = _build_pipeline(endpoint, protocol, exporter, parse_headers(headers), timeout, spool, limits)
    with _lock:
        if _state is None:
            current = trace.get_tracer_provider()
            if not isinstance(current, trace.ProxyTracerProvider):
                _stop_pipeline(pipeline, 0)
                warn_once(
                    logger,
                    "foreign-provider",
                    "promptrecorder: the application already set a TracerProvider (%s); "
                    "recorders use it and configure() adds no exporter to it",
                    type(current).__name__,
                )
                # Log records, if asked for, go to whatever LoggerProvider the application set.
                recording_log_events.enable(log_events)
                return current
            provider = TracerProvider(
                resource=build_resource(service_name, resource_attributes), shutdown_on_exit=False
            )
            switch = _SwitchableProcessor()
            provider.add_span_processor(switch)
            trace.set_tracer_provider(provider)
            _state = _State(provider, switch, shutdown_timeout)
            atexit.register(shutdown)
        else:
            if service_name is not None or resource_attributes is not None:
                warn_once(
                    logger,
                    "resource-fixed",
                    "promptrecorder: configure() was called again; the export pipeline is "
                    "replaced, but the resource (service name) set first stays",
                )
            _state.shutdown_timeout = shutdown_timeout
            _state.is_shut_down = False
        previous, _state.switch.pipeline = _state.switch.pipeline, pipeline
        provider = _state.provider
        if log_events and _state.logs is None:
            from promptrecorder.export.log_export import start_logs  # the Logs SDK loads only here

            _state.logs = start_logs(provider.resource, protocol, endpoint, parse_headers(headers), timeout)
        recording_log_events.enable(log_events, _state.logs)
    _stop_pipeline(previous, shutdown_timeout)
    for delivery in pipeline.deliveries:
        delivery.start()
    logger.info("promptrecorder: exporting spans to %s", ", ".join(pipeline.destinations) or "nowhere")
    return provider


def destinations() -> list[str]:
    """Where configure() currently sends spans, for people and log lines (credentials masked)."""
    with _lock:
        return [] if _state is None else list(_state.switch.pipeline.destinations)


def delivery_stats() -> list[DeliveryStats]:
    """Delivery counters of each destination configure() built, in the order of ``destinations()``.

    After ``shutdown()`` they stay readable (spans ending then count as
    ``shutdown_dropped_spans``) until the next ``configure()``.
    """
    with _lock:
        deliveries = [] if _state is None else list(_state.switch.pipeline.deliveries)
    return [delivery.stats() for delivery in deliveries]


def flush(timeout: float = settings.DEFAULT_SHUTDOWN_TIMEOUT_S) -> bool:
    """Export every finished span now; True when all of them were delivered.

    False when a span was lost (failed, refused, dropped by a full queue or spool, or ended
    after ``shutdown()``) since the previous ``flush()``, or since ``configure()`` for the
    first one. With a spool, it also waits, within ``timeout``, for the spool to be
    re-sent: spans spooled but not yet re-sent when the time is up make it False too (they
    are not lost: they wait on disk). Works on the provider configure() created, or on the
    application's own SDK provider. Never raises: a failure is logged and reported as False.

    Example:
        >>> if not promptrecorder.flush(timeout=10):  # doctest: +SKIP
        ...     log.warning("telemetry behind: %s", promptrecorder.delivery_stats())
    """
    deadline = time.monotonic() + timeout
    with _lock:
        logs = None if _state is None else _state.logs
    if logs is not None:
        logs.force_flush(int(timeout * 1000))
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

    # An application's own provider may carry the SDK's batch processor, which ignores
    # force_flush's timeout (opentelemetry-python#4568): the wait is bounded here.
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

    Registered to run at interpreter exit. Calling it more than once is harmless. Spans that
    end afterwards are not exported: they are counted (``shutdown_dropped_spans``), warned
    about once, and make ``flush()`` False; a later ``configure()`` sets exporting up again.
    """
    with _lock:
        if _state is None or _state.is_shut_down:
            return
        _state.is_shut_down = True
        pipeline = _state.switch.pipeline
        pipeline.stopped = True
        wait = _state.shutdown_timeout if timeout is None else timeout
        logs, _state.logs = _state.logs, None
    if logs is not None:
        recording_log_events.enable(False)
        try:
            logs.shutdown()
        except Exception as error:  # a broken log exporter must not stop the spans' shutdown
            logger.warning("promptrecorder: the log exporter failed to shut down: %s", error)
    _stop_pipeline(pipeline, wait)


def _stop_pipeline(pipeline: _Pipeline, timeout: float) -> None:
    """Stop every processor within ``timeout`` seconds in all (each gets what is left)."""
    deadline = time.monotonic() + timeout
    for delivery in pipeline.deliveries:
        delivery.begin_shutdown()
    for processor in pipeline.processors:
        left = max(0.0, deadline - time.monotonic())
        try:
            if isinstance(processor, DeliveryProcessor):
                processor.shutdown(timeout_millis=left * 1000)
            else:
                processor.shutdown()
        except Exception as error:  # a broken exporter must not break shutdown of the others
            logger.warning("promptrecorder: an exporter failed to shut down: %s", error)


def _after_fork_in_child() -> None:
    """In a forked child: locks no parent thread can hold, and a pipeline of its own."""
    global _lock
    _lock = threading.Lock()
    _diagnostics.after_fork_in_child()
    ledger.after_fork_in_child()
    Spool.reset_registry_after_fork()
    delivery_processor.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --- building the pipeline --------------------------------------------------------


def _build_pipeline(
    endpoint: str | None,
    protocol: str | None,
    exporter: str | Sequence[str] | SpanExporter | None,
    headers: dict[str, str] | None,
    timeout: float | None,
    spool: tuple[str, int] | None,
    limits: PipelineLimits,
) -> _Pipeline:
    pipeline = _Pipeline()
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise ValueError(f"`timeout` must be a positive number of seconds, got {timeout!r}")
    if isinstance(exporter, SpanExporter):
        sender = ExporterSender(exporter)
        export_timeout = float(timeout or settings.DEFAULT_EXPORT_TIMEOUT_S)
        _add_delivery(pipeline, sender, sender.destination, spool, limits, export_timeout, retry=False)
        return pipeline
    for name in exporter_names(exporter):
        if name == "console":
            pipeline.processors.append(SimpleSpanProcessor(CompactConsoleExporter()))
            pipeline.destinations.append("the console")
        elif name == "otlp":

            def build(chosen: str | None = protocol) -> OtlpSender:
                return senders.build_sender(chosen, endpoint, headers, timeout)

            otlp = build()
            kind = "OTLP/gRPC" if otlp.protocol == "grpc" else "OTLP/HTTP"
            export_timeout = float(getattr(otlp, "timeout", None) or settings.DEFAULT_EXPORT_TIMEOUT_S)
            destination = f"{mask_url(otlp.destination)} ({kind})"
            _add_delivery(pipeline, otlp, destination, spool, limits, export_timeout, rebuild=build)
    return pipeline


def _add_delivery(
    pipeline: _Pipeline,
    sender: OtlpSender,
    destination: str,
    spool: tuple[str, int] | None,
    limits: PipelineLimits,
    export_timeout: float,
    *,
    retry: bool = True,
    rebuild: Callable[[], OtlpSender] | None = None,
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
    delivery = Delivery(
        sender,
        destination,
        opened,
        export_timeout=export_timeout,
        retry=retry,
        rebuild_sender=rebuild,
        max_request_bytes=limits.max_request_bytes,
    )
    pipeline.processors.append(
        DeliveryProcessor(
            delivery,
            max_queue_spans=limits.max_queue_spans,
            max_queue_bytes=limits.max_queue_bytes,
            max_batch_spans=limits.max_batch_spans,
            max_request_bytes=limits.max_request_bytes,
            schedule_delay_s=limits.schedule_delay_s,
        )
    )
    pipeline.deliveries.append(delivery)
    pipeline.destinations.append(destination)

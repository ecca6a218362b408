"""What ``configure()`` is given, read and checked: its arguments, else the OTel variables.

Each function turns one argument (or its variable) into the value the pipeline is built
from, or raises TypeError/ValueError saying what is accepted; a header's value (a token,
perhaps) is never quoted in an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource

from promptrecorder import settings


@dataclass(frozen=True)
class PipelineLimits:
    """The queue and batch bounds, from ``OTEL_BSP_*`` and ``PROMPTRECORDER_MAX_*_BYTES``."""

    max_queue_spans: int
    max_queue_bytes: int
    max_batch_spans: int
    max_request_bytes: int
    schedule_delay_s: float

    @classmethod
    def resolve(cls, max_request_bytes: int | None) -> PipelineLimits:
        if max_request_bytes is None:
            max_request_bytes = env_int(settings.PROMPTRECORDER_MAX_REQUEST_BYTES, "bytes")
        elif (
            isinstance(max_request_bytes, bool)
            or not isinstance(max_request_bytes, int)
            or max_request_bytes < 1
        ):
            raise ValueError(f"`max_request_bytes` must be a positive int (bytes), got {max_request_bytes!r}")
        queue_spans = env_int(settings.OTEL_BSP_MAX_QUEUE_SIZE, "spans")
        batch_spans = env_int(settings.OTEL_BSP_MAX_EXPORT_BATCH_SIZE, "spans")
        return cls(
            max_queue_spans=queue_spans,
            max_queue_bytes=max(env_int(settings.PROMPTRECORDER_MAX_QUEUE_BYTES, "bytes"), max_request_bytes),
            max_batch_spans=min(batch_spans, queue_spans),  # as the SDK's processor
            max_request_bytes=max_request_bytes,
            schedule_delay_s=env_int(settings.OTEL_BSP_SCHEDULE_DELAY, "milliseconds") / 1000,
        )


def env_int(name: str, unit: str) -> int:
    """A positive whole number from the variable ``name``, else its default in ``settings``."""
    raw = settings.env(name)
    default = settings.ENVIRONMENT[name][0]
    try:
        value = int(raw if raw is not None else str(default))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a positive whole number of {unit}, got {raw!r}")
    return value


def spool_settings(
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


def exporter_names(exporter: str | Sequence[str] | None) -> list[str]:
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


def parse_headers(headers: Mapping[str, str] | str | None) -> dict[str, str] | None:
    """Headers from a mapping or ``"k=v,k2=v2"``; no error message ever quotes a value (a token)."""
    if headers is None:
        return None  # the sender reads OTEL_EXPORTER_OTLP_(TRACES_)HEADERS itself
    if isinstance(headers, Mapping):
        return {str(key).lower(): str(value) for key, value in headers.items()}
    if isinstance(headers, str):
        parsed = {}
        for number, item in enumerate(headers.split(","), start=1):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                name, colon, _ = item.partition(":")
                hint = (
                    f"; write {name.strip()!r} as '{name.strip()}=<value>'"
                    if colon and name.strip() and " " not in name.strip()
                    else ""
                )
                raise ValueError(
                    f"`headers` must be 'key=value,key2=value2', got an item (number {number}) "
                    f"without '=' or without a name{hint}; its value is not shown"
                )
            parsed[key.strip().lower()] = value.strip()
        return parsed
    raise TypeError(f"`headers` must be a dict or a 'k=v,k2=v2' str, got {type(headers).__name__}")


def build_resource(service_name: str | None, attributes: Mapping[str, str] | None) -> Resource:
    extra: dict[str, str] = dict(attributes or {})
    if service_name is not None:
        if not isinstance(service_name, str) or not service_name:
            raise ValueError(f"`service_name` must be a non-empty str, got {service_name!r}")
        extra[SERVICE_NAME] = service_name
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME under `extra`.
    return Resource.create(extra)

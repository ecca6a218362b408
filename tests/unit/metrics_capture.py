"""Capture the metrics promptrecorder records, through the global MeterProvider as users set it.

promptrecorder's instruments are made at import from the global meter provider; until an
application sets one they are proxies, which take real instruments from whatever provider
is set later. The API lets the global provider be set once per process, so this resets
that guard (two module attributes, as tests/conftest.py does for traces), sets a provider
with an in-memory reader for the block, and afterwards points the proxies back at the
provider that was set before (or a no-op one) and restores the guard, leaving the process as it found it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, NumberDataPoint
from opentelemetry.util._once import Once


@dataclass(frozen=True)
class Point:
    """One data point: its instrument, attributes, count, sum and bucket bounds (a counter's
    point: its value as ``sum``, ``count`` 0, no bounds)."""

    name: str
    unit: str
    attributes: dict[str, Any]
    count: int
    sum: float
    bounds: tuple[float, ...]


class Capture:
    def __init__(self, reader: InMemoryMetricReader) -> None:
        self._reader = reader

    def points(self, name: str | None = None) -> list[Point]:
        """The histogram and counter points recorded so far, of instrument ``name`` or of all."""
        data = self._reader.get_metrics_data()
        found: list[Point] = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if name is not None and metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if isinstance(point, NumberDataPoint):
                            found.append(
                                Point(
                                    metric.name,
                                    metric.unit or "",
                                    dict(point.attributes or {}),
                                    0,
                                    point.value,
                                    (),
                                )
                            )
                            continue
                        assert isinstance(point, HistogramDataPoint)
                        found.append(
                            Point(
                                metric.name,
                                metric.unit or "",
                                dict(point.attributes or {}),
                                point.count,
                                point.sum,
                                tuple(point.explicit_bounds),
                            )
                        )
        return found


def _set_global(provider: metrics.MeterProvider) -> None:
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._METER_PROVIDER = None
    metrics.set_meter_provider(provider)


@contextmanager
def capture_metrics() -> Iterator[Capture]:
    """A global MeterProvider with an in-memory reader, for the duration of the block."""
    saved = metrics_internal._METER_PROVIDER_SET_ONCE, metrics_internal._METER_PROVIDER
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    _set_global(provider)
    try:
        yield Capture(reader)
    finally:
        # Point the proxies back at the provider that was there, or at none.
        _set_global(saved[1] or NoOpMeterProvider())
        metrics_internal._METER_PROVIDER_SET_ONCE, metrics_internal._METER_PROVIDER = saved
        provider.shutdown()

"""What ``autorecord`` costs, next to a floor and next to bare OpenTelemetry calls.

Every case runs in this one process, in one run, interleaved: each round runs one timed
batch of every case, in a freshly shuffled order, so drift on a shared machine (another
job, a frequency change) hits all cases alike. A batch is ``N`` calls in a plain loop,
timed with ``time.perf_counter_ns`` (wall) and ``time.process_time_ns`` (CPU of this
process); ``N`` is calibrated per case so a batch takes about ``--batch-ms``. The garbage
collector is off during each batch and a full collection runs between rounds. Ratios are
taken within each round (both sides measured minutes apart would compare two machines),
then the median of those ratios is reported.

Run from the repository root::

    .venv/bin/python bench/overhead.py            # ~7 s on 2 cores, writes bench/results/overhead.json
    .venv/bin/python bench/overhead.py --quick    # smoke run, a few seconds
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import marshal
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import promptrecorder
from promptrecorder import PromptRecorder, autorecord
from promptrecorder.export.otlp_encode import encode_request
from promptrecorder.recording.events import prompt_event_attributes, response_event_attributes
from promptrecorder.recording.semconv import EVENT_PROMPT, EVENT_RESPONSE

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "overhead.json"

# The floor: what any "is something recording?" check must pay at least.
_FLOOR_VAR: ContextVar[object] = ContextVar("bench_floor", default=None)
# What floor_append appends to; cleared before and after every batch.
_PAIRS: list[tuple[str, str]] = []
# Stands in for our 16-hex-digit record id in the bare OpenTelemetry cases.
_BARE_ID = "0123456789abcdef"

# One provider of the kind a test or a notebook would use; every span it ends is exported
# at once, synchronously, into memory. The exporter is cleared before every batch.
_EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
_TRACER = _PROVIDER.get_tracer("bench")
_RECORDER = PromptRecorder("bench", tracer_provider=_PROVIDER, max_records=1000)


# --- the timed loops: each is what a caller would write, with its objects in locals ---------


def _loop_empty(n: int) -> None:
    for _ in range(n):
        pass


def _loop_floor(n: int) -> None:
    var = _FLOOR_VAR
    for _ in range(n):
        var.get()


def _loop_floor_append(n: int) -> None:
    var = _FLOOR_VAR
    pairs = _PAIRS
    prompt, response = "prompt", "response"
    for _ in range(n):
        var.get()
        pairs.append((prompt, response))


def _loop_autorecord_idle(n: int) -> None:
    record = autorecord
    for _ in range(n):
        record("prompt", "response")


def _loop_bare_events(span: Any, n: int) -> None:
    ident = _BARE_ID
    for _ in range(n):
        span.add_event("gen_ai.prompt", {"id": ident, "text": "prompt text"})
        span.add_event("gen_ai.response", {"id": ident, "text": "response text"})


def _loop_bare_span_two_events(n: int) -> None:
    tracer = _TRACER
    ident = _BARE_ID
    for _ in range(n):
        span = tracer.start_span("llm call")
        span.add_event("gen_ai.prompt", {"id": ident, "text": "prompt text"})
        span.add_event("gen_ai.response", {"id": ident, "text": "response text"})
        span.end()


def _our_event_attributes() -> tuple[dict[str, Any], dict[str, Any]]:
    """The attributes of the two events ``autorecord_active`` adds, exactly as it builds them."""
    with PromptRecorder("bench-attributes") as recorder:  # no provider: nothing is exported
        record = autorecord("prompt text", "response text", model="m", input_tokens=3, output_tokens=5)
    assert record is not None
    limit = recorder.max_content_length
    prompt = prompt_event_attributes(
        record_id=record.id,
        prompt=record.prompt,
        messages=None,
        model="m",
        input_tokens=3,
        metadata=record.metadata,
        limit=limit,
    )
    response = response_event_attributes(
        record_id=record.id, response=record.response, model="m", output_tokens=5, limit=limit
    )
    return prompt, response


_OUR_PROMPT_ATTRIBUTES, _OUR_RESPONSE_ATTRIBUTES = _our_event_attributes()


def _loop_sdk_events_ours(span: Any, n: int) -> None:
    prompt, response = _OUR_PROMPT_ATTRIBUTES, _OUR_RESPONSE_ATTRIBUTES
    for _ in range(n):
        now = time.time_ns()
        span.add_event(EVENT_PROMPT, prompt, now)
        span.add_event(EVENT_RESPONSE, response, now)


def _loop_autorecord_active(n: int) -> None:
    record = autorecord
    for _ in range(n):
        record("prompt text", "response text", model="m", input_tokens=3, output_tokens=5)


# --- what one delivered record costs the producing process (the delivery row's floor) ------
#
# bench/delivery_load.py's producer runs one `with PromptRecorder(...): autorecord(...)` block
# per record; these cases split what that costs the process into the block itself, the SDK
# calls inside it, the stock exporter's OTLP encoding of the span, and the least any exporter
# must do with a span in the producing process: read its fields once, to hand them over.


class _Discard(SpanProcessor):
    """Ends spans into nothing, so that a case times the block without any export."""

    def on_end(self, span: ReadableSpan) -> None:
        pass


_DISCARD_PROVIDER = TracerProvider()
_DISCARD_PROVIDER.add_span_processor(_Discard())
_DISCARD_TRACER = _DISCARD_PROVIDER.get_tracer("bench")
# delivery_load.py's producer record, word for word.
_LOAD_PROMPT = "Summarise ticket 42 in one sentence, for the on-call engineer."
_LOAD_RESPONSE = "The printer on floor 3 is out of toner; a replacement is on its way."
_BSP_BATCH = 512  # the stock BatchSpanProcessor's max_export_batch_size


def _loop_record_block(n: int, provider: TracerProvider = _DISCARD_PROVIDER) -> None:
    prompt, response = _LOAD_PROMPT, _LOAD_RESPONSE
    for _ in range(n):
        with PromptRecorder("request", tracer_provider=provider, max_records=4):
            autorecord(prompt, response, model="gpt-4o-mini", input_tokens=17, output_tokens=19)


class _NoExport(SpanExporter):
    """Takes every batch and sends it nowhere: what is left is the pipeline's own cost."""

    def export(self, spans: object) -> SpanExportResult:
        return SpanExportResult.SUCCESS


# The same block through two whole pipelines with SDK-default batching, each exporting to
# nowhere: the stock BatchSpanProcessor, and configure()'s (its delivery ledger and its
# full-queue check on top of the same batching). Their difference is what ours adds.
_STOCK_BSP_PROVIDER = TracerProvider()
_STOCK_BSP_PROVIDER.add_span_processor(BatchSpanProcessor(_NoExport()))
_CONFIGURED_PROVIDER = promptrecorder.configure(exporter=_NoExport(), service_name="bench")


def _load_spans() -> list[ReadableSpan]:
    """A batch of the spans the producer's blocks export, as the exporter receives them."""
    _EXPORTER.clear()
    _loop_record_block(_BSP_BATCH, _PROVIDER)
    spans = list(_EXPORTER.get_finished_spans())
    _EXPORTER.clear()
    return spans


_LOAD_SPANS = _load_spans()


def _loop_sdk_record_block(n: int) -> None:
    """The SDK calls of one producer block, with the attributes it sets, and nothing of ours."""
    tracer = _DISCARD_TRACER
    # The recorder span (events, its count and turn messages set at its end) and the pair's
    # call span (`chat <model>`, a child with the GenAI attributes, started and ended at once).
    template = next(span for span in _LOAD_SPANS if span.kind is SpanKind.INTERNAL)
    call = next(span for span in _LOAD_SPANS if span.kind is SpanKind.CLIENT)
    name, attributes = template.name, dict(template.attributes or {})
    at_end = {
        key: attributes.pop(key)
        for key in ("promptrecorder.record.count", "gen_ai.input.messages", "gen_ai.output.messages")
        if key in attributes
    }
    call_name, call_attributes = call.name, dict(call.attributes or {})
    events = [(event.name, dict(event.attributes or {})) for event in template.events]
    for _ in range(n):
        span = tracer.start_span(name, attributes=attributes)
        now = time.time_ns()
        for event_name, event_attributes in events:
            span.add_event(event_name, event_attributes, now)
        tracer.start_span(
            call_name,
            context=trace.set_span_in_context(span),
            kind=SpanKind.CLIENT,
            attributes=call_attributes,
            start_time=now,
        ).end(now)
        span.set_attributes(at_end)
        span.end()


def _span_fields(span: ReadableSpan) -> tuple[Any, ...]:
    """Every field the OTLP encoder reads from a span, as plain values."""
    context, parent, status = span.context, span.parent, span.status
    return (
        context.trace_id,
        context.span_id,
        parent.span_id if parent is not None else None,
        span.name,
        span.kind.value,
        span.start_time,
        span.end_time,
        tuple((span.attributes or {}).items()),
        tuple(
            (event.name, event.timestamp, tuple((event.attributes or {}).items())) for event in span.events
        ),
        tuple(
            (link.context.trace_id, link.context.span_id, tuple((link.attributes or {}).items()))
            for link in span.links
        ),
        status.status_code.value,
        status.description,
    )


def _stock_encode(spans: list[ReadableSpan], _: int) -> None:
    encode_spans(spans).SerializeToString()


def _our_encode(spans: list[ReadableSpan], _: int) -> None:
    encode_request(spans)


def _batch_encode(encode: Callable[[list[ReadableSpan], int], None]) -> Callable[[int], tuple[int, int]]:
    """An encoding of ``n`` producer spans, in BSP-sized batches."""

    def batch(n: int) -> tuple[int, int]:
        spans = _LOAD_SPANS
        wall = cpu = 0
        left = n
        while left:
            chunk = spans[: min(left, len(spans))]
            chunk_wall, chunk_cpu = _timed(functools.partial(encode, chunk), len(chunk))
            wall, cpu, left = wall + chunk_wall, cpu + chunk_cpu, left - len(chunk)
        return wall, cpu

    return batch


def _loop_handoff(n: int) -> None:
    spans = _LOAD_SPANS
    size = len(spans)
    dumps = marshal.dumps
    for index in range(n):
        dumps(_span_fields(spans[index % size]))


# --- batches: untimed setup and teardown around one timed loop --------------------------


def _timed(loop: Callable[[int], None], n: int) -> tuple[int, int]:
    """Run ``loop(n)`` with the collector off; return its (wall, cpu) nanoseconds."""
    gc.disable()
    try:
        wall_start = time.perf_counter_ns()
        cpu_start = time.process_time_ns()
        loop(n)
        cpu_end = time.process_time_ns()
        wall_end = time.perf_counter_ns()
    finally:
        gc.enable()
    return wall_end - wall_start, cpu_end - cpu_start


def _batch_plain(loop: Callable[[int], None]) -> Callable[[int], tuple[int, int]]:
    return lambda n: _timed(loop, n)


def _batch_floor_append(n: int) -> tuple[int, int]:
    _PAIRS.clear()
    try:
        return _timed(_loop_floor_append, n)
    finally:
        _PAIRS.clear()


def _batch_bare_events(n: int) -> tuple[int, int]:
    _EXPORTER.clear()
    span = _TRACER.start_span("bench span")
    try:
        return _timed(lambda count: _loop_bare_events(span, count), n)
    finally:
        span.end()


def _batch_sdk_events_ours(n: int) -> tuple[int, int]:
    # Like autorecord_active, a fresh span takes at most 127 events: batches of 63 pairs on
    # spans started and ended outside the timing, so the SDK never drops an event here.
    _EXPORTER.clear()
    wall = cpu = 0
    left = n
    while left:
        chunk = min(left, 63)
        span = _TRACER.start_span("bench span")
        try:
            chunk_wall, chunk_cpu = _timed(functools.partial(_loop_sdk_events_ours, span), chunk)
        finally:
            span.end()
        wall, cpu, left = wall + chunk_wall, cpu + chunk_cpu, left - chunk
    return wall, cpu


def _batch_bare_span_two_events(n: int) -> tuple[int, int]:
    _EXPORTER.clear()
    return _timed(_loop_bare_span_two_events, n)


def _batch_autorecord_active(n: int) -> tuple[int, int]:
    _EXPORTER.clear()
    # Entering and exiting the recorder stay outside the timing; segment rollovers
    # (a new child span every ~63 pairs, the old one ended and exported) are inside.
    with _RECORDER:
        return _timed(_loop_autorecord_active, n)


@dataclass
class Case:
    name: str
    description: str
    batch: Callable[[int], tuple[int, int]]
    calls: int = 0
    wall_ns: list[float] = field(default_factory=list)  # per call, one entry per round
    cpu_ns: list[float] = field(default_factory=list)


def cases() -> list[Case]:
    return [
        Case(
            "empty_loop",
            "`for _ in range(n): pass`; the loop's own cost, included in every row (for reference)",
            _batch_plain(_loop_empty),
        ),
        Case(
            "floor", "ContextVar.get() on a module-level ContextVar (default None)", _batch_plain(_loop_floor)
        ),
        Case(
            "floor_append",
            "ContextVar.get() plus list.append((prompt, response)); the list is cleared every round",
            _batch_floor_append,
        ),
        Case(
            "autorecord_idle",
            'autorecord("prompt", "response") with no recorder active',
            _batch_plain(_loop_autorecord_idle),
        ),
        Case(
            "bare_events",
            "two span.add_event(name, {id, text}) on an already-started SDK span; per pair",
            _batch_bare_events,
        ),
        Case(
            "bare_span_two_events",
            "tracer.start_span, two add_event({id, text}), span.end (SimpleSpanProcessor + InMemorySpanExporter)",
            _batch_bare_span_two_events,
        ),
        Case(
            "sdk_events_ours",
            "the two span.add_event calls autorecord_active makes, with its very attributes and "
            "timestamps, prebuilt, on an SDK span started outside the timing: the part of "
            "autorecord_active that is the SDK's; per pair",
            _batch_sdk_events_ours,
        ),
        Case(
            "autorecord_active",
            'autorecord("prompt text", "response text", model="m", input_tokens=3, output_tokens=5) '
            'inside `with PromptRecorder("bench", tracer_provider=..., max_records=1000)`',
            _batch_autorecord_active,
        ),
        Case(
            "record_block",
            'delivery_load.py\'s producer record: `with PromptRecorder("request", ...)` around one '
            "autorecord, the recorder built per record, spans ended into a processor that drops them",
            _batch_plain(_loop_record_block),
        ),
        Case(
            "record_block_stock_bsp",
            "record_block on a provider with the stock BatchSpanProcessor (SDK defaults), exporting nowhere",
            _batch_plain(functools.partial(_loop_record_block, provider=_STOCK_BSP_PROVIDER)),
        ),
        Case(
            "record_block_configured",
            "record_block on the provider promptrecorder.configure() builds (SDK-default batching, "
            "delivery ledger, full-queue check), exporting nowhere",
            _batch_plain(functools.partial(_loop_record_block, provider=_CONFIGURED_PROVIDER)),
        ),
        Case(
            "sdk_record_block",
            "the SDK calls alone of record_block (start_span with its attributes, its two events "
            "prebuilt, set_attribute, end), spans dropped the same way",
            _batch_plain(_loop_sdk_record_block),
        ),
        Case(
            "stock_encode",
            "the stock OTLP exporters' encoding (encode_spans + SerializeToString) of the spans "
            "record_block exports, in batches of 512; per span",
            _batch_encode(_stock_encode),
        ),
        Case(
            "our_encode",
            "the same spans encoded by configure()'s exporters (promptrecorder.export.otlp_encode, the same "
            "bytes), in batches of 512; per span",
            _batch_encode(_our_encode),
        ),
        Case(
            "handoff_floor",
            "the least any exporter must do with a span in the producing process: read every field "
            "the OTLP encoder reads, once, and marshal them (to hand to another thread or process); per span",
            _batch_plain(_loop_handoff),
        ),
    ]


# (numerator, denominator, target: the numerator must be at most this many denominators)
RATIOS: list[tuple[str, str, float | None]] = [
    ("autorecord_idle", "floor_append", 2.0),
    ("autorecord_idle", "floor", None),
    ("autorecord_active", "bare_span_two_events", 0.5),
    ("sdk_events_ours", "bare_span_two_events", None),
    ("autorecord_active", "sdk_events_ours", None),
    ("autorecord_active", "bare_events", None),
]


# --- running ------------------------------------------------------------------------------


def _calibrate(case: Case, batch_ns: float) -> int:
    """How many calls make one batch of about ``batch_ns``; the trial batches warm up too."""
    n = 8
    while True:
        wall, _ = case.batch(n)
        if wall >= batch_ns / 8 or n >= 50_000_000:
            break
        n *= 4
    return max(1, round(n * batch_ns / max(wall, 1)))


def run(rounds: int, batch_ms: float, seed: int) -> tuple[list[Case], list[list[str]]]:
    all_cases = cases()
    for case in all_cases:
        case.calls = _calibrate(case, batch_ms * 1e6)
    shuffler = random.Random(seed)
    orders: list[list[str]] = []
    for _ in range(rounds):
        order = all_cases[:]
        shuffler.shuffle(order)
        orders.append([case.name for case in order])
        gc.collect()
        for case in order:
            wall, cpu = case.batch(case.calls)
            case.wall_ns.append(wall / case.calls)
            case.cpu_ns.append(cpu / case.calls)
    return all_cases, orders


# --- statistics and reporting -------------------------------------------------------------


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": _quantile(values, 0.5),
        "p25": _quantile(values, 0.25),
        "p75": _quantile(values, 0.75),
        "min": min(values),
    }


def environment() -> dict[str, Any]:
    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        affinity = None
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "opentelemetry_sdk": version("opentelemetry-sdk"),
        "opentelemetry_api": version("opentelemetry-api"),
        "promptrecorder": promptrecorder.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        # Names only: values may hold credentials (OTEL_EXPORTER_OTLP_HEADERS).
        "otel_env_vars_set": sorted(name for name in os.environ if name.startswith("OTEL_")),
    }


def build_report(
    cases: list[Case], orders: list[list[str]], rounds: int, batch_ms: float, seed: int, quick: bool
) -> dict[str, Any]:
    by_name = {case.name: case for case in cases}
    ratios: dict[str, Any] = {}
    for numerator, denominator, target in RATIOS:
        top, bottom = by_name[numerator], by_name[denominator]
        wall = [a / b for a, b in zip(top.wall_ns, bottom.wall_ns, strict=True)]
        cpu = [a / b for a, b in zip(top.cpu_ns, bottom.cpu_ns, strict=True) if b > 0]
        median = _quantile(wall, 0.5)
        ratios[f"{numerator} / {denominator}"] = {
            "wall": _summary(wall),
            "cpu_median": _quantile(cpu, 0.5) if cpu else None,
            "target_max": target,
            "target_met": None if target is None else median <= target,
            "per_round_wall": wall,
        }
    return {
        "benchmark": "promptrecorder autorecord overhead",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unit": "nanoseconds per call (per pair for the bare_* cases)",
        "method": {
            "rounds": rounds,
            "quick": quick,
            "target_batch_ms": batch_ms,
            "seed": seed,
            "clocks": {"wall": "time.perf_counter_ns", "cpu": "time.process_time_ns"},
            "gc": "disabled during each timed batch; gc.collect() between rounds",
            "ratios": "computed within each round, then the median across rounds",
        },
        "environment": environment(),
        "cases": {
            case.name: {
                "description": case.description,
                "calls_per_batch": case.calls,
                "wall_ns": _summary(case.wall_ns),
                "cpu_ns": _summary(case.cpu_ns),
                "per_round_wall_ns": case.wall_ns,
            }
            for case in cases
        },
        "ratios": ratios,
        "round_orders": orders,
    }


def format_tables(report: dict[str, Any]) -> str:
    lines = [
        f"{'case':<22} {'calls/batch':>11} {'wall ns':>9} {'wall µs':>8} {'p25-p75 ns':>17} {'cpu ns':>9}",
    ]
    for name, case in report["cases"].items():
        wall, cpu = case["wall_ns"], case["cpu_ns"]
        spread = f"{wall['p25']:.0f}-{wall['p75']:.0f}"
        lines.append(
            f"{name:<22} {case['calls_per_batch']:>11} {wall['median']:>9.0f} "
            f"{wall['median'] / 1000:>8.3f} {spread:>17} {cpu['median']:>9.0f}"
        )
    lines += [
        "",
        f"{'ratio (median of per-round ratios)':<42} {'wall':>6} {'p25-p75':>11} {'cpu':>6}  target",
    ]
    for name, ratio in report["ratios"].items():
        wall = ratio["wall"]
        cpu = "-" if ratio["cpu_median"] is None else f"{ratio['cpu_median']:.2f}"
        target = "-"
        if ratio["target_max"] is not None:
            target = f"<= {ratio['target_max']:g}  {'met' if ratio['target_met'] else 'NOT met'}"
        spread = f"{wall['p25']:.2f}-{wall['p75']:.2f}"
        lines.append(f"{name:<42} {wall['median']:>6.2f} {spread:>11} {cpu:>6}  {target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds of all cases (default 30; 3 with --quick)"
    )
    parser.add_argument(
        "--batch-ms", type=float, default=None, help="target length of one batch (default 25; 3 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds, short batches")
    parser.add_argument("--seed", type=int, default=0, help="seed for the per-round shuffle")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 30)
    batch_ms = args.batch_ms if args.batch_ms is not None else (3.0 if args.quick else 25.0)
    if rounds < 1:
        parser.error(f"`--rounds` must be a positive int, got {rounds!r}")
    if batch_ms <= 0:
        parser.error(f"`--batch-ms` must be positive, got {batch_ms!r}")

    started = time.perf_counter()
    cases, orders = run(rounds, batch_ms, args.seed)
    report = build_report(cases, orders, rounds, batch_ms, args.seed, args.quick)
    report["method"]["elapsed_s"] = round(time.perf_counter() - started, 2)

    env = report["environment"]
    print(
        f"Python {env['python']}, opentelemetry-sdk {env['opentelemetry_sdk']}, "
        f"promptrecorder {env['promptrecorder']}, {env['platform']}, {env['cpu_count']} CPUs; "
        f"{rounds} rounds of ~{batch_ms:g} ms batches, {report['method']['elapsed_s']} s"
    )
    print(format_tables(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What recording one realistic pair costs, beside a bare SDK span with the same payload (issue 15).

Three families of rows, each ``ours`` beside its reference in the same run, interleaved:

- **text size** (100, 200, 10,000 and 1,000,000 characters of prose, prompt and response alike):
  ``autorecord(prompt, response, model=..., input_tokens=..., output_tokens=...)`` inside one
  open recorder, against a bare SDK span that carries the same two texts as two events;
- **threads** (1, 8 and 32 threads sharing one recorder, 200-character texts): the per-pair
  cost, wall time over all pairs and CPU time of the whole process, against the same threads
  each making bare spans;
- **one-pair blocks**: ``with recorder: autorecord(...)`` (a recorder made once, entered per
  request, as a service does) against one bare span with the two events.

Both sides end their spans into the same processor, which encodes every span into OTLP as it
ends (``promptrecorder.export.otlp_encode.encode_span``, what ``configure()``'s pipeline does in
the thread that ends the span) and drops the bytes, so the reference pays for its payload as
ours does. With ``--export memory`` the processor is instead a SimpleSpanProcessor with an
InMemorySpanExporter (no encoding), as the figures issue 15 quotes were measured. Each is
measured twice for ours: with the per-pair call spans (``call_spans=True``, the default) and
without (events only).

A second reference per text size, ``bare_stock``, is the same bare span encoded by the stock
OTLP exporter's encoder (``encode_spans([span]).SerializeToString()``, protobuf): what a
service that makes the span itself and exports it with the SDK's own pipeline pays for it
(there in the BatchSpanProcessor's thread, under the same GIL). Context only, no target: it
credits ours with our encoder's speed.

A **floor** row per text size and mode is only the SDK calls and the encoding of exactly the
bytes ``ours`` exports, every attribute prebuilt from a real recorder: ``floor / bare`` says
what no recorder exporting those bytes can go below, ``ours / floor`` what is ours.

Method: per round, every case runs one batch in a freshly shuffled order; a batch is timed with
``perf_counter_ns`` (wall) and ``process_time_ns`` (CPU of the whole process, all threads); the
garbage collector is off during a batch. Ratios are taken within a round, then the median.

    .venv/bin/python bench/hot_path.py            # ~40 s on 2 cores; writes bench/results/hot_path.json
    .venv/bin/python bench/hot_path.py --quick    # smoke run
    .venv/bin/python bench/hot_path.py --export memory   # as issue 15 measured; writes hot_path_memory.json
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer, set_span_in_context

from promptrecorder import PromptRecorder, autorecord
from promptrecorder.export.otlp_encode import encode_span
from promptrecorder.recording import semconv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "hot_path.json"
# English as a prompt holds it: capitals ("A" starts an AWS or Google key), a "b" (the
# bearer token's), "task-" (which holds the OpenAI key's "sk-"), an "x" and "-" (Slack's).
PROSE = (
    "Bob, the on-call engineer, asks whether the printer on floor three is out of toner again; "
    "A task-risk note says the duplex unit jams when the tray is overfilled by a ream. "
)
SIZES = (100, 10_000, 1_000_000)
THREADS = (1, 8, 32)
MODEL = "gpt-4o-mini"
_BARE_ID = "0123456789abcdef"


def text(length: int, salt: str) -> str:
    body = salt + " " + PROSE * (length // len(PROSE) + 1)
    return body[:length]


class _EndedSpans(SpanProcessor):
    """Where both sides' spans end. ``encode`` (the default): each span is encoded into OTLP as
    it ends, as configure()'s pipeline does, and the bytes dropped. ``memory``: each span goes
    to a SimpleSpanProcessor with an InMemorySpanExporter, unencoded, which is how
    bench/overhead.py measured the figures issue 15 quotes (emptied before every batch)."""

    def __init__(self) -> None:
        self.mode = "encode"
        self.memory = InMemorySpanExporter()
        self._simple = SimpleSpanProcessor(self.memory)

    def on_end(self, span: ReadableSpan) -> None:
        if self.mode == "encode":
            encode_span(span)
        else:
            self._simple.on_end(span)


class _StockEncodeAndDrop(SpanProcessor):
    """Encodes each span as it ends with the stock OTLP exporter's protobuf encoder, and drops the bytes."""

    def on_end(self, span: ReadableSpan) -> None:
        encode_spans([span]).SerializeToString()


ENDED = _EndedSpans()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(ENDED)
TRACER = PROVIDER.get_tracer("bench")
STOCK_PROVIDER = TracerProvider()
STOCK_PROVIDER.add_span_processor(_StockEncodeAndDrop())
STOCK_TRACER = STOCK_PROVIDER.get_tracer("bench")


def _recorder(call_spans: bool) -> PromptRecorder:
    return PromptRecorder("bench", tracer_provider=PROVIDER, max_records=1000, call_spans=call_spans)


# --- what is timed -----------------------------------------------------------------------


def _ours(recorder: PromptRecorder, prompt: str, response: str, n: int) -> None:
    record = autorecord
    with recorder:
        for _ in range(n):
            record(prompt, response, model=MODEL, input_tokens=17, output_tokens=19)


def _bare(prompt: str, response: str, n: int, tracer: Tracer = TRACER) -> None:
    ident = _BARE_ID
    for _ in range(n):
        span = tracer.start_span("chat " + MODEL)
        span.add_event("gen_ai.prompt", {"id": ident, "text": prompt, "model": MODEL, "tokens": 17})
        span.add_event("gen_ai.response", {"id": ident, "text": response, "model": MODEL, "tokens": 19})
        span.end()


def _one_pair_blocks(recorder: PromptRecorder, prompt: str, response: str, n: int) -> None:
    record = autorecord
    for _ in range(n):
        with recorder:
            record(prompt, response, model=MODEL, input_tokens=17, output_tokens=19)


@dataclass(frozen=True)
class ExportedPair:
    """What one recorded pair puts on spans, taken from a real recorder: the two events'
    attributes and, with call spans, the call span's name and attributes."""

    prompt: dict[str, Any]
    response: dict[str, Any]
    call_name: str | None
    call: dict[str, Any] | None


def exported_pair(prompt: str, response: str, call_spans: bool) -> ExportedPair:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PromptRecorder("bench", tracer_provider=provider, call_spans=call_spans):
        autorecord(prompt, response, model=MODEL, input_tokens=17, output_tokens=19)
    spans = exporter.get_finished_spans()
    (block,) = [span for span in spans if span.name.startswith(semconv.WORKFLOW_SPAN_PREFIX)]
    calls = [span for span in spans if span.kind is SpanKind.CLIENT]
    first, second = (dict(event.attributes or {}) for event in block.events)
    call = calls[0] if calls else None
    return ExportedPair(
        first,
        second,
        None if call is None else call.name,
        None if call is None else dict(call.attributes or {}),
    )


def _floor(pair: ExportedPair, n: int) -> None:
    """Only the SDK calls and the encoding of what ``_ours`` exports for ``n`` pairs, with every
    attribute prebuilt: the events on an open span that is ended (and encoded) every 63 pairs,
    as a recorder's segments are, and each pair's call span. What no recorder can leave out
    and still export the same bytes."""
    tracer, prompt, response, call_name, call = TRACER, pair.prompt, pair.response, pair.call_name, pair.call
    segment = tracer.start_span("bench")
    for index in range(n):
        if index and index % 63 == 0:
            segment.end()
            segment = tracer.start_span("bench")
        now = time.time_ns()
        segment.add_event(semconv.EVENT_PROMPT, prompt, now)
        segment.add_event(semconv.EVENT_RESPONSE, response, now)
        if call_name is not None:
            tracer.start_span(
                call_name,
                context=set_span_in_context(segment),
                kind=SpanKind.CLIENT,
                attributes=call,
                start_time=now,
            ).end(now)
    segment.end()


def _in_threads(threads: int, work: Callable[[int], None], n: int) -> None:
    """``work(n // threads)`` in each of ``threads`` threads started together; waits for all."""
    per_thread = max(1, n // threads)
    start = threading.Barrier(threads)

    def run() -> None:
        start.wait()
        work(per_thread)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


@dataclass
class Case:
    name: str
    description: str
    run: Callable[[int], None]
    pairs_per_call: Callable[[int], int] = lambda n: n
    calls: int = 0
    wall_ns: list[float] = field(default_factory=list)
    cpu_ns: list[float] = field(default_factory=list)

    def batch(self, n: int) -> tuple[float, float]:
        ENDED.memory.clear()
        gc.collect()
        gc.disable()
        try:
            cpu0, wall0 = time.process_time_ns(), time.perf_counter_ns()
            self.run(n)
            wall, cpu = time.perf_counter_ns() - wall0, time.process_time_ns() - cpu0
        finally:
            gc.enable()
        pairs = self.pairs_per_call(n)
        return wall / pairs, cpu / pairs


def cases() -> list[Case]:
    found: list[Case] = []
    with_spans, events_only = _recorder(True), _recorder(False)
    for size in (*SIZES, 200):
        prompt, response = text(size, "prompt"), text(size, "response")
        for mode, spans in (("", True), ("_events_only", False)):
            found.append(
                Case(
                    f"floor_{size}{mode}",
                    f"the SDK calls and encoding alone of ours_{size}{mode}, every attribute prebuilt",
                    functools.partial(_floor, exported_pair(prompt, response, spans)),
                )
            )
    for size in SIZES:
        prompt, response = text(size, "prompt"), text(size, "response")
        found += [
            Case(
                f"bare_{size}",
                f"bare SDK span, two events of {size:,} characters",
                lambda n, p=prompt, r=response: _bare(p, r, n),
            ),
            Case(
                f"bare_stock_{size}",
                "the same bare span, encoded by the stock OTLP exporter's encoder",
                lambda n, p=prompt, r=response: _bare(p, r, n, STOCK_TRACER),
            ),
            Case(
                f"ours_{size}",
                f"autorecord of {size:,}-character texts in one recorder",
                lambda n, p=prompt, r=response: _ours(with_spans, p, r, n),
            ),
            Case(
                f"ours_{size}_events_only",
                "the same, call_spans=False",
                lambda n, p=prompt, r=response: _ours(events_only, p, r, n),
            ),
        ]
    prompt, response = text(200, "prompt"), text(200, "response")
    for threads in THREADS:
        found += [
            Case(
                f"bare_200_threads_{threads}",
                f"bare spans, 200 characters, {threads} threads",
                lambda n, t=threads: _in_threads(t, lambda m: _bare(prompt, response, m), n),
                lambda n, t=threads: max(1, n // t) * t,
            ),
            Case(
                f"ours_200_threads_{threads}",
                f"{threads} threads sharing one recorder, 200 characters",
                lambda n, t=threads: _shared_block(with_spans, t, prompt, response, n),
                lambda n, t=threads: max(1, n // t) * t,
            ),
            Case(
                f"ours_200_threads_{threads}_events_only",
                "the same, call_spans=False",
                lambda n, t=threads: _shared_block(events_only, t, prompt, response, n),
                lambda n, t=threads: max(1, n // t) * t,
            ),
        ]
    found += [
        Case(
            "bare_200_block",
            "one bare span with two 200-character events per request",
            lambda n: _bare(prompt, response, n),
        ),
        Case(
            "ours_200_block",
            "with recorder: one autorecord (200 characters) per request",
            lambda n: _one_pair_blocks(with_spans, prompt, response, n),
        ),
        Case(
            "ours_200_block_events_only",
            "the same, call_spans=False",
            lambda n: _one_pair_blocks(events_only, prompt, response, n),
        ),
        Case("bare_200", "bare SDK span, two events of 200 characters", lambda n: _bare(prompt, response, n)),
        Case(
            "bare_stock_200",
            "the same bare span, encoded by the stock OTLP exporter's encoder",
            lambda n: _bare(prompt, response, n, STOCK_TRACER),
        ),
        Case(
            "ours_200",
            "autorecord of 200-character texts in one recorder",
            lambda n: _ours(with_spans, prompt, response, n),
        ),
        Case(
            "ours_200_events_only",
            "the same, call_spans=False",
            lambda n: _ours(events_only, prompt, response, n),
        ),
    ]
    return found


def _shared_block(recorder: PromptRecorder, threads: int, prompt: str, response: str, n: int) -> None:
    """One block whose recorder every thread records into, through ``recorder.wrap`` (what a
    service with a worker pool does)."""

    def pairs(m: int) -> None:
        record = autorecord
        for _ in range(m):
            record(prompt, response, model=MODEL, input_tokens=17, output_tokens=19)

    with recorder:
        _in_threads(threads, recorder.wrap(pairs), n)


# (ours, reference, target: ours must cost at most this many references)
RATIOS: list[tuple[str, str, float | None]] = [
    *[(f"ours_{s}", f"bare_{s}", {100: None, 10_000: 1.5, 1_000_000: 2.0}[s]) for s in SIZES],
    *[(f"ours_{s}_events_only", f"bare_{s}", {100: None, 10_000: 1.5, 1_000_000: 2.0}[s]) for s in SIZES],
    ("ours_200", "bare_200", 0.6),
    ("ours_200_events_only", "bare_200", 0.6),
    *[(f"ours_200_threads_{t}", f"bare_200_threads_{t}", None if t == 1 else 1.0) for t in THREADS],
    *[
        (f"ours_200_threads_{t}_events_only", f"bare_200_threads_{t}", None if t == 1 else 1.0)
        for t in THREADS
    ],
    ("ours_200_block", "bare_200_block", 1.5),
    ("ours_200_block_events_only", "bare_200_block", 1.5),
    # The floors: what the same exported bytes cost at the least, beside the reference (if
    # above the target, the target is out of reach of any recorder exporting those bytes),
    # and ours beside its floor (our own overhead).
    *[(f"floor_{s}{m}", f"bare_{s}", None) for s in (*SIZES, 200) for m in ("", "_events_only")],
    *[(f"ours_{s}{m}", f"floor_{s}{m}", None) for s in (*SIZES, 200) for m in ("", "_events_only")],
    # Context: ours beside a bare span exported through the SDK's stock encoder.
    *[(f"ours_{s}{m}", f"bare_stock_{s}", None) for s in (*SIZES, 200) for m in ("", "_events_only")],
]


def _calibrate(case: Case, batch_ns: float) -> int:
    n = 32
    while True:
        wall, _ = case.batch(n)
        if wall * case.pairs_per_call(n) >= batch_ns / 4 or n >= 10_000_000:
            break
        n *= 4
    return max(32, round(n * batch_ns / max(wall * case.pairs_per_call(n), 1)))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def run(rounds: int, batch_ms: float, seed: int) -> list[Case]:
    all_cases = cases()
    shuffler = random.Random(seed)
    for case in all_cases:
        case.calls = _calibrate(case, batch_ms * 1e6)
    for _ in range(rounds):
        order = all_cases[:]
        shuffler.shuffle(order)
        for case in order:
            wall, cpu = case.batch(case.calls)
            case.wall_ns.append(wall)
            case.cpu_ns.append(cpu)
    return all_cases


def report(all_cases: list[Case], rounds: int, batch_ms: float) -> dict[str, Any]:
    by_name = {case.name: case for case in all_cases}
    ratios: dict[str, Any] = {}
    for ours, reference, target in RATIOS:
        top, bottom = by_name[ours], by_name[reference]
        wall = _median([a / b for a, b in zip(top.wall_ns, bottom.wall_ns, strict=True)])
        cpu = _median([a / b for a, b in zip(top.cpu_ns, bottom.cpu_ns, strict=True) if b > 0])
        ratios[f"{ours} / {reference}"] = {
            "wall": wall,
            "cpu": cpu,
            "target_max": target,
            "target_met": None if target is None else wall <= target and cpu <= target,
        }
    return {
        "benchmark": "promptrecorder hot path (issue 15)",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "unit": "nanoseconds per pair",
        "method": {"rounds": rounds, "target_batch_ms": batch_ms},
        "python": sys.version.split()[0],
        "cases": {
            case.name: {
                "description": case.description,
                "pairs_per_batch": case.pairs_per_call(case.calls),
                "wall_ns": _median(case.wall_ns),
                "cpu_ns": _median(case.cpu_ns),
            }
            for case in all_cases
        },
        "ratios": ratios,
    }


def format_report(data: dict[str, Any]) -> str:
    lines = [f"{'case':<34} {'wall µs':>9} {'cpu µs':>9}"]
    for name, case in data["cases"].items():
        lines.append(f"{name:<34} {case['wall_ns'] / 1000:>9.2f} {case['cpu_ns'] / 1000:>9.2f}")
    lines += ["", f"{'ratio (median of per-round ratios)':<58} {'wall':>6} {'cpu':>6}  target"]
    for name, ratio in data["ratios"].items():
        target = "-"
        if ratio["target_max"] is not None:
            target = f"<= {ratio['target_max']:g}  {'met' if ratio['target_met'] else 'NOT met'}"
        lines.append(f"{name:<58} {ratio['wall']:>6.2f} {ratio['cpu']:>6.2f}  {target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 15; 3 with --quick)")
    parser.add_argument(
        "--batch-ms", type=float, default=None, help="batch length (default 40; 5 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export",
        choices=("encode", "memory"),
        default="encode",
        help="what happens to ended spans: encoded into OTLP (default), or kept unencoded in memory",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    ENDED.mode = args.export
    out = args.out or DEFAULT_OUT.with_name(
        "hot_path.json" if args.export == "encode" else "hot_path_memory.json"
    )
    rounds = args.rounds or (3 if args.quick else 15)
    batch_ms = args.batch_ms or (5.0 if args.quick else 40.0)
    started = time.perf_counter()
    data = report(run(rounds, batch_ms, args.seed), rounds, batch_ms)
    data["method"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    data["method"]["export"] = args.export
    print(
        f"Python {data['python']}; {rounds} rounds of ~{batch_ms:g} ms batches, {data['method']['elapsed_s']} s"
    )
    print(format_report(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

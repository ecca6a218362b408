"""Memory per kept record: a PromptRecorder's store beside a plain list of (prompt, response).

Both sides keep the same number of pairs of *fresh* strings (built in the loop, so neither
side shares text with the other or with an interned constant), 1,000 characters of prompt
and 1,000 of response each: 2,000 characters of text per record. ``tracemalloc`` counts
what is still allocated once recording is over and the garbage collector has run:

- ``plain_list``: ``pairs.append((prompt, response))``;
- ``ours``: ``autorecord(prompt, response, model=..., input_tokens=..., output_tokens=...)``
  inside ``with PromptRecorder(..., max_records=None)`` on a TracerProvider whose spans are
  exported to an exporter that drops them, so that what is counted is what the recorder
  keeps (the records), not the spans on their way out.

Run from the repository root::

    .venv/bin/python bench/memory.py            # 10,000 records, a few seconds
    .venv/bin/python bench/memory.py --quick    # 2,000 records
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from promptrecorder import PromptRecorder, autorecord

HALF = 1_000  # characters of prompt, and of response
_FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 40


class _Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _text(kind: str, index: int) -> str:
    head = f"{kind} {index:09d} "
    return head + _FILLER[: HALF - len(head)]


def _plain_list(count: int) -> object:
    pairs = []
    for index in range(count):
        pairs.append((_text("prompt", index), _text("response", index)))
    return pairs


def _ours(count: int) -> object:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_Dropping()))
    recorder = PromptRecorder("memory", tracer_provider=provider, max_records=None)
    with recorder:
        for index in range(count):
            autorecord(
                _text("prompt", index),
                _text("response", index),
                model="gpt-4o-mini",
                input_tokens=250,
                output_tokens=250,
            )
    assert len(recorder) == count
    return recorder


def _measure(build: Callable[[int], object], count: int) -> dict[str, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = build(count)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return {"bytes": after - before, "bytes_per_record": (after - before) / count}


def measure(count: int) -> dict[str, Any]:
    _measure(_ours, 100)  # warm-up: first-use allocations (caches, the SDK's) are not per record
    _measure(_plain_list, 100)
    plain = _measure(_plain_list, count)
    ours = _measure(_ours, count)
    return {
        "records": count,
        "characters_per_record": 2 * HALF,
        "plain_list": plain,
        "ours": ours,
        "ratio": ours["bytes_per_record"] / plain["bytes_per_record"],
        "method": "tracemalloc: traced memory still allocated after recording and gc.collect()",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=None, help="records per side (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="2,000 records")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    count = args.records or (2_000 if args.quick else 10_000)
    result = measure(count)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{count:,} records of {2 * HALF:,} characters: ours {result['ours']['bytes_per_record']:,.0f} "
            f"B/record, plain list {result['plain_list']['bytes_per_record']:,.0f} B/record, "
            f"ratio {result['ratio']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU per record while the export queue is backed up: spans queued as objects or as bytes.

A producer records as fast as it can into a queue large enough to hold every span
(``OTEL_BSP_MAX_QUEUE_SIZE``), so the export thread falls behind and the queue grows, as it
does behind a slow collector or in a burst. Every garbage collection then walks what waits
in the queue. Pipelines, each in its own process, to the same receiver on 127.0.0.1
(bench/delivery_load.py's):

* ``stock``: TracerProvider + the SDK's BatchSpanProcessor + the stock OTLP exporter
  (queued: span objects);
* ``spans``: ``promptrecorder.configure()``, with its processor told to queue span objects;
* ``bytes``: ``promptrecorder.configure()`` as shipped: spans queued as their OTLP bytes.

Run from the repository root (needs the dev extra)::

    .venv/bin/python bench/backlog.py                      # 60,000 records per pipeline, gRPC, ~1 min
    .venv/bin/python bench/backlog.py --records 20000 --protocol http/protobuf
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from delivery_load import (  # bench/ is not a package: found through sys.path above
    PROMPT,
    RESPONSE,
    Receiver,
    stock_provider,
)

PIPELINES = ("stock", "spans", "bytes")


def produce(pipeline: str, protocol: str, endpoint: str, records: int) -> None:
    """Record ``records`` blocks as fast as possible, flush, print CPU and wall per record as JSON."""
    # Room for every span, so nothing is dropped (and never below the SDK default of 2,048).
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(max(records, 2048))
    import promptrecorder
    from promptrecorder import PromptRecorder, autorecord
    from promptrecorder.export import telemetry
    from promptrecorder.export.delivery_processor import DeliveryProcessor

    provider = None
    if pipeline == "stock":
        provider = stock_provider(protocol, endpoint)
    else:
        promptrecorder.configure(endpoint=endpoint, protocol=protocol, service_name="backlog")
        if pipeline == "spans":
            state = telemetry._state
            assert state is not None
            for processor in state.switch.pipeline.processors:
                if isinstance(processor, DeliveryProcessor):
                    processor._encode_at_end = False

    prompt, response = PROMPT, RESPONSE
    slowest = 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(records):
        began = time.perf_counter()
        with PromptRecorder("request", tracer_provider=provider, max_records=4):
            autorecord(prompt, response, model="gpt-4o-mini", input_tokens=17, output_tokens=19)
        slowest = max(slowest, time.perf_counter() - began)
    produced_s = time.perf_counter() - started
    flushed = provider.force_flush(120_000) if provider is not None else promptrecorder.flush(timeout=120)
    result = {
        "pipeline": pipeline,
        "records": records,
        "flushed": flushed,
        "cpu_us_per_record": (time.process_time() - cpu_started) / records * 1e6,
        "wall_us_per_record": (time.perf_counter() - started) / records * 1e6,
        "produce_us_per_record": produced_s / records * 1e6,
        "slowest_block_ms": slowest * 1000,
    }
    if provider is not None:
        provider.shutdown()
    else:
        promptrecorder.shutdown(timeout=5)
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--protocol", default="grpc", choices=("grpc", "http/protobuf"))
    parser.add_argument("--rounds", type=int, default=2, help="each pipeline this many times, interleaved")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "backlog.json"
    )
    args = parser.parse_args(argv)
    receiver = Receiver(args.protocol)
    results: list[dict[str, Any]] = []
    try:
        print(
            f"{'pipeline':<8} {'CPU µs/record':>14} {'wall µs/record':>15} {'received':>9} {'slowest block ms':>17}"
        )
        for _ in range(args.rounds):
            for pipeline in PIPELINES:
                before = receiver.counts()["unique_records"]
                completed = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "_produce",
                        pipeline,
                        args.protocol,
                        receiver.endpoint,
                        str(args.records),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=600,
                    env={key: value for key, value in os.environ.items() if not key.startswith("OTEL_")},
                    check=True,
                )
                result = json.loads(completed.stdout.strip().splitlines()[-1])
                result["received"] = receiver.counts()["unique_records"] - before
                results.append(result)
                print(
                    f"{pipeline:<8} {result['cpu_us_per_record']:>14.1f} {result['wall_us_per_record']:>15.1f}"
                    f" {result['received']:>9} {result['slowest_block_ms']:>17.1f}",
                    flush=True,
                )
    finally:
        receiver.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"protocol": args.protocol, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main())

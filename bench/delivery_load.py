"""Delivery under load: records per second through the real OTLP exporters to a real receiver.

For each protocol (gRPC, HTTP/protobuf) and each pipeline, a ramp of rates; each step
produces records at a fixed rate for ``--step-seconds`` (one ``with PromptRecorder():``
block per record, so one span per record, as a service handling requests would), then
flushes (bounded) and compares what the receiver got with what was produced.

Pipelines:

* ``stock``: the SDK alone, as the issue measured it: ``TracerProvider`` +
  ``BatchSpanProcessor`` (SDK defaults: queue 2,048, batch 512, 5 s delay) + the stock
  OTLP exporter. Loss here is silent.
* ``counted``: ``promptrecorder.configure()`` without a spool: same batching, but a span
  the full queue cannot take is counted (``delivery_stats()``), per recorder too.
* ``spool``: ``configure(spool_dir=...)``: what the queue cannot take, or the collector
  does not accept, goes to disk and is re-sent.

Three processes share the machine: this driver, one producer per step (fresh SDK state),
and one receiver per protocol (the oteltest sinks, bound to 127.0.0.1, counting record ids
without keeping the requests). The receiver is Python: on a small machine it, not the
exporter, may be what limits the rate; the table says what each side managed.

Run from the repository root (needs the dev extra, for oteltest)::

    .venv/bin/python bench/delivery_load.py                 # full ramp, ~8 min on 2 cores
    .venv/bin/python bench/delivery_load.py --quick         # smoke: 1 s steps, 3 rates, ~30 s
    .venv/bin/python bench/delivery_load.py --protocols grpc --pipelines stock,spool --rates 1000,4000
    .venv/bin/python bench/delivery_load.py --first-failure   # how long one failed export holds the exporter
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "delivery_load.json"
# Fine steps where pipelines start to lose on a 2-core machine (~6,000-10,000/s), so that
# the zero-loss rates compare pipelines rather than sides of one coarse step.
DEFAULT_RATES = (1000, 2000, 4000, 6000, 7000, 8000, 9000, 10000, 12000, 16000)
PIPELINES = ("stock", "counted", "spool")
PROTOCOLS = ("grpc", "http/protobuf")
FLUSH_TIMEOUT_S = 60.0  # the most one step waits for its backlog to be delivered


# --- the receiver process -----------------------------------------------------------------------


def serve(protocol: str) -> None:
    """Receive OTLP on 127.0.0.1; answer ``count`` on stdin with JSON counts; ``quit`` stops."""
    sys.path.insert(0, str(ROOT))
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from tests.integration.receivers import LoopbackGrpcSink, LoopbackHttpSink

    from promptrecorder.recording import semconv

    counts = {"requests": 0, "spans": 0, "records": 0}
    seen: set[str] = set()
    prompt, record_key = semconv.EVENT_PROMPT, semconv.RECORD_ID

    class Counter:
        """Counts spans and record ids as they arrive; keeps nothing else."""

        def handle_trace(self, request: ExportTraceServiceRequest, headers: Mapping[str, Any]) -> None:
            counts["requests"] += 1
            for resource_spans in request.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        counts["spans"] += 1
                        for event in span.events:
                            if event.name != prompt:
                                continue
                            for attribute in event.attributes:
                                if attribute.key == record_key:
                                    counts["records"] += 1
                                    seen.add(attribute.value.string_value)

        def handle_metrics(self, request: object, headers: object) -> None:
            pass

        def handle_logs(self, request: object, headers: object) -> None:
            pass

    handler: Any = Counter()

    def start(port: int = 0) -> Any:
        sink: Any = (
            LoopbackGrpcSink(handler, port=port) if protocol == "grpc" else LoopbackHttpSink(handler, port)
        )
        sink.start()
        return sink

    sink = start()
    port = sink.port
    print(port, flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["count"]:
            cpu_ms = int(time.process_time() * 1000)
            print(json.dumps({**counts, "unique_records": len(seen), "cpu_ms": cpu_ms}), flush=True)
        elif command and command[0] == "outage":
            # The collector goes away (its port closed) and comes back on the same port.
            sink.stop()
            time.sleep(float(command[1]))
            sink = start(port)
            print("back", flush=True)
        elif command == ["quit"]:
            break
    sink.stop()


class Receiver:
    """The receiver process, driven over its stdin/stdout."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.process = subprocess.Popen(
            [sys.executable, __file__, "_serve", protocol],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.port = int(self._line())
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the receiver process ended")
        return line

    def counts(self) -> dict[str, int]:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write("count\n")
        stdin.flush()
        counts: dict[str, int] = json.loads(self._line())
        return counts

    def outage(self, seconds: float) -> None:
        """Close the port for ``seconds``, then listen on it again (returns when it is back)."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"outage {seconds}\n")
        self.process.stdin.flush()
        assert self._line().strip() == "back"

    def close(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(10)


# --- the producer process ---------------------------------------------------------------------


# What every record of a producer records (bench/backlog.py's too).
PROMPT = "Summarise ticket 42 in one sentence, for the on-call engineer."
RESPONSE = "The printer on floor 3 is out of toner; a replacement is on its way."


def stock_provider(protocol: str, endpoint: str) -> Any:
    """The SDK alone: a TracerProvider with the stock BatchSpanProcessor and OTLP exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        exporter: Any = Grpc(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

        exporter = Http(endpoint=f"{endpoint}/v1/traces")
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def produce(pipeline: str, protocol: str, endpoint: str, rate: float, seconds: float) -> None:
    """Produce ``rate`` records/s for ``seconds``, flush, print what happened as JSON."""
    from opentelemetry.sdk.trace import TracerProvider

    import promptrecorder
    from promptrecorder import PromptRecorder, autorecord

    provider: TracerProvider | None = None
    spool = tempfile.TemporaryDirectory(prefix="delivery-load-spool-")
    if pipeline == "stock":
        provider = stock_provider(protocol, endpoint)
    else:
        promptrecorder.configure(
            endpoint=endpoint,
            protocol=protocol,
            service_name="delivery-load",
            spool_dir=spool.name if pipeline == "spool" else None,
        )

    slowest = 0.0
    produced = 0
    prompt, response = PROMPT, RESPONSE
    start = time.perf_counter()
    cpu_start = time.process_time()
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed >= seconds:
            break
        due = min(int(rate * elapsed) + 1, int(rate * seconds))
        while produced < due:
            began = time.perf_counter()
            with PromptRecorder("request", tracer_provider=provider, max_records=4):
                autorecord(prompt, response, model="gpt-4o-mini", input_tokens=17, output_tokens=19)
            slowest = max(slowest, time.perf_counter() - began)
            produced += 1
        time.sleep(0.001)
    produce_s = time.perf_counter() - start
    produce_cpu_s = time.process_time() - cpu_start

    flushed_at = time.perf_counter()
    result: dict[str, Any] = {}
    if provider is not None:
        result["flushed"] = provider.force_flush(int(FLUSH_TIMEOUT_S * 1000))
        result["flush_s"] = time.perf_counter() - flushed_at
        provider.shutdown()
    else:
        stats_before = promptrecorder.delivery_stats()[0]
        result["spool_backlog_at_end_spans"] = stats_before.spool_backlog_spans
        result["flushed"] = promptrecorder.flush(timeout=FLUSH_TIMEOUT_S)
        result["flush_s"] = time.perf_counter() - flushed_at
        stats = promptrecorder.delivery_stats()[0]
        result["stats"] = {
            "exported_spans": stats.exported_spans,
            "failed_spans": stats.failed_spans,
            "queue_dropped_spans": stats.queue_dropped_spans,
            "spooled_spans": stats.spooled_spans,
            "spool_dropped_spans": stats.spool_dropped_spans,
        }
        promptrecorder.shutdown(timeout=5)
    spool.cleanup()
    result.update(
        produced=produced,
        produce_s=produce_s,
        achieved_rate=produced / produce_s,
        produce_cpu_s=produce_cpu_s,
        slowest_block_ms=slowest * 1000,
    )
    print(json.dumps(result), flush=True)


# --- how long a failed export holds the exporter ---------------------------------------------------


def first_failure() -> None:
    """Time one export of 10 spans to a closed port and to a port that never answers, per timeout.

    This is how long the batch processor's thread is held by the first failed export of an
    outage, while spans keep arriving in its queue.
    """
    import logging
    import socket

    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    logging.disable(logging.CRITICAL)  # the exporters' retry warnings
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for _ in range(10):
        provider.get_tracer("bench").start_span("s").end()
    spans = memory.get_finished_spans()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    silent = socket.socket()  # listens, accepts into its backlog, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    print(f"{'collector':<22} {'timeout s':>9} {'gRPC s':>7} {'HTTP s':>7}")
    for label, port in (
        ("refusing (port closed)", closed_port),
        ("never answering", silent.getsockname()[1]),
    ):
        for timeout in (10.0, 5.0, 2.0, 1.0):
            took = []
            for exporter in (
                Grpc(endpoint=f"http://127.0.0.1:{port}", insecure=True, timeout=timeout),
                Http(endpoint=f"http://127.0.0.1:{port}/v1/traces", timeout=timeout),
            ):
                started = time.monotonic()
                exporter.export(spans)
                took.append(time.monotonic() - started)
                exporter.shutdown()
            print(f"{label:<22} {timeout:>9g} {took[0]:>7.2f} {took[1]:>7.2f}", flush=True)
    silent.close()


# --- the driver -------------------------------------------------------------------------------------


def run_step(
    receiver: Receiver, pipeline: str, rate: float, seconds: float, outage: tuple[float, float] | None = None
) -> dict[str, Any]:
    """One producer run; with ``outage=(at, length)``, the receiver goes away ``at`` s in."""
    before = receiver.counts()
    producer = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "_produce",
            pipeline,
            receiver.protocol,
            receiver.endpoint,
            str(rate),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OTEL_", "PROMPTRECORDER_"))
        },
    )
    if outage is not None:
        time.sleep(outage[0] + 0.5)  # + the producer's start-up
        receiver.outage(outage[1])
    try:
        stdout, stderr = producer.communicate(timeout=seconds + FLUSH_TIMEOUT_S + 60)
    except subprocess.TimeoutExpired:
        producer.kill()
        producer.communicate()
        raise
    if producer.returncode != 0:
        raise RuntimeError(f"producer failed: {stderr}")
    step: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    after = receiver.counts()
    received = after["unique_records"] - before["unique_records"]
    step.update(
        protocol=receiver.protocol,
        pipeline=pipeline,
        target_rate=rate,
        received=received,
        duplicates=(after["records"] - before["records"]) - received,
        receiver_cpu_s=(after["cpu_ms"] - before["cpu_ms"]) / 1000,
        lost=step["produced"] - received,
        producer_log_lines=[line for line in stderr.splitlines() if line.strip()][:5],
        outage=outage,
    )
    return step


def _row(step: Mapping[str, Any]) -> str:
    stats = step.get("stats", {})
    counted = stats.get("failed_spans", "-") if stats else "silent"
    return (
        f"{step['protocol']:<13} {step['pipeline']:<8} {step['target_rate']:>7.0f} {step['achieved_rate']:>8.0f}"
        f" {step['produced']:>8} {step['received']:>8} {step['lost']:>7} {counted!s:>8}"
        f" {stats.get('spooled_spans', '-')!s:>8} {step['duplicates']:>4} {step['flush_s']:>7.2f}"
        f" {step['slowest_block_ms']:>8.2f}"
    )


HEADER = (
    f"{'protocol':<13} {'pipeline':<8} {'target/s':>7} {'achieved':>8} {'produced':>8} {'received':>8}"
    f" {'lost':>7} {'counted':>8} {'spooled':>8} {'dup':>4} {'flush s':>7} {'max ms':>8}"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 s steps at 1,000/4,000/16,000 per second")
    parser.add_argument("--step-seconds", type=float, default=5.0)
    parser.add_argument("--rates", default=",".join(str(rate) for rate in DEFAULT_RATES))
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument(
        "--outage",
        default="2000,12,2,5",
        metavar="RATE,SECONDS,AT,LENGTH",
        help="also run each pipeline at RATE/s for SECONDS with the receiver gone from AT for LENGTH "
        "seconds (default 2000,12,2,5, as issue 5 measured); 'none' to skip",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--first-failure",
        action="store_true",
        help="only time one failed export per timeout (~60 s) and exit",
    )
    args = parser.parse_args(argv)
    if args.first_failure:
        first_failure()
        return 0
    rates = [float(rate) for rate in args.rates.split(",")]
    seconds = args.step_seconds
    if args.quick:
        rates, seconds = [1000.0, 4000.0, 16000.0], 1.0
    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    print(HEADER, flush=True)
    for protocol in args.protocols.split(","):
        receiver = Receiver(protocol)
        try:
            for pipeline in args.pipelines.split(","):
                losing_steps = 0
                for rate in rates:
                    step = run_step(receiver, pipeline, rate, seconds)
                    steps.append(step)
                    print(_row(step), flush=True)
                    losing_steps = losing_steps + 1 if step["lost"] else 0
                    if step["achieved_rate"] < 0.8 * rate or losing_steps == 2:
                        break  # saturated, or losing twice in a row: higher rates tell nothing new
            if args.outage != "none":
                rate, length, at, gone = (float(part) for part in args.outage.split(","))
                if args.quick:
                    rate, length, at, gone = rate, 4.0, 1.0, 2.0
                for pipeline in args.pipelines.split(","):
                    step = run_step(receiver, pipeline, rate, length, outage=(at, gone))
                    steps.append(step)
                    print(_row(step) + f"   (collector gone {gone:g} s)", flush=True)
        finally:
            receiver.close()
    summary = _summarise(steps)
    for line in summary["lines"]:
        print(line)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": time.monotonic() - started,
                "step_seconds": seconds,
                "flush_timeout_s": FLUSH_TIMEOUT_S,
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "versions": {
                    name: metadata.version(name)
                    for name in (
                        "opentelemetry-sdk",
                        "opentelemetry-exporter-otlp",
                        "promptrecorder",
                        "oteltest",
                    )
                },
                "steps": steps,
                "summary": summary,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


def _summarise(steps: list[dict[str, Any]]) -> dict[str, Any]:
    lines = []
    result: dict[str, Any] = {}
    for protocol in PROTOCOLS:
        for pipeline in PIPELINES:
            chosen = [
                s
                for s in steps
                if s["protocol"] == protocol and s["pipeline"] == pipeline and not s["outage"]
            ]
            if not chosen:
                continue
            whole = [s for s in chosen if s["lost"] == 0 and s["duplicates"] == 0]
            kept_up = [s for s in whole if s["flush_s"] < 2.0]
            losing = [s for s in chosen if s["lost"] > 0]
            best_step = max(kept_up, key=lambda s: s["achieved_rate"], default=None)
            best = None if best_step is None else best_step["achieved_rate"]
            best_any = max((s["achieved_rate"] for s in whole), default=None)
            onset = min((s["achieved_rate"] for s in losing), default=None)
            result[f"{protocol}/{pipeline}"] = {
                "zero_loss_kept_up_rate": best,
                # The producing process's CPU per record at that rate (blocks + export).
                "cpu_us_per_record": (
                    None if best_step is None else 1e6 * best_step["produce_cpu_s"] / best_step["produced"]
                ),
                "zero_loss_rate": best_any,
                "loss_onset_rate": onset,
            }
            lines.append(
                f"{protocol:<13} {pipeline:<8} zero loss, kept up: {_rate(best)}; zero loss (backlog "
                f"drained after): {_rate(best_any)}; first loss at: {_rate(onset)}"
            )
    for step in steps:
        if step["outage"]:
            _at, gone = step["outage"]
            lines.append(
                f"{step['protocol']:<13} {step['pipeline']:<8} {gone:g} s outage at {step['achieved_rate']:,.0f}/s: "
                f"lost {step['lost']} of {step['produced']} ({100 * step['lost'] / step['produced']:.0f}%), "
                f"counted {step.get('stats', {}).get('failed_spans', 'none (silent)')}, "
                f"duplicates {step['duplicates']}, flush took {step['flush_s']:.1f} s"
            )
    return {"lines": lines, **result}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}/s"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(sys.argv[2])
    elif len(sys.argv) > 1 and sys.argv[1] == "_produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(main())

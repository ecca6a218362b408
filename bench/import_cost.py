"""What ``import promptrecorder`` costs, beside ``import opentelemetry.trace``.

Each import runs in a fresh interpreter (``python -c``), the two statements interleaved
round by round so that machine noise falls on both alike; a third row times the
interpreter's own start (``pass``), which is subtracted. The figure is the median over the
rounds. The target (issue 13): ``import promptrecorder`` at most twice
``import opentelemetry.trace``. The ``+ a span`` and ``+ autorecord`` rows add first use: the
API's first context operation loads its runtime context through entry points, which both pay.

    .venv/bin/python bench/import_cost.py            # 30 rounds, ~20 s
    .venv/bin/python bench/import_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "interpreter": "pass",
    "opentelemetry.trace": "import opentelemetry.trace",
    "opentelemetry.trace + a span": (
        "import opentelemetry.trace as trace\n"
        "with trace.get_tracer('x').start_as_current_span('s'):\n"
        "    pass"
    ),
    "promptrecorder": "import promptrecorder",
    "promptrecorder + autorecord": (
        "import promptrecorder\n"
        "with promptrecorder.PromptRecorder('x'):\n"
        "    promptrecorder.autorecord('p', 'r')"
    ),
}


def _once(statement: str) -> tuple[float, int]:
    """Seconds for a fresh interpreter to run ``statement``, and the modules it loaded."""
    code = f"{statement}\nimport sys\nprint(len(sys.modules))"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, int(done.stdout.split()[-1])


def measure(rounds: int) -> dict[str, dict[str, float]]:
    """Median wall time (ms, interpreter start subtracted) and module count per statement."""
    times: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    modules: dict[str, int] = {}
    for _ in range(rounds):
        for name, statement in STATEMENTS.items():
            seconds, count = _once(statement)
            times[name].append(seconds)
            modules[name] = count
    base = statistics.median(times["interpreter"])
    return {
        name: {
            "ms": round((statistics.median(values) - (0 if name == "interpreter" else base)) * 1000, 1),
            "modules": modules[name],
        }
        for name, values in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    rows = measure(args.rounds)
    if args.json:
        print(json.dumps(rows))
        return
    otel = rows["opentelemetry.trace"]["ms"]
    print(f"{'statement':<30} {'ms':>8} {'modules':>8} {'x otel':>7}")
    for name, row in rows.items():
        ratio = "" if name == "interpreter" else f"{row['ms'] / otel:.2f}"
        print(f"{name:<30} {row['ms']:>8} {row['modules']:>8} {ratio:>7}")


if __name__ == "__main__":
    main()

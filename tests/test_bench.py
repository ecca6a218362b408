"""The benchmark scripts still run and report what docs/benchmarks.md reads from them.

Their numbers are not asserted (speed is measured in bench/, not in tests); only that the
micro-benchmark runs end to end and that the delivery row's floor is computed as documented.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.bench_run import run_bench

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_overhead_quick_run_reports_every_case(tmp_path: Path) -> None:
    report, _ = run_bench("overhead", tmp_path / "overhead.json", "--quick", "--rounds", "1")
    assert set(report["cases"]) >= {
        "floor_append",
        "autorecord_idle",
        "autorecord_active",
        "bare_span_two_events",
        "record_block",
        "sdk_record_block",
        "stock_encode",
        "our_encode",
        "handoff_floor",
        "record_block_stock_bsp",
        "record_block_configured",
    }
    assert all(case["cpu_ns"]["median"] > 0 for case in report["cases"].values())
    assert report["ratios"]["autorecord_idle / floor_append"]["target_max"] == 2.0


def test_the_hot_path_benchmark_puts_each_row_beside_its_reference(tmp_path: Path) -> None:
    """Issue 15's rows: text sizes, threads and one-pair blocks, each with call spans and
    without, each divided by its bare-span reference measured in the same run."""
    report, _ = run_bench(
        "hot_path", tmp_path / "hot_path.json", "--quick", "--rounds", "1", "--batch-ms", "1"
    )
    rows = [f"ours_{size}" for size in (100, 200, 10_000, 1_000_000)]
    rows += [f"ours_200_threads_{threads}" for threads in (1, 8, 32)] + ["ours_200_block"]
    expected = {f"{row}{mode} / bare_{row[5:]}" for row in rows for mode in ("", "_events_only")}
    # and each text size's floor (the SDK calls and encoding of the same bytes) beside both
    for size in (100, 200, 10_000, 1_000_000):
        for mode in ("", "_events_only"):
            expected |= {f"floor_{size}{mode} / bare_{size}", f"ours_{size}{mode} / floor_{size}{mode}"}
            # and, for context, beside a bare span encoded by the stock OTLP exporter's encoder
            expected.add(f"ours_{size}{mode} / bare_stock_{size}")
    assert set(report["ratios"]) == expected
    assert report["method"]["export"] == "encode"
    assert all(ratio["wall"] > 0 and ratio["cpu"] > 0 for ratio in report["ratios"].values())
    assert report["ratios"]["ours_10000 / bare_10000"]["target_max"] == 1.5
    assert report["ratios"]["ours_200_threads_32 / bare_200_threads_32"]["target_max"] == 1.0
    assert all(case["wall_ns"] > 0 for case in report["cases"].values())


def test_the_hot_path_benchmark_can_measure_as_issue_15_did(tmp_path: Path) -> None:
    """``--export memory``: both sides end into an in-memory exporter, unencoded, the method
    of the figures issue 15 quotes; the same rows."""
    report, _ = run_bench(
        "hot_path",
        tmp_path / "memory.json",
        "--quick",
        "--rounds",
        "1",
        "--batch-ms",
        "1",
        "--export",
        "memory",
    )
    assert report["method"]["export"] == "memory"
    assert report["ratios"]["ours_200 / bare_200"]["target_max"] == 0.6
    assert all(ratio["wall"] > 0 for ratio in report["ratios"].values())


def _case(cpu_us: float) -> dict[str, Any]:
    return {"cpu_ns": {"median": cpu_us * 1000}}


def test_the_delivery_floor_is_a_third_of_the_stock_cpu_per_record_and_what_a_record_costs() -> None:
    run_all = _load("run_all")
    delivery = {
        "status": "ok",
        "results": {
            "summary": {
                "grpc/stock": {"zero_loss_kept_up_rate": 8000.0, "cpu_us_per_record": 110.0},
                "grpc/counted": {"zero_loss_kept_up_rate": 9000.0, "cpu_us_per_record": 100.0},
                "grpc/spool": {"zero_loss_kept_up_rate": 7000.0, "cpu_us_per_record": 105.0},
            }
        },
    }
    cases = {
        "record_block": _case(40.0),
        "sdk_record_block": _case(17.0),
        "stock_encode": _case(38.0),
        "our_encode": _case(14.0),
        "handoff_floor": _case(6.5),
        "record_block_stock_bsp": _case(50.0),
        "record_block_configured": _case(51.0),
    }
    [row] = run_all._delivery_targets(delivery, cases)
    assert row["ratio"] == 9000.0 / 8000.0
    assert not row["met"]
    floor = row["floor"]
    assert floor["budget_us_per_record"] == 1e6 / (3 * 8000.0)
    assert (floor["record_block_us"], floor["handoff_floor_us_per_span"]) == (40.0, 6.5)
    lines = run_all._delivery_floor_lines(floor)
    assert "41.7 µs of CPU per record" in lines[0]
    assert "the SDK's 38.0 µs, ours 14.0 µs): 46.5 µs at the least" in lines[1]
    assert "exceeds 2.37x the stock rate" in lines[2]  # 110 µs of stock CPU per record / 46.5 µs
    assert "50.0 µs with the stock BatchSpanProcessor, 51.0 µs with configure()'s" in lines[3]


def test_the_backlog_benchmark_delivers_every_record_through_each_pipeline(tmp_path: Path) -> None:
    """bench/backlog.py's three pipelines each deliver all their records to the receiver."""
    results = run_bench("backlog", tmp_path / "backlog.json", "--records", "300", "--rounds", "1")[0][
        "results"
    ]
    assert [row["pipeline"] for row in results] == ["stock", "spans", "bytes"]
    assert all(row["flushed"] and row["received"] == 300 for row in results), results


def test_the_stock_limits_benchmark_reports_both_pipelines_against_the_4_mib_receiver(tmp_path: Path) -> None:
    """bench/stock_limits.py's smoke run sends through ours and the stock SDK and reports what arrived."""
    results = run_bench("stock_limits", tmp_path / "stock_limits.json", "--smoke", timeout=240)[0]["results"]
    assert [row["pipeline"] for row in results] == ["ours", "stock"]
    for row in results:
        # Spans: 100 requests, ours two spans each (the recorder span and the pair's call span).
        spans = 200 if row["pipeline"] == "ours" else 100
        assert row["sent"] == spans
        assert row["receiver_limit_bytes"] == 4 * 1024 * 1024
        assert row["largest_request_bytes"] >= row["largest_accepted_bytes"] > 0
        assert row["delivered_ratio"] == row["delivered"] / spans

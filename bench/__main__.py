"""``python -m bench [--only NAME] [--quick]``: every benchmark beside its same-run reference,
one table, ``bench/results.json``.

Each benchmark gets a fresh PostgreSQL database (dropped afterwards); the relay benchmark
also gets its own test broker (tansu) on a free loopback port. ``--quick`` shrinks sizes and
durations (a smoke run: the figures are not comparable with the targets). The load average is
recorded before and after each benchmark: the machine has two cores and is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.results import Measurement, format_table, write_json
from bench.services import BenchSetupError, fresh_database, kafka_broker, load_average

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
NAMES = ("http", "import", "http_import", "matching", "relay", "scale", "changes")

Runner = Callable[[str], Awaitable[list[Measurement]]]


def _sizes(quick: bool) -> dict[str, dict[str, Any]]:
    if quick:
        return {
            "http": {"duration": 2.0, "warmup": 0.5, "rounds": 1},
            "import": {"rows": 5_000, "sequential": True},
            "http_import": {"rows": 2_000, "rounds": 1},
            "matching": {"batches": 10, "essays_per_batch": 200},
            "relay": {"prefill": 2_000, "rate": 200.0, "seconds": 2.0},
            "changes": {"small": 10_000, "large": 50_000, "reads": 10, "rounds": 2},
            "scale": {
                "owners": 200,
                "duration": 1.0,
                "warmup": 0.2,
                "rounds": 1,
                "route_rounds": 2,
                "route_duration": 1.0,
                "importing_owners": 3,
                "owner_import_rows": 300,
                "class_import_rows": 1_000,
                "import_rows": 5_000,
            },
        }
    return {
        "http": {"duration": 5.0, "warmup": 1.0, "rounds": 3},
        "import": {"rows": 100_000, "sequential": True},
        "http_import": {"rows": 20_000, "rounds": 2},
        "matching": {"batches": 100, "essays_per_batch": 200},
        "relay": {"prefill": 20_000, "rate": 200.0, "seconds": 10.0},
        "changes": {"small": 10_000, "large": 1_000_000, "reads": 60, "rounds": 9},
        # >= 1,000,000 students of 10,000 owners; several minutes (docs/performance.md).
        "scale": {},
    }


async def _run_one(name: str, options: dict[str, Any]) -> list[Measurement]:
    async with fresh_database() as url:
        if name == "http":
            from bench import http_bench

            return await http_bench.run(url, **options)
        if name == "matching":
            from bench import matching_bench

            return await matching_bench.run(url, **options)
        if name == "relay":
            from bench import relay_bench

            with kafka_broker() as bootstrap:
                return await relay_bench.run(url, bootstrap, **options)
        if name == "http_import":
            from bench import http_import_bench

            return await http_import_bench.run(url, **options)
        if name == "changes":
            from bench import changes_bench

            return await changes_bench.run(url, **options)
        if name == "scale":
            from bench import scale_bench

            return await scale_bench.run(url, **options)
        if name == "import":
            # Owned by the bulk-import work; imported lazily so that the rest runs without it.
            module = importlib.import_module("bench.import_bench")
            rows: list[Measurement] = await module.run(url, **options)
            return rows
    raise ValueError(name)


async def main_async(only: list[str], quick: bool) -> int:
    sizes = _sizes(quick)
    rows: list[Measurement] = []
    runs: list[dict[str, Any]] = []
    problems: list[str] = []
    for name in only:
        load_before = load_average()
        started = time.perf_counter()
        print(f"bench: {name} (load {load_before}) …", file=sys.stderr, flush=True)
        try:
            measured = await _run_one(name, sizes[name])
        except ModuleNotFoundError as exc:
            problems.append(f"{name}: missing ({exc.name})")
            measured = []
        except BenchSetupError as exc:
            problems.append(f"{name}: {exc}")
            measured = []
        except Exception as exc:
            problems.append(f"{name}: failed: {type(exc).__name__}: {exc}")
            measured = []
        rows.extend(measured)
        runs.append(
            {
                "benchmark": name,
                "seconds": round(time.perf_counter() - started, 1),
                "load_before": load_before,
                "load_after": load_average(),
                "measurements": [m.name for m in measured],
            }
        )
    print(format_table(rows))
    for run in runs:
        print(
            f"  {run['benchmark']}: {run['seconds']} s, load average "
            f"{run['load_before']} → {run['load_after']}"
        )
    for problem in problems:
        print(f"  NOT MEASURED {problem}")
    write_json(
        rows,
        RESULTS_PATH,
        {
            "quick": quick,
            "nproc": os.cpu_count(),
            "runs": runs,
            "problems": problems,
        },
    )
    print(f"  written to {RESULTS_PATH}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", action="append", choices=NAMES, help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, short runs")
    args = parser.parse_args(argv)
    only = args.only or list(NAMES)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_async(only, args.quick))
    return uvloop.run(main_async(only, args.quick))


if __name__ == "__main__":
    sys.exit(main())

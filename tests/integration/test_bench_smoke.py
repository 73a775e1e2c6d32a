"""Every benchmark runs end to end with tiny sizes, so that ``make bench`` cannot rot.

Nothing here is timed: the figures of such short runs mean nothing. The benchmarks provision
their own servers (uvicorn processes on free loopback ports); the databases and the broker
come from the test fixtures.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from bench.results import Measurement, format_table

ROOT = Path(__file__).resolve().parents[2]


def _check(rows: list[Measurement], names: set[str]) -> None:
    assert {m.name for m in rows} >= names
    for m in rows:
        assert m.value > 0, m
        assert math.isfinite(m.value), m
        if m.reference_value is not None:
            assert m.reference_value > 0, m
    assert all(name in format_table(rows) for name in names)


async def test_http_benchmark_runs(pg_database_factory: object) -> None:
    from bench import http_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    # A window long enough for a few POSTs to start and finish inside it on a busy machine
    # (three xdist workers, other engineers' runs): at 0.3 s none did once (load average ≈ 7).
    rows = await http_bench.run(url, duration=1.5, warmup=0.2, rounds=1)
    _check(
        rows, {"http POST student", "http GET class", "http GET class p95", "http GET batches p95"}
    )


async def test_matching_benchmark_runs(pg_database_factory: object) -> None:
    from bench import matching_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows = await matching_bench.run(url, batches=2, essays_per_batch=5, per_transaction=1)
    _check(rows, {"ingest suggestions", "timeout sweep"})


async def test_relay_benchmark_runs(pg_database_factory: object, kafka_bootstrap: str) -> None:
    from bench import relay_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows = await relay_bench.run(url, kafka_bootstrap, prefill=40, rate=40.0, seconds=0.5)
    _check(rows, {"relay throughput", "relay lag p95"})


async def test_changes_benchmark_runs(pg_database_factory: object) -> None:
    from bench import changes_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows = await changes_bench.run(url, small=1_100, large=3_000, reads=3, rounds=1)
    _check(rows, {"changes page of 1,000, P95, log of 3,000", "changes page P95, large/small log"})


async def test_import_benchmark_runs(pg_database_factory: object) -> None:
    import_bench = pytest.importorskip("bench.import_bench")
    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows: list[Measurement] = await import_bench.run(url, rows=50)
    assert rows
    assert all(m.value > 0 for m in rows)


def test_bench_command_line_answers() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--only" in done.stdout
    assert "--quick" in done.stdout


async def test_scale_benchmark_runs(pg_database_factory: object) -> None:
    from bench import scale_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows = await scale_bench.run(
        url,
        owners=20,
        # Long enough for a loaded machine to finish a request in each window (an empty
        # window fails the run, as any benchmark's does).
        duration=0.5,
        warmup=0.2,
        rounds=1,
        route_rounds=2,
        route_duration=0.5,
        importing_owners=2,
        owner_import_rows=40,
        class_import_rows=40,
        import_rows=100,
    )
    late = [m for m in rows if "added after seeding" in m.name]
    assert len(late) == 2, late
    assert all(m.met is None for m in late), late  # shown, not judged
    _check(
        rows,
        {
            "scale GET class",
            "scale GET roster (internal key) p95",
            "scale GET student search q (students added after seeding) p95",
            "scale POST student",
            "scale relay fetch",
            "scale sweep (due-batch look-up)",
            "class-admin import students (100 rows)",
            "class-admin import peak RSS",
        },
    )


def test_every_benchmark_has_sizes_in_both_modes() -> None:
    from bench.__main__ import NAMES, _sizes

    assert set(_sizes(quick=True)) == set(NAMES) == set(_sizes(quick=False))


async def test_http_import_benchmark_runs(pg_database_factory: object) -> None:
    from bench import http_import_bench

    url = await pg_database_factory(migrated=True)  # type: ignore[operator]
    rows = await http_import_bench.run(url, rows=300, rounds=1)
    _check(
        rows,
        {
            "http import: 300 new students",
            "http import: the same file again (unchanged)",
            "http import: sync, 1 % renamed, 1 % removed",
        },
    )

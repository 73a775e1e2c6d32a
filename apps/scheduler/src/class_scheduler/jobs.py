"""The scheduled jobs: a few lines each around the core's use cases.

APScheduler 3.x keeps its jobs in memory in each replica; the jobs themselves are safe to run
concurrently across replicas (batches are claimed with ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from class_core.runtime import Runtime
from class_runtime import SweepObserver, sweep_once


def schedule_sweep(
    scheduler: AsyncIOScheduler,
    rt: Runtime,
    interval_seconds: float,
    observer: SweepObserver | None = None,
) -> None:
    """:func:`class_runtime.sweep_once` (the API's in-process sweep too) once at start, then
    every ``interval_seconds``; missed runs coalesce into one. ``observer`` (the scheduler's
    :class:`~class_scheduler.health.SweepRecord`) sees every run for ``/healthz``/``/metrics``."""
    scheduler.add_job(
        sweep_once,
        "interval",
        args=[rt, observer],
        seconds=interval_seconds,
        next_run_time=datetime.now(UTC),
        id="association-timeout-sweep",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(60, int(interval_seconds)),
    )

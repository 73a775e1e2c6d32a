"""The scheduled jobs: a few lines each around the core's use cases.

APScheduler 3.x keeps its jobs in memory in each replica; the jobs themselves are safe to run
concurrently across replicas (batches are claimed with ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from class_core.runtime import Runtime
from class_core.use_cases.matching import FinalizedBatch, expire_due_batches
from class_scheduler.health import SweepRecord

log = logging.getLogger("class_scheduler.jobs")


async def sweep(rt: Runtime, record: SweepRecord | None = None) -> list[FinalizedBatch]:
    """One association-timeout sweep; failures are logged (the next run retries) and, like
    successes, kept in ``record`` for ``/healthz`` and ``/metrics``."""
    try:
        finalized = await expire_due_batches(rt)
    except Exception:
        if record is not None:
            record.failed()
        log.exception("timeout sweep failed")
        return []
    auto = sum(f.auto_confirmed for f in finalized)
    unknown = sum(f.unknown_assigned for f in finalized)
    if record is not None:
        record.succeeded(rt.now(), len(finalized), auto, unknown)
    log.info(
        "timeout sweep done",
        extra={
            "batches_finalized": len(finalized),
            "auto_confirmed": auto,
            "unknown_assigned": unknown,
        },
    )
    return finalized


def schedule_sweep(
    scheduler: AsyncIOScheduler,
    rt: Runtime,
    interval_seconds: float,
    record: SweepRecord | None = None,
) -> None:
    """Once at start, then every ``interval_seconds``; missed runs coalesce into one."""
    scheduler.add_job(
        sweep,
        "interval",
        args=[rt, record],
        seconds=interval_seconds,
        next_run_time=datetime.now(UTC),
        id="association-timeout-sweep",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(60, int(interval_seconds)),
    )

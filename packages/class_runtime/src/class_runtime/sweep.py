"""The timeout-sweep job: one run of ``expire_due_batches`` that never raises, logged and
reported to an observer (the API's Prometheus counters; the scheduler's own); then the change
feed's retention (``purge_changes``, bounded batches, its own failure logged apart)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from class_core.runtime import Runtime
from class_core.use_cases.changes import purge_changes
from class_core.use_cases.matching import FinalizedBatch, expire_due_batches

log = logging.getLogger("class_runtime.sweep")


class SweepObserver(Protocol):
    """What a sweep reports (metrics)."""

    def sweep_finished(self, finalized: Sequence[FinalizedBatch]) -> None: ...

    def sweep_failed(self) -> None: ...


async def sweep_once(rt: Runtime, observer: SweepObserver | None = None) -> list[FinalizedBatch]:
    """One association-timeout sweep, then the change feed's purge; a failure is logged (and
    a sweep's reported), never raised (the next run retries)."""
    finalized = await _sweep(rt, observer)
    await purge_old_changes(rt)
    return finalized


async def purge_old_changes(rt: Runtime) -> int:
    """Delete change-feed entries older than ``CHANGES_RETENTION_DAYS``; never raises."""
    try:
        purged = await purge_changes(rt)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("change feed purge failed")
        return 0
    if purged:
        log.info("change feed purged", extra={"changes_purged": purged})
    return purged


async def _sweep(rt: Runtime, observer: SweepObserver | None) -> list[FinalizedBatch]:
    try:
        finalized = await expire_due_batches(rt)
    except asyncio.CancelledError:
        raise
    except Exception:
        if observer is not None:
            observer.sweep_failed()
        log.exception("timeout sweep failed")
        return []
    if observer is not None:
        observer.sweep_finished(finalized)
    log.info(
        "timeout sweep done",
        extra={
            "batches_finalized": len(finalized),
            "auto_confirmed": sum(f.auto_confirmed for f in finalized),
            "unknown_assigned": sum(f.unknown_assigned for f in finalized),
        },
    )
    return finalized

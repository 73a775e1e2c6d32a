"""The one periodic job of the API's in-process workers and of ``class-scheduler``: one run of
``expire_due_batches`` that never raises, logged and reported to an observer (the API's
Prometheus counters; the scheduler's own); then the retention of the change feed
(``purge_changes``) and of the import history (``purge_import_history``), both
``CHANGES_RETENTION_DAYS``, in bounded batches, each failure logged apart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from class_core.runtime import Runtime
from class_core.use_cases.changes import purge_changes
from class_core.use_cases.import_history import purge_import_history
from class_core.use_cases.matching import FinalizedBatch, expire_due_batches

log = logging.getLogger("class_runtime.sweep")


class SweepObserver(Protocol):
    """What a sweep reports (metrics)."""

    def sweep_finished(self, finalized: Sequence[FinalizedBatch]) -> None: ...

    def sweep_failed(self) -> None: ...


async def sweep_once(rt: Runtime, observer: SweepObserver | None = None) -> list[FinalizedBatch]:
    """One association-timeout sweep, then the retention purges; a failure is logged (and a
    sweep's reported), never raised (the next run retries)."""
    finalized = await _sweep(rt, observer)
    await purge_old_changes(rt)
    await purge_old_imports(rt)
    return finalized


async def purge_old_changes(rt: Runtime) -> int:
    """Delete change-feed entries older than ``CHANGES_RETENTION_DAYS``; never raises."""
    return await _purge("change feed", "changes_purged", lambda: purge_changes(rt))


async def purge_old_imports(rt: Runtime) -> int:
    """Forget imports (history and undo data) older than ``CHANGES_RETENTION_DAYS``; never
    raises. Safe in several replicas: each batch deletes what it selected."""
    days = rt.feed.retention_days
    return await _purge("import history", "imports_purged", lambda: purge_import_history(rt, days))


async def _purge(what: str, field: str, purge: Callable[[], Awaitable[int]]) -> int:
    try:
        purged = await purge()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(f"{what} purge failed")
        return 0
    if purged:
        log.info(f"{what} purged", extra={field: purged})
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

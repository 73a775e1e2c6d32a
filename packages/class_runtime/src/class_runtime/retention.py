"""The import-history retention job (contract §9.4: history kept ``CHANGES_RETENTION_DAYS``):
one purge, in bounded batches, that never raises (the next run retries)."""

from __future__ import annotations

import asyncio
import logging

from class_core.runtime import Runtime
from class_core.use_cases.import_history import purge_import_history

log = logging.getLogger("class_runtime.retention")

PURGE_INTERVAL_SECONDS = 3600.0
"""How often ``class-scheduler`` purges the import history."""


async def purge_history_once(rt: Runtime, retention_days: float) -> int:
    """Forget imports older than ``retention_days``; returns how many (0 after a failure,
    which is logged)."""
    try:
        purged = await purge_import_history(rt, retention_days)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("import history purge failed")
        return 0
    if purged:
        log.info("import history purged", extra={"imports_purged": purged})
    return purged

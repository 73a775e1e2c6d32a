"""In-process background workers (``RUN_WORKERS=true``): the timeout sweep, the outbox relay
and the suggestions consumer (the latter two only with ``KAFKA_BOOTSTRAP_SERVERS``).

They run as asyncio tasks on the server's loop, started and stopped by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters_messaging.workers import MessagingWorkers
from class_api.bootstrap import Services
from class_api.metrics import ServiceMetrics
from class_core.runtime import Runtime
from class_runtime import Settings, sweep_once

log = logging.getLogger("class_api.workers")


async def sweep_loop(
    rt: Runtime,
    interval_seconds: float,
    metrics: ServiceMetrics,
) -> None:
    """Sweep once at start, then every ``interval_seconds`` until cancelled (the timeout sweep
    and the retention purges: the same job as class-scheduler's)."""
    while True:
        await sweep_once(rt, metrics)
        await asyncio.sleep(interval_seconds)


@asynccontextmanager
async def background_workers(
    settings: Settings, services: Services, metrics: ServiceMetrics
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the workers while inside (only when ``settings.run_workers``): the timeout sweep,
    and, when Kafka is configured, the outbox relay and the suggestions consumer."""
    tasks: list[asyncio.Task[None]] = []
    messaging: MessagingWorkers | None = None
    if settings.run_workers:
        tasks.append(
            asyncio.create_task(
                sweep_loop(
                    services.runtime,
                    settings.timeout_check_interval_seconds,
                    metrics,
                ),
                name="cms-timeout-sweep",
            )
        )
        if services.outbox_store is not None:
            messaging = MessagingWorkers(
                settings.kafka, services.runtime, services.outbox_store, wakeup=services.wakeup
            )
            metrics.watch_messaging(messaging.relay, messaging.consumer)
            tasks.extend(messaging.start())
    try:
        yield tasks
    finally:
        sweeps = [t for t in tasks if t.get_name() == "cms-timeout-sweep"]
        for task in sweeps:
            task.cancel()
        if messaging is not None:
            await messaging.stop()
        results = await asyncio.gather(*sweeps, return_exceptions=True)
        for task, result in zip(sweeps, results, strict=True):
            if isinstance(result, Exception):
                log.error("worker %s stopped with an error", task.get_name(), exc_info=result)

"""Wires the operations endpoint (:mod:`class_scheduler.http`) into ``class-scheduler``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from attrs import frozen
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters_sql
from adapters_messaging import KafkaSecurity, kafka_ping
from adapters_messaging.workers import MessagingWorkers
from class_core.errors import DependencyUnavailableError
from class_runtime import Settings
from class_runtime.health import PROBE_TIMEOUT_SECONDS, Probe
from class_scheduler.health import SchedulerStatus, SweepRecord
from class_scheduler.http import OpsServer


@frozen
class OpsEndpoint:
    url: str
    sweep: SweepRecord | None


@asynccontextmanager
async def open_ops_endpoint(
    settings: Settings, engine: AsyncEngine, workers: MessagingWorkers, *, sweep: bool
) -> AsyncIterator[OpsEndpoint | None]:
    """Serve ``/healthz`` and ``/metrics`` on ``SCHEDULER_HTTP_PORT`` (``HOST``) while inside;
    yields ``None`` when the port is 0. Raises
    :class:`~class_scheduler.http.PortUnavailableError` when the port cannot be bound."""
    if settings.scheduler_http_port == 0:
        yield None
        return

    async def database() -> bool:
        try:
            await adapters_sql.ping(engine)
        except DependencyUnavailableError:
            return False
        return True

    kafka: Probe | None = None
    if settings.kafka_bootstrap_servers:
        servers = settings.kafka_bootstrap_servers
        security = KafkaSecurity.from_settings(settings.kafka)

        async def kafka_probe() -> bool:
            return await kafka_ping(servers, PROBE_TIMEOUT_SECONDS, security=security)

        kafka = kafka_probe
    record = SweepRecord() if sweep else None
    status = SchedulerStatus(
        database=database,
        outbox=adapters_sql.SqlOutboxStore(engine),
        kafka=kafka,
        relay=workers.relay,
        consumer=workers.consumer,
        sweep=record,
    )
    server = OpsServer(status, settings.host, settings.scheduler_http_port)
    await server.start()
    try:
        yield OpsEndpoint(f"http://{settings.host}:{server.port}", record)
    finally:
        await server.stop()

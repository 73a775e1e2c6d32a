"""The composition root of the API: Settings → adapters → :class:`Services`.

Nothing here connects at import time. :func:`open_services` is entered by the app's lifespan
(so engines and pools live on the server's event loop) and closes everything on the way out.

- the runtime, its outbox store and wake-ups: :func:`class_runtime.open_runtime`, the factory
  every app shares (in-memory with ``USE_MOCK_REPOSITORY=true``, else SQL at head; an
  unreachable database at start-up is logged and reported by ``/healthz``);
- a :class:`Runtime` given by the caller (tests, embedding) is used as it is;
- Kafka and Redis health checks (:func:`messaging_probes`) from :mod:`adapters_messaging`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from attrs import define, field

from adapters_messaging import KafkaSecurity, kafka_ping, redis_ping
from adapters_messaging.relay import Wakeup
from class_core.ports import OutboxStatus, OutboxStore
from class_core.runtime import Runtime
from class_runtime import Settings, open_runtime
from class_runtime.health import Probe

log = logging.getLogger("class_api.bootstrap")

"""A health probe: ``True`` when the dependency answers (it must not raise for "down")."""


@define
class Services:
    """What the app runs with, opened by the lifespan."""

    runtime: Runtime
    probes: dict[str, Probe] = field(factory=dict)  # "database", and "kafka"/"redis" if set
    outbox_store: OutboxStore | None = None  # for the relay and the outbox metrics
    wakeup: Wakeup | None = None  # wakes the in-process relay when events were committed

    async def outbox_status(self, now: datetime) -> OutboxStatus | None:
        return await self.outbox_store.status(now) if self.outbox_store is not None else None


async def _always_up() -> bool:
    return True


# --------------------------------------------------------------------------- seams


def messaging_probes(settings: Settings, timeout: float = 2.0) -> dict[str, Probe]:
    """Health probes for Kafka and Redis, only for what is configured."""
    probes: dict[str, Probe] = {}
    if settings.kafka_bootstrap_servers:
        servers = settings.kafka_bootstrap_servers
        security = KafkaSecurity.from_settings(settings.kafka)

        async def kafka() -> bool:
            return await kafka_ping(servers, timeout, security=security)

        probes["kafka"] = kafka
    if settings.redis_url:
        url = settings.redis_url

        async def redis() -> bool:
            return await redis_ping(url, timeout)

        probes["redis"] = redis
    return probes


@asynccontextmanager
async def open_services(
    settings: Settings, *, runtime: Runtime | None = None
) -> AsyncIterator[Services]:
    """Open the adapters for ``settings`` (:func:`class_runtime.open_runtime`, or wrap the
    given ``runtime``) and close them on exit."""
    extra = messaging_probes(settings)
    if runtime is not None:
        yield Services(runtime, {"database": _always_up, **extra})
        return
    async with open_runtime(settings, require_schema=False) as opened:
        yield Services(
            opened.runtime,
            {"database": opened.database_up, **extra},
            opened.outbox_store,
            opened.wakeup,
        )

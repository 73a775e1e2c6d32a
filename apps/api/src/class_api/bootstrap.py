"""The composition root of the API: Settings → adapters → :class:`Services`.

Nothing here connects at import time. :func:`open_services` is entered by the app's lifespan
(so engines and pools live on the server's event loop) and closes everything on the way out.

- ``USE_MOCK_REPOSITORY=true``: the in-memory adapters of :mod:`class_core.testing`.
- otherwise: :mod:`adapters_sql` (PostgreSQL or SQLite); the schema must be at head.
- a :class:`Runtime` given by the caller (tests, embedding) is used as it is.

Kafka and Redis health checks (:func:`messaging_probes`) and the real-time notifier
(:func:`open_notifier`) come from :mod:`adapters_messaging`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from attrs import define, field

from adapters_messaging import KafkaSecurity, kafka_ping, redis_ping
from adapters_messaging.relay import Wakeup
from adapters_messaging.workers import build_notifier
from class_core.errors import DependencyUnavailableError
from class_core.ports import NullNotifier, OutboxStatus, OutboxStore, RealtimeNotifier
from class_core.runtime import MatchingPolicy, Runtime
from class_core.settings import Settings
from class_core.testing import InMemoryOutboxStore, InMemoryStore

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("class_api.bootstrap")

Probe = Callable[[], Awaitable[bool]]
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


def matching_policy(settings: Settings) -> MatchingPolicy:
    return MatchingPolicy(settings.association_timeout_hours, settings.confidence_threshold)


async def _always_up() -> bool:
    return True


# --------------------------------------------------------------------------- seams


def messaging_probes(settings: Settings, timeout: float = 2.0) -> dict[str, Probe]:
    """Health probes for Kafka and Redis, only for what is configured."""
    probes: dict[str, Probe] = {}
    if settings.kafka_bootstrap_servers:
        servers = settings.kafka_bootstrap_servers
        security = KafkaSecurity.from_settings(settings)

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
async def open_notifier(settings: Settings) -> AsyncIterator[RealtimeNotifier]:
    """The real-time notifier: Redis ``PUBLISH`` on ``ws:{teacher_id}`` when ``REDIS_URL`` is
    set (best effort, never blocks a request), else nothing."""
    notifier = build_notifier(settings)
    if notifier is None:
        yield NullNotifier()
        return
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.stop()


# --------------------------------------------------------------------------- services


async def check_schema(engine: AsyncEngine) -> None:
    """Refuse to run on a schema that is not at head (``SchemaNotAtHeadError``); an
    unreachable database is only logged, so the process starts and reports 503 until it
    comes back."""
    import adapters_sql

    try:
        await adapters_sql.ensure_at_head(engine)
    except DependencyUnavailableError:
        log.warning("database unreachable at start-up; the schema check is skipped")


@asynccontextmanager
async def open_services(
    settings: Settings, *, runtime: Runtime | None = None
) -> AsyncIterator[Services]:
    """Open the adapters for ``settings`` (or wrap the given ``runtime``) and close them on
    exit."""
    extra = messaging_probes(settings)
    if runtime is not None:
        yield Services(runtime, {"database": _always_up, **extra})
        return
    policy = matching_policy(settings)
    async with open_notifier(settings) as notifier:
        if settings.use_mock_repository:
            store = InMemoryStore()
            rt = Runtime(
                uow=store.unit_of_work, notifier=notifier, policy=policy, reads=store.reader
            )
            yield Services(
                rt,
                {"database": _always_up, **extra},
                InMemoryOutboxStore(store),
                store.outbox_added,
            )
            return
        async with _sql_services(settings, notifier, policy, extra) as services:
            yield services


@asynccontextmanager
async def _sql_services(
    settings: Settings,
    notifier: RealtimeNotifier,
    policy: MatchingPolicy,
    extra: dict[str, Probe],
) -> AsyncIterator[Services]:
    import adapters_sql

    engine = adapters_sql.create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    wakeups = adapters_sql.OutboxWakeups(engine)
    try:
        await check_schema(engine)
        rt = adapters_sql.build_sql_runtime(
            engine, notifier=notifier, policy=policy, on_outbox_commit=wakeups.notify
        )

        async def database() -> bool:
            try:
                await adapters_sql.ping(engine)
            except DependencyUnavailableError:
                return False
            return True

        yield Services(
            rt, {"database": database, **extra}, adapters_sql.SqlOutboxStore(engine), wakeups
        )
    finally:
        await wakeups.close()
        await engine.dispose()

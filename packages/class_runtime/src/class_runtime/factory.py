"""One runtime factory: what every app and an embedding service open before calling use cases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from attrs import frozen
from sqlalchemy.ext.asyncio import AsyncEngine

import adapters_sql
from adapters_messaging.relay import Wakeup
from adapters_messaging.workers import build_notifier
from class_core.errors import DependencyUnavailableError
from class_core.ports import NullNotifier, OutboxStore, RealtimeNotifier
from class_core.runtime import MatchingPolicy, Runtime
from class_core.testing import InMemoryOutboxStore, InMemoryStore
from class_runtime.settings import Settings

log = logging.getLogger("class_runtime")


@frozen
class OpenRuntime:
    """An opened runtime and the resources behind it (closed when its context ends)."""

    runtime: Runtime
    outbox_store: OutboxStore  # for the relay and the outbox metrics
    wakeup: Wakeup | None  # wakes an in-process relay when events were committed
    engine: AsyncEngine | None  # None on the in-memory store (``USE_MOCK_REPOSITORY``)

    async def database_up(self) -> bool:
        """Whether the database answers (always, for the in-memory store)."""
        if self.engine is None:
            return True
        try:
            await adapters_sql.ping(self.engine)
        except DependencyUnavailableError:
            return False
        return True


def matching_policy(settings: Settings) -> MatchingPolicy:
    return settings.core.matching_policy()


@asynccontextmanager
async def open_notifier(settings: Settings) -> AsyncIterator[RealtimeNotifier]:
    """The real-time notifier: Redis ``PUBLISH`` on ``ws:{teacher_id}`` when ``REDIS_URL`` is
    set (best effort, never blocks a request), else nothing."""
    notifier = build_notifier(settings.redis)
    if notifier is None:
        yield NullNotifier()
        return
    await notifier.start()
    try:
        yield notifier
    finally:
        await notifier.stop()


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    require_schema: bool = True,
    engine: AsyncEngine | None = None,
) -> AsyncIterator[OpenRuntime]:
    """Open the adapters ``settings`` name and close them on exit.

    - ``USE_MOCK_REPOSITORY=true``: the in-memory adapters of :mod:`class_core.testing`.
    - otherwise :mod:`adapters_sql` on ``DATABASE_URL`` (pool sizes from the settings unless
      given); the schema must be at head (``SchemaNotAtHeadError``). With
      ``require_schema=False`` an unreachable database at start-up is only logged, so that a
      server starts and reports 503 until it comes back (a schema that is reachable and
      behind is still refused).
    - ``engine``: an embedding service's own engine, used instead of one made from the URL
      (and left open).
    - the Redis notifier when ``REDIS_URL`` is set; the matching policy from the settings.
    """
    policy = matching_policy(settings)
    feed = settings.core.feed_policy()
    async with open_notifier(settings) as notifier:
        if settings.use_mock_repository:  # the runtime's own choice
            store = InMemoryStore(adapters_sql.ENVELOPES)
            rt = Runtime(
                uow=store.unit_of_work,
                notifier=notifier,
                policy=policy,
                reads=store.reader,
                feed=feed,
            )
            yield OpenRuntime(rt, InMemoryOutboxStore(store), store.outbox_added, None)
            return
        owned = engine is None
        if engine is None:
            sql = settings.sql
            engine = adapters_sql.create_engine(
                sql.database_url,
                pool_size=sql.database_pool_size if pool_size is None else pool_size,
                max_overflow=sql.database_max_overflow if max_overflow is None else max_overflow,
            )
        wakeups = adapters_sql.OutboxWakeups(engine)
        try:
            try:
                await adapters_sql.ensure_at_head(engine)
            except DependencyUnavailableError:
                if require_schema:
                    raise
                log.warning("database unreachable at start-up; the schema check is skipped")
            rt = adapters_sql.build_sql_runtime(
                engine,
                notifier=notifier,
                policy=policy,
                on_outbox_commit=wakeups.notify,
                feed=feed,
            )
            yield OpenRuntime(rt, adapters_sql.SqlOutboxStore(engine), wakeups, engine)
        finally:
            await wakeups.close()
            if owned:
                await engine.dispose()

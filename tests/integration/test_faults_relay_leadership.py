"""Relay leadership when the leader's own database session dies (contract §6: no double
publication caused by replicas).

The active relay holds a session-level advisory lock on a dedicated connection. When that
session ends (killed by an administrator, a failover, an idle-connection reaper) while the
relay's other connections still work, the lock passes to a standby. The old leader must notice
and step down; otherwise both publish every event from then on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence

import asyncpg
import pytest

from adapters_messaging import Delivery, OutboxRelay
from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_core.clock import SystemClock
from class_core.events import OutboxMessage
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from tests.support.postgres import PgDatabaseFactory, plain_url


class CountingSink:
    """Acknowledges everything and remembers what it was given."""

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        self.delivered += [str(m.event_id) for m in messages]
        return [Delivery.delivered() for _ in messages]


async def _until(check: object, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _relay(store: SqlOutboxStore, sink: CountingSink) -> OutboxRelay:
    return OutboxRelay(
        store,
        sink,
        clock=SystemClock(),
        poll_interval=0.05,
        standby_interval=0.1,
        base_backoff=0.05,
        outage_max_backoff=0.2,
        retention=None,
    )


async def test_a_leader_whose_session_died_steps_down(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=True)
    engine_a = create_engine(url, pool_size=2, max_overflow=0)
    engine_b = create_engine(url, pool_size=2, max_overflow=0)
    rt = build_sql_runtime(engine_a)
    sink_a, sink_b = CountingSink(), CountingSink()
    relay_a = _relay(SqlOutboxStore(engine_a), sink_a)
    relay_b = _relay(SqlOutboxStore(engine_b), sink_b)
    tasks = [asyncio.create_task(relay_a.run())]
    try:
        await _until(lambda: relay_a.stats.is_leader, "relay A to lead")
        tasks.append(asyncio.create_task(relay_b.run()))
        ctx = RequestContext("teacher-leader")
        for i in range(5):
            await create_class(rt, ctx, CreateClass(f"before {i}", ["ENG5"]))
        await _until(lambda: len(sink_a.delivered) == 10, "A to publish the first events")
        assert not relay_b.stats.is_leader

        # The leader's lock session ends; its pooled connections are untouched.
        admin = await asyncpg.connect(plain_url(url))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
                "JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            )
        finally:
            await admin.close()
        assert killed == 1
        await _until(lambda: relay_b.stats.is_leader, "relay B to take over")

        for i in range(10):
            await create_class(rt, ctx, CreateClass(f"after {i}", ["ENG5"]))
            await asyncio.sleep(0.05)
        await _until(lambda: len(set(sink_a.delivered) | set(sink_b.delivered)) == 30, "all events")
        await asyncio.sleep(0.5)  # time for a zombie leader to publish them again
    finally:
        await relay_a.stop(5)
        await relay_b.stop(5)
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine_a.dispose()
        await engine_b.dispose()

    copies = Counter(sink_a.delivered + sink_b.delivered)
    twice = {event_id: n for event_id, n in copies.items() if n > 1}
    assert not twice, f"{len(twice)} events published by both relays"
    assert relay_a.stats.errors >= 1  # A noticed that it lost its session

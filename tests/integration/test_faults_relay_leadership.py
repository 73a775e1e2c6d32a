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
from datetime import datetime

import asyncpg
import pytest

from adapters_messaging import Delivery, OutboxRelay
from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_core.clock import SystemClock
from class_core.events import OutboxMessage
from class_core.ports import StoredOutboxMessage
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


# ----------------------------------------------------------------- killed in the middle of a round


async def _terminate_lock_session(url: str) -> int:
    admin = await asyncpg.connect(plain_url(url))
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l "
                "JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()"
            )
        )
    finally:
        await admin.close()


class GatedSink(CountingSink):
    """Acknowledges everything; while ``gate`` is closed, a publish waits for it (the round
    is "in flight")."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()
        self.batches: list[list[str]] = []

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        self.batches.append([str(m.event_id) for m in messages])
        return await super().publish(messages)


async def _published_at(url: str) -> dict[str, object]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        rows = await conn.fetch("SELECT event_id, published_at FROM cms_outbox")
    finally:
        await conn.close()
    return {str(r["event_id"]): r["published_at"] for r in rows}


async def test_a_leader_killed_while_publishing_does_not_mark_after_the_new_leader(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    """The lock session dies while a round is in flight (the sink has the batch). The standby
    takes over and re-sends that batch (the same event ids); when the old round completes, the
    old leader learns it lost the lock before marking, and writes nothing: the marks stay the
    new leader's, and the old leader publishes nothing more."""
    url = await pg_database_factory(migrated=True)
    engine_a = create_engine(url, pool_size=2, max_overflow=0)
    engine_b = create_engine(url, pool_size=2, max_overflow=0)
    rt = build_sql_runtime(engine_a)
    sink_a, sink_b = GatedSink(), GatedSink()
    relay_a = _relay(SqlOutboxStore(engine_a), sink_a)
    relay_b = _relay(SqlOutboxStore(engine_b), sink_b)
    tasks = [asyncio.create_task(relay_a.run())]
    ctx = RequestContext("teacher-mid-round")
    try:
        await _until(lambda: relay_a.stats.is_leader, "relay A to lead")
        tasks.append(asyncio.create_task(relay_b.run()))
        await create_class(rt, ctx, CreateClass("warm-up", ["ENG5"]))
        await _until(lambda: len(sink_a.delivered) == 2, "A to publish the first events")

        sink_a.gate.clear()  # A's next round stays in flight
        for i in range(3):
            await create_class(rt, ctx, CreateClass(f"in flight {i}", ["ENG5"]))
        await asyncio.wait_for(sink_a.waiting.wait(), 10)
        in_flight = 6
        assert await _terminate_lock_session(url) == 1
        await _until(lambda: relay_b.stats.is_leader, "relay B to take over")
        await _until(lambda: len(sink_b.delivered) == in_flight, "B to re-send the round")
        deadline = time.monotonic() + 10
        while not all((marks_by_b := await _published_at(url)).values()):
            assert time.monotonic() < deadline, "B never marked the round"
            await asyncio.sleep(0.05)

        sink_a.gate.set()  # the old round completes now
        await _until(lambda: len(sink_a.batches) == 2, "A's round to complete")
        await _until(lambda: relay_a.stats.errors >= 1, "A to learn it lost the lock")
        for i in range(3):
            await create_class(rt, ctx, CreateClass(f"after {i}", ["ENG5"]))
        await _until(lambda: len(sink_b.delivered) == in_flight + 6, "B to publish the rest")
        await asyncio.sleep(0.5)  # time for a stale leader to publish or mark again
        marks_after = await _published_at(url)
    finally:
        sink_a.gate.set()
        await relay_a.stop(5)
        await relay_b.stop(5)
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine_a.dispose()
        await engine_b.dispose()

    # Every event delivered; the only copies are the round that was in flight, same event ids.
    every = set(marks_after)
    assert set(sink_a.delivered) | set(sink_b.delivered) == every
    assert len(every) == 2 + in_flight + 6
    twice = {e for e, n in Counter(sink_a.delivered + sink_b.delivered).items() if n > 1}
    assert twice == set(sink_a.batches[1])
    assert len(sink_a.batches) == 2  # nothing published after the round in flight
    # The old leader wrote nothing once the new one led: the in-flight rows keep B's marks.
    assert {e: marks_after[e] for e in marks_by_b} == marks_by_b


class _CountingStore(SqlOutboxStore):
    """The SQL outbox store, counting the fetches that returned (a relay's polls)."""

    fetches = 0

    async def fetch_ready(self, now: datetime, limit: int) -> list[StoredOutboxMessage]:
        rows = await super().fetch_ready(now, limit)
        self.fetches += 1
        return rows


async def test_a_leader_killed_after_fetching_does_not_publish_what_it_fetched(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    """The lock session dies between the leader's fetch and its publish (the fetch is held up
    by a table lock, as a slow plan or lock queue would). The old leader must not send the
    rows it fetched: it checks its session right before publishing. The new leader sends
    everything, once, in order."""
    url = await pg_database_factory(migrated=True)
    engine_a = create_engine(url, pool_size=2, max_overflow=0)
    engine_b = create_engine(url, pool_size=2, max_overflow=0)
    rt = build_sql_runtime(engine_a)
    sink_a, sink_b = GatedSink(), GatedSink()
    # No wake-ups: A fetches on its poll only, so the test can hold the table before it does.
    store_a = _CountingStore(engine_a)
    relay_a = OutboxRelay(
        store_a,
        sink_a,
        clock=SystemClock(),
        poll_interval=1.5,
        standby_interval=0.1,
        base_backoff=0.05,
        outage_max_backoff=0.2,
        retention=None,
    )
    relay_b = _relay(SqlOutboxStore(engine_b), sink_b)
    tasks = [asyncio.create_task(relay_a.run())]
    ctx = RequestContext("teacher-fetched")
    admin = await asyncpg.connect(plain_url(url))
    try:
        await _until(lambda: relay_a.stats.is_leader, "relay A to lead")
        tasks.append(asyncio.create_task(relay_b.run()))
        await create_class(rt, ctx, CreateClass("warm-up", ["ENG5"]))
        await _until(lambda: len(sink_a.delivered) == 2, "A to publish the first events", 15)
        # Right after one of A's polls (nothing to fetch), so that its next one, 1.5 s away,
        # comes after the lock: a poll between the pending events and the lock would publish
        # them, and mark them published while the table is held (seen once in a loaded run).
        polls = store_a.fetches
        await _until(lambda: store_a.fetches > polls, "A to poll", 5)
        for i in range(3):
            await create_class(rt, ctx, CreateClass(f"pending {i}", ["ENG5"]))
        # Hold every reader of the outbox until A's next fetch is waiting for the table.
        locker = admin.transaction()
        await locker.start()
        await admin.execute("LOCK TABLE cms_outbox IN ACCESS EXCLUSIVE MODE")
        assert len(sink_a.delivered) == 2, "A polled before the lock: the test's setup was late"

        async def a_is_waiting() -> bool:
            waiting = await asyncpg.connect(plain_url(url))
            try:
                n = await waiting.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%FROM cms_outbox%'"
                )
            finally:
                await waiting.close()
            return bool(n)

        deadline = time.monotonic() + 10
        while not await a_is_waiting():
            assert time.monotonic() < deadline, "A never fetched"
            await asyncio.sleep(0.05)
        assert len(sink_a.delivered) == 2
        assert await _terminate_lock_session(url) == 1  # A passed its check, then lost the lock
        await _until(lambda: relay_b.stats.is_leader, "relay B to take over")
        await locker.commit()  # both fetches return the same six rows now

        await _until(lambda: len(sink_b.delivered) == 6, "B to publish the pending events")
        await _until(lambda: relay_a.stats.errors >= 1, "A to learn it lost the lock")
        await asyncio.sleep(0.5)
    finally:
        await admin.close()
        await relay_a.stop(5)
        await relay_b.stop(5)
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine_a.dispose()
        await engine_b.dispose()

    assert len(sink_a.delivered) == 2, "the old leader published rows it fetched before the kill"
    copies = Counter(sink_a.delivered + sink_b.delivered)
    assert len(copies) == 8
    assert max(copies.values()) == 1

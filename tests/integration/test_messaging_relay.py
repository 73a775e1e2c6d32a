"""The outbox relay against a real Kafka-protocol broker (contract §5.1, §5.2, §6).

Every test runs on the in-memory adapters and on PostgreSQL (``messaging_backend``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import ConsumerRecord

from adapters_messaging import (
    Delivery,
    DeliveryStatus,
    EventSink,
    KafkaEventSink,
    KafkaSecurity,
    OutboxRelay,
)
from adapters_sql.envelopes import ENVELOPES
from class_core.errors import DependencyUnavailableError, DuplicateStudentEmailError
from class_core.events import (
    CLASS_CREATED,
    CLASS_DELETED,
    CLASS_UPDATED,
    PUBLISHED_TOPICS,
    SOURCE_SERVICE,
    STUDENT_CREATED,
    STUDENT_DELETED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
    ClassUpdatedV1,
    OutboxMessage,
)
from class_core.ports import OutboxStatus, OutboxStore, StoredOutboxMessage
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    delete_class,
    update_class,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    delete_student,
    update_student,
)
from tests.support.broker import (
    BrokerProcess,
    MessagingBackend,
    free_port,
    header,
    read_records,
)

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

ENVELOPE_KEYS = {
    "event_id",
    "event_type",
    "event_timestamp",
    "source_service",
    "schema_version",
    "correlation_id",
    "data_schema_uri",
    "data",
    "metadata",
}
NOTIFICATION_KEYS = {
    "teacher_id",
    "notification_type",
    "category",
    "priority",
    "payload",
    "action_required",
    "deadline_timestamp",
    "correlation_id",
    "batch_id",
    "class_id",
    "timestamp",
}


# --------------------------------------------------------------------------- helpers


class RecordingSink:
    """Wraps a sink and keeps what it acknowledged, in order."""

    def __init__(self, inner: EventSink) -> None:
        self.inner = inner
        self.delivered: list[OutboxMessage] = []
        self.calls = 0

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        self.calls += 1
        results = await self.inner.publish(messages)
        self.delivered += [
            m
            for m, r in zip(messages, results, strict=True)
            if r.status is DeliveryStatus.DELIVERED
        ]
        return results

    def ids(self) -> list[str]:
        return [str(m.event_id) for m in self.delivered]


def kafka_sink(bootstrap: str, **options: Any) -> KafkaEventSink:
    options.setdefault("request_timeout_ms", 5000)
    return KafkaEventSink(bootstrap, enable_idempotence=False, **options)


def relay_for(backend: MessagingBackend, sink: EventSink, **options: Any) -> OutboxRelay:
    options.setdefault("wakeup", backend.wakeup)
    options.setdefault("poll_interval", 0.2)
    options.setdefault("base_backoff", 0.05)
    options.setdefault("outage_max_backoff", 0.5)
    options.setdefault("standby_interval", 0.2)
    return OutboxRelay(options.pop("store", backend.outbox), sink, **options)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def status(backend: MessagingBackend) -> OutboxStatus:
    return await backend.outbox.status(backend.runtime.now())


async def total_rows(backend: MessagingBackend) -> int:
    s = await status(backend)
    return s.pending + s.dead + s.published


async def records_with_ids(
    bootstrap: str, ids: Collection[str], topics: Sequence[str] = PUBLISHED_TOPICS, **kw: Any
) -> list[ConsumerRecord[bytes, bytes]]:
    wanted = set(ids)
    records = await read_records(
        bootstrap,
        topics,
        until=lambda rs: wanted <= {header(r, "event_id") for r in rs},
        **kw,
    )
    return [r for r in records if header(r, "event_id") in wanted]


async def record_updates(rt: Runtime, items: Sequence[tuple[UUID, str]]) -> None:
    """One transaction per item: a ``ClassUpdatedV1`` for ``class_id`` named ``name``."""
    for class_id, name in items:
        now = rt.now()
        corr = uuid4()
        async with rt.uow() as uow:
            uow.record([ClassUpdatedV1(class_id, name, None, "teacher-x", corr, now)], corr, now)
            await uow.commit()


async def record_raw(rt: Runtime, messages: Sequence[OutboxMessage]) -> None:
    async with rt.uow() as uow:
        await uow.outbox.add(messages)
        await uow.commit()


def raw_message(topic: str, key: str, payload: str) -> OutboxMessage:
    event_id = uuid4()
    return OutboxMessage(
        event_id=event_id,
        topic=topic,
        key=key,
        payload=payload,
        headers=(("event_id", str(event_id)), ("event_type", topic)),
        created_at=datetime.now().astimezone(),
    )


def in_partition_order(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[str]:
    ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    return [header(r, "event_id") or "" for r in ordered]


# --------------------------------------------------------------------------- contract events


async def test_use_cases_publish_the_contract_events(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    rt = messaging_backend.runtime
    owner = f"teacher-{uuid4()}"
    ctx = RequestContext(owner, uuid4())
    cls = await create_class(rt, ctx, CreateClass("9A", ["ENG5"]))
    await update_class(rt, ctx, cls.id, UpdateClass(name="9B"))
    student = await create_student(
        rt,
        ctx,
        CreateStudent(PersonName("Ada", "Lovelace"), email="Ada@Example.com", class_ids=[cls.id]),
    )
    await update_student(rt, ctx, student.id, UpdateStudent(email=None))
    await delete_student(rt, ctx, student.id)
    await delete_class(rt, ctx, cls.id)

    sink = RecordingSink(kafka_sink(kafka_bootstrap))
    relay = relay_for(messaging_backend, sink)
    published = 0
    for _ in range(30):  # the test broker may answer "not leader" for a moment: next round
        published += await relay.run_once()
        if published >= 8:
            break
        await asyncio.sleep(0.2)
    assert published == 8
    assert (await status(messaging_backend)).pending == 0
    # Order holds per (topic, key), Kafka's promise; a retried round may interleave the rest.
    by_key: dict[tuple[str, str], list[str]] = {}
    for m in sink.delivered:
        by_key.setdefault((m.topic, m.key), []).append(
            json.loads(m.payload)["data"].get("notification_type", m.topic)
        )
    assert by_key == {
        (CLASS_CREATED, str(cls.id)): [CLASS_CREATED],
        (CLASS_UPDATED, str(cls.id)): [CLASS_UPDATED],
        (CLASS_DELETED, str(cls.id)): [CLASS_DELETED],
        (TEACHER_NOTIFICATION, owner): ["class_created", "student_added_to_class"],
        (STUDENT_CREATED, str(student.id)): [STUDENT_CREATED],
        (STUDENT_UPDATED, str(student.id)): [STUDENT_UPDATED],
        (STUDENT_DELETED, str(student.id)): [STUDENT_DELETED],
    }

    records = await records_with_ids(kafka_bootstrap, sink.ids())
    by_id = {header(r, "event_id"): r for r in records}
    assert len(records) == len(by_id) == 8
    data: dict[str, list[dict[str, Any]]] = {}
    for m in sink.delivered:
        r = by_id[str(m.event_id)]
        assert r.topic == m.topic
        assert r.value == m.payload.encode()  # the recorded bytes, never re-rendered
        assert dict((k, v.decode()) for k, v in r.headers) == {
            "event_id": str(m.event_id),
            "event_type": m.topic,
            "correlation_id": str(ctx.correlation_id),
            "source_service": SOURCE_SERVICE,
        }
        envelope = json.loads(r.value)
        assert set(envelope) == ENVELOPE_KEYS
        assert envelope["event_id"] == str(m.event_id)
        assert envelope["event_type"] == m.topic
        assert envelope["source_service"] == SOURCE_SERVICE
        assert envelope["schema_version"] == 1
        assert envelope["correlation_id"] == str(ctx.correlation_id)
        assert envelope["data_schema_uri"] is None
        assert datetime.fromisoformat(envelope["event_timestamp"]).utcoffset() is not None
        data.setdefault(m.topic, []).append(envelope["data"])
        expected_key = str(student.id) if "student" in m.topic else str(cls.id)
        if m.topic == TEACHER_NOTIFICATION:
            expected_key = owner
        assert r.key == expected_key.encode()

    (created,) = data[CLASS_CREATED]
    assert created == {
        "event": "class.created",
        "class_id": str(cls.id),
        "class_designation": "9A",
        "course_codes": ["ENG5"],
        "user_id": owner,
        "correlation_id": str(ctx.correlation_id),
        "timestamp": created["timestamp"],
        "external_id": None,
    }
    (updated,) = data[CLASS_UPDATED]
    assert updated["class_designation"] == "9B"
    assert updated["course_codes"] is None
    assert (updated["external_id"], updated["status"]) == (None, "active")
    (s_created,) = data[STUDENT_CREATED]
    assert s_created["event"] == "student.created"
    assert s_created["student_id"] == str(student.id)
    assert (s_created["first_name"], s_created["last_name"]) == ("Ada", "Lovelace")
    assert s_created["student_email"] == "ada@example.com"
    assert s_created["class_ids"] == [str(cls.id)]
    assert s_created["created_by_user_id"] == owner
    (s_updated,) = data[STUDENT_UPDATED]
    assert s_updated["student_email"] is None
    assert s_updated["add_class_ids"] is None
    assert s_updated["remove_class_ids"] is None
    assert s_updated["updated_by_user_id"] == owner
    (s_deleted,) = data[STUDENT_DELETED]
    assert s_deleted["class_ids"] == [str(cls.id)]
    assert s_deleted["user_id"] == owner
    (deleted,) = data[CLASS_DELETED]
    assert (deleted["event"], deleted["class_id"]) == ("class.deleted", str(cls.id))

    notes = data[TEACHER_NOTIFICATION]
    assert [n["notification_type"] for n in notes] == ["class_created", "student_added_to_class"]
    for note in notes:
        assert set(note) == NOTIFICATION_KEYS
        assert note["teacher_id"] == owner
        assert note["correlation_id"] == str(ctx.correlation_id)
        assert note["class_id"] == str(cls.id)
    assert notes[1]["payload"]["student_id"] == str(student.id)


async def test_a_failed_use_case_publishes_nothing(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    rt = messaging_backend.runtime
    owner = f"teacher-{uuid4()}"
    ok = RequestContext(owner, uuid4())
    await create_student(rt, ok, CreateStudent(PersonName("Bo", "Ek"), email="bo@example.com"))
    rows = await total_rows(messaging_backend)

    failed = RequestContext(owner, uuid4())
    with pytest.raises(DuplicateStudentEmailError):
        await create_student(
            rt, failed, CreateStudent(PersonName("Bo", "Other"), email="BO@example.com")
        )
    assert await total_rows(messaging_backend) == rows

    sink = RecordingSink(kafka_sink(kafka_bootstrap))
    assert await relay_for(messaging_backend, sink).run_once() == 1
    records = await read_records(
        kafka_bootstrap,
        [STUDENT_CREATED],
        until=lambda rs: any(header(r, "correlation_id") == str(ok.correlation_id) for r in rs),
    )
    correlations = {header(r, "correlation_id") for r in records}
    assert str(ok.correlation_id) in correlations
    assert str(failed.correlation_id) not in correlations


# --------------------------------------------------------------------------- outages and crashes


async def test_broker_outage_keeps_events_until_the_broker_is_back_in_order_per_key(
    messaging_backend: MessagingBackend, kafka_broker_factory: Callable[[], BrokerProcess]
) -> None:
    broker = kafka_broker_factory()
    rt = messaging_backend.runtime
    owner = f"teacher-{uuid4()}"
    ctx = RequestContext(owner, uuid4())
    sink = RecordingSink(kafka_sink(broker.bootstrap, request_timeout_ms=1000))
    relay = relay_for(messaging_backend, sink)
    task = asyncio.create_task(relay.run())
    try:
        await create_class(rt, ctx, CreateClass("before", ["ENG5"]))
        await wait_until(
            lambda: _pending_is(messaging_backend, 0), what="the first events to be published"
        )

        broker.stop()
        started = time.monotonic()
        classes = [await create_class(rt, ctx, CreateClass(f"c{i}", ["SV1"])) for i in range(3)]
        for i in range(3):
            await update_class(rt, ctx, classes[0].id, UpdateClass(name=f"renamed {i}"))
        assert time.monotonic() - started < 2.0  # use cases never wait for the broker
        await wait_until(lambda: _outages(relay, 1), what="the relay to notice the outage")
        await asyncio.sleep(1.5)  # a few failing rounds
        during = await status(messaging_backend)
        assert (during.pending, during.dead) == (9, 0)
        assert relay.stats.failures == 0

        broker.start()
        await wait_until(
            lambda: _pending_is(messaging_backend, 0), timeout=30, what="delivery after restart"
        )
        assert (await status(messaging_backend)).dead == 0
        assert relay.stats.dead == relay.stats.failures == 0
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 15)
        await sink.inner.stop()  # type: ignore[attr-defined]

    after_outage = [m for m in sink.delivered if m.created_at >= classes[0].created_at]
    assert len(after_outage) == 9
    records = await records_with_ids(broker.bootstrap, [str(m.event_id) for m in after_outage])
    assert len(records) >= 9
    recorded_order = [str(m.event_id) for m in after_outage]

    def keyed(topic: str, key: str) -> list[str]:
        return [
            i
            for i in dict.fromkeys(
                in_partition_order(
                    [r for r in records if r.topic == topic and r.key == key.encode()]
                )
            )
        ]

    notes = keyed(TEACHER_NOTIFICATION, owner)
    updates = keyed(CLASS_UPDATED, str(classes[0].id))
    assert (len(notes), len(updates)) == (3, 3)
    assert notes == [i for i in recorded_order if i in notes]
    assert updates == [i for i in recorded_order if i in updates]


async def test_an_unreachable_broker_is_an_outage_not_a_failure(
    messaging_backend: MessagingBackend,
) -> None:
    await create_class(messaging_backend.runtime, RequestContext("t"), CreateClass("u", ["SV1"]))
    sink = kafka_sink(f"127.0.0.1:{free_port()}", request_timeout_ms=500)
    relay = relay_for(messaging_backend, sink, max_attempts=1)
    for _ in range(3):
        assert await relay.run_once() == 0
    after = await status(messaging_backend)
    assert (after.pending, after.dead) == (2, 0)
    assert (relay.stats.outages, relay.stats.failures) == (3, 0)
    assert "kafka unreachable" in (relay.stats.last_error or "")
    await sink.stop()


async def test_a_producer_that_cannot_be_built_is_an_outage_not_a_failure(
    messaging_backend: MessagingBackend,
) -> None:
    # Bad security options (which configuration now refuses at start-up) make aiokafka
    # refuse to build a producer: no event is charged an attempt for that.
    await create_class(messaging_backend.runtime, RequestContext("t"), CreateClass("u", ["SV1"]))
    sink = kafka_sink(f"127.0.0.1:{free_port()}", security=KafkaSecurity(security_protocol="BOGUS"))
    relay = relay_for(messaging_backend, sink, max_attempts=1)
    for _ in range(2):
        assert await relay.run_once() == 0
    after = await status(messaging_backend)
    assert (after.pending, after.dead) == (2, 0)
    assert (relay.stats.outages, relay.stats.failures) == (2, 0)
    assert "kafka producer not usable" in (relay.stats.last_error or "")
    await sink.stop()


async def test_a_relay_killed_between_publish_and_mark_republishes_the_same_event(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    rt = messaging_backend.runtime
    await create_class(rt, RequestContext(f"teacher-{uuid4()}"), CreateClass("k", ["ENG6"]))

    class DiesAfterPublish(RecordingSink):
        async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
            await super().publish(messages)
            task = asyncio.current_task()
            assert task is not None
            task.cancel()  # the process dies before the rows are marked published
            await asyncio.sleep(0)
            raise AssertionError("not reached")

    first_sink = kafka_sink(kafka_bootstrap)
    dying = DiesAfterPublish(first_sink)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(relay_for(messaging_backend, dying).run_once())
    assert len(dying.delivered) == 2
    assert (await status(messaging_backend)).pending == 2

    second = RecordingSink(kafka_sink(kafka_bootstrap))
    restarted = relay_for(messaging_backend, second, store=messaging_backend.new_outbox())
    assert await restarted.run_once() == 2
    assert (await status(messaging_backend)).pending == 0
    assert second.ids() == dying.ids()
    assert [m.payload for m in second.delivered] == [m.payload for m in dying.delivered]

    records = await read_records(
        kafka_bootstrap,
        [CLASS_CREATED, TEACHER_NOTIFICATION],
        until=lambda rs: sum(header(r, "event_id") in dying.ids() for r in rs) >= 4,
    )
    copies = [r for r in records if header(r, "event_id") in dying.ids()]
    assert len(copies) == 4  # each event twice, with the same id and the same bytes
    for event_id in dying.ids():
        values = {r.value for r in copies if header(r, "event_id") == event_id}
        assert len(values) == 1
    await first_sink.stop()
    await second.inner.stop()  # type: ignore[attr-defined]


async def test_two_relays_at_once_publish_no_event_twice(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    if messaging_backend.name == "memory":
        pytest.skip("in-memory mode is one process with one relay; leadership is PostgreSQL's")
    rt = messaging_backend.runtime
    ctx = RequestContext(f"teacher-{uuid4()}")
    sinks = [RecordingSink(kafka_sink(kafka_bootstrap)) for _ in range(2)]
    relays = [
        relay_for(messaging_backend, s, store=messaging_backend.new_outbox(), poll_interval=0.05)
        for s in sinks
    ]
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        for i in range(60):  # events keep arriving while both relays run
            await create_class(rt, ctx, CreateClass(f"c{i}", ["ENG7"]))
            if i % 10 == 0:
                await asyncio.sleep(0.05)
        await wait_until(lambda: _pending_is(messaging_backend, 0), what="all events published")
    finally:
        for r in relays:
            await r.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)
        for s in sinks:
            await s.inner.stop()  # type: ignore[attr-defined]
    ids = sinks[0].ids() + sinks[1].ids()
    assert len(ids) == len(set(ids)) == 120
    records = await records_with_ids(kafka_bootstrap, ids, [CLASS_CREATED, TEACHER_NOTIFICATION])
    assert len(records) == 120


# --------------------------------------------------------------------------- failing events


class RefusingSink(RecordingSink):
    """Raises for any batch that holds a message whose payload contains a refused marker."""

    def __init__(self, inner: EventSink, refused: str) -> None:
        super().__init__(inner)
        self.refused: str | None = refused

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        if self.refused is not None and any(self.refused in m.payload for m in messages):
            raise ValueError("the destination refuses this event")
        return await super().publish(messages)


async def test_an_event_that_keeps_failing_becomes_dead_and_blocks_only_its_key(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    rt = messaging_backend.runtime
    poisoned, other = uuid4(), uuid4()
    marker = f"poison-{uuid4()}"
    await record_updates(rt, [(poisoned, marker), (poisoned, "after poison"), (other, "fine")])
    sink = RefusingSink(kafka_sink(kafka_bootstrap), marker)
    relay = relay_for(messaging_backend, sink, max_attempts=3, base_backoff=0.01, max_backoff=0.02)

    assert await relay.run_once() == 1  # the other key flows at once
    assert [json.loads(m.payload)["data"]["class_id"] for m in sink.delivered] == [str(other)]
    for _ in range(100):
        if (await status(messaging_backend)).dead:
            break
        await asyncio.sleep(0.03)
        assert await relay.run_once() == 0  # the same-key event waits behind the failing one
    after = await status(messaging_backend)
    assert (after.dead, after.pending) == (1, 1)
    assert (relay.stats.failures, relay.stats.dead) == (3, 1)
    await asyncio.sleep(0.05)
    assert await relay.run_once() == 0  # still waiting behind the dead event

    sink.refused = None
    assert await messaging_backend.outbox.retry_dead(rt.now()) == 1
    assert await relay.run_once() == 2
    names = [json.loads(m.payload)["data"]["class_designation"] for m in sink.delivered]
    assert names == ["fine", marker, "after poison"]
    records = await records_with_ids(kafka_bootstrap, sink.ids(), [CLASS_UPDATED])
    assert (
        in_partition_order([r for r in records if r.key == str(poisoned).encode()])
        == (sink.ids()[1:])
    )
    await sink.inner.stop()  # type: ignore[attr-defined]


async def test_kafka_refusals_are_the_event_s_own_failures(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    rt = messaging_backend.runtime
    big_key, bad_key, good_key = (str(uuid4()) for _ in range(3))
    too_large = raw_message(CLASS_UPDATED, big_key, json.dumps({"x": "y" * 1_100_000}))
    behind = raw_message(CLASS_UPDATED, big_key, "{}")
    bad_topic = raw_message("not a valid topic!", bad_key, "{}")
    good = raw_message(CLASS_UPDATED, good_key, "{}")
    await record_raw(rt, [too_large, behind, bad_topic, good])

    inner = kafka_sink(kafka_bootstrap)
    results = await inner.publish([too_large, behind, bad_topic, good])
    assert [r.status for r in results] == [
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
    ]
    assert "MessageSizeTooLarge" in (results[0].error or "")

    sink = RecordingSink(inner)
    relay = relay_for(messaging_backend, sink, max_attempts=1)
    assert await relay.run_once() == 1
    assert sink.ids() == [str(good.event_id)]
    after = await status(messaging_backend)
    assert (after.dead, after.pending, relay.stats.outages) == (2, 1, 0)
    await inner.stop()


async def test_storage_errors_do_not_stop_the_relay(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    class FlakyStore:
        def __init__(self, inner: OutboxStore) -> None:
            self.inner = inner
            self.failures_left = 3

        def leadership(self) -> AbstractAsyncContextManager[bool]:
            return self.inner.leadership()

        async def fetch_ready(self, now: datetime, limit: int) -> list[StoredOutboxMessage]:
            if self.failures_left:
                self.failures_left -= 1
                raise DependencyUnavailableError("database unreachable")
            return await self.inner.fetch_ready(now, limit)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    await create_class(messaging_backend.runtime, RequestContext("t"), CreateClass("x", ["SV2"]))
    sink = RecordingSink(kafka_sink(kafka_bootstrap))
    relay = relay_for(messaging_backend, sink, store=FlakyStore(messaging_backend.outbox))
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _pending_is(messaging_backend, 0), what="publication")
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 15)
        await sink.inner.stop()  # type: ignore[attr-defined]
    assert relay.stats.errors == 3
    assert len(sink.delivered) == 2


# --------------------------------------------------------------------------- loop behaviour


async def test_a_commit_wakes_the_relay_before_the_next_poll(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    sink = RecordingSink(kafka_sink(kafka_bootstrap))
    relay = relay_for(messaging_backend, sink, poll_interval=30.0)
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.3)  # idle, waiting
        await create_class(
            messaging_backend.runtime, RequestContext("t"), CreateClass("w", ["SV3"])
        )
        await wait_until(lambda: _pending_is(messaging_backend, 0), timeout=5, what="wake-up")
        stopped = time.monotonic()
    finally:
        await relay.stop()
        await asyncio.wait_for(task, 15)
        await sink.inner.stop()  # type: ignore[attr-defined]
    assert time.monotonic() - stopped < 2.0  # stop() interrupts the idle wait
    assert len(sink.delivered) == 2
    assert len(relay.stats.take_lag_samples()) == 2


async def test_cleanup_removes_published_rows_older_than_the_retention(
    messaging_backend: MessagingBackend, kafka_bootstrap: str
) -> None:
    await create_class(messaging_backend.runtime, RequestContext("t"), CreateClass("p", ["SV1"]))
    async with messaging_backend.runtime.uow() as uow:  # a consumed message's id
        assert await uow.inbox.claim("a-consumer", "message-1")
        await uow.commit()
    sink = kafka_sink(kafka_bootstrap)
    keep = relay_for(messaging_backend, sink)
    assert await keep.run_once() == 2
    assert await keep.cleanup() == 0  # younger than 7 days
    assert keep.stats.inbox_purged == 0
    purge = relay_for(messaging_backend, sink, retention=timedelta(0))
    await asyncio.sleep(0.05)
    assert await purge.cleanup() == 2
    assert (await status(messaging_backend)).published == 0
    # The inbox is purged with the same retention: the id is forgotten.
    assert purge.stats.inbox_purged == 1
    async with messaging_backend.runtime.uow() as uow:
        assert await uow.inbox.claim("a-consumer", "message-1")
    await sink.stop()


@pytest.mark.slow
async def test_relay_throughput(
    messaging_backend: MessagingBackend,
    messaging_storage: Any,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rt = messaging_backend.runtime
    now = rt.now()
    n = 10_000
    keys = [uuid4() for _ in range(200)]
    messages = [
        build_outbox_message(
            ClassUpdatedV1(keys[i % len(keys)], f"class {i}", None, "bench", uuid4(), now),
            event_id=uuid4(),
            correlation_id=uuid4(),
            at=now,
        )
        for i in range(n)
    ]
    await record_raw(rt, messages)
    if messaging_storage is not None:  # steady state: autovacuum would have analysed the table
        from sqlalchemy import text

        async with messaging_storage.connect() as conn:
            await conn.execute(text("ANALYZE cms_outbox"))
            await conn.commit()
    sink = kafka_sink(kafka_bootstrap)
    await sink.start()
    relay = relay_for(messaging_backend, sink)
    started = time.perf_counter()
    published = await relay.run_once()
    elapsed = time.perf_counter() - started
    await sink.stop()
    rate = published / elapsed
    with capsys.disabled():
        print(f"\nrelay throughput ({messaging_backend.name}): {rate:,.0f} events/s")
    # The rate is printed, not asserted: speed is judged by `python -m bench --only relay`
    # (docs/performance.md) on a quiet machine, not by a timed test beside other workers.
    assert published == n


async def _pending_is(backend: MessagingBackend, n: int) -> bool:
    return (await status(backend)).pending == n


async def _outages(relay: OutboxRelay, n: int) -> bool:
    return relay.stats.outages >= n

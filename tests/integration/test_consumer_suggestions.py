"""The suggestions consumer on a real broker (contract §4.1, §5.3), on both storage backends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters_messaging import ConsumerStats, SuggestionsConsumer
from class_core.errors import DependencyUnavailableError
from class_core.events import ASSOCIATIONS_CONFIRMED, SUGGESTIONS_TOPIC
from class_core.model import Association, BatchStatus, SchoolClass, Student
from class_core.ports import UnitOfWork, UnitOfWorkFactory
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.broker import MessagingBackend, header, produce_raw, read_records

FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}


# --------------------------------------------------------------------------- helpers


class Scenario:
    """A class with two students, a private topic and a consumer group on the test broker."""

    def __init__(self, backend: MessagingBackend, bootstrap: str) -> None:
        self.backend = backend
        self.bootstrap = bootstrap
        self.topic = f"test.{uuid4().hex[:10]}.{SUGGESTIONS_TOPIC}"
        self.group = f"test-group-{uuid4().hex[:10]}"
        self.owner = f"teacher-{uuid4()}"
        self.cls: SchoolClass
        self.ada: Student
        self.bo: Student
        self.outsider: Student

    async def setup(self) -> None:
        rt = self.backend.runtime
        ctx = RequestContext(self.owner)
        self.cls = await create_class(rt, ctx, CreateClass("8B", ["ENG5"]))
        self.ada = await create_student(
            rt, ctx, CreateStudent(PersonName("Ada", "L"), class_ids=[self.cls.id])
        )
        self.bo = await create_student(
            rt, ctx, CreateStudent(PersonName("Bo", "E"), class_ids=[self.cls.id])
        )
        self.outsider = await create_student(rt, ctx, CreateStudent(PersonName("Out", "Sider")))

    def consumer(self, runtime: Runtime | None = None, **options: Any) -> SuggestionsConsumer:
        options.setdefault("base_backoff", 0.05)
        options.setdefault("max_backoff", 0.3)
        return SuggestionsConsumer(
            self.bootstrap,
            self.group,
            runtime or self.backend.runtime,
            topic=self.topic,
            enable_idempotence=False,
            consumer_options=FAST_GROUP,
            **options,
        )

    async def send(self, *values: bytes, key: bytes = b"batch-key") -> None:
        await produce_raw(
            self.bootstrap, self.topic, [(key, v, [("origin", b"nlp")]) for v in values]
        )

    async def associations(self, batch_id: UUID) -> list[Association]:
        async with self.backend.runtime.uow() as uow:
            return await uow.batches.associations(batch_id)

    async def batch_status(self, batch_id: UUID) -> BatchStatus | None:
        async with self.backend.runtime.uow() as uow:
            batch = await uow.batches.get(batch_id)
        return batch.status if batch is not None else None

    async def committed(self) -> int:
        """The group's committed offsets, summed over the topic's partitions."""
        client = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group)
        await client.start()
        try:
            partitions = client.partitions_for_topic(self.topic)
            if partitions is None:
                await client.topics()
                partitions = client.partitions_for_topic(self.topic) or set()
            total = 0
            for p in partitions:
                offset = await client.committed(TopicPartition(self.topic, p))
                total += offset or 0
            return total
        finally:
            await client.stop()


def envelope(
    batch_id: UUID | str | None,
    class_id: UUID | str | None,
    results: list[dict[str, Any]],
    *,
    event_id: str | None = None,
    event_type: str = SUGGESTIONS_TOPIC,
    correlation_id: str | None = None,
    course_code: str | None = "ENG5",
) -> bytes:
    data: dict[str, Any] = {
        "event_name": "batch.author.matches.suggested",
        "entity_id": str(batch_id),
        "entity_type": "batch",
        "parent_id": None,
        "timestamp": "2026-11-27T10:00:00+00:00",
        "match_results": results,
        "processing_summary": {"total_essays": len(results)},
        "processing_metadata": {},
    }
    for name, value in (("batch_id", batch_id), ("class_id", class_id)):
        if value is not None:
            data[name] = str(value)
    if course_code is not None:
        data["course_code"] = course_code
    return json.dumps(
        {
            "event_id": event_id or str(uuid4()),
            "event_type": event_type,
            "event_timestamp": "2026-11-27T10:00:00+00:00",
            "source_service": "nlp_service",
            "schema_version": 1,
            "correlation_id": correlation_id or str(uuid4()),
            "data_schema_uri": None,
            "data": data,
            "metadata": None,
        }
    ).encode()


def essay(essay_id: UUID, *suggestions: tuple[UUID | str, Any]) -> dict[str, Any]:
    return {
        "essay_id": str(essay_id),
        "text_storage_id": f"text-{essay_id}",
        "filename": "essay.docx",
        "suggestions": [
            {
                "student_id": str(student),
                "student_name": "someone",
                "student_email": None,
                "confidence_score": confidence,
                "match_reasons": ["name in header"],
                "extraction_metadata": {},
            }
            for student, confidence in suggestions
        ],
        "no_match_reason": None if suggestions else "no name found",
        "extraction_metadata": {},
    }


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def handled(stats: ConsumerStats) -> int:
    return stats.processed + stats.dead_lettered_total


@pytest_asyncio.fixture(loop_scope="session")
async def scenario(messaging_backend: MessagingBackend, kafka_bootstrap: str) -> Scenario:
    s = Scenario(messaging_backend, kafka_bootstrap)
    await s.setup()
    return s


class Running:
    """Runs a consumer in the background for the duration of a ``async with``."""

    def __init__(self, consumer: SuggestionsConsumer) -> None:
        self.consumer = consumer
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SuggestionsConsumer:
        self.task = asyncio.create_task(self.consumer.run())
        return self.consumer

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop(grace=15)
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


async def until_handled(consumer: SuggestionsConsumer, n: int, timeout: float = 20.0) -> None:
    async def done() -> bool:
        return handled(consumer.stats) >= n

    await eventually(done, timeout, f"{n} handled messages")


# --------------------------------------------------------------------------- tests


async def test_a_valid_message_stores_associations_and_commits(scenario: Scenario) -> None:
    batch, e1, e2, e3 = uuid4(), uuid4(), uuid4(), uuid4()
    correlation = str(uuid4())
    await scenario.send(
        envelope(
            batch,
            scenario.cls.id,
            [
                essay(e1, (scenario.ada.id, 0.95), (scenario.bo.id, 0.4)),
                essay(e2, (scenario.outsider.id, 0.99), (scenario.bo.id, 0.5)),
                essay(e3),
            ],
            correlation_id=correlation,
        )
    )
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, 1)
    stored = {a.essay_id: a for a in await scenario.associations(batch)}
    assert set(stored) == {e1, e2, e3}
    assert (stored[e1].suggested_student_id, stored[e1].confidence_score) == (
        scenario.ada.id,
        0.95,
    )
    assert stored[e1].match_reasons == ("name in header",)
    assert stored[e2].suggested_student_id == scenario.bo.id  # the outsider is not a member
    assert stored[e3].suggested_student_id is None
    # §11: the runner-up among the other members' suggestions, stored at ingest
    assert stored[e1].runner_up_confidence == 0.4
    assert stored[e2].runner_up_confidence is None  # the outsider's 0.99 is no runner-up
    assert stored[e3].runner_up_confidence is None
    assert await scenario.batch_status(batch) is BatchStatus.PENDING
    assert await scenario.committed() == 1
    assert consumer.stats.outcomes == {"stored": 1}
    assert consumer.stats.total_lag == 0
    (note,) = [n for n in scenario.backend.notifier.sent if n.batch_id == batch]
    assert note.notification_type == "student_associations_suggested"
    assert note.correlation_id == correlation  # events caused by a message reuse its id


async def test_duplicates_and_replays_change_nothing(scenario: Scenario) -> None:
    batch, e1 = uuid4(), uuid4()
    event_id = str(uuid4())
    results = [essay(e1, (scenario.ada.id, 0.8))]
    message = envelope(batch, scenario.cls.id, results, event_id=event_id)
    replay = envelope(batch, scenario.cls.id, [essay(e1, (scenario.ada.id, 0.8))])
    await scenario.send(message)
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, 1)
        before = await scenario.associations(batch)
        await scenario.send(message, message, replay)
        await until_handled(consumer, 4)
    after = await scenario.associations(batch)
    assert [(a.essay_id, a.suggested_student_id, a.confidence_score) for a in after] == [
        (a.essay_id, a.suggested_student_id, a.confidence_score) for a in before
    ]
    assert consumer.stats.duplicates == 2
    assert consumer.stats.outcomes == {"stored": 2, "duplicate": 2}
    notes = [n for n in scenario.backend.notifier.sent if n.batch_id == batch]
    assert len(notes) == 1
    assert await scenario.committed() == 4


async def test_unusable_messages_go_to_the_dead_letter_topic(scenario: Scenario) -> None:
    batch, e1 = uuid4(), uuid4()
    cls_id = scenario.cls.id
    cases: list[tuple[str, bytes]] = [
        ("invalid_json", b'{"event_id": "x", "data": '),
        ("invalid_json", b"\xff\xfe not utf-8"),
        ("invalid_envelope", b"[1, 2, 3]"),
        ("invalid_envelope", envelope(batch, cls_id, [], event_type="huleedu.other.v1")),
        ("invalid_envelope", envelope(batch, cls_id, []).replace(b'"event_id"', b'"id"')),
        ("invalid_data", envelope(None, cls_id, [essay(e1)])),
        ("invalid_data", envelope(batch, cls_id, [{"essay_id": "no-uuid", "suggestions": []}])),
        ("invalid_data", envelope(batch, cls_id, [essay(e1)], course_code="MATH1")),
        ("unknown_class", envelope(batch, uuid4(), [essay(e1, (scenario.ada.id, 0.9))])),
    ]
    good_batch = uuid4()
    good = envelope(good_batch, cls_id, [essay(uuid4(), (scenario.bo.id, 0.9))])
    await scenario.send(*(value for _, value in cases), good)
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, len(cases) + 1)
    assert consumer.stats.dead_lettered == {
        "invalid_json": 2,
        "invalid_envelope": 3,
        "invalid_data": 3,
        "unknown_class": 1,
    }
    assert consumer.stats.processed == 1
    assert len(await scenario.associations(good_batch)) == 1  # the stream did not stop
    assert await scenario.batch_status(batch) is None
    assert await scenario.committed() == len(cases) + 1

    dead = await read_records(
        scenario.bootstrap,
        [consumer.dlt_topic],
        until=lambda rs: len(rs) >= len(cases),
        timeout=10,
    )
    assert [(header(r, "dlt_reason"), r.value) for r in dead] == cases  # original bytes, order
    for record in dead:
        assert record.key == b"batch-key"
        assert header(record, "origin") == "nlp"  # the original headers are kept
        assert header(record, "dlt_original_topic") == scenario.topic
        assert header(record, "dlt_detail")


async def test_invalid_suggestions_are_dropped_and_the_rest_stored(scenario: Scenario) -> None:
    batch, e1, e2 = uuid4(), uuid4(), uuid4()
    await scenario.send(
        envelope(
            batch,
            scenario.cls.id,
            [
                essay(
                    e1,
                    (scenario.ada.id, 1.5),  # confidence outside 0..1
                    ("not-a-student-id", 0.9),
                    (scenario.ada.id, True),
                    (scenario.bo.id, 0.6),
                ),
                essay(e2, (scenario.outsider.id, 0.9)),  # not a member: no suggestion
            ],
        )
    )
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, 1)
    stored = {a.essay_id: a for a in await scenario.associations(batch)}
    assert (stored[e1].suggested_student_id, stored[e1].confidence_score) == (scenario.bo.id, 0.6)
    assert stored[e2].suggested_student_id is None
    assert stored[e2].confidence_score is None
    assert consumer.stats.dropped_suggestions == 3
    assert consumer.stats.dead_lettered == {}


async def test_an_empty_batch_is_finalized_at_once(scenario: Scenario) -> None:
    batch = uuid4()
    await scenario.send(envelope(batch, scenario.cls.id, [], course_code="ENG5"))
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, 1)
    assert await scenario.batch_status(batch) is BatchStatus.FINALIZED
    assert consumer.stats.outcomes == {"finalized_empty": 1}
    ready = await scenario.backend.outbox.fetch_ready(scenario.backend.runtime.now(), 1000)
    (confirmed,) = [
        json.loads(r.message.payload)["data"]
        for r in ready
        if r.message.topic == ASSOCIATIONS_CONFIRMED and r.message.key == str(batch)
    ]
    assert confirmed["associations"] == []
    assert confirmed["course_code"] == "ENG5"
    assert confirmed["timeout_triggered"] is False


class FlakyUnitOfWork:
    """A unit-of-work factory whose transactions fail while ``down`` is set (a DB outage)."""

    def __init__(self, inner: UnitOfWorkFactory) -> None:
        self.inner = inner
        self.down = False
        self.refused = 0

    def __call__(self) -> UnitOfWork:
        return _FlakyUow(self)


class _FlakyUow:
    def __init__(self, factory: FlakyUnitOfWork) -> None:
        self.factory = factory
        self.inner = factory.inner()

    async def __aenter__(self) -> Self:
        if self.factory.down:
            self.factory.refused += 1
            raise DependencyUnavailableError("database unreachable")
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.inner.__aexit__(t, e, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_database_outage_mid_stream_skips_nothing(scenario: Scenario) -> None:
    base = scenario.backend.runtime
    flaky = FlakyUnitOfWork(base.uow)
    runtime = Runtime(uow=flaky, clock=base.clock, notifier=base.notifier, policy=base.policy)
    batches = [uuid4() for _ in range(6)]

    def message(batch: UUID) -> bytes:
        return envelope(batch, scenario.cls.id, [essay(uuid4(), (scenario.ada.id, 0.9))])

    async with Running(scenario.consumer(runtime)) as consumer:
        await scenario.send(message(batches[0]))
        await until_handled(consumer, 1)
        flaky.down = True
        await scenario.send(*(message(b) for b in batches[1:]))

        async def retried() -> bool:
            return flaky.refused >= 3

        await eventually(retried, what="retries during the outage")
        assert handled(consumer.stats) == 1  # nothing advanced while the database was down
        assert await scenario.committed() == 1
        flaky.down = False
        await until_handled(consumer, 6)
    for batch in batches:
        assert len(await scenario.associations(batch)) == 1
    assert consumer.stats.failures >= 3
    assert consumer.stats.dead_lettered == {}
    assert await scenario.committed() == 6


async def test_a_restarted_consumer_resumes_after_the_last_commit(scenario: Scenario) -> None:
    first, second = uuid4(), uuid4()
    await scenario.send(envelope(first, scenario.cls.id, [essay(uuid4())]))
    async with Running(scenario.consumer()) as consumer:
        await until_handled(consumer, 1)
    await scenario.send(envelope(second, scenario.cls.id, [essay(uuid4())]))
    async with Running(scenario.consumer()) as again:
        await until_handled(again, 1)
        await asyncio.sleep(0.3)
    assert again.stats.outcomes == {"stored": 1}  # the first message was not read again
    assert await scenario.batch_status(second) is BatchStatus.PENDING

"""No single message stops the consumer (contract §6): the error boundary is total.

Each poison message is followed, on the same key (one partition), by a good one that must be
stored: the good one is only reached when nothing before it stalls. The poisons:

- a ``confidence_score`` that is a JSON integer of 309 digits (``float()`` raises
  ``OverflowError``): the suggestion is dropped like any other out-of-range one;
- more than 32,767 distinct suggested students (asyncpg's limit of arguments per statement,
  which an expanding ``IN`` spends one per id): stored;
- a message the database refuses for a reason of its own (a trigger raising an error, a
  stand-in for any bug or data the schema rejects): dead-lettered with ``processing_failed``
  after ``CONSUMER_MAX_ATTEMPTS`` attempts.

Real broker, real PostgreSQL (a private database: the test installs a trigger).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_messaging import SuggestionsConsumer
from adapters_sql import build_sql_runtime, create_engine
from class_core.events import SUGGESTIONS_TOPIC
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.broker import header, read_records
from tests.support.postgres import PgDatabaseFactory

MANY = 32_800


def _envelope(batch_id: UUID, class_id: UUID, results: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid4()),
            "event_type": SUGGESTIONS_TOPIC,
            "correlation_id": str(uuid4()),
            "source_service": "nlp_service",
            "schema_version": 1,
            "data": {
                "batch_id": str(batch_id),
                "class_id": str(class_id),
                "course_code": "ENG5",
                "match_results": results,
            },
        },
        separators=(",", ":"),
    ).encode()


def _one_essay(suggestions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"essay_id": str(uuid4()), "suggestions": suggestions}]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"one-key")
    finally:
        await producer.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def private_pg(pg_database_factory: PgDatabaseFactory) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await pg_database_factory(migrated=True), pool_size=3, max_overflow=2)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _suggested(rt: Runtime, batch_id: UUID) -> list[UUID | None] | None:
    async with rt.uow() as uow:
        if await uow.batches.get(batch_id) is None:
            return None
        return [a.suggested_student_id for a in await uow.batches.associations(batch_id)]


async def test_every_poison_message_is_dropped_stored_or_dead_lettered_and_the_next_flows(
    private_pg: AsyncEngine, kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapters_messaging.consumer")
    rt = build_sql_runtime(private_pg)
    ctx = RequestContext(f"teacher-{uuid4()}")
    cls = await create_class(rt, ctx, CreateClass("Poison", ["ENG5"]))
    ada = await create_student(rt, ctx, CreateStudent(PersonName("Ada", "L"), None, [cls.id]))
    refused = uuid4()
    async with private_pg.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_batch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.batch_id = '{refused}' THEN RAISE EXCEPTION 'refused by the test'; "
                "END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_batch BEFORE INSERT ON cms_batches "
                "FOR EACH ROW EXECUTE FUNCTION refuse_batch()"
            )
        )

    overflow, many, after_all = uuid4(), uuid4(), uuid4()
    huge = "9" * 309
    overflow_value = _envelope(
        overflow,
        cls.id,
        _one_essay([{"student_id": str(ada.id), "confidence_score": 0.8}]),
    ).replace(b'"confidence_score":0.8', b'"confidence_score":' + huge.encode())
    assert huge.encode() in overflow_value
    strangers = [{"student_id": str(uuid4()), "confidence_score": 0.5} for _ in range(MANY - 1)]
    many_value = _envelope(
        many, cls.id, _one_essay([*strangers, {"student_id": str(ada.id), "confidence_score": 0.4}])
    )
    refused_value = _envelope(
        refused, cls.id, _one_essay([{"student_id": str(ada.id), "confidence_score": 0.9}])
    )
    good_value = _envelope(
        after_all, cls.id, _one_essay([{"student_id": str(ada.id), "confidence_score": 0.9}])
    )
    topic = f"test.{uuid4().hex[:10]}.{SUGGESTIONS_TOPIC}"
    await _produce(kafka_bootstrap, topic, [overflow_value, many_value, refused_value, good_value])

    consumer = SuggestionsConsumer(
        kafka_bootstrap,
        f"test-group-{uuid4().hex[:10]}",
        rt,
        topic=topic,
        enable_idempotence=False,
        base_backoff=0.05,
        max_backoff=0.2,
        max_attempts=3,
        consumer_options={
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "max_partition_fetch_bytes": 16 * 1024 * 1024,
            "fetch_max_bytes": 32 * 1024 * 1024,
        },
    )
    task = asyncio.create_task(consumer.run())
    try:
        deadline = time.monotonic() + 60
        while await _suggested(rt, after_all) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the consumer is stuck: {consumer.stats.last_error}")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop(grace=15)
        await asyncio.wait_for(task, 5)

    assert await _suggested(rt, after_all) == [ada.id]
    # The overflowing confidence is out of range: that suggestion is dropped, the essay kept.
    assert await _suggested(rt, overflow) == [None]
    # 32,800 candidates in one message: looked up at once; the one member is suggested.
    assert await _suggested(rt, many) == [ada.id]
    assert await _suggested(rt, refused) is None
    assert consumer.stats.dead_lettered == {"processing_failed": 1}
    # Three attempts at the refused message: two retries, then the dead letter.
    attempts = [
        r.getMessage()
        for r in caplog.records
        if r.name == "adapters_messaging.consumer" and "failed with" in r.getMessage()
    ]
    assert [a.rsplit("(", 1)[1] for a in attempts] == [
        "attempt 1 of 3)",
        "attempt 2 of 3)",
        "attempt 3 of 3)",
    ]
    assert all("refused by the test" not in a for a in attempts)  # no exception text logged
    dead = await read_records(
        kafka_bootstrap, [topic + ".dlt"], until=lambda rs: len(rs) >= 1, timeout=10
    )
    assert [header(r, "dlt_reason") for r in dead] == ["processing_failed"]
    assert dead[0].value == refused_value

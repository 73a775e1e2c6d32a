"""Hostile suggestion messages never stall the consumer (contract §4.1).

Text that JSON can carry but PostgreSQL cannot store (NUL, lone surrogates) used to fail the
ingest transaction on every attempt; the consumer retries database errors without limit, so one
such message blocked its partition for good. Now an unstorable ``event_id`` makes the message
dead-lettered and an unstorable match reason drops that suggestion, like any other invalid one.
All messages share one key (one partition): the last one is only reached when none before it
stalls.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_messaging import SuggestionsConsumer
from adapters_sql import build_sql_runtime
from class_core.events import SUGGESTIONS_TOPIC
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.support.broker import header, produce_raw, read_records


def _message(
    batch_id: UUID, class_id: UUID, student_id: UUID, reasons: list[str], **env: Any
) -> bytes:
    envelope = {
        "event_id": str(uuid4()),
        "event_type": SUGGESTIONS_TOPIC,
        "correlation_id": str(uuid4()),
        "source_service": "nlp_service",
        "schema_version": 1,
        "data": {
            "batch_id": str(batch_id),
            "class_id": str(class_id),
            "course_code": "ENG5",
            "match_results": [
                {
                    "essay_id": str(uuid4()),
                    "suggestions": [
                        {
                            "student_id": str(student_id),
                            "confidence_score": 0.9,
                            "match_reasons": reasons,
                        }
                    ],
                }
            ],
        },
        **env,
    }
    return json.dumps(envelope).encode()  # ensure_ascii: NUL and surrogates travel as \\u escapes


async def test_unstorable_text_is_dead_lettered_or_dropped_never_retried_forever(
    clean_pg: AsyncEngine, kafka_bootstrap: str
) -> None:
    rt = build_sql_runtime(clean_pg)
    ctx = RequestContext(f"teacher-{uuid4()}")
    cls = await create_class(rt, ctx, CreateClass("Gift", ["ENG5"]))
    student = await create_student(rt, ctx, CreateStudent(PersonName("Ada", "L"), None, [cls.id]))
    topic = f"test.{uuid4().hex[:10]}.{SUGGESTIONS_TOPIC}"
    nul_id, nul_reason, surrogate, fine = uuid4(), uuid4(), uuid4(), uuid4()
    values = [
        _message(nul_id, cls.id, student.id, ["name"], event_id="evt\u0000-1"),
        _message(nul_reason, cls.id, student.id, ["name", "in\u0000header"]),
        _message(surrogate, cls.id, student.id, ["\ud800"]),
        _message(fine, cls.id, student.id, ["name in header"]),
    ]
    await produce_raw(kafka_bootstrap, topic, [(b"one-key", v, []) for v in values])

    consumer = SuggestionsConsumer(
        kafka_bootstrap,
        f"test-group-{uuid4().hex[:10]}",
        rt,
        topic=topic,
        enable_idempotence=False,
        base_backoff=0.05,
        max_backoff=0.3,
        consumer_options={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300},
    )
    task = asyncio.create_task(consumer.run())

    async def suggested(batch_id: UUID) -> list[UUID | None] | None:
        async with rt.uow() as uow:
            if await uow.batches.get(batch_id) is None:
                return None
            return [a.suggested_student_id for a in await uow.batches.associations(batch_id)]

    try:
        deadline = time.monotonic() + 30
        while await suggested(fine) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the consumer is stuck: {consumer.stats.last_error}")
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop(grace=15)
        await asyncio.wait_for(task, 5)

    assert await suggested(fine) == [student.id]
    assert await suggested(nul_reason) == [None]  # the essay is kept, the suggestion dropped
    assert await suggested(surrogate) == [None]
    assert await suggested(nul_id) is None
    assert consumer.stats.dead_lettered == {"invalid_envelope": 1}
    assert consumer.stats.dropped_suggestions == 2
    dead = await read_records(
        kafka_bootstrap, [topic + ".dlt"], until=lambda rs: len(rs) >= 1, timeout=10
    )
    assert [header(r, "dlt_reason") for r in dead] == ["invalid_envelope"]
    assert dead[0].value == values[0]  # the original bytes

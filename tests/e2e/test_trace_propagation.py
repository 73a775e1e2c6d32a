"""W3C trace context over the real broker (contract §12): a request's ``traceparent`` reaches
the Kafka headers of every event it causes, and a consumed message's reaches the events it
causes. The API runs on PostgreSQL with its workers in-process (relay and consumer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
from aiokafka import ConsumerRecord
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from class_api.app import create_app
from class_core.events import (
    ASSOCIATIONS_CONFIRMED,
    CLASS_CREATED,
    STUDENT_CREATED,
    SUGGESTIONS_TOPIC,
    TEACHER_NOTIFICATION,
)
from class_runtime import Settings
from tests.e2e.test_matching_flow import _envelope, _essay
from tests.support.broker import header, produce_raw, read_records

OWNER = {"X-User-ID": "teacher-trace"}
Records = list[ConsumerRecord[bytes, bytes]]


def _traceparent() -> tuple[str, str]:
    """A fresh (traceparent, trace id)."""
    trace_id = uuid4().hex
    return f"00-{trace_id}-{uuid4().hex[:16]}-01", trace_id


@pytest_asyncio.fixture(loop_scope="session")
async def traced_client(
    pg_url: str, clean_pg: AsyncEngine, kafka_bootstrap: str
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.of(
        database_url=pg_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_enable_idempotence=False,
        kafka_consumer_group=f"trace-{uuid4()}",
        run_workers=True,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


async def _records(
    bootstrap: str, topics: list[str], mine: Callable[[dict[str, Any]], bool], expect: int
) -> Records:
    """The records of ``topics`` whose envelope ``mine`` selects, once ``expect`` arrived."""

    def ours(record: ConsumerRecord[bytes, bytes]) -> bool:
        # Other tests of this worker publish to the same topics, some of them raw or empty
        # values (poison messages): only envelopes with a data object are candidates.
        try:
            doc = json.loads(record.value or b"{}")
        except ValueError:
            return False
        return isinstance(doc, dict) and isinstance(doc.get("data"), dict) and mine(doc)

    def select(records: Records) -> Records:
        return [r for r in records if ours(r)]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    found: Records = []
    while loop.time() < deadline:  # a fresh reader per round (see test_matching_flow)
        records = await read_records(
            bootstrap, topics, until=lambda rs: len(select(rs)) >= expect, timeout=3.0
        )
        found = select(records)
        if len(found) >= expect:
            break
    return found


def _kind(record: ConsumerRecord[bytes, bytes]) -> str:
    data: dict[str, Any] = json.loads(record.value or b"{}")["data"]
    return str(data.get("event") or data.get("notification_type"))


def _for_class(class_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda doc: doc["data"].get("class_id") == class_id


async def test_a_request_and_a_consumed_message_carry_their_traceparent_into_events(
    traced_client: AsyncTestClient[Litestar], kafka_bootstrap: str
) -> None:
    client = traced_client
    create_trace, create_trace_id = _traceparent()
    r = await client.post(
        "/v1/classes",
        json={"name": "Trace 1", "course_codes": ["ENG5"]},
        headers={**OWNER, "traceparent": create_trace},
    )
    assert r.status_code == 201
    class_id = r.json()["id"]
    r = await client.post(
        "/v1/classes/students",
        json={"person_name": {"first_name": "Tove", "last_name": "Spår"}, "class_ids": [class_id]},
        headers={**OWNER, "traceparent": "not-a-trace-context"},  # ignored, as W3C asks
    )
    assert r.status_code == 201
    student_id = r.json()["id"]

    records = await _records(
        kafka_bootstrap, [CLASS_CREATED, TEACHER_NOTIFICATION], _for_class(class_id), 3
    )
    kinds = {_kind(r): r for r in records}
    assert set(kinds) == {"class.created", "class_created", "student_added_to_class"}
    for kind in ("class.created", "class_created"):  # the class and its notification
        assert header(kinds[kind], "traceparent") == create_trace
        assert create_trace_id in (header(kinds[kind], "traceparent") or "")
    # The student's request came with an invalid traceparent: its events carry none.
    assert header(kinds["student_added_to_class"], "traceparent") is None

    (student_created,) = await _records(
        kafka_bootstrap,
        [STUDENT_CREATED],
        lambda doc: doc["data"].get("student_id") == student_id,
        1,
    )
    assert header(student_created, "traceparent") is None

    # The NLP service's message carries its own trace context into what it causes.
    nlp_trace, _ = _traceparent()
    batch_id, essay = uuid4(), uuid4()
    await produce_raw(
        kafka_bootstrap,
        SUGGESTIONS_TOPIC,
        [
            (
                str(batch_id).encode(),
                _envelope(batch_id, class_id, [_essay(essay, [(student_id, 0.9, ["name"])])]),
                [("traceparent", nlp_trace.encode())],
            )
        ],
    )

    def suggested(doc: dict[str, Any]) -> bool:
        data: dict[str, Any] = doc["data"]
        return data.get("notification_type") == "student_associations_suggested" and (
            data.get("batch_id") == str(batch_id)
        )

    (note,) = await _records(kafka_bootstrap, [TEACHER_NOTIFICATION], suggested, 1)
    assert header(note, "traceparent") == nlp_trace

    # The teacher's confirmation, with no trace context: its events carry none.
    r = await client.post(
        f"/v1/batches/{batch_id}/student-associations/confirm",
        json={"associations": [{"essay_id": str(essay), "confirmed": True}]},
        headers=OWNER,
    )
    assert r.status_code == 200, r.text
    (confirmed,) = await _records(
        kafka_bootstrap,
        [ASSOCIATIONS_CONFIRMED],
        lambda doc: doc["data"].get("batch_id") == str(batch_id),
        1,
    )
    assert header(confirmed, "traceparent") is None
    assert UUID(header(confirmed, "correlation_id") or "")  # the other headers stay

"""A protected identity through a full matching flow over the wire (contract §10): the API
on PostgreSQL with its workers in-process, the real broker and Redis. The real names appear
in no Kafka event, no Redis notification and no internal response; the owner sees them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
import redis.asyncio as aioredis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlOutboxStore
from class_api.app import create_app
from class_core.events import PUBLISHED_TOPICS, SUGGESTIONS_TOPIC
from class_runtime import Settings
from tests.support.broker import produce_raw, read_records

KEY = "privacy-flow-key"
INTERNAL = {"X-Internal-API-Key": KEY, "X-Service-ID": "nlp"}
FIRST, LAST, LEGAL = "Solveig", "Hemlighetsdotter", "Solveig Ingrid Hemlighetsdotter"
EMAIL = "solveig.hemlig@skolan.example"
REAL = (FIRST, LAST, LEGAL, EMAIL)


@pytest_asyncio.fixture(loop_scope="session")
async def flow(
    pg_url: str, clean_pg: AsyncEngine, kafka_bootstrap: str, redis_url: str
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.of(
        database_url=pg_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_enable_idempotence=False,
        kafka_consumer_group=f"privacy-flow-{uuid4()}",
        redis_url=redis_url,
        internal_api_key=KEY,
        run_workers=True,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def _suggestions(batch_id: UUID, class_id: str, essay_id: UUID, student_id: str) -> bytes:
    suggestion: dict[str, Any] = {
        "student_id": student_id,
        "student_name": "Protected Student",
        "student_email": None,
        "confidence_score": 0.92,
        "match_reasons": ["handwriting"],
        "extraction_metadata": {},
    }
    data: dict[str, Any] = {
        "event_name": "batch.author.matches.suggested",
        "entity_id": str(batch_id),
        "entity_type": "batch",
        "parent_id": None,
        "timestamp": "2026-12-06T06:00:00+00:00",
        "batch_id": str(batch_id),
        "class_id": class_id,
        "course_code": "SV1",
        "match_results": [
            {
                "essay_id": str(essay_id),
                "text_storage_id": "t",
                "filename": "uppsats.docx",
                "suggestions": [suggestion],
                "no_match_reason": None,
                "extraction_metadata": {},
            }
        ],
        "processing_summary": {"total_essays": 1},
        "processing_metadata": {},
    }
    return json.dumps(
        {
            "event_id": str(uuid4()),
            "event_type": SUGGESTIONS_TOPIC,
            "event_timestamp": "2026-12-06T06:00:00+00:00",
            "source_service": "nlp_service",
            "schema_version": 1,
            "correlation_id": str(uuid4()),
            "data_schema_uri": None,
            "data": data,
            "metadata": None,
        }
    ).encode()


async def test_a_protected_student_never_leaves_the_owners_reads(
    flow: AsyncTestClient[Litestar], kafka_bootstrap: str, clean_pg: AsyncEngine, redis_url: str
) -> None:
    teacher = f"teacher-{uuid4().hex[:8]}"
    owner = {"X-User-ID": teacher}
    redis = aioredis.Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(f"ws:{teacher}")
    try:
        r = await flow.post(
            "/v1/classes", json={"name": "SV 8", "course_codes": ["SV1"]}, headers=owner
        )
        class_id = r.json()["id"]
        body = {
            "person_name": {"first_name": FIRST, "last_name": LAST, "legal_full_name": LEGAL},
            "email": EMAIL,
            "class_ids": [class_id],
            "protected_identity": True,
        }
        r = await flow.post("/v1/classes/students", json=body, headers=owner)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        pseudonym = f"Student {sid.replace('-', '')[:8]}"

        roster = await flow.get(f"/v1/classes/{class_id}/roster", headers=INTERNAL)
        batch_id, essay_id = uuid4(), uuid4()
        await produce_raw(
            kafka_bootstrap,
            SUGGESTIONS_TOPIC,
            [(str(batch_id).encode(), _suggestions(batch_id, class_id, essay_id, sid), [])],
        )
        path = f"/v1/batches/{batch_id}/student-associations"
        for _ in range(150):
            r = await flow.get(path, headers=owner)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert r.status_code == 200, r.text
        assert r.json()["associations"][0]["student_name"] == LEGAL  # the owner's own read
        r = await flow.post(
            f"{path}/confirm",
            json={"associations": [{"essay_id": str(essay_id), "confirmed": True}]},
            headers=owner,
        )
        assert r.json()["status"] == "finalized"
        names = await flow.get(f"/internal/v1/batches/{batch_id}/student-names", headers=INTERNAL)
        essay = await flow.get(f"/internal/v1/associations/essay/{essay_id}", headers=INTERNAL)
        internal = roster.text + names.text + essay.text
        assert names.json()[0]["student_person_name"]["last_name"] == pseudonym

        store = SqlOutboxStore(clean_pg)
        for _ in range(150):
            if (await store.status(datetime.now(UTC))).pending == 0:
                break
            await asyncio.sleep(0.2)
        assert (await store.status(datetime.now(UTC))).pending == 0
        records = await read_records(
            kafka_bootstrap,
            PUBLISHED_TOPICS,
            until=lambda rs: any(sid in r.value.decode() and b"confirmed" in r.value for r in rs),
        )
        published = [r.value.decode() for r in records if sid in r.value.decode()]
        notes: list[dict[str, Any]] = []
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is not None:
                notes.append(json.loads(message["data"]))
            elif len(notes) >= 4:
                break
    finally:
        await pubsub.aclose()
        await redis.aclose()

    kinds = {n["event"] for n in notes}
    assert {"student_added_to_class", "student_associations_confirmed"} <= kinds
    [added] = [n for n in notes if n["event"] == "student_added_to_class"]
    assert added["data"]["student_name"] == f"Protected {pseudonym}"
    assert any('"student.created"' in p and pseudonym in p for p in published)
    outside = internal + "".join(published) + json.dumps(notes, ensure_ascii=False)
    for value in REAL:
        assert value not in outside, f"{value!r} left the owner's reads"
    own = await flow.get(f"/v1/classes/students/{sid}", headers=owner)
    assert (own.json()["first_name"], own.json()["email"]) == (FIRST, EMAIL)

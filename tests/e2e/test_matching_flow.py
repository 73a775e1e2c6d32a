"""Phase-1 matching end to end: a suggestions event on the real broker becomes associations in
the API (PostgreSQL, workers in-process), the teacher confirms, exactly one event comes out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import SqlOutboxStore
from class_api.app import create_app
from class_core.events import ASSOCIATIONS_CONFIRMED, SUGGESTIONS_TOPIC
from class_runtime import Settings
from tests.support.broker import produce_raw, read_records

A = {"X-User-ID": "teacher-flow-a"}
B = {"X-User-ID": "teacher-flow-b"}


@pytest_asyncio.fixture(loop_scope="session")
async def flow_client(
    pg_url: str, clean_pg: AsyncEngine, kafka_bootstrap: str
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings.of(
        database_url=pg_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_enable_idempotence=False,
        kafka_consumer_group=f"flow-{uuid4()}",
        run_workers=True,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def _envelope(batch_id: UUID, class_id: str, results: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid4()),
            "event_type": SUGGESTIONS_TOPIC,
            "event_timestamp": "2026-11-27T10:00:00+00:00",
            "source_service": "nlp_service",
            "schema_version": 1,
            "correlation_id": str(uuid4()),
            "data_schema_uri": None,
            "data": {
                "event_name": "batch.author.matches.suggested",
                "entity_id": str(batch_id),
                "entity_type": "batch",
                "parent_id": None,
                "timestamp": "2026-11-27T10:00:00+00:00",
                "batch_id": str(batch_id),
                "class_id": class_id,
                "course_code": "ENG6",
                "match_results": results,
                "processing_summary": {"total_essays": len(results)},
                "processing_metadata": {},
            },
            "metadata": None,
        }
    ).encode()


def _essay(essay_id: UUID, suggestions: list[tuple[str, float, list[str]]]) -> dict[str, Any]:
    return {
        "essay_id": str(essay_id),
        "text_storage_id": f"text-{essay_id}",
        "filename": "essay.docx",
        "suggestions": [
            {
                "student_id": sid,
                "student_name": "someone",
                "student_email": None,
                "confidence_score": conf,
                "match_reasons": reasons,
                "extraction_metadata": {},
            }
            for sid, conf, reasons in suggestions
        ],
        "no_match_reason": None if suggestions else "no_name_found",
        "extraction_metadata": {},
    }


async def _confirmed_events(
    bootstrap: str, batch_id: UUID, wait: float, *, expect: int | None = None
) -> list[dict[str, Any]]:
    """The batch's confirmed events on the topic: read until ``expect`` of them arrived (or,
    without ``expect``, for the whole ``wait``)."""

    def mine(records: list[Any]) -> list[dict[str, Any]]:
        docs = [json.loads(r.value) for r in records]
        return [d for d in docs if d["data"]["batch_id"] == str(batch_id)]

    # A fresh reader per round: a reader that subscribed before the topic had data does not
    # always see records that arrive later on the test broker.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        records = await read_records(
            bootstrap,
            [ASSOCIATIONS_CONFIRMED],
            until=lambda rs: expect is not None and len(mine(rs)) >= expect,
            timeout=min(3.0, max(0.5, deadline - loop.time())),
        )
        found = mine(records)
        if (expect is not None and len(found) >= expect) or loop.time() >= deadline:
            return found


async def test_suggestions_to_confirmation_over_the_wire(
    flow_client: AsyncTestClient[Litestar], kafka_bootstrap: str, clean_pg: AsyncEngine
) -> None:
    client = flow_client
    r = await client.post("/v1/classes", json={"name": "7B", "course_codes": ["ENG6"]}, headers=A)
    assert r.status_code == 201
    class_id = r.json()["id"]
    ids = []
    for first in ("Alva", "Björn"):
        r = await client.post(
            "/v1/classes/students",
            json={"person_name": {"first_name": first, "last_name": "Ek"}, "class_ids": [class_id]},
            headers=A,
        )
        assert r.status_code == 201
        ids.append(r.json()["id"])
    alva, bjorn = ids
    outsider = str(uuid4())
    batch_id, e1, e2, e3 = uuid4(), uuid4(), uuid4(), uuid4()
    results = [
        _essay(e1, [(bjorn, 0.41, ["weak"]), (alva, 0.93, ["name_in_header", "email"])]),
        _essay(e2, [(outsider, 0.99, ["x"]), (bjorn, 0.8, ["name_in_text"])]),
        _essay(e3, []),
    ]
    await produce_raw(
        kafka_bootstrap,
        SUGGESTIONS_TOPIC,
        [(str(batch_id).encode(), _envelope(batch_id, class_id, results), [])],
    )

    path = f"/v1/batches/{batch_id}/student-associations"
    for _ in range(150):
        r = await client.get(path, headers=A)
        if r.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["status"] == "pending"
    assert view["class_id"] == class_id
    assert view["course_code"] == "ENG6"
    by_essay = {a["essay_id"]: a for a in view["associations"]}
    assert by_essay[str(e1)]["suggested_student_id"] == alva
    assert by_essay[str(e1)]["confidence_score"] == 0.93
    assert by_essay[str(e1)]["match_reasons"] == ["name_in_header", "email"]
    assert by_essay[str(e1)]["student_name"] == "Alva Ek"
    assert by_essay[str(e2)]["suggested_student_id"] == bjorn  # the outsider is not a member
    assert by_essay[str(e3)]["suggested_student_id"] is None
    assert all(a["validation_status"] == "pending_validation" for a in by_essay.values())

    assert (await client.get(path, headers=B)).status_code == 404

    confirm = f"{path}/confirm"
    r = await client.post(
        confirm, json={"associations": [{"essay_id": str(e1), "confirmed": True}]}, headers=A
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "batch_id": str(batch_id),
        "status": "pending",
        "associations_confirmed": 1,
        "associations_rejected": 0,
        "pending": 2,
    }
    assert await _confirmed_events(kafka_bootstrap, batch_id, wait=2.0) == []

    final = {
        "associations": [
            {"essay_id": str(e2), "confirmed": True, "student_id": alva},
            {"essay_id": str(e3), "confirmed": False},
        ]
    }
    r = await client.post(confirm, json=final, headers=A)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "finalized"
    assert r.json()["associations_confirmed"] == 2
    assert r.json()["associations_rejected"] == 1

    events = await _confirmed_events(kafka_bootstrap, batch_id, wait=20.0, expect=1)
    status = await SqlOutboxStore(clean_pg).status(datetime.now(UTC))
    assert len(events) == 1, (events, status)
    data = events[0]["data"]
    assert data["timeout_triggered"] is False
    entries = {a["essay_id"]: a for a in data["associations"]}
    assert entries[str(e1)]["student_id"] == alva
    assert entries[str(e1)]["confidence_score"] == 0.93
    assert entries[str(e2)]["student_id"] == alva  # corrected: not the suggested student
    assert entries[str(e2)]["confidence_score"] == 0.0
    assert entries[str(e3)]["student_id"] is None
    assert {a["validated_by"] for a in entries.values()} == {A["X-User-ID"]}
    assert data["validation_summary"]["total_associations"] == 3
    assert data["validation_summary"]["confirmed"] == 2
    assert data["validation_summary"]["rejected"] == 1

    r = await client.post(confirm, json=final, headers=A)  # a retry is harmless
    assert r.status_code == 200
    assert r.json()["status"] == "finalized"
    r = await client.post(
        confirm,
        json={"associations": [{"essay_id": str(e3), "confirmed": True, "student_id": bjorn}]},
        headers=A,
    )
    assert r.status_code == 409
    assert r.json()["error_code"] == "BATCH_FINALIZED"
    r = await client.post(confirm, json=final, headers=B)
    assert r.status_code == 404
    assert len(await _confirmed_events(kafka_bootstrap, batch_id, wait=3.0)) == 1

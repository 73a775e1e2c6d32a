"""The bare reference for the HTTP benchmark: Litestar + asyncpg, no layers.

It serves the two benchmarked routes on the service's own schema with the same SQL as the
service: ``POST /v1/classes/students`` reads the owner's classes named in the body (the
service's ownership check), then inserts the student, its memberships and two outbox rows (the
created event and the teacher notification) as one autocommitted statement
(:data:`COMBINED_SQL`, data-modifying CTEs); ``GET /v1/classes/{id}`` selects the owner's class
with its student count. No layers, metrics, correlation ids or problem details: the floor a
real service is measured against.

Served by uvicorn with the same options as ``class-api``:
``BENCH_REFERENCE_DATABASE_URL=postgresql://… uvicorn --factory bench.reference_app:create_app``
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException

DATABASE_URL_VARIABLE = "BENCH_REFERENCE_DATABASE_URL"

# The student, its memberships and its outbox rows (one array per column) in one statement.
COMBINED_SQL = (
    "WITH s AS (INSERT INTO cms_students (id, owner_id, first_name, last_name, "
    "legal_full_name, email, search_key, is_placeholder, placeholder_class_id, created_at, "
    "updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id), "
    "m AS (INSERT INTO cms_class_students (class_id, student_id) "
    "SELECT c, s.id FROM s, unnest($12::uuid[]) AS c), "
    "o AS (INSERT INTO cms_outbox (event_id, topic, key, payload, headers, created_at, "
    "next_attempt_at) SELECT u0::uuid, u1::text, u2::text, u3::text, u4::jsonb, "
    "u5::timestamptz, u6::timestamptz FROM unnest($13::uuid[], $14::text[], $15::text[], "
    "$16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[]) "
    "AS u(u0, u1, u2, u3, u4, u5, u6)) SELECT 1"
)

OWNED_CLASSES = "SELECT id, name FROM cms_classes WHERE owner_id = $1 AND id = ANY($2::uuid[])"
SELECT_CLASS = """
SELECT c.id, c.name, c.course_code, c.created_at, c.updated_at,
       (SELECT count(*) FROM cms_class_students m
        WHERE m.class_id = c.id AND m.student_id IS DISTINCT FROM
              (SELECT p.id FROM cms_students p WHERE p.placeholder_class_id = c.id))
       AS student_count
FROM cms_classes c WHERE c.id = $1 AND c.owner_id = $2
"""
COURSES = {
    "ENG5": ("English 5", "en"),
    "ENG6": ("English 6", "en"),
    "ENG7": ("English 7", "en"),
    "SV1": ("Svenska 1", "sv"),
    "SV2": ("Svenska 2", "sv"),
    "SV3": ("Svenska 3", "sv"),
}


class PersonNameIn(msgspec.Struct, forbid_unknown_fields=True):
    first_name: str
    last_name: str
    legal_full_name: str | None = None


class CreateStudentIn(msgspec.Struct, forbid_unknown_fields=True):
    person_name: PersonNameIn
    email: str | None = None
    class_ids: list[UUID] = msgspec.field(default_factory=list)


def _envelope(topic: str, data: dict[str, Any], now: datetime) -> tuple[UUID, str, str]:
    event_id = uuid4()
    correlation_id = str(uuid4())
    payload = {
        "event_id": str(event_id),
        "event_type": topic,
        "event_timestamp": now.isoformat(),
        "source_service": "class_management_service",
        "schema_version": 1,
        "correlation_id": correlation_id,
        "data_schema_uri": None,
        "data": data,
        "metadata": None,
    }
    headers = [
        ["event_id", str(event_id)],
        ["event_type", topic],
        ["correlation_id", correlation_id],
        ["source_service", "class_management_service"],
    ]
    return event_id, json.dumps(payload), json.dumps(headers)


@post("/v1/classes/students")
async def create_student(request: Request[Any, Any, Any], data: CreateStudentIn) -> dict[str, Any]:
    owner = request.headers["x-user-id"]
    now = datetime.now(UTC)
    sid = uuid4()
    name = data.person_name
    email = data.email.strip().lower() if data.email else None
    search = " ".join(p.casefold() for p in (name.first_name, name.last_name, email) if p)
    created = {
        "event": "student.created",
        "student_id": str(sid),
        "first_name": name.first_name,
        "last_name": name.last_name,
        "student_email": email,
        "class_ids": [str(c) for c in data.class_ids],
        "created_by_user_id": owner,
        "timestamp": now.isoformat(),
    }
    outbox: list[tuple[str, str, dict[str, Any]]] = [
        ("huleedu.class.student.created.v1", str(sid), created)
    ]
    for class_id in data.class_ids:
        note = {
            "teacher_id": owner,
            "notification_type": "student_added_to_class",
            "payload": {"student_id": str(sid), "class_id": str(class_id)},
            "timestamp": now.isoformat(),
        }
        outbox.append(("huleedu.notification.teacher.requested.v1", owner, note))
    pool: asyncpg.Pool = request.app.state.pool
    rows = []
    for topic, key, event in outbox:
        event_id, payload, headers = _envelope(topic, event, now)
        rows.append((event_id, topic, key, payload, headers, now, now))
    student = [sid, owner, name.first_name, name.last_name, name.legal_full_name, email, search]
    async with pool.acquire() as conn:
        owned = await conn.fetch(OWNED_CLASSES, owner, data.class_ids)
        if len(owned) != len(set(data.class_ids)):
            raise NotFoundException()
        await conn.execute(
            COMBINED_SQL,
            *student,
            False,
            None,
            now,
            now,
            list(dict.fromkeys(data.class_ids)),
            *[list(column) for column in zip(*rows, strict=True)],
        )
    return {
        "id": str(sid),
        "first_name": name.first_name,
        "last_name": name.last_name,
        "legal_full_name": name.legal_full_name,
        "full_name": f"{name.first_name} {name.last_name}",
        "email": email,
        "class_ids": sorted(str(c) for c in data.class_ids),
        "is_placeholder": False,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }


@get("/v1/classes/{class_id:uuid}")
async def get_class(request: Request[Any, Any, Any], class_id: UUID) -> dict[str, Any]:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        row = await conn.fetchrow(SELECT_CLASS, class_id, request.headers["x-user-id"])
    if row is None:
        raise NotFoundException()
    name, language = COURSES[row["course_code"]]
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "course_code": row["course_code"],
        "course": {"code": row["course_code"], "name": name, "language": language},
        "student_count": row["student_count"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def create_app() -> Litestar:
    url = os.environ[DATABASE_URL_VARIABLE]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(url, min_size=10, max_size=30)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return Litestar(
        route_handlers=[create_student, get_class],
        lifespan=[lifespan],
        state=State({}),
        openapi_config=None,
    )

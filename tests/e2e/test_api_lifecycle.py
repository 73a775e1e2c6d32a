"""External ids and archived classes over HTTP (contract §9.1, §9.2), on memory,
PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar import Litestar

from class_core.ports import OutboxStore
from tests.e2e.conftest import (
    ALL_BACKENDS,
    A,
    ApiHarness,
    B,
    app_for_backend,
    assert_problem,
    fields_of,
)


@pytest.fixture(params=ALL_BACKENDS)
def api_backend(request: pytest.FixtureRequest) -> tuple[str, Litestar, OutboxStore | None]:
    """Contract §9 also holds on the embedded SQLite database (over HTTP, like the others)."""
    return app_for_backend(request)


CLASSES = "/v1/classes"
STUDENTS = "/v1/classes/students"


def class_events(api: ApiHarness, class_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        e
        for e in api.events()
        if e["event_type"] == f"huleedu.class.{kind}.v1" and e["data"]["class_id"] == class_id
    ]


def student_events(api: ApiHarness, student_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        e
        for e in api.events()
        if e["event_type"] == f"huleedu.class.student.{kind}.v1"
        and e["data"]["student_id"] == student_id
    ]


async def test_class_external_id_over_http(api: ApiHarness) -> None:
    c = api.client
    r = await c.post(
        CLASSES, json={"name": "9A", "course_codes": ["ENG5"], "external_id": " SIS-9A "}, headers=A
    )
    assert r.status_code == 201, r.text
    cls = r.json()
    assert (cls["external_id"], cls["status"], cls["archived_at"]) == ("SIS-9A", "active", None)
    [created] = class_events(api, cls["id"], "created")
    assert created["data"]["external_id"] == "SIS-9A"
    r = await c.post(
        CLASSES, json={"name": "9B", "course_codes": ["ENG5"], "external_id": "SIS-9A"}, headers=A
    )
    assert_problem(r, 409, "DUPLICATE_EXTERNAL_ID")
    r = await c.post(
        CLASSES, json={"name": "9B", "course_codes": ["ENG5"], "external_id": "SIS-9A"}, headers=B
    )
    assert r.status_code == 201  # another owner's namespace
    r = await c.post(
        CLASSES, json={"name": "9B", "course_codes": ["ENG5"], "external_id": "a\u0000"}, headers=A
    )
    assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == ["external_id"]

    listed = (await c.get(CLASSES, params={"external_id": "SIS-9A"}, headers=A)).json()
    assert [x["id"] for x in listed["classes"]] == [cls["id"]]
    listed = (await c.get(CLASSES, params={"external_id": "sis-9a"}, headers=A)).json()
    assert listed["classes"] == []  # compared exactly

    path = f"{CLASSES}/{cls['id']}"
    r = await c.put(path, json={"name": "9A2"}, headers=A)
    assert (r.json()["external_id"], r.json()["version"]) == ("SIS-9A", 2)  # absent: kept
    r = await c.put(path, json={"external_id": None}, headers=A)
    assert (r.json()["external_id"], r.json()["version"]) == (None, 3)
    updates = class_events(api, cls["id"], "updated")
    assert [u["data"]["external_id"] for u in updates] == ["SIS-9A", None]
    assert [u["data"]["status"] for u in updates] == ["active", "active"]
    r = await c.put(path, json={"external_id": 5}, headers=A)
    assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == ["external_id"]


async def test_student_external_id_over_http(api: ApiHarness) -> None:
    c = api.client
    body = {"person_name": {"first_name": "Ada", "last_name": "L"}, "external_id": "P-1"}
    r = await c.post(STUDENTS, json=body, headers=A)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["external_id"] == "P-1"
    assert student_events(api, s["id"], "created")[0]["data"]["external_id"] == "P-1"
    r = await c.post(STUDENTS, json=body, headers=A)
    assert_problem(r, 409, "DUPLICATE_EXTERNAL_ID")
    other = await api.create_student(first="Bo")
    r = await c.put(f"{STUDENTS}/{other['id']}", json={"external_id": "P-1"}, headers=A)
    assert_problem(r, 409, "DUPLICATE_EXTERNAL_ID")
    assert (await c.get(f"{STUDENTS}/{other['id']}", headers=A)).json()["version"] == 1
    listed = (await c.get(STUDENTS, params={"external_id": "P-1"}, headers=A)).json()
    assert [x["id"] for x in listed["students"]] == [s["id"]]
    r = await c.put(f"{STUDENTS}/{s['id']}", json={"external_id": "P-2"}, headers=A)
    assert (r.json()["external_id"], r.json()["version"]) == ("P-2", 2)
    assert student_events(api, s["id"], "updated")[-1]["data"]["external_id"] == "P-2"
    r = await c.put(f"{STUDENTS}/{s['id']}", json={"external_id": None}, headers=A)
    assert r.json()["external_id"] is None
    # The export's history records the updates as for any field.
    history = (await c.get(f"{STUDENTS}/{s['id']}/export", headers=A)).json()["history"]
    assert [h["action"] for h in history] == ["created", "updated", "updated"]


async def test_protected_identity_and_erasure_hide_the_external_id(api: ApiHarness) -> None:
    c = api.client
    cls = await api.create_class()
    body = {
        "person_name": {"first_name": "Ada", "last_name": "L"},
        "external_id": "SECRET-77",
        "protected_identity": True,
        "class_ids": [cls["id"]],
    }
    s = (await c.post(STUDENTS, json=body, headers=A)).json()
    assert s["external_id"] == "SECRET-77"  # the owner's own read
    assert student_events(api, s["id"], "created")[0]["data"]["external_id"] is None
    r = await c.post(f"{STUDENTS}/{s['id']}/erasure", headers=A)
    assert r.json()["external_id"] is None
    assert "SECRET-77" not in str(api.events())


async def test_archive_unarchive_and_the_read_only_rules(api: ApiHarness) -> None:
    c = api.client
    cls = await api.create_class(name="9A")
    member = await api.create_student(first="Ann", class_ids=[cls["id"]])
    loner = await api.create_student(first="Bo")
    path = f"{CLASSES}/{cls['id']}"

    r = await c.post(f"{path}/archive", headers={**A, "If-Match": '"9"'})
    assert_problem(r, 412, "PRECONDITION_FAILED")
    r = await c.post(f"{path}/archive", headers=B)
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")
    r = await c.post(f"{path}/archive", headers={**A, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    archived = r.json()
    assert (archived["status"], archived["version"], r.headers["etag"]) == ("archived", 2, '"2"')
    assert archived["archived_at"] is not None
    r = await c.post(f"{path}/archive/", headers=A)  # idempotent (and a trailing slash)
    assert (r.status_code, r.json()) == (200, archived)
    [event] = class_events(api, cls["id"], "updated")
    assert (event["data"]["status"], event["metadata"]["aggregate_version"]) == ("archived", 2)

    # Read-only: PUT and joining are refused, nothing written or published.
    r = await c.put(path, json={"name": "9Z"}, headers=A)
    assert_problem(r, 409, "CLASS_ARCHIVED")
    r = await c.post(
        STUDENTS,
        json={"person_name": {"first_name": "C", "last_name": "D"}, "class_ids": [cls["id"]]},
        headers=A,
    )
    assert_problem(r, 409, "CLASS_ARCHIVED")
    r = await c.put(f"{STUDENTS}/{loner['id']}", json={"add_class_ids": [cls["id"]]}, headers=A)
    assert_problem(r, 409, "CLASS_ARCHIVED")
    assert len(class_events(api, cls["id"], "updated")) == 1
    assert (await c.get(f"{STUDENTS}/{loner['id']}", headers=A)).json()["class_ids"] == []

    # Still allowed: reads, roster, removing a student.
    assert (await c.get(path, headers=A)).json()["status"] == "archived"
    roster = (await c.get(f"{path}/roster", headers=A)).json()["students"]
    assert [x["student_id"] for x in roster] == [member["id"]]
    r = await c.put(f"{STUDENTS}/{member['id']}", json={"remove_class_ids": [cls["id"]]}, headers=A)
    assert (r.status_code, r.json()["class_ids"]) == (200, [])

    # The list: active by default, status selects, a bad status is a 400.
    other = await api.create_class(name="9B")
    ids = [x["id"] for x in (await c.get(CLASSES, headers=A)).json()["classes"]]
    assert ids == [other["id"]]
    r = await c.get(CLASSES, params={"status": "archived"}, headers=A)
    assert [x["id"] for x in r.json()["classes"]] == [cls["id"]]
    r = await c.get(CLASSES, params={"status": "all"}, headers=A)
    assert {x["id"] for x in r.json()["classes"]} == {cls["id"], other["id"]}
    assert r.json()["pagination"]["total"] == 2
    r = await c.get(CLASSES, params={"status": "deleted"}, headers=A)
    assert_problem(r, 400, "VALIDATION_ERROR")

    r = await c.post(f"{path}/unarchive", headers=A)
    assert (r.status_code, r.json()["status"], r.json()["archived_at"]) == (200, "active", None)
    assert r.json()["version"] == 3
    r = await c.post(f"{path}/unarchive", headers=A)
    assert r.json()["version"] == 3
    assert [e["data"]["status"] for e in class_events(api, cls["id"], "updated")] == [
        "archived",
        "active",
    ]
    r = await c.put(path, json={"name": "9Z"}, headers=A)
    assert (r.status_code, r.json()["name"]) == (200, "9Z")
    r = await c.post(f"{CLASSES}/{uuid4()}/unarchive", headers=A)
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")


async def test_an_archived_class_keeps_its_batches_review_and_delete_rules(
    api: ApiHarness,
) -> None:
    c = api.client
    cls = await api.create_class()
    ann = await api.create_student(first="Ann", class_ids=[cls["id"]])
    await c.post(f"{CLASSES}/{cls['id']}/archive", headers=A)
    essay = uuid4()
    batch = api.seed_batch(cls["id"], [(essay, UUID(ann["id"]), 0.5)])
    r = await c.get(f"/v1/batches/{batch}/student-associations", headers=A)
    assert r.status_code == 200
    r = await c.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(essay), "confirmed": True}]},
        headers=A,
    )
    assert (r.status_code, r.json()["status"]) == (200, "finalized"), r.text
    r = await c.delete(f"{CLASSES}/{cls['id']}", headers=A)
    assert_problem(r, 409, "RESOURCE_IN_USE")  # §3.3: a class with batches stays
    empty = await api.create_class(name="empty")
    await c.post(f"{CLASSES}/{empty['id']}/archive", headers=A)
    r = await c.delete(f"{CLASSES}/{empty['id']}", headers=A)
    assert r.status_code == 200

"""Versions, ETag and If-Match over HTTP (contract §8), on memory and PostgreSQL."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from tests.e2e.conftest import A, ApiHarness, B, assert_problem

CLASSES = "/v1/classes"
STUDENTS = "/v1/classes/students"


def guarded(tag: str | None, owner: dict[str, str] = A) -> dict[str, str]:
    return {**owner, "If-Match": tag} if tag is not None else dict(owner)


def versions_of(api: ApiHarness, key: str) -> list[tuple[str, int]]:
    return [
        (e["event_type"].rsplit(".", 2)[-2], e["metadata"]["aggregate_version"])
        for e in api.events()
        if key in (e["data"].get("class_id"), e["data"].get("student_id"))
        and e["event_type"].startswith("huleedu.class.")
        and "associations" not in e["event_type"]
    ]


async def test_single_object_responses_carry_version_and_etag(api: ApiHarness) -> None:
    c = api.client
    r = await c.post(CLASSES, json={"name": "9A", "course_codes": ["ENG5"]}, headers=A)
    assert (r.status_code, r.headers["etag"], r.json()["version"]) == (201, '"1"', 1)
    cls = r.json()
    r = await c.post(
        STUDENTS,
        json={"person_name": {"first_name": "A", "last_name": "B"}, "class_ids": [cls["id"]]},
        headers=A,
    )
    assert (r.status_code, r.headers["etag"], r.json()["version"]) == (201, '"1"', 1)
    student = r.json()
    r = await c.get(f"{CLASSES}/{cls['id']}", headers=A)
    assert (r.headers["etag"], r.json()["version"]) == ('"1"', 1)  # a membership: not the class
    r = await c.put(f"{STUDENTS}/{student['id']}", json={"email": "a@example.com"}, headers=A)
    assert (r.status_code, r.headers["etag"], r.json()["version"]) == (200, '"2"', 2)
    r = await c.get(f"{STUDENTS}/{student['id']}", headers=A)
    assert (r.headers["etag"], r.json()["version"]) == ('"2"', 2)
    # No conditional GET: If-None-Match is ignored, never a 304.
    r = await c.get(f"{STUDENTS}/{student['id']}", headers={**A, "If-None-Match": '"2"'})
    assert r.status_code == 200
    listed = (await c.get(STUDENTS, headers=A)).json()["students"]
    assert [s["version"] for s in listed] == [2]
    assert "etag" not in (await c.get(STUDENTS, headers=A)).headers
    # A class deletion bumps its members' versions and publishes no student event.
    r = await c.delete(f"{CLASSES}/{cls['id']}", headers=A)
    assert r.status_code == 200
    r = await c.get(f"{STUDENTS}/{student['id']}", headers=A)
    assert (r.json()["version"], r.json()["class_ids"]) == (3, [])
    assert versions_of(api, student["id"]) == [("created", 1), ("updated", 2)]
    assert versions_of(api, cls["id"]) == [("created", 1), ("deleted", 2)]


@pytest.mark.parametrize("kind", ["class", "student"])
async def test_if_match_matrix(api: ApiHarness, kind: str) -> None:
    c = api.client
    change: dict[str, Any]
    if kind == "class":
        obj = await api.create_class()
        path, change, field = f"{CLASSES}/{obj['id']}", {"name": "Renamed"}, "name"
    else:
        obj = await api.create_student(email="x@example.com")
        path, change = f"{STUDENTS}/{obj['id']}", {"person_name": {"first_name": "Renamed"}}
        field = "first_name"
    events = len(api.events())

    # 412 when no listed version is the stored one (weak tags never match): nothing changes.
    for tag in ['"2"', 'W/"1"', '"0", "7"', '"abc"']:
        r = await c.put(path, json=change, headers=guarded(tag))
        body = assert_problem(r, 412, "PRECONDITION_FAILED")
        assert "stored" in body["detail"]
        r = await c.delete(path, headers=guarded(tag))
        assert_problem(r, 412, "PRECONDITION_FAILED")
    # Any other syntax: 400.
    for tag in ["1", '"1" "2"', '"1",', "W/1", "", '*, "1"']:
        r = await c.put(path, json=change, headers=guarded(tag))
        assert_problem(r, 400, "VALIDATION_ERROR")
        r = await c.delete(path, headers=guarded(tag))
        assert_problem(r, 400, "VALIDATION_ERROR")
    got = await c.get(path, headers=A)
    assert (got.json()["version"], got.json()[field]) == (1, obj[field])
    assert len(api.events()) == events

    # A matching list or "*" passes; the answer carries the new ETag.
    r = await c.put(path, json=change, headers=guarded('"7", "1"'))
    assert (r.status_code, r.headers["etag"]) == (200, '"2"')
    r = await c.put(path, json={}, headers=guarded('"2"'))  # changes nothing: same version
    assert (r.status_code, r.headers["etag"]) == (200, '"2"')
    r = await c.put(path, json=change, headers=guarded("*"))  # the same values: no change
    assert (r.status_code, r.headers["etag"]) == (200, '"2"')
    assert len(api.events()) == events + 1

    # Order: 401, then 404 (also for "*" and bad syntax), then 400, then 412.
    r = await c.put(path, json=change, headers={"If-Match": '"2"'})
    assert_problem(r, 401, "AUTHENTICATION_REQUIRED")
    missing = path.rsplit("/", 1)[0] + f"/{uuid4()}"
    for tag in ["*", "bad", '"1"']:
        assert_problem(
            await c.put(missing, json=change, headers=guarded(tag)), 404, "RESOURCE_NOT_FOUND"
        )
        assert_problem(await c.delete(missing, headers=guarded(tag)), 404, "RESOURCE_NOT_FOUND")
        assert_problem(await c.delete(path, headers=guarded(tag, B)), 404, "RESOURCE_NOT_FOUND")

    r = await c.delete(path, headers=guarded('"2"'))
    assert r.status_code == 200
    assert_problem(await c.delete(path, headers=guarded("*")), 404, "RESOURCE_NOT_FOUND")
    assert_problem(await c.delete(path, headers=A), 404, "RESOURCE_NOT_FOUND")


async def test_precondition_is_judged_before_conflicts(api: ApiHarness) -> None:
    c = api.client
    cls = await api.create_class()
    api.seed_batch(cls["id"], [(uuid4(), None, 0.0)])
    path = f"{CLASSES}/{cls['id']}"
    assert_problem(await c.delete(path, headers=guarded('"9"')), 412, "PRECONDITION_FAILED")
    assert_problem(await c.delete(path, headers=guarded('"1"')), 409, "RESOURCE_IN_USE")

    await api.create_student(email="taken@example.com")
    other = await api.create_student(email="free@example.com")
    s_path = f"{STUDENTS}/{other['id']}"
    taken: dict[str, Any] = {"email": "taken@example.com"}
    assert_problem(
        await c.put(s_path, json=taken, headers=guarded('"9"')), 412, "PRECONDITION_FAILED"
    )
    assert_problem(
        await c.put(s_path, json=taken, headers=guarded('"1"')), 409, "DUPLICATE_STUDENT_EMAIL"
    )


async def test_openapi_documents_etag_if_match_and_412(memory_api: ApiHarness) -> None:
    schema = (await memory_api.client.get("/schema/openapi.json")).json()
    for path in ("/v1/classes/{class_id}", "/v1/classes/students/{student_id}"):
        item = schema["paths"][path]
        assert "ETag" in item["get"]["responses"]["200"]["headers"]
        assert "ETag" in item["put"]["responses"]["200"]["headers"]
        for method in ("put", "delete"):
            names = [p["name"] for p in item[method]["parameters"]]
            assert "If-Match" in names
            assert "412" in item[method]["responses"]
    for path in ("/v1/classes", "/v1/classes/students"):
        assert "ETag" in schema["paths"][path]["post"]["responses"]["201"]["headers"]

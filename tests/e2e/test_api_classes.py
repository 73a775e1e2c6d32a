"""``/v1/classes`` and ``/v1/courses`` through the HTTP API (contract §3.2, §3.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from class_core.use_cases.matching import finalize_batch, list_pending_associations
from tests.e2e.conftest import (
    INTERNAL,
    OWNER_A,
    A,
    ApiHarness,
    assert_problem,
    fields_of,
)

CLASS_KEYS = {
    "id",
    "name",
    "course_code",
    "course",
    "student_count",
    "created_at",
    "updated_at",
    "version",
    "external_id",
    "status",
    "archived_at",
}


def _has_offset(value: str) -> bool:
    return datetime.fromisoformat(value).utcoffset() == timedelta(0) and value.endswith("+00:00")


async def test_courses_are_the_six_seeded_courses(api: ApiHarness) -> None:
    r = await api.client.get("/v1/courses", headers=A)
    assert r.status_code == 200
    assert r.json()["courses"] == [
        {"code": "ENG5", "name": "English 5", "language": "en"},
        {"code": "ENG6", "name": "English 6", "language": "en"},
        {"code": "ENG7", "name": "English 7", "language": "en"},
        {"code": "SV1", "name": "Svenska 1", "language": "sv"},
        {"code": "SV2", "name": "Svenska 2", "language": "sv"},
        {"code": "SV3", "name": "Svenska 3", "language": "sv"},
    ]


async def test_create_class_returns_the_contract_shape(api: ApiHarness) -> None:
    r = await api.client.post(
        "/v1/classes", json={"name": "  Klass 9A  ", "course_codes": ["SV2"]}, headers=A
    )
    assert r.status_code == 201
    body = r.json()
    assert body.keys() == CLASS_KEYS
    assert body["name"] == "Klass 9A"
    assert body["course_code"] == "SV2"
    assert body["course"] == {"code": "SV2", "name": "Svenska 2", "language": "sv"}
    assert body["student_count"] == 0
    assert _has_offset(body["created_at"])
    assert _has_offset(body["updated_at"])
    assert body["id"] == body["id"].lower()
    events = [e for e in api.events() if e["event_type"] == "huleedu.class.created.v1"]
    assert [e["data"]["class_id"] for e in events] == [body["id"]]
    assert events[0]["correlation_id"] == r.headers["x-correlation-id"]


async def test_class_course_rules(api: ApiHarness) -> None:
    two = await api.client.post(
        "/v1/classes", json={"name": "X", "course_codes": ["ENG5", "SV1"]}, headers=A
    )
    assert_problem(two, 400, "MULTIPLE_COURSE_ERROR")
    none = await api.client.post("/v1/classes", json={"name": "X", "course_codes": []}, headers=A)
    assert fields_of(assert_problem(none, 400, "VALIDATION_ERROR")) == ["course_codes"]
    unknown = await api.client.post(
        "/v1/classes", json={"name": "X", "course_codes": ["MATH1"]}, headers=A
    )
    assert_problem(unknown, 400, "COURSE_NOT_FOUND")
    empty_name = await api.client.post(
        "/v1/classes", json={"name": "   ", "course_codes": ["ENG5"]}, headers=A
    )
    assert fields_of(assert_problem(empty_name, 400, "VALIDATION_ERROR")) == ["name"]
    control = await api.client.post(
        "/v1/classes", json={"name": "A\u0000B", "course_codes": ["ENG5"]}, headers=A
    )
    assert_problem(control, 400, "VALIDATION_ERROR")
    listed = await api.client.get("/v1/classes", headers=A)
    assert listed.json()["pagination"]["total"] == 0


async def test_unicode_class_names_are_nfc_normalised(api: ApiHarness) -> None:
    created = await api.create_class(name="Ma\u0301rtens klass")  # a combining accent
    assert created["name"] == "M\u00e1rtens klass"
    read = await api.client.get(f"/v1/classes/{created['id']}", headers=A)
    assert read.json()["name"] == "M\u00e1rtens klass"


async def test_get_update_delete_class(api: ApiHarness) -> None:
    created = await api.create_class()
    path = f"/v1/classes/{created['id']}"
    assert (await api.client.get(path, headers=A)).json() == created

    unchanged = await api.client.put(path, json={}, headers=A)
    assert unchanged.status_code == 200
    assert unchanged.json() == created
    before = len(api.events())

    renamed = await api.client.put(path, json={"name": "Klass 9B"}, headers=A)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Klass 9B"
    assert renamed.json()["course_code"] == "ENG5"
    moved = await api.client.put(path, json={"course_codes": ["ENG7"]}, headers=A)
    assert moved.json()["course"]["code"] == "ENG7"
    assert moved.json()["name"] == "Klass 9B"
    updates = [e for e in api.events()[before:] if e["event_type"] == "huleedu.class.updated.v1"]
    assert len(updates) == 2

    bad = await api.client.put(path, json={"course_codes": ["ENG5", "ENG6"]}, headers=A)
    assert_problem(bad, 400, "MULTIPLE_COURSE_ERROR")
    null_name = await api.client.put(path, json={"name": None}, headers=A)
    assert fields_of(assert_problem(null_name, 400, "VALIDATION_ERROR")) == ["name"]

    deleted = await api.client.delete(path, headers=A)
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "Class deleted successfully"}
    assert_problem(await api.client.get(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    assert_problem(await api.client.delete(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    types = [e["event_type"] for e in api.events()]
    assert types.count("huleedu.class.deleted.v1") == 1


async def test_delete_class_keeps_students_and_counts(api: ApiHarness) -> None:
    cls = await api.create_class()
    student = await api.create_student(class_ids=[cls["id"]])
    assert (await api.client.get(f"/v1/classes/{cls['id']}", headers=A)).json()[
        "student_count"
    ] == 1
    await api.client.delete(f"/v1/classes/{cls['id']}", headers=A)
    kept = await api.client.get(f"/v1/classes/students/{student['id']}", headers=A)
    assert kept.status_code == 200
    assert kept.json()["class_ids"] == []


async def test_delete_class_with_a_batch_is_refused(api: ApiHarness) -> None:
    cls = await api.create_class()
    api.seed_batch(cls["id"], [])  # even an empty batch
    r = await api.client.delete(f"/v1/classes/{cls['id']}", headers=A)
    assert_problem(r, 409, "RESOURCE_IN_USE")
    assert (await api.client.get(f"/v1/classes/{cls['id']}", headers=A)).status_code == 200


async def test_list_classes_pagination_order_and_filters(api: ApiHarness) -> None:
    made = [await api.create_class(name=f"Grupp {i}", course="ENG5") for i in range(3)]
    sv = await api.create_class(name="Svenska Åk 9", course="SV1")
    r = await api.client.get("/v1/classes", headers=A)
    body = r.json()
    assert [c["id"] for c in body["classes"]] == [sv["id"]] + [c["id"] for c in reversed(made)]
    assert body["pagination"] == {"limit": 20, "offset": 0, "returned": 4, "total": 4}

    page = (await api.client.get("/v1/classes?limit=2&offset=1", headers=A)).json()
    assert [c["id"] for c in page["classes"]] == [made[2]["id"], made[1]["id"]]
    assert page["pagination"] == {"limit": 2, "offset": 1, "returned": 2, "total": 4}

    by_course = (await api.client.get("/v1/classes?course_code=SV1", headers=A)).json()
    assert [c["id"] for c in by_course["classes"]] == [sv["id"]]
    accent_free = (await api.client.get("/v1/classes", params={"q": "ak 9"}, headers=A)).json()
    assert [c["id"] for c in accent_free["classes"]] == [sv["id"]]
    unknown = await api.client.get("/v1/classes?course_code=NOPE", headers=A)
    assert_problem(unknown, 400, "COURSE_NOT_FOUND")

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (
        await api.client.get("/v1/classes", params={"updated_since": future}, headers=A)
    ).json()["pagination"]["total"] == 0
    past = sv["created_at"]
    since = (await api.client.get("/v1/classes", params={"updated_since": past}, headers=A)).json()
    assert sv["id"] in [c["id"] for c in since["classes"]]  # inclusive


async def test_list_query_validation(api: ApiHarness) -> None:
    for query, field in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("offset=-1", "offset"),
        ("offset=1000001", "offset"),
        ("updated_since=2026-11-27T10:15:00", "updated_since"),
        ("updated_since=yesterday", "updated_since"),
    ]:
        r = await api.client.get(f"/v1/classes?{query}", headers=A)
        assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == [field], query
    edge = await api.client.get("/v1/classes?limit=100&offset=1000000", headers=A)
    assert edge.status_code == 200
    # An unencoded "+" arrives as a space; the offset is still understood.
    plus = await api.client.get("/v1/classes?updated_since=2026-11-27T10:15:00+00:00", headers=A)
    assert plus.status_code == 200


async def test_roster_for_owner_and_internal_callers(api: ApiHarness) -> None:
    cls = await api.create_class()
    other = await api.create_class(name="Other")
    zed = await api.create_student(
        first="Zoë", last="Åberg", email="Zoe@Example.org", class_ids=[cls["id"]]
    )
    ada = await api.create_student(
        first="Ada", last="Lovelace", legal="Augusta Ada King", class_ids=[cls["id"]]
    )
    await api.create_student(first="Not", last="Member", class_ids=[other["id"]])
    api.seed_batch(cls["id"], [(uuid4(), None, 0.0)])
    await _expire_all(api)  # creates the UNKNOWN placeholder in the class

    expected = [
        {"student_id": ada["id"], "first_name": "Ada", "last_name": "Lovelace",
         "full_legal_name": "Augusta Ada King", "email": None, "aliases": []},
        {"student_id": zed["id"], "first_name": "Zoë", "last_name": "Åberg",
         "full_legal_name": "Zoë Åberg", "email": "zoe@example.org", "aliases": []},
    ]  # fmt: skip
    path = f"/v1/classes/{cls['id']}/roster"
    owner = await api.client.get(path, headers=A)
    assert owner.status_code == 200
    assert owner.json() == {"students": expected}
    internal = await api.client.get(path, headers=INTERNAL)
    assert internal.json() == {"students": expected}
    # The key, when present, alone decides: a wrong key fails even with a valid owner.
    wrong = await api.client.get(
        path, headers={**A, "X-Internal-API-Key": "nope", "X-Service-ID": "s"}
    )
    assert_problem(wrong, 401, "AUTHENTICATION_REQUIRED")
    no_service = await api.client.get(
        path, headers={"X-Internal-API-Key": INTERNAL["X-Internal-API-Key"]}
    )
    assert_problem(no_service, 401, "AUTHENTICATION_REQUIRED")
    assert_problem(await api.client.get(path), 401, "AUTHENTICATION_REQUIRED")
    missing = await api.client.get(f"/v1/classes/{uuid4()}/roster", headers=INTERNAL)
    assert_problem(missing, 404, "RESOURCE_NOT_FOUND")
    count = (await api.client.get(f"/v1/classes/{cls['id']}", headers=A)).json()["student_count"]
    assert count == 2  # the placeholder is not counted


async def _expire_all(api: ApiHarness) -> None:

    pending = api.call(list_pending_associations, api.runtime)
    for batch_id in {a.batch_id for a in pending}:
        api.call(finalize_batch, api.runtime, batch_id)


async def test_class_owner_is_the_caller(api: ApiHarness) -> None:
    cls = await api.create_class()
    created = [e for e in api.events() if e["event_type"] == "huleedu.class.created.v1"]
    assert created[0]["data"]["user_id"] == OWNER_A
    assert cls["id"] in [
        c["id"] for c in (await api.client.get("/v1/classes", headers=A)).json()["classes"]
    ]

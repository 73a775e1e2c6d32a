"""``/v1/classes/students`` through the HTTP API (contract §3.2, §3.3)."""

from __future__ import annotations

from uuid import UUID, uuid4

from class_core.use_cases.matching import finalize_batch
from tests.e2e.conftest import A, ApiHarness, assert_problem, fields_of

NAME = {"first_name": "B", "last_name": "C"}
STUDENT_KEYS = {
    "version",
    "external_id",
    "id",
    "first_name",
    "last_name",
    "legal_full_name",
    "full_name",
    "email",
    "class_ids",
    "is_placeholder",
    "created_at",
    "updated_at",
    "aliases",
    "protected_identity",
    "is_erased",
    "erased_at",
}


async def test_create_student_shape_and_normalisation(api: ApiHarness) -> None:
    cls = await api.create_class()
    r = await api.client.post(
        "/v1/classes/students",
        json={
            "person_name": {"first_name": "  Åsa ", "last_name": "O\u0308berg"},
            "email": "  Asa.Oberg@Skola.SE ",
            "class_ids": [cls["id"], cls["id"]],
        },
        headers=A,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body.keys() == STUDENT_KEYS
    assert body["first_name"] == "Åsa"
    assert body["last_name"] == "\u00d6berg"  # NFC
    assert body["legal_full_name"] is None
    assert body["full_name"] == "Åsa Öberg"
    assert body["email"] == "asa.oberg@skola.se"
    assert body["class_ids"] == [cls["id"]]
    assert body["is_placeholder"] is False
    assert body["created_at"].endswith("+00:00")
    created = [e for e in api.events() if e["event_type"] == "huleedu.class.student.created.v1"]
    assert created[0]["data"]["student_id"] == body["id"]
    assert created[0]["correlation_id"] == r.headers["x-correlation-id"]
    count = (await api.client.get(f"/v1/classes/{cls['id']}", headers=A)).json()["student_count"]
    assert count == 1


async def test_legal_full_name_is_the_full_name(api: ApiHarness) -> None:
    s = await api.create_student(first="Ada", last="Lovelace", legal="Augusta Ada King")
    assert s["legal_full_name"] == "Augusta Ada King"
    assert s["full_name"] == "Augusta Ada King"


async def test_create_student_errors(api: ApiHarness) -> None:
    await api.create_student(email="taken@example.org")
    dup = await api.client.post(
        "/v1/classes/students",
        json={"person_name": {"first_name": "B", "last_name": "C"}, "email": "TAKEN@example.org"},
        headers=A,
    )
    assert_problem(dup, 409, "DUPLICATE_STUDENT_EMAIL")
    not_mine = await api.client.post(
        "/v1/classes/students",
        json={"person_name": {"first_name": "B", "last_name": "C"}, "class_ids": [str(uuid4())]},
        headers=A,
    )
    assert_problem(not_mine, 404, "RESOURCE_NOT_FOUND")
    cases = [
        ({"person_name": {"first_name": "B"}}, "person_name.last_name"),
        ({"person_name": {"first_name": "B", "last_name": None}}, "person_name.last_name"),
        ({"person_name": {"first_name": "", "last_name": "C"}}, "person_name.first_name"),
        ({"person_name": {"first_name": "B", "last_name": "C", "x": 1}}, "person_name.x"),
        ({"person_name": {"first_name": "B", "last_name": "C"}, "id": str(uuid4())}, "id"),
        ({"person_name": NAME, "class_ids": ["nope"]}, "class_ids[0]"),
        ({"person_name": {"first_name": "B", "last_name": "C"}, "class_ids": None}, "class_ids"),
        ({"person_name": {"first_name": "B", "last_name": "C"}, "email": "no-at-sign"}, "email"),
        ({"person_name": NAME, "email": "x@huleedu.system"}, "email"),
        ({"person_name": {"first_name": "B" * 256, "last_name": "C"}}, "person_name.first_name"),
        ({"person_name": {"first_name": "B\u0007", "last_name": "C"}}, "person_name.first_name"),
    ]  # fmt: skip
    for payload, field in cases:
        r = await api.client.post("/v1/classes/students", json=payload, headers=A)
        assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == [field], payload
    total = (await api.client.get("/v1/classes/students", headers=A)).json()["pagination"]["total"]
    assert total == 1


async def test_list_students_order_filters_and_pagination(api: ApiHarness) -> None:
    cls = await api.create_class()
    zoe = await api.create_student(first="Zoë", last="Ångström", class_ids=[cls["id"]])
    bob = await api.create_student(first="Bob", last="Adams", email="bob@example.org")
    amy = await api.create_student(first="Amy", last="Adams", class_ids=[cls["id"]])
    r = await api.client.get("/v1/classes/students", headers=A)
    body = r.json()
    assert [s["id"] for s in body["students"]] == [amy["id"], bob["id"], zoe["id"]]
    assert body["pagination"] == {"limit": 20, "offset": 0, "returned": 3, "total": 3}

    page = (await api.client.get("/v1/classes/students?limit=1&offset=1", headers=A)).json()
    assert [s["id"] for s in page["students"]] == [bob["id"]]
    assert page["pagination"] == {"limit": 1, "offset": 1, "returned": 1, "total": 3}

    in_class = await api.client.get(
        "/v1/classes/students", params={"class_id": cls["id"]}, headers=A
    )
    assert [s["id"] for s in in_class.json()["students"]] == [amy["id"], zoe["id"]]
    accent = await api.client.get("/v1/classes/students", params={"q": "angstrom"}, headers=A)
    assert [s["id"] for s in accent.json()["students"]] == [zoe["id"]]
    by_email = await api.client.get("/v1/classes/students", params={"q": "BOB@EX"}, headers=A)
    assert [s["id"] for s in by_email.json()["students"]] == [bob["id"]]
    since = await api.client.get(
        "/v1/classes/students", params={"updated_since": amy["updated_at"]}, headers=A
    )
    assert amy["id"] in [s["id"] for s in since.json()["students"]]

    bad_class = await api.client.get("/v1/classes/students?class_id=nope", headers=A)
    assert fields_of(assert_problem(bad_class, 400, "VALIDATION_ERROR")) == ["class_id"]
    unknown = await api.client.get(f"/v1/classes/students?class_id={uuid4()}", headers=A)
    assert_problem(unknown, 404, "RESOURCE_NOT_FOUND")
    too_long = await api.client.get("/v1/classes/students", params={"q": "x" * 256}, headers=A)
    assert fields_of(assert_problem(too_long, 400, "VALIDATION_ERROR")) == ["q"]


async def test_update_student_partial_semantics(api: ApiHarness) -> None:
    c1 = await api.create_class(name="One")
    c2 = await api.create_class(name="Two")
    s = await api.create_student(
        first="Ada", last="Byron", email="ada@example.org", class_ids=[c1["id"]]
    )
    path = f"/v1/classes/students/{s['id']}"

    same = await api.client.put(path, json={}, headers=A)
    assert same.json() == s
    before = len(api.events())
    noop = await api.client.put(
        path, json={"add_class_ids": [c1["id"]], "remove_class_ids": [c2["id"]]}, headers=A
    )
    assert noop.json() == s
    assert len(api.events()) == before  # nothing changed, nothing published

    renamed = await api.client.put(path, json={"person_name": {"last_name": "Lovelace"}}, headers=A)
    assert renamed.status_code == 200
    assert renamed.json()["first_name"] == "Ada"
    assert renamed.json()["last_name"] == "Lovelace"
    assert renamed.json()["email"] == "ada@example.org"  # absent: unchanged

    moved = await api.client.put(
        path, json={"add_class_ids": [c2["id"]], "remove_class_ids": [c1["id"]]}, headers=A
    )
    assert moved.json()["class_ids"] == [c2["id"]]
    assert moved.json()["updated_at"] >= renamed.json()["updated_at"]

    cleared = await api.client.put(path, json={"email": None}, headers=A)
    assert cleared.json()["email"] is None
    legal = await api.client.put(
        path, json={"person_name": {"legal_full_name": "Augusta Ada King"}}, headers=A
    )
    assert legal.json()["full_name"] == "Augusta Ada King"
    unset_legal = await api.client.put(
        path, json={"person_name": {"legal_full_name": None}}, headers=A
    )
    assert unset_legal.json()["legal_full_name"] is None
    assert unset_legal.json()["full_name"] == "Ada Lovelace"

    updated = [e for e in api.events() if e["event_type"] == "huleedu.class.student.updated.v1"]
    cleared_event = next(
        e for e in updated if e["correlation_id"] == cleared.headers["x-correlation-id"]
    )
    assert cleared_event["data"]["student_email"] is None


async def test_update_student_errors(api: ApiHarness) -> None:
    cls = await api.create_class()
    await api.create_student(first="Other", last="One", email="other@example.org")
    s = await api.create_student(email="me@example.org")
    path = f"/v1/classes/students/{s['id']}"
    both = await api.client.put(
        path, json={"add_class_ids": [cls["id"]], "remove_class_ids": [cls["id"]]}, headers=A
    )
    assert_problem(both, 400, "VALIDATION_ERROR")
    dup = await api.client.put(path, json={"email": "OTHER@example.org"}, headers=A)
    assert_problem(dup, 409, "DUPLICATE_STUDENT_EMAIL")
    not_mine = await api.client.put(path, json={"add_class_ids": [str(uuid4())]}, headers=A)
    assert_problem(not_mine, 404, "RESOURCE_NOT_FOUND")
    for payload, field in [
        ({"person_name": {"first_name": None}}, "person_name.first_name"),
        ({"person_name": None}, "person_name"),
        ({"add_class_ids": None}, "add_class_ids"),
        ({"owner_id": "teacher-b"}, "owner_id"),
        ({"is_placeholder": True}, "is_placeholder"),
        ({"email": 5}, "email"),
    ]:
        r = await api.client.put(path, json=payload, headers=A)
        assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == [field], payload
    assert (await api.client.get(path, headers=A)).json() == s


async def test_delete_student(api: ApiHarness) -> None:
    cls = await api.create_class()
    s = await api.create_student(class_ids=[cls["id"]])
    path = f"/v1/classes/students/{s['id']}"
    r = await api.client.delete(path, headers=A)
    assert r.status_code == 200
    assert r.json() == {"message": "Student deleted successfully"}
    assert_problem(await api.client.get(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    assert_problem(await api.client.delete(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    count = (await api.client.get(f"/v1/classes/{cls['id']}", headers=A)).json()["student_count"]
    assert count == 0
    deleted = [e for e in api.events() if e["event_type"] == "huleedu.class.student.deleted.v1"]
    assert deleted[0]["data"]["class_ids"] == [cls["id"]]


async def test_student_named_by_an_association_cannot_be_deleted(api: ApiHarness) -> None:
    cls = await api.create_class()
    s = await api.create_student(class_ids=[cls["id"]])
    api.seed_batch(cls["id"], [(uuid4(), UUID(s["id"]), 0.9)])
    r = await api.client.delete(f"/v1/classes/students/{s['id']}", headers=A)
    assert_problem(r, 409, "RESOURCE_IN_USE")


async def test_placeholder_is_listed_flagged_and_read_only(api: ApiHarness) -> None:
    cls = await api.create_class()
    batch = api.seed_batch(cls["id"], [(uuid4(), None, 0.0)])
    api.call(finalize_batch, api.runtime, batch)
    listed = (await api.client.get("/v1/classes/students", headers=A)).json()["students"]
    assert len(listed) == 1
    placeholder = listed[0]
    assert placeholder["is_placeholder"] is True
    assert placeholder["first_name"] == "UNKNOWN"
    assert placeholder["last_name"] == "STUDENT"
    assert placeholder["email"] == f"unknown.{cls['id']}@huleedu.system"
    path = f"/v1/classes/students/{placeholder['id']}"
    assert (await api.client.get(path, headers=A)).json()["is_placeholder"] is True
    put = await api.client.put(path, json={"person_name": {"first_name": "X"}}, headers=A)
    assert_problem(put, 409, "RESOURCE_IN_USE")
    assert_problem(await api.client.delete(path, headers=A), 409, "RESOURCE_IN_USE")
    roster = (await api.client.get(f"/v1/classes/{cls['id']}/roster", headers=A)).json()
    assert roster == {"students": []}

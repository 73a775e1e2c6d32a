"""Two owners: neither can read or change anything of the other's, on any route; another
owner's objects answer 404 exactly as if they did not exist (contract §3.1)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from tests.e2e.conftest import A, ApiHarness, B, assert_problem


async def _snapshot(api: ApiHarness, cls_id: str, student_id: str, batch: UUID) -> list[Any]:
    return [
        (await api.client.get(f"/v1/classes/{cls_id}", headers=A)).json(),
        (await api.client.get(f"/v1/classes/{cls_id}/roster", headers=A)).json(),
        (await api.client.get(f"/v1/classes/students/{student_id}", headers=A)).json(),
        (await api.client.get(f"/v1/batches/{batch}/student-associations", headers=A)).json(),
        (await api.client.get("/v1/classes", headers=A)).json(),
        (await api.client.get("/v1/classes/students", headers=A)).json(),
    ]


async def test_no_cross_owner_reads_or_writes(api: ApiHarness) -> None:
    cls_a = await api.create_class(A, name="A's class")
    stu_a = await api.create_student(
        A, first="Alice", last="Anders", email="alice@example.org", class_ids=[cls_a["id"]]
    )
    essay = uuid4()
    batch_a = api.seed_batch(cls_a["id"], [(essay, UUID(stu_a["id"]), 0.95)])
    cls_b = await api.create_class(B, name="B's class")
    stu_b = await api.create_student(B, first="Bert", last="Berg", class_ids=[cls_b["id"]])
    before = await _snapshot(api, cls_a["id"], stu_a["id"], batch_a)
    events_before = len(api.events())

    c, s = cls_a["id"], stu_a["id"]
    attempts: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"/v1/classes/{c}", None),
        ("PUT", f"/v1/classes/{c}", {"name": "Taken over"}),
        ("PUT", f"/v1/classes/{c}", {}),
        ("DELETE", f"/v1/classes/{c}", None),
        ("GET", f"/v1/classes/{c}/roster", None),
        ("GET", f"/v1/classes/students/{s}", None),
        ("PUT", f"/v1/classes/students/{s}", {"email": None}),
        ("PUT", f"/v1/classes/students/{s}", {}),
        ("DELETE", f"/v1/classes/students/{s}", None),
        ("GET", f"/v1/classes/students?class_id={c}", None),
        ("POST", "/v1/classes/students",
         {"person_name": {"first_name": "X", "last_name": "Y"}, "class_ids": [c]}),
        ("PUT", f"/v1/classes/students/{stu_b['id']}", {"add_class_ids": [c]}),
        ("PUT", f"/v1/classes/students/{stu_b['id']}", {"remove_class_ids": [c]}),
        ("GET", f"/v1/batches/{batch_a}/student-associations", None),
        ("POST", f"/v1/batches/{batch_a}/student-associations/confirm",
         {"associations": [{"essay_id": str(essay), "confirmed": False}]}),
        ("POST", f"/v1/batches/{batch_a}/student-associations/confirm",
         {"associations": [{"essay_id": str(essay), "confirmed": True,
                            "student_id": stu_b["id"]}]}),
    ]  # fmt: skip
    for method, path, body in attempts:
        r = await api.client.request(method, path, headers=B, json=body)
        problem = assert_problem(r, 404, "RESOURCE_NOT_FOUND")
        assert c not in problem["detail"]
        assert s not in problem["detail"]

    # Lists and searches show only the caller's own objects.
    classes_b = (await api.client.get("/v1/classes", headers=B)).json()
    assert [x["id"] for x in classes_b["classes"]] == [cls_b["id"]]
    students_b = (await api.client.get("/v1/classes/students", headers=B)).json()
    assert [x["id"] for x in students_b["students"]] == [stu_b["id"]]
    searched = await api.client.get("/v1/classes/students", params={"q": "alice"}, headers=B)
    assert searched.json()["pagination"]["total"] == 0
    by_name = await api.client.get("/v1/classes", params={"q": "A's"}, headers=B)
    assert by_name.json()["pagination"]["total"] == 0

    # Nothing of A's changed and nothing was published.
    assert await _snapshot(api, cls_a["id"], stu_a["id"], batch_a) == before
    assert len(api.events()) == events_before
    b_student = (await api.client.get(f"/v1/classes/students/{stu_b['id']}", headers=B)).json()
    assert b_student["class_ids"] == [cls_b["id"]]


async def test_emails_are_unique_per_owner_only(api: ApiHarness) -> None:
    await api.create_student(A, email="shared@example.org")
    again = await api.create_student(B, email="shared@example.org")
    assert again["email"] == "shared@example.org"


async def test_owner_a_is_unaffected_by_owner_b_deleting_own_data(api: ApiHarness) -> None:
    cls_a = await api.create_class(A)
    cls_b = await api.create_class(B)
    assert (await api.client.delete(f"/v1/classes/{cls_b['id']}", headers=B)).status_code == 200
    assert (await api.client.get(f"/v1/classes/{cls_a['id']}", headers=A)).status_code == 200

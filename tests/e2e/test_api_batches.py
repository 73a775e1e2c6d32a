"""Review and confirm essay authors: ``/v1/batches/{batch_id}/student-associations``."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from class_core.use_cases.matching import finalize_batch
from tests.e2e.conftest import OWNER_A, A, ApiHarness, assert_problem, fields_of

ASSOCIATION_KEYS = {
    "essay_id",
    "batch_id",
    "class_id",
    "suggested_student_id",
    "student_id",
    "student_name",
    "confidence_score",
    "match_reasons",
    "validation_status",
    "validation_method",
    "validated_by",
    "validated_at",
    "created_at",
    "runner_up_confidence",
    "conflict",
}


class World:
    """A class with two students and a batch of three essays: two suggested, one not."""

    def __init__(self, api: ApiHarness) -> None:
        self.api = api

    async def build(self) -> World:
        self.cls = await self.api.create_class()
        self.ada = await self.api.create_student(
            first="Ada", last="Lovelace", class_ids=[self.cls["id"]]
        )
        self.bo = await self.api.create_student(first="Bo", last="Ek", class_ids=[self.cls["id"]])
        self.e1, self.e2, self.e3 = uuid4(), uuid4(), uuid4()
        self.batch = self.api.seed_batch(
            self.cls["id"],
            [
                (self.e1, UUID(self.ada["id"]), 0.91),
                (self.e2, UUID(self.bo["id"]), 0.42),
                (self.e3, None, 0.0),
            ],
        )
        self.path = f"/v1/batches/{self.batch}/student-associations"
        return self

    async def confirm(self, *items: dict[str, Any]) -> Any:
        return await self.api.client.post(
            self.path + "/confirm", json={"associations": list(items)}, headers=A
        )


async def test_review_shows_suggestions(api: ApiHarness) -> None:
    w = await World(api).build()
    r = await api.client.get(w.path, headers=A)
    assert r.status_code == 200
    body = r.json()
    assert body["batch_id"] == str(w.batch)
    assert body["class_id"] == w.cls["id"]
    assert body["course_code"] == "ENG5"
    assert body["status"] == "pending"
    assert body["deadline"].endswith("+00:00")
    by_essay = {a["essay_id"]: a for a in body["associations"]}
    assert set(by_essay) == {str(w.e1), str(w.e2), str(w.e3)}
    first = by_essay[str(w.e1)]
    assert first.keys() == ASSOCIATION_KEYS
    assert first["suggested_student_id"] == w.ada["id"]
    assert first["student_id"] is None
    assert first["student_name"] == "Ada Lovelace"
    assert first["confidence_score"] == 0.91
    assert first["match_reasons"] == ["name in text"]
    assert first["validation_status"] == "pending_validation"
    assert first["validation_method"] is None
    assert first["validated_by"] is None
    assert first["validated_at"] is None
    none = by_essay[str(w.e3)]
    assert none["suggested_student_id"] is None
    assert none["student_name"] is None
    assert none["confidence_score"] is None


async def test_confirm_partially_then_finalize_then_retry(api: ApiHarness) -> None:
    w = await World(api).build()
    first = await w.confirm({"essay_id": str(w.e1), "confirmed": True})
    assert first.status_code == 200, first.text
    assert first.json() == {
        "batch_id": str(w.batch),
        "status": "pending",
        "associations_confirmed": 1,
        "associations_rejected": 0,
        "pending": 2,
    }
    assert "huleedu.class.student.associations.confirmed.v1" not in [
        e["event_type"] for e in api.events()
    ]
    # A new decision replaces an earlier one until finalization.
    changed = await w.confirm({"essay_id": str(w.e1), "confirmed": True, "student_id": w.bo["id"]})
    assert changed.json()["associations_confirmed"] == 1

    items = [
        {"essay_id": str(w.e2), "confirmed": False},
        {"essay_id": str(w.e3), "confirmed": True, "student_id": w.ada["id"]},
    ]
    final = await w.confirm(*items)
    assert final.json() == {
        "batch_id": str(w.batch),
        "status": "finalized",
        "associations_confirmed": 2,
        "associations_rejected": 1,
        "pending": 0,
    }
    review = (await api.client.get(w.path, headers=A)).json()
    assert review["status"] == "finalized"
    by_essay = {a["essay_id"]: a for a in review["associations"]}
    e1 = by_essay[str(w.e1)]
    assert e1["student_id"] == w.bo["id"]
    assert e1["suggested_student_id"] == w.ada["id"]  # the suggestion is never touched
    assert e1["student_name"] == "Bo Ek"
    assert e1["validation_status"] == "confirmed"
    assert e1["validation_method"] == "human"
    assert e1["validated_by"] == OWNER_A
    assert e1["validated_at"].endswith("+00:00")
    assert by_essay[str(w.e2)]["validation_status"] == "rejected"
    assert by_essay[str(w.e2)]["student_id"] is None

    confirmed = [
        e
        for e in api.events()
        if e["event_type"] == "huleedu.class.student.associations.confirmed.v1"
    ]
    assert len(confirmed) == 1
    assert confirmed[0]["correlation_id"] == final.headers["x-correlation-id"]

    retry = await w.confirm(*items)  # matches the stored decisions: harmless
    assert retry.status_code == 200
    assert retry.json() == final.json()
    different = await w.confirm({"essay_id": str(w.e2), "confirmed": True})
    assert_problem(different, 409, "BATCH_FINALIZED")
    confirmed_after = [
        e
        for e in api.events()
        if e["event_type"] == "huleedu.class.student.associations.confirmed.v1"
    ]
    assert len(confirmed_after) == 1


async def test_confirm_validation_is_atomic(api: ApiHarness) -> None:
    w = await World(api).build()
    outsider = await api.create_student(first="Not", last="Member")
    e1, e3, unknown = str(w.e1), str(w.e3), str(uuid4())
    ok = {"essay_id": e1, "confirmed": True}
    cases: list[tuple[list[dict[str, Any]] | None, str, list[str]]] = [
        ([], "VALIDATION_ERROR", ["associations"]),
        (None, "VALIDATION_ERROR", ["associations"]),
        ([ok, {"essay_id": unknown, "confirmed": True}], "VALIDATION_ERROR",
         ["associations[1].essay_id"]),
        ([ok, {"essay_id": e1, "confirmed": False}], "VALIDATION_ERROR",
         ["associations[1].essay_id"]),
        ([ok, {"essay_id": e3, "confirmed": True}], "VALIDATION_ERROR",
         ["associations[1].student_id"]),
        ([{**ok, "student_id": outsider["id"]}], "STUDENT_NOT_IN_CLASS",
         ["associations[0].student_id"]),
        ([{"essay_id": e1, "confirmed": "true"}], "VALIDATION_ERROR",
         ["associations[0].confirmed"]),
        ([{"essay_id": "zz", "confirmed": True}], "VALIDATION_ERROR",
         ["associations[0].essay_id"]),
        ([{**ok, "validation_status": "confirmed"}], "VALIDATION_ERROR",
         ["associations[0].validation_status"]),
        ([{"essay_id": e1}], "VALIDATION_ERROR", ["associations[0].confirmed"]),
    ]  # fmt: skip
    for items, code, fields in cases:
        payload = {"associations": items} if items is not None else {}
        r = await api.client.post(w.path + "/confirm", json=payload, headers=A)
        assert fields_of(assert_problem(r, 400, code)) == fields, payload
    review = (await api.client.get(w.path, headers=A)).json()
    assert {a["validation_status"] for a in review["associations"]} == {"pending_validation"}


async def test_placeholder_cannot_be_chosen(api: ApiHarness) -> None:
    w = await World(api).build()
    other = api.seed_batch(w.cls["id"], [(uuid4(), None, 0.0)])
    api.call(finalize_batch, api.runtime, other)  # creates the class's UNKNOWN student
    students = (await api.client.get("/v1/classes/students", headers=A)).json()["students"]
    placeholder = next(s for s in students if s["is_placeholder"])
    r = await w.confirm({"essay_id": str(w.e1), "confirmed": True, "student_id": placeholder["id"]})
    assert_problem(r, 400, "STUDENT_NOT_IN_CLASS")


async def test_unknown_batch_is_not_found(api: ApiHarness) -> None:
    path = f"/v1/batches/{uuid4()}/student-associations"
    assert_problem(await api.client.get(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    r = await api.client.post(
        path + "/confirm",
        json={"associations": [{"essay_id": str(uuid4()), "confirmed": True}]},
        headers=A,
    )
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")
    bad = await api.client.get("/v1/batches/not-a-uuid/student-associations", headers=A)
    assert fields_of(assert_problem(bad, 400, "VALIDATION_ERROR")) == ["batch_id"]


async def test_empty_batch_is_finalized_at_once(api: ApiHarness) -> None:
    cls = await api.create_class()
    batch = api.seed_batch(cls["id"], [])
    review = (await api.client.get(f"/v1/batches/{batch}/student-associations", headers=A)).json()
    assert review["status"] == "finalized"
    assert review["associations"] == []

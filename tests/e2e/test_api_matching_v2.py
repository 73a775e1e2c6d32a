"""Contract §11 over HTTP: the batch queue, deadlines the owner moves, review aids, the
tightened confirmation and the learning signal (memory and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.use_cases.matching import expire_due_batches, ingest_suggestions
from tests.e2e.conftest import A, ApiHarness, B, assert_problem, fields_of

CONFIRMED_TOPIC = "huleedu.class.student.associations.confirmed.v1"
QUEUE_KEYS = {
    "batch_id",
    "class_id",
    "class_name",
    "course_code",
    "status",
    "deadline",
    "essay_count",
    "pending",
    "confirmed",
    "rejected",
    "created_at",
}


def ingest(
    api: ApiHarness,
    class_id: str,
    essays: list[tuple[UUID, list[tuple[str, float]]]],
    batch_id: UUID | None = None,
) -> UUID:
    """Suggestions for a batch as the consumer stores them (several per essay allowed)."""
    batch_id = batch_id or uuid4()
    message = SuggestionsMessage(
        message_id=str(uuid4()),
        correlation_id=uuid4(),
        batch_id=batch_id,
        class_id=UUID(class_id),
        course_code="ENG5",
        matches=tuple(
            EssayMatch(e, tuple(Suggestion(UUID(s), c, ("name",)) for s, c in sugs))
            for e, sugs in essays
        ),
    )
    api.call(ingest_suggestions, api.runtime, message)
    return batch_id


async def roster(api: ApiHarness, n: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cls = await api.create_class()
    students = [
        await api.create_student(first=f"S{i}", last="Test", class_ids=[cls["id"]])
        for i in range(n)
    ]
    return cls, students


async def view(api: ApiHarness, batch: UUID) -> dict[str, Any]:
    r = await api.client.get(f"/v1/batches/{batch}/student-associations", headers=A)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def by_essay(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["essay_id"]: a for a in body["associations"]}


# --------------------------------------------------------------------------- GET /v1/batches


async def test_batch_queue_counts_order_filters_and_pages(api: ApiHarness) -> None:
    cls, (s0, s1) = await roster(api, 2)
    other_cls = await api.create_class(name="Klass 9B")
    e = [uuid4() for _ in range(3)]
    first = ingest(api, cls["id"], [(e[0], [(s0["id"], 0.9)]), (e[1], [(s1["id"], 0.8)])])
    second = ingest(api, other_cls["id"], [(e[2], [])])
    # the second batch's deadline comes first
    soon = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    r = await api.client.post(f"/v1/batches/{second}/deadline", json={"deadline": soon}, headers=A)
    assert r.status_code == 200, r.text
    confirm = await api.client.post(
        f"/v1/batches/{first}/student-associations/confirm",
        json={"associations": [{"essay_id": str(e[0]), "confirmed": True}]},
        headers=A,
    )
    assert confirm.status_code == 200, confirm.text

    r = await api.client.get("/v1/batches", headers=A)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [b["batch_id"] for b in body["batches"]] == [str(second), str(first)]
    assert body["pagination"] == {"limit": 20, "offset": 0, "returned": 2, "total": 2}
    item = body["batches"][1]
    assert item.keys() == QUEUE_KEYS
    assert item["class_id"] == cls["id"]
    assert item["class_name"] == "Klass 9A"
    assert item["course_code"] == "ENG5"
    assert item["status"] == "pending"
    assert (item["essay_count"], item["pending"], item["confirmed"], item["rejected"]) == (
        2,
        1,
        1,
        0,
    )
    assert datetime.fromisoformat(body["batches"][0]["deadline"]) == datetime.fromisoformat(soon)

    # filters and paging
    only = (await api.client.get(f"/v1/batches?class_id={cls['id']}", headers=A)).json()
    assert [b["batch_id"] for b in only["batches"]] == [str(first)]
    page = (await api.client.get("/v1/batches?limit=1&offset=1", headers=A)).json()
    assert [b["batch_id"] for b in page["batches"]] == [str(first)]
    assert page["pagination"] == {"limit": 1, "offset": 1, "returned": 1, "total": 2}
    past = (await api.client.get("/v1/batches?offset=5", headers=A)).json()
    assert past["batches"] == []
    assert past["pagination"]["total"] == 2

    # finishing the first batch moves it from pending to finalized
    done = await api.client.post(
        f"/v1/batches/{first}/student-associations/confirm",
        json={"associations": [{"essay_id": str(e[1]), "confirmed": False}]},
        headers=A,
    )
    assert done.json()["status"] == "finalized"
    pending = (await api.client.get("/v1/batches?status=pending", headers=A)).json()
    assert [b["batch_id"] for b in pending["batches"]] == [str(second)]
    finalized = (await api.client.get("/v1/batches?status=finalized", headers=A)).json()
    [fin] = finalized["batches"]
    assert fin["batch_id"] == str(first)
    assert (fin["status"], fin["pending"], fin["confirmed"], fin["rejected"]) == (
        "finalized",
        0,
        1,
        1,
    )
    every = (await api.client.get("/v1/batches/?status=all", headers=A)).json()
    assert {b["batch_id"] for b in every["batches"]} == {str(first), str(second)}


async def test_batch_queue_is_owner_scoped_and_validated(api: ApiHarness) -> None:
    cls, (s0,) = await roster(api, 1)
    ingest(api, cls["id"], [(uuid4(), [(s0["id"], 0.9)])])
    theirs = (await api.client.get("/v1/batches?status=all", headers=B)).json()
    assert theirs["batches"] == []
    assert theirs["pagination"]["total"] == 0
    # another owner's class id (or an unknown one) is not found, as in the student list
    r = await api.client.get(f"/v1/batches?class_id={cls['id']}", headers=B)
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")
    r = await api.client.get(f"/v1/batches?class_id={uuid4()}", headers=A)
    assert_problem(r, 404, "RESOURCE_NOT_FOUND")
    for query in ("status=open", "limit=0", "limit=101", "offset=-1", "class_id=nope"):
        r = await api.client.get(f"/v1/batches?{query}", headers=A)
        assert_problem(r, 400, "VALIDATION_ERROR")
    assert (await api.client.get("/v1/batches")).status_code == 401


# --------------------------------------------------------------------------- deadline


async def test_owner_moves_deadline_and_nothing_is_published(api: ApiHarness) -> None:
    cls, (s0,) = await roster(api, 1)
    batch = ingest(api, cls["id"], [(uuid4(), [(s0["id"], 0.9)])])
    before = len(api.events())
    target = datetime.now(UTC) + timedelta(days=3)
    r = await api.client.post(
        f"/v1/batches/{batch}/deadline", json={"deadline": target.isoformat()}, headers=A
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["batch_id"] == str(batch)
    assert body["status"] == "pending"
    assert datetime.fromisoformat(body["deadline"]) == target
    assert body["deadline"].endswith("+00:00")
    assert len(body["associations"]) == 1
    assert len(api.events()) == before  # publishes nothing
    assert datetime.fromisoformat((await view(api, batch))["deadline"]) == target
    # an offset other than UTC is the same instant
    local = (datetime.now(UTC) + timedelta(days=1)).astimezone(timezone(timedelta(hours=2)))
    r = await api.client.post(
        f"/v1/batches/{batch}/deadline", json={"deadline": local.isoformat()}, headers=A
    )
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["deadline"]) == local


async def test_deadline_refusals(api: ApiHarness) -> None:
    cls, (s0,) = await roster(api, 1)
    e = uuid4()
    batch = ingest(api, cls["id"], [(e, [(s0["id"], 0.9)])])
    path = f"/v1/batches/{batch}/deadline"
    now = datetime.now(UTC)
    for bad in (
        (now - timedelta(minutes=1)).isoformat(),
        (now + timedelta(days=14, minutes=5)).isoformat(),
        "2026-13-01T00:00:00+00:00",
        "2030-01-01T00:00:00",  # no offset
    ):
        r = await api.client.post(path, json={"deadline": bad}, headers=A)
        body = assert_problem(r, 400, "VALIDATION_ERROR")
        assert fields_of(body) == ["deadline"], bad
    for body_ in ({}, {"deadline": None}, {"deadline": 5}, {"deadline": "x", "extra": 1}):
        assert_problem(await api.client.post(path, json=body_, headers=A), 400, "VALIDATION_ERROR")
    ok = (now + timedelta(days=1)).isoformat()
    assert_problem(
        await api.client.post(path, json={"deadline": ok}, headers=B), 404, "RESOURCE_NOT_FOUND"
    )
    assert_problem(
        await api.client.post(f"/v1/batches/{uuid4()}/deadline", json={"deadline": ok}, headers=A),
        404,
        "RESOURCE_NOT_FOUND",
    )
    stored = (await view(api, batch))["deadline"]
    fin = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(e), "confirmed": True}]},
        headers=A,
    )
    assert fin.json()["status"] == "finalized"
    assert_problem(
        await api.client.post(path, json={"deadline": ok}, headers=A), 409, "BATCH_FINALIZED"
    )
    assert (await view(api, batch))["deadline"] == stored


async def test_sweep_honours_a_moved_deadline(api: ApiHarness) -> None:
    cls, (s0,) = await roster(api, 1)
    batch = ingest(api, cls["id"], [(uuid4(), [(s0["id"], 0.9)])])
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    r = await api.client.post(
        f"/v1/batches/{batch}/deadline", json={"deadline": soon.isoformat()}, headers=A
    )
    assert r.status_code == 200, r.text
    assert api.call(expire_due_batches, api.runtime) == []
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    [done] = api.call(expire_due_batches, api.runtime)
    assert done.batch_id == batch
    assert (await view(api, batch))["status"] == "finalized"
    # a finalized batch's deadline cannot move any more
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await api.client.post(f"/v1/batches/{batch}/deadline", json={"deadline": later}, headers=A)
    assert_problem(r, 409, "BATCH_FINALIZED")


# --------------------------------------------------------------------------- review aids


async def test_runner_up_and_conflict_in_the_review(api: ApiHarness) -> None:
    cls, (s0, s1, s2) = await roster(api, 3)
    outsider = await api.create_student(first="Out", last="Sider")
    e1, e2, e3, e4 = uuid4(), uuid4(), uuid4(), uuid4()
    batch = ingest(
        api,
        cls["id"],
        [
            # runner-up: the best other member; the outsider and an invalid one do not count
            (e1, [(s0["id"], 0.9), (s1["id"], 0.6), (outsider["id"], 0.85), (s2["id"], 1.5)]),
            (e2, [(s0["id"], 0.75)]),  # same suggested student as e1: both conflict
            (e3, [(s2["id"], 0.8), (s2["id"], 0.7)]),  # the same student twice is no rival
            (e4, []),
        ],
    )
    items = by_essay(await view(api, batch))
    assert items[str(e1)]["runner_up_confidence"] == 0.6
    assert items[str(e2)]["runner_up_confidence"] is None
    assert items[str(e3)]["runner_up_confidence"] is None
    assert items[str(e4)]["runner_up_confidence"] is None
    assert [items[str(e)]["conflict"] for e in (e1, e2, e3, e4)] == [True, True, False, False]
    # a human choice of s2 for e2 makes e2 and e3 conflict (and e1 still shares s0 with e2)
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(e2), "confirmed": True, "student_id": s2["id"]}]},
        headers=A,
    )
    assert r.status_code == 200, r.text
    items = by_essay(await view(api, batch))
    assert [items[str(e)]["conflict"] for e in (e1, e2, e3, e4)] == [True, True, True, False]


# --------------------------------------------------------------------------- confirmation


async def test_suggested_student_who_left_the_class_cannot_be_confirmed(api: ApiHarness) -> None:
    cls, (s0, s1) = await roster(api, 2)
    e1, e2 = uuid4(), uuid4()
    batch = ingest(api, cls["id"], [(e1, [(s0["id"], 0.9)]), (e2, [(s1["id"], 0.9)])])
    left = await api.client.put(
        f"/v1/classes/students/{s0['id']}", json={"remove_class_ids": [cls["id"]]}, headers=A
    )
    assert left.status_code == 200, left.text
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(e2), "confirmed": True},
                {"essay_id": str(e1), "confirmed": True},
            ]
        },
        headers=A,
    )
    body = assert_problem(r, 400, "STUDENT_NOT_IN_CLASS")
    assert fields_of(body) == ["associations[1].student_id"]
    items = by_essay(await view(api, batch))
    assert all(a["validation_status"] == "pending_validation" for a in items.values())
    # rejecting it, or choosing a member, still works
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(e1), "confirmed": True, "student_id": s1["id"]},
                {"essay_id": str(e2), "confirmed": False},
            ]
        },
        headers=A,
    )
    assert r.status_code == 200, r.text


async def test_learning_signal_in_the_confirmed_event(api: ApiHarness) -> None:
    cls, (s0, s1) = await roster(api, 2)
    e1, e2, e3 = uuid4(), uuid4(), uuid4()
    batch = ingest(api, cls["id"], [(e1, [(s0["id"], 0.9)]), (e2, [(s1["id"], 0.55)]), (e3, [])])
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={
            "associations": [
                {"essay_id": str(e1), "confirmed": True},
                {"essay_id": str(e2), "confirmed": True, "student_id": s0["id"]},
                {"essay_id": str(e3), "confirmed": True, "student_id": s1["id"]},
            ]
        },
        headers=A,
    )
    assert r.json()["status"] == "finalized", r.text
    [event] = [
        e["data"]
        for e in api.events()
        if e["event_type"] == CONFIRMED_TOPIC and e["data"]["batch_id"] == str(batch)
    ]
    items = {a["essay_id"]: a for a in event["associations"]}
    assert (items[str(e1)]["suggested_student_id"], items[str(e1)]["suggested_confidence"]) == (
        s0["id"],
        0.9,
    )
    assert (items[str(e2)]["suggested_student_id"], items[str(e2)]["suggested_confidence"]) == (
        s1["id"],
        0.55,
    )
    assert items[str(e2)]["confidence_score"] == 0.0  # another student chosen (Part I)
    assert (items[str(e3)]["suggested_student_id"], items[str(e3)]["suggested_confidence"]) == (
        None,
        None,
    )
    assert event["validation_summary"]["ambiguous"] == 0

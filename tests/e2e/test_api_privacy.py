"""Privacy of students over HTTP (contract §10): erasure, export and protected identity, on
the in-memory adapters, PostgreSQL and SQLite (the embedded default)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from adapters_sql import create_engine, upgrade
from adapters_sql.envelopes import ENVELOPES
from class_api.app import create_app
from class_core.testing import InMemoryOutboxStore, InMemoryStore, memory_runtime
from class_core.use_cases.matching import finalize_batch
from tests.e2e.conftest import INTERNAL, A, ApiHarness, B, assert_problem, settings_for

FIRST, LAST, LEGAL, EMAIL = "Zephyrine", "Quillfeather", "Zephyrine O. Quillfeather", "zq@x.se"
ALIAS = "Zephyquill"
UPDATED = "huleedu.class.student.updated.v1"
ERASED = "huleedu.class.student.erased.v1"
CREATED = "huleedu.class.student.created.v1"
NOTIFICATION = "huleedu.notification.teacher.requested.v1"


@pytest.fixture(params=["memory", "postgres", "sqlite"])
def privacy_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Litestar, Any, str | None]:
    if request.param == "memory":
        store = InMemoryStore(ENVELOPES)
        app = create_app(settings_for(), runtime=memory_runtime(store))
        return "memory", app, InMemoryOutboxStore(store), None
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
        request.getfixturevalue("clean_pg")
        return (
            "postgres",
            create_app(settings_for(use_mock_repository=False, database_url=url)),
            None,
            None,
        )
    url = f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}"
    app = create_app(settings_for(use_mock_repository=False, database_url=url, run_workers=False))
    return "sqlite", app, None, url


@pytest_asyncio.fixture(loop_scope="session")
async def api(
    privacy_backend: tuple[str, Litestar, Any, str | None],
) -> AsyncIterator[ApiHarness]:
    name, app, outbox, sqlite_url = privacy_backend
    if sqlite_url is not None:
        engine = create_engine(sqlite_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
    async with AsyncTestClient(app) as client:
        harness = ApiHarness(client, name, outbox)
        yield harness


async def _student(api: ApiHarness, class_ids: list[str], **extra: Any) -> dict[str, Any]:
    body = {
        "person_name": {"first_name": FIRST, "last_name": LAST, "legal_full_name": LEGAL},
        "email": EMAIL,
        "class_ids": class_ids,
        **extra,
    }
    r = await api.client.post("/v1/classes/students", json=body, headers=A)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


async def _decided(api: ApiHarness, class_id: str, student_id: str) -> tuple[UUID, UUID]:
    essay = uuid4()
    batch = api.seed_batch(class_id, [(essay, UUID(student_id), 0.9)])
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(essay), "confirmed": True}]},
        headers=A,
    )
    assert r.status_code == 200, r.text
    return batch, essay


async def test_erasure_answers_the_anonymous_record_and_publishes_two_events(
    api: ApiHarness,
) -> None:
    cls = await api.create_class()
    s = await _student(api, [cls["id"]])
    batch, _essay = await _decided(api, cls["id"], s["id"])
    before = len(api.events())

    r = await api.client.post(f"/v1/classes/students/{s['id']}/erasure", headers=A)

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == s["id"]
    assert (body["first_name"], body["last_name"], body["full_name"]) == (
        "ERASED",
        "STUDENT",
        "ERASED STUDENT",
    )
    assert (body["legal_full_name"], body["email"], body["class_ids"]) == (None, None, [])
    assert body["is_erased"] is True
    assert body["erased_at"] is not None
    assert body["protected_identity"] is False
    events = api.events()[before:]
    assert [e["event_type"] for e in events] == [UPDATED, ERASED]
    assert events[0]["data"]["remove_class_ids"] == [cls["id"]]
    assert (events[0]["data"]["first_name"], events[0]["data"]["student_email"]) == (
        "ERASED",
        None,
    )
    assert events[1]["data"]["event"] == "student.erased"
    assert events[1]["data"]["class_ids"] == [cls["id"]]
    assert events[1]["data"]["user_id"] == A["X-User-ID"]
    assert events[0]["correlation_id"] == events[1]["correlation_id"]
    assert r.headers["x-correlation-id"] == events[1]["correlation_id"]

    again = await api.client.post(f"/v1/classes/students/{s['id']}/erasure/", headers=A)
    assert again.status_code == 200
    assert again.json() == body
    assert len(api.events()) == before + 2
    read = await api.client.get(f"/v1/classes/students/{s['id']}", headers=A)
    assert read.json() == body
    view = await api.client.get(f"/v1/batches/{batch}/student-associations", headers=A)
    [association] = view.json()["associations"]
    assert association["student_id"] == s["id"]
    assert association["validation_status"] == "confirmed"
    assert association["student_name"] == "ERASED STUDENT"
    found = await api.client.get("/v1/classes/students", params={"q": "quill"}, headers=A)
    assert found.json()["students"] == []
    roster = await api.client.get(f"/v1/classes/{cls['id']}", headers=A)
    assert roster.json()["student_count"] == 0


async def test_erased_students_refuse_changes_and_others_see_nothing(api: ApiHarness) -> None:
    cls = await api.create_class()
    s = await _student(api, [cls["id"]])
    path = f"/v1/classes/students/{s['id']}"
    assert_problem(await api.client.post(path + "/erasure", headers=B), 404, "RESOURCE_NOT_FOUND")
    assert_problem(
        await api.client.post(f"/v1/classes/students/{uuid4()}/erasure", headers=A),
        404,
        "RESOURCE_NOT_FOUND",
    )
    assert_problem(
        await api.client.post("/v1/classes/students/not-a-uuid/erasure", headers=A),
        400,
        "VALIDATION_ERROR",
    )
    assert (await api.client.post(path + "/erasure", headers=A)).status_code == 200
    for body in ({"person_name": {"first_name": "Back"}}, {"add_class_ids": [cls["id"]]}, {}):
        r = await api.client.put(path, json=body, headers=A)
        assert_problem(r, 409, "RESOURCE_IN_USE")


async def test_the_placeholder_cannot_be_erased(api: ApiHarness) -> None:
    cls = await api.create_class()
    batch = api.seed_batch(cls["id"], [(uuid4(), None, 0.0)])
    api.call(finalize_batch, api.runtime, batch)
    r = await api.client.get("/v1/classes/students", headers=A)
    [placeholder] = [s for s in r.json()["students"] if s["is_placeholder"]]
    before = len(api.events())
    r = await api.client.post(f"/v1/classes/students/{placeholder['id']}/erasure", headers=A)
    assert_problem(r, 409, "RESOURCE_IN_USE")
    assert len(api.events()) == before


async def test_export_holds_the_student_classes_associations_and_history(
    api: ApiHarness,
) -> None:
    cls = await api.create_class(name="Klass 9E")
    s = await _student(api, [cls["id"]])
    path = f"/v1/classes/students/{s['id']}"
    r = await api.client.put(path, json={"person_name": {"first_name": "Zeph"}}, headers=A)
    assert r.status_code == 200
    _, essay = await _decided(api, cls["id"], s["id"])

    r = await api.client.get(path + "/export", headers=A)

    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"student", "classes", "associations", "history"}
    assert body["student"]["first_name"] == "Zeph"
    assert body["student"]["email"] == EMAIL
    assert body["classes"] == [{"id": cls["id"], "name": "Klass 9E", "course_code": "ENG5"}]
    [association] = body["associations"]
    assert association["essay_id"] == str(essay)
    assert association["student_name"] == LEGAL
    assert [(h["action"], h["by"]) for h in body["history"]] == [
        ("created", A["X-User-ID"]),
        ("added_to_class", A["X-User-ID"]),
        ("updated", A["X-User-ID"]),
        ("association_decided", A["X-User-ID"]),
    ]
    assert all(set(h) == {"at", "action", "by"} for h in body["history"])
    assert all(h["at"].endswith("+00:00") for h in body["history"])
    assert_problem(await api.client.get(path + "/export", headers=B), 404, "RESOURCE_NOT_FOUND")

    await api.client.post(path + "/erasure", headers=A)
    after = (await api.client.get(path + "/export", headers=A)).json()
    assert [h["action"] for h in after["history"]][-2:] == ["removed_from_class", "erased"]
    assert after["classes"] == []
    assert len(after["associations"]) == 1
    assert FIRST not in str(after)
    assert EMAIL not in str(after)


async def test_a_protected_identity_is_a_pseudonym_outside_the_owners_reads(
    api: ApiHarness,
) -> None:
    cls = await api.create_class()
    s = await _student(api, [cls["id"]], protected_identity=True, aliases=[ALIAS])
    pseudonym = {"first_name": "Protected", "last_name": f"Student {s['id'].replace('-', '')[:8]}"}
    assert s["protected_identity"] is True
    assert (s["first_name"], s["email"]) == (FIRST, EMAIL)
    own = await api.client.get(f"/v1/classes/{cls['id']}/roster", headers=A)
    assert own.json()["students"][0]["first_name"] == FIRST
    internal = await api.client.get(f"/v1/classes/{cls['id']}/roster", headers=INTERNAL)
    assert internal.json()["students"] == [
        {
            "student_id": s["id"],
            **pseudonym,
            "full_legal_name": f"Protected {pseudonym['last_name']}",
            "email": None,
            "aliases": [],
        }
    ]
    batch, essay = await _decided(api, cls["id"], s["id"])
    names = await api.client.get(f"/internal/v1/batches/{batch}/student-names", headers=INTERNAL)
    one = await api.client.get(f"/internal/v1/associations/essay/{essay}", headers=INTERNAL)
    for person in (names.json()[0]["student_person_name"], one.json()["student_person_name"]):
        assert person == {**pseudonym, "legal_full_name": f"Protected {pseudonym['last_name']}"}
    outside = str(api.events()) + internal.text + names.text + one.text
    for value in (FIRST, LAST, LEGAL, EMAIL, ALIAS):
        assert value not in outside
    created = [e["data"] for e in api.events() if e["event_type"] == CREATED]
    assert (created[0]["first_name"], created[0]["last_name"]) == tuple(pseudonym.values())

    r = await api.client.put(
        f"/v1/classes/students/{s['id']}", json={"protected_identity": False}, headers=A
    )
    assert r.status_code == 200
    assert r.json()["protected_identity"] is False
    [lifted] = [e["data"] for e in api.events() if e["event_type"] == UPDATED]
    assert (lifted["first_name"], lifted["last_name"], lifted["student_email"]) == (
        FIRST,
        LAST,
        EMAIL,
    )
    bad = await api.client.put(
        f"/v1/classes/students/{s['id']}", json={"protected_identity": "yes"}, headers=A
    )
    assert_problem(bad, 400, "VALIDATION_ERROR")


async def test_the_new_routes_are_in_the_openapi_document(memory_api: ApiHarness) -> None:
    api = memory_api
    paths = (await api.client.get("/schema/openapi.json")).json()["paths"]
    erasure = paths["/v1/classes/students/{student_id}/erasure"]["post"]
    export = paths["/v1/classes/students/{student_id}/export"]["get"]
    assert {"200", "404", "409"} <= set(erasure["responses"])
    assert {"200", "404"} <= set(export["responses"])
    student = (await api.client.get("/schema/openapi.json")).json()["components"]["schemas"]
    assert {"protected_identity", "is_erased", "erased_at"} <= set(
        student["StudentOut"]["properties"]
    )


async def test_erasure_is_a_version_and_honours_if_match(api: ApiHarness) -> None:
    """Contract §8 for erasure: 412 (nothing erased, nothing published) when ``If-Match``
    names another version; the erasure answers the new version in ``ETag`` and the body, and
    its two events carry it as ``aggregate_version``."""
    cls = await api.create_class()
    s = await _student(api, [cls["id"]])
    path = f"/v1/classes/students/{s['id']}/erasure"
    assert s["version"] == 1
    before = len(api.events())
    stale = await api.client.post(path, headers={**A, "If-Match": '"7"'})
    assert_problem(stale, 412, "PRECONDITION_FAILED")
    assert_problem(
        await api.client.post(path, headers={**A, "If-Match": "7"}), 400, "VALIDATION_ERROR"
    )
    assert (await api.client.get(f"/v1/classes/students/{s['id']}", headers=A)).json() == s
    assert len(api.events()) == before

    r = await api.client.post(path, headers={**A, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    events = api.events()[before:]
    assert [e["event_type"] for e in events] == [UPDATED, ERASED]
    assert [e["metadata"]["aggregate_version"] for e in events] == [2, 2]

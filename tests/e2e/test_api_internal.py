"""``/internal/v1`` routes: trusted service reads (contract §3.3)."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from adapters_sql.envelopes import ENVELOPES
from class_api.app import create_app
from class_core.testing import memory_runtime
from tests.e2e.conftest import (
    INTERNAL,
    INTERNAL_KEY,
    A,
    ApiHarness,
    assert_problem,
    fields_of,
    settings_for,
)


async def _decided_batch(
    api: ApiHarness,
) -> tuple[dict[str, str], UUID, UUID, UUID, dict[str, str]]:
    cls = await api.create_class(name="Klass 8C")
    ada = await api.create_student(
        first="Ada", last="Lovelace", legal="Augusta Ada King", class_ids=[cls["id"]]
    )
    decided, pending = uuid4(), uuid4()
    batch = api.seed_batch(cls["id"], [(decided, UUID(ada["id"]), 0.8), (pending, None, 0.0)])
    r = await api.client.post(
        f"/v1/batches/{batch}/student-associations/confirm",
        json={"associations": [{"essay_id": str(decided), "confirmed": True}]},
        headers=A,
    )
    assert r.status_code == 200
    return cls, batch, decided, pending, ada


async def test_student_names_lists_decided_essays_only(api: ApiHarness) -> None:
    _, batch, decided, _, ada = await _decided_batch(api)
    r = await api.client.get(f"/internal/v1/batches/{batch}/student-names", headers=INTERNAL)
    assert r.status_code == 200
    assert r.json() == [
        {
            "essay_id": str(decided),
            "student_id": ada["id"],
            "student_person_name": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "legal_full_name": "Augusta Ada King",
            },
        }
    ]
    unknown = await api.client.get(
        f"/internal/v1/batches/{uuid4()}/student-names", headers=INTERNAL
    )
    assert unknown.status_code == 200
    assert unknown.json() == []


async def test_essay_association(api: ApiHarness) -> None:
    _, _, decided, pending, ada = await _decided_batch(api)
    r = await api.client.get(f"/internal/v1/associations/essay/{decided}", headers=INTERNAL)
    assert r.status_code == 200
    assert r.json()["student_id"] == ada["id"]
    assert r.json()["essay_id"] == str(decided)
    for essay in (pending, uuid4()):
        missing = await api.client.get(f"/internal/v1/associations/essay/{essay}", headers=INTERNAL)
        assert_problem(missing, 404, "RESOURCE_NOT_FOUND")
    bad = await api.client.get("/internal/v1/associations/essay/xyz", headers=INTERNAL)
    assert fields_of(assert_problem(bad, 400, "VALIDATION_ERROR")) == ["essay_id"]


async def test_class_info(api: ApiHarness) -> None:
    cls, batch, _, _, _ = await _decided_batch(api)
    unknown = uuid4()
    ids = f"{str(batch).upper()},{batch}, {unknown}"
    r = await api.client.get(
        "/internal/v1/batches/class-info", params={"batch_ids": ids}, headers=INTERNAL
    )
    assert r.status_code == 200
    assert r.json() == {
        str(batch): {"class_id": cls["id"], "class_name": "Klass 8C"},
        str(unknown): None,
    }
    too_many = ",".join(str(uuid4()) for _ in range(101))
    for value in ("", "nope", f"{batch},nope", too_many):
        bad = await api.client.get(
            "/internal/v1/batches/class-info", params={"batch_ids": value}, headers=INTERNAL
        )
        assert fields_of(assert_problem(bad, 400, "VALIDATION_ERROR")) == ["batch_ids"], value
    missing = await api.client.get("/internal/v1/batches/class-info", headers=INTERNAL)
    assert fields_of(assert_problem(missing, 400, "VALIDATION_ERROR")) == ["batch_ids"]
    hundred = ",".join(str(uuid4()) for _ in range(100))
    ok = await api.client.get(
        "/internal/v1/batches/class-info", params={"batch_ids": hundred}, headers=INTERNAL
    )
    assert len(ok.json()) == 100
    # A repeated parameter adds its ids to the others' (none is dropped).
    repeated = await api.client.get(
        "/internal/v1/batches/class-info",
        params=[("batch_ids", str(batch)), ("batch_ids", f"{unknown}")],
        headers=INTERNAL,
    )
    assert repeated.status_code == 200
    assert set(repeated.json()) == {str(batch), str(unknown)}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Service-ID": "svc"},
        {"X-Internal-API-Key": INTERNAL_KEY},
        {"X-Internal-API-Key": INTERNAL_KEY, "X-Service-ID": ""},
        {"X-Internal-API-Key": "wrong", "X-Service-ID": "svc"},
        {"X-Internal-API-Key": INTERNAL_KEY + "x", "X-Service-ID": "svc"},
        {"X-User-ID": "teacher-a"},
    ],
)
async def test_internal_routes_need_key_and_service(
    memory_api: ApiHarness, headers: dict[str, str]
) -> None:
    batch = uuid4()
    for path in (
        f"/internal/v1/batches/{batch}/student-names",
        f"/internal/v1/associations/essay/{uuid4()}",
        f"/internal/v1/batches/class-info?batch_ids={batch}",
    ):
        r = await memory_api.client.get(path, headers=headers)
        assert_problem(r, 401, "AUTHENTICATION_REQUIRED")


async def test_internal_routes_are_closed_without_a_configured_key() -> None:
    app = create_app(
        settings_for(internal_api_key=None), runtime=memory_runtime(renderer=ENVELOPES)
    )
    async with AsyncTestClient(app) as client:
        for headers in (INTERNAL, {"X-Internal-API-Key": "", "X-Service-ID": "svc"}):
            r = await client.get(f"/internal/v1/batches/{uuid4()}/student-names", headers=headers)
            assert_problem(r, 401, "AUTHENTICATION_REQUIRED")
            roster = await client.get(f"/v1/classes/{uuid4()}/roster", headers=headers)
            assert_problem(roster, 401, "AUTHENTICATION_REQUIRED")

"""Schemathesis as owner B against owner A's real objects, on PostgreSQL.

``test_api_schemathesis.py`` checks conformance on the in-memory adapters, where generated ids
never name anything. Here every generated call is made as owner B with owner A's real ids put
into its path, its ``class_id``/``batch_ids`` query and its body's id fields: whatever the rest
of the call looks like, it must not succeed, must not fail with a 5xx, and must not carry a
byte of A's data; and A's data must be exactly as it was after the whole run.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.python import asgi
from sqlalchemy import text

from adapters_sql import build_sql_runtime, create_engine
from class_api.app import create_app
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.imports import RosterRow, import_roster
from class_core.use_cases.matching import ConfirmItem, confirm_associations, ingest_suggestions
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from tests.e2e.conftest import B, settings_for
from tests.support.postgres import PgDatabaseFactory

OWNER_A = "teacher-a-bola"
A_CLASS, A_FIRST, A_LAST = "Pangolin Prep 7Q", "Ottoline", "Quokkason"
A_EMAIL = "ottoline.q@owner-a.example"
ID_LISTS = ("class_ids", "add_class_ids", "remove_class_ids")


class World:
    url: str
    a_class: str
    a_student: str
    a_batch: str
    a_essay: str
    a_open_essay: str
    a_import: str
    secrets: list[str]
    before: list[Any]


async def _a_state(url: str) -> list[Any]:
    """Everything of A's, straight from the database."""
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            state = []
            for sql in (
                "SELECT id, name, course_code, updated_at FROM cms_classes "
                "WHERE owner_id = :a ORDER BY id",
                "SELECT id, first_name, last_name, email, updated_at FROM cms_students "
                "WHERE owner_id = :a ORDER BY id",
                "SELECT class_id, student_id FROM cms_class_students ORDER BY 1, 2",
                "SELECT essay_id, student_id, validation_status, validated_by "
                "FROM cms_essay_associations ORDER BY essay_id",
                "SELECT batch_id, status FROM cms_batches ORDER BY batch_id",
                "SELECT import_id, created, updated, removed, undone_at FROM cms_imports "
                "WHERE owner_id = :a ORDER BY import_id",
            ):
                state.append([tuple(r) for r in await conn.execute(text(sql), {"a": OWNER_A})])
            return state
    finally:
        await engine.dispose()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(pg_database_factory: PgDatabaseFactory) -> World:
    w = World()
    w.url = await pg_database_factory(migrated=True)
    engine = create_engine(w.url, pool_size=2, max_overflow=0)
    try:
        rt = build_sql_runtime(engine)
        ctx = RequestContext(OWNER_A, uuid4())
        cls = await create_class(rt, ctx, CreateClass(A_CLASS, ["SV1"]))
        student = await create_student(
            rt, ctx, CreateStudent(PersonName(A_FIRST, A_LAST), A_EMAIL, [cls.id])
        )
        essay, open_essay, batch = uuid4(), uuid4(), uuid4()
        await ingest_suggestions(
            rt,
            SuggestionsMessage(
                str(uuid4()),
                uuid4(),
                batch,
                cls.id,
                "SV1",
                (
                    EssayMatch(essay, (Suggestion(student.id, 0.9, ("name",)),)),
                    EssayMatch(open_essay),
                ),
            ),
        )
        await confirm_associations(rt, ctx, batch, [ConfirmItem(essay, True)])
        imported = await import_roster(
            rt, ctx, cls.id, [RosterRow(2, "Imogen", A_LAST, "imogen.q@owner-a.example")]
        )
        assert imported.import_id is not None
        w.a_import = str(imported.import_id)
    finally:
        await engine.dispose()
    w.a_class, w.a_student, w.a_batch = str(cls.id), str(student.id), str(batch)
    w.a_essay, w.a_open_essay = str(essay), str(open_essay)
    w.secrets = [
        w.a_class, w.a_student, w.a_batch, w.a_essay, w.a_open_essay,
        A_CLASS, A_FIRST, A_LAST, A_EMAIL, OWNER_A, w.a_import, "imogen.q",
    ]  # fmt: skip
    w.before = await _a_state(w.url)
    return w


@pytest.fixture(scope="module")
def pg_app(world: World) -> Any:
    app = create_app(settings_for(use_mock_repository=False, database_url=world.url))
    yield app
    asgi.shutdown_lifespans()  # close the app's engine before the database is dropped


def _inject(case: schemathesis.Case[Any], w: World) -> bool:
    """Put A's ids wherever the call takes an id; whether anything was put."""
    by_name = {
        "class_id": w.a_class,
        "student_id": w.a_student,
        "batch_id": w.a_batch,
        "essay_id": w.a_essay,
        "import_id": w.a_import,
    }
    injected = False
    for name in list(case.path_parameters or {}):
        case.path_parameters[name] = by_name[name]
        injected = True
    if case.query:
        if "class_id" in case.query:
            case.query["class_id"] = w.a_class
            injected = True
        if "batch_ids" in case.query:
            case.query["batch_ids"] = w.a_batch
            injected = True
    body = case.body
    if isinstance(body, dict):
        for name in ID_LISTS:
            if isinstance(body.get(name), list) and body[name]:
                body[name] = [w.a_class]
                injected = True
        items = body.get("associations")
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    item["essay_id"] = w.a_open_essay
                    if "student_id" in item:
                        item["student_id"] = w.a_student
    return injected


# The document is the same whatever the storage; the calls go to the PostgreSQL app (``app=``).
schema = schemathesis.openapi.from_asgi("/schema/openapi.json", create_app(settings_for()))


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_calls_as_owner_b_never_reach_owner_a(
    case: schemathesis.Case[Any], world: World, pg_app: Any
) -> None:
    injected = _inject(case, world)
    headers = {**dict(case.headers or {}), **B}
    headers.pop("X-Internal-API-Key", None)  # B is a user, not a service
    response = case.call(headers=headers, app=pg_app)
    case.validate_response(response, checks=[checks.not_a_server_error])
    if injected and case.method.upper() not in ("OPTIONS", "HEAD"):  # those carry no data
        assert not 200 <= response.status_code < 300, (
            f"{case.method} {case.formatted_path} as B with A's ids: {response.status_code}"
        )
    seen = (response.text + repr(dict(response.headers))).lower()
    for secret in world.secrets:
        assert secret.lower() not in seen, f"A's {secret!r} in {case.method} {case.path}"


async def test_owner_a_data_is_unchanged_after_the_fuzzing(world: World) -> None:
    assert await _a_state(world.url) == world.before
    UUID(world.a_class)  # the world was built (the fixture ran for the fuzzing too)

"""Driver errors classified precisely (contract §6): a client-side parameter or data error is
the caller's fault, not a database outage, and one message may name any number of students.

asyncpg raises its ``DataError`` (a value the parameter's type cannot hold) and its refusal of
more than 32,767 arguments as subclasses of its ``InterfaceError``, which SQLAlchemy wraps like
a lost connection. Counting them as outages made the consumer retry such a message forever and
the API answer 503.
"""

from __future__ import annotations

from uuid import uuid4

import pytest
from sqlalchemy import Integer, bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql import build_sql_runtime
from adapters_sql.errors import is_unavailable, translate_errors
from adapters_sql.schema import class_students
from class_core.errors import DependencyUnavailableError
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.matching import IngestOutcome, ingest_suggestions
from class_core.use_cases.students import CreateStudent, PersonName, create_student


async def test_a_parameter_the_driver_refuses_is_not_an_outage(clean_pg: AsyncEngine) -> None:
    statement = select(bindparam("n", type_=Integer))
    async with clean_pg.connect() as conn:
        with pytest.raises(Exception) as raised, translate_errors():  # noqa: PT011
            await conn.execute(statement, {"n": 2**40})  # no int4 holds it
    assert "invalid input for query argument" in str(raised.value)
    assert not isinstance(raised.value, DependencyUnavailableError)
    assert not is_unavailable(raised.value)
    # The connection is fine: the same engine keeps working.
    async with clean_pg.connect() as conn:
        assert list(await conn.execute(statement, {"n": 7})) == [(7,)]


async def test_too_many_arguments_for_one_statement_is_not_an_outage(
    clean_pg: AsyncEngine,
) -> None:
    ids = [uuid4() for _ in range(32_768)]
    statement = select(class_students.c.class_id).where(
        class_students.c.student_id.in_(bindparam("ids", expanding=True))
    )
    async with clean_pg.connect() as conn:
        with pytest.raises(Exception) as raised, translate_errors():  # noqa: PT011
            await conn.execute(statement, {"ids": ids})
    assert "32767" in str(raised.value)
    assert not is_unavailable(raised.value)


async def test_a_message_suggesting_more_than_32767_students_is_stored(
    clean_pg: AsyncEngine,
) -> None:
    rt = build_sql_runtime(clean_pg)
    ctx = RequestContext(f"teacher-{uuid4()}")
    cls = await create_class(rt, ctx, CreateClass("Crowded", ["ENG5"]))
    ada = await create_student(rt, ctx, CreateStudent(PersonName("Ada", "L"), None, [cls.id]))
    strangers = [Suggestion(uuid4(), 0.9, ()) for _ in range(32_800)]
    essays = [
        EssayMatch(uuid4(), (*strangers[:16_400], Suggestion(ada.id, 0.3, ()))),
        EssayMatch(uuid4(), tuple(strangers[16_400:])),
    ]
    batch_id = uuid4()
    message = SuggestionsMessage(
        message_id=str(uuid4()),
        correlation_id=uuid4(),
        batch_id=batch_id,
        class_id=cls.id,
        course_code="ENG5",
        matches=tuple(essays),
    )
    result = await ingest_suggestions(rt, message)
    assert result.outcome is IngestOutcome.STORED
    async with rt.uow() as uow:
        stored = {
            a.essay_id: a.suggested_student_id for a in await uow.batches.associations(batch_id)
        }
    assert stored == {essays[0].essay_id: ada.id, essays[1].essay_id: None}

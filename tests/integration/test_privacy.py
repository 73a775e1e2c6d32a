"""Erasure leaves no trace (contract §10) on PostgreSQL and SQLite, and the registry of
where personal data lives covers every text column of the migrated schema."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_messaging.relay import OutboxRelay
from adapters_messaging.sink import Delivery
from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine, upgrade
from adapters_sql.privacy import PERSONAL, SAFE, SqlPersonalData
from adapters_sql.schema import VERSION_TABLE, metadata
from class_core.errors import StudentErasedError
from class_core.events import STUDENT_UPDATED, OutboxMessage
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.runtime import RequestContext, Runtime
from class_core.testing import FixedClock, RecordingNotifier
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.imports import ImportOptions, RosterRow, import_students
from class_core.use_cases.matching import ConfirmItem, confirm_associations, ingest_suggestions
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    erase_student,
    export_student,
    update_student,
)

OWNER = "teacher-privacy"
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
FIRST, OLD_LAST, LAST = "Zephyrine", "Quillbottom", "Quillfeather"
LEGAL, OLD_LEGAL = "Zephyrine Ottilia Quillfeather", "Zephyrine Ottilia Quillbottom"
EMAIL = "zephyrine.quillfeather@skolan.example"
EXTERNAL_ID = "SIS-ZQ-4711"  # the school system's id of the student (§9.1): personal
FORMER = (FIRST, OLD_LAST, LAST, LEGAL, OLD_LEGAL, EMAIL, EXTERNAL_ID)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}")
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def engine(request: pytest.FixtureRequest) -> AsyncEngine:
    name = "clean_pg" if request.param == "postgres" else "sqlite_engine"
    found: AsyncEngine = request.getfixturevalue(name)
    return found


class AcceptingSink:
    """A sink that acknowledges everything (the relay's view of a healthy broker)."""

    def __init__(self) -> None:
        self.delivered: list[OutboxMessage] = []

    async def publish(self, messages: Sequence[OutboxMessage]) -> Sequence[Delivery]:
        self.delivered += messages
        return [Delivery.delivered() for _ in messages]


async def _text_columns(engine: AsyncEngine) -> dict[str, list[str]]:
    """Every table of the live schema with its columns (reflected, not from our metadata)."""

    def reflect(conn: sa.Connection) -> dict[str, list[str]]:
        inspector = sa.inspect(conn)
        return {
            t: [c["name"] for c in inspector.get_columns(t)] for t in inspector.get_table_names()
        }

    async with engine.connect() as conn:
        return await conn.run_sync(reflect)


async def _rows_holding(
    engine: AsyncEngine, values: Sequence[str], unless: Sequence[str] = ()
) -> list[str]:
    """``table.column holds value`` for every cell of every table holding one of ``values``
    (rows that hold one of ``unless`` anywhere, e.g. another student's id, left out)."""
    tables = await _text_columns(engine)
    found: list[str] = []
    folded = [v.casefold() for v in values]
    async with engine.connect() as conn:
        for table, columns in tables.items():
            result = await conn.execute(sa.text(f'SELECT * FROM "{table}"'))
            for row in result.mappings():
                cells = {
                    c: row[c] if isinstance(row[c], str) else json.dumps(row[c], default=str)
                    for c in columns
                }
                if any(u in text for u in unless for text in cells.values()):
                    continue
                for column, text in cells.items():
                    for v in folded:
                        if v in text.casefold():
                            found.append(f"{table}.{column} holds {v!r}")
    return found


async def test_erasure_leaves_no_trace_in_any_table(engine: AsyncEngine) -> None:
    clock = FixedClock()
    rt: Runtime = build_sql_runtime(engine, clock=clock, notifier=RecordingNotifier())
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Klass 9Q", ["ENG5"]))
    s = await create_student(
        rt,
        ctx,
        CreateStudent(
            PersonName(FIRST, OLD_LAST, OLD_LEGAL), EMAIL, [cls.id], external_id=EXTERNAL_ID
        ),
    )
    clock.advance(minutes=1)
    namesake = await create_student(
        rt, ctx, CreateStudent(PersonName(FIRST, "Namesake"), None, [cls.id])
    )
    await update_student_names(rt, ctx, s.id, LAST, None)
    essay_id, batch_id = uuid4(), uuid4()
    reasons = (f"signed '{FIRST} {LAST}'", f"email {EMAIL} in header", "handwriting")
    await ingest_suggestions(
        rt,
        SuggestionsMessage(
            str(uuid4()),
            uuid4(),
            batch_id,
            cls.id,
            "ENG5",
            (EssayMatch(essay_id, (Suggestion(s.id, 0.93, reasons),)),),
        ),
    )
    await confirm_associations(rt, ctx, batch_id, [ConfirmItem(essay_id, True)])
    store = SqlOutboxStore(engine)
    sink = AcceptingSink()
    relay = OutboxRelay(store, sink, clock=clock)
    published = await relay.run_once()
    assert published > 0
    assert any(FIRST in m.payload for m in sink.delivered)
    # One more change waits unpublished in the outbox.
    await update_student_names(rt, ctx, s.id, None, LEGAL)
    [waiting] = [m.message for m in await store.fetch_ready(clock.now(), 100)]
    assert waiting.topic == STUDENT_UPDATED
    assert EMAIL in waiting.payload
    assert EXTERNAL_ID in waiting.payload
    assert await _rows_holding(engine, FORMER)

    clock.advance(minutes=1)
    await erase_student(rt, ctx, s.id)

    assert await _rows_holding(engine, FORMER, unless=(str(namesake.id), namesake.id.hex)) == []
    assert await _rows_holding(engine, FORMER[1:]) == []
    pending = {r.message.event_id: r.message for r in await store.fetch_ready(clock.now(), 100)}
    rewritten = json.loads(pending[waiting.event_id].payload)["data"]
    assert (rewritten["first_name"], rewritten["last_name"]) == ("ERASED", "STUDENT")
    assert rewritten["student_email"] is None
    # The anonymous record keeps its decision; the namesake keeps its name.
    export = await export_student(rt, ctx, s.id)
    [association] = export.associations
    assert association.student_id == s.id
    assert association.match_reasons == ("handwriting",)
    assert await _rows_holding(engine, ["Namesake"])
    # What is left is published as usual.
    assert await relay.run_once() == len(pending)


async def update_student_names(
    rt: Runtime, ctx: RequestContext, student_id: Any, last: str | None, legal: str | None
) -> None:
    if last is not None:
        await update_student(rt, ctx, student_id, UpdateStudent(last_name=last))
    if legal is not None:
        await update_student(rt, ctx, student_id, UpdateStudent(legal_full_name=legal))


def _is_text(column: sa.Column[Any]) -> bool:
    return isinstance(column.type, sa.String | sa.JSON)


async def test_every_text_column_is_registered_as_personal_or_safe(clean_pg: AsyncEngine) -> None:
    """A new table or column that can hold text must be registered (``adapters_sql.privacy``):
    as personal data with the step of erasure that clears it, or as safe with a reason."""

    def reflect(conn: sa.Connection) -> tuple[set[str], set[tuple[str, str]]]:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        return tables, {
            (t, c["name"])
            for t in tables
            for c in inspector.get_columns(t)
            if isinstance(c["type"], sa.String | sa.JSON | sa.ARRAY)
        }

    async with clean_pg.connect() as conn:
        tables, live = await conn.run_sync(reflect)
    declared = {(t.name, c.name) for t in metadata.sorted_tables for c in t.columns if _is_text(c)}
    registered = set(PERSONAL) | set(SAFE)
    assert not set(PERSONAL) & set(SAFE)
    assert sorted((live | declared) - registered) == [], "register these in adapters_sql.privacy"
    assert tables >= {t.name for t in metadata.sorted_tables} | {VERSION_TABLE}
    assert set(PERSONAL.values()) <= SqlPersonalData.HANDLES


async def test_sqlite_holds_no_column_the_registry_does_not_know(
    sqlite_engine: AsyncEngine,
) -> None:
    """SQLite stores UUIDs as text, so its types say little: its tables and columns must be
    exactly those of the schema whose text columns the test above checks."""
    live = await _text_columns(sqlite_engine)
    declared = {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables}
    live.pop(VERSION_TABLE)
    assert {t: set(c) for t, c in live.items() if not t.startswith("sqlite_")} == declared


async def test_a_put_that_read_before_a_concurrent_erasure_changes_nothing(
    clean_pg: AsyncEngine,
) -> None:
    """PostgreSQL: a student change whose transaction read the student before an erasure
    committed is refused (409) and publishes nothing; the erased record stays erased."""
    rt = build_sql_runtime(clean_pg)
    ctx = RequestContext(OWNER)
    s = await create_student(rt, ctx, CreateStudent(PersonName(FIRST, LAST), EMAIL))
    store = SqlOutboxStore(clean_pg)
    async with rt.uow() as late:
        stale = await late.students.get(OWNER, s.id)
        assert stale is not None
        await erase_student(rt, ctx, s.id)
        stale.first_name = "Restored"
        with pytest.raises(StudentErasedError):
            await late.students.update(stale)
    found = await export_student(rt, ctx, s.id)
    assert (found.student.first_name, found.student.is_erased) == ("ERASED", True)
    assert not [
        r for r in await store.fetch_ready(FAR_FUTURE, 100) if "Restored" in r.message.payload
    ]


async def test_an_import_records_the_history_of_every_student(engine: AsyncEngine) -> None:
    """A roster import's history entries (created, added_to_class, by ``import:<id>``) are
    written in bulk (a COPY on PostgreSQL once there are enough of them)."""
    rt = build_sql_runtime(engine)
    ctx = RequestContext(OWNER)
    cls = await create_class(rt, ctx, CreateClass("Klass 9I", ["ENG5"]))
    rows = [RosterRow(i + 2, f"F{i}", f"L{i}", f"p{i}@skolan.example") for i in range(50)]
    rows.append(RosterRow(52, "Pia", "Protected", "pia@skolan.example", protected_identity="true"))
    summary = await import_students(rt, ctx, rows, ImportOptions(class_id=cls.id))
    assert summary.created == 51
    async with rt.read() as uow:
        by_email = await uow.students.by_emails(OWNER, ["p7@skolan.example", "pia@skolan.example"])
        entries = await uow.history.of_student(by_email["p7@skolan.example"].id)
    by = f"import:{summary.import_id}"  # contract §10
    assert [(e.action.value, e.by, e.subject_id) for e in entries] == [
        ("created", by, None),
        ("added_to_class", by, cls.id),
    ]
    assert by_email["pia@skolan.example"].protected_identity is True
    assert not by_email["p7@skolan.example"].protected_identity

"""Sync mode, import records, undo and the history's retention in the core (contract §9.4),
on the in-memory adapters."""

from __future__ import annotations

from uuid import UUID

import pytest

from class_core.errors import ImportThresholdExceededError, ValidationError
from class_core.import_records import ImportAction, ImportSource
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.import_history import list_imports, purge_import_history, undo_import
from class_core.use_cases.imports import (
    ImportOptions,
    RosterRow,
    email_key,
    file_emails,
    import_roster,
    import_students,
)
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from class_runtime import sweep_once
from tests.unit.world import World


def _row(line: int, first: str, email: str, aliases: str | None = None) -> RosterRow:
    return RosterRow(line, first, "Last", email, aliases=aliases)


async def _class_of(w: World, n: int) -> tuple[UUID, list[str]]:
    cls = await create_class(w.rt, w.ctx(), CreateClass("9A", ["ENG5"]))
    emails = [f"m{i}@s.example" for i in range(n)]
    for i, email in enumerate(emails):
        await create_student(
            w.rt, w.ctx(), CreateStudent(PersonName(f"M{i}", "Last"), email, [cls.id])
        )
    await create_student(w.rt, w.ctx(), CreateStudent(PersonName("No", "Email"), None, [cls.id]))
    return cls.id, emails


def test_options_and_file_emails() -> None:
    with pytest.raises(ValidationError):
        ImportOptions(max_remove_percent=100.5)
    with pytest.raises(ValidationError):
        ImportOptions(sync=True)
    assert email_key("  Ada@Example.COM ") == "ada@example.com"
    assert email_key(" NOT AN EMAIL ") == "not an email"
    rows = [_row(2, "A", "A@x.example"), _row(3, "", "bad"), _row(4, "C", "  ")]
    assert file_emails(rows) == {"a@x.example", "bad"}


async def test_a_chunked_sync_refuses_before_the_first_chunk_is_written() -> None:
    w = World()
    class_id, emails = await _class_of(w, 4)
    rows = [_row(i + 2, "Renamed", e) for i, e in enumerate(emails[:2])]
    events = len(w.envelopes())
    options = ImportOptions(class_id=class_id, sync=True, max_remove_percent=49, chunk_size=1)
    with pytest.raises(ImportThresholdExceededError) as refused:
        await import_students(w.rt, w.ctx(), rows, options)
    assert (refused.value.removals, refused.value.counted) == (2, 4)
    assert len(w.envelopes()) == events
    assert w.store.tables.imports == {}
    # At 50 % it goes: both chunks and the removals under one import id.
    options = ImportOptions(class_id=class_id, sync=True, max_remove_percent=50, chunk_size=1)
    summary = await import_students(w.rt, w.ctx(), rows, options)
    assert (summary.updated, summary.removed) == (2, 2)
    (record,) = w.store.tables.imports.values()
    assert record.import_id == summary.import_id
    assert (record.source, record.updated, record.removed) == (ImportSource.CLI, 2, 2)
    items = w.store.tables.import_items[record.import_id]
    assert (
        sorted(i.action for i in items) == [ImportAction.REMOVED] * 2 + [ImportAction.UPDATED] * 2
    )


async def test_an_http_import_is_one_transaction_and_undo_restores_aliases() -> None:
    w = World()
    class_id, emails = await _class_of(w, 1)
    commits = w.store.commits
    rows = [_row(2, "Aliased", emails[0], "Alpha|Beta"), _row(3, "New", "n@s.example")]
    summary = await import_roster(w.rt, w.ctx(), class_id, rows)
    assert w.store.commits == commits + 1
    assert summary.import_id is not None
    student = next(s for s in w.store.tables.students.values() if s.email == emails[0])
    assert student.aliases == ("Alpha", "Beta")
    result = await undo_import(w.rt, w.ctx(), summary.import_id)
    assert (result.reverted, result.skipped) == (2, ())
    student = w.store.tables.students[student.id]
    assert (student.first_name, student.aliases) == ("M0", ())
    assert all(s.email != "n@s.example" for s in w.store.tables.students.values())
    page = await list_imports(w.rt, w.ctx(), 10, 0)
    assert page.items[0].undone_at == w.clock.now()


async def test_the_history_is_purged_after_the_retention() -> None:
    w = World()
    class_id, _ = await _class_of(w, 0)
    first = await import_roster(w.rt, w.ctx(), class_id, [_row(2, "A", "a@s.example")])
    w.clock.advance(days=20)
    second = await import_roster(w.rt, w.ctx(), class_id, [_row(2, "B", "b@s.example")])
    w.clock.advance(days=15)
    assert await purge_import_history(w.rt, 30) == 1
    assert set(w.store.tables.imports) == {second.import_id}
    assert first.import_id not in w.store.tables.import_items
    assert await purge_import_history(w.rt, 30) == 0


async def test_the_periodic_job_purges_old_imports_and_feed_entries() -> None:
    """``sweep_once`` (the API's in-process job and class-scheduler's) applies both
    retentions of ``CHANGES_RETENTION_DAYS``: the import history and the change feed."""
    w = World()
    class_id, _ = await _class_of(w, 0)
    old = await import_roster(w.rt, w.ctx(), class_id, [_row(2, "A", "a@s.example")])
    assert w.store.tables.changes
    w.clock.advance(days=w.rt.feed.retention_days + 1)
    young = await import_roster(w.rt, w.ctx(), class_id, [_row(2, "B", "b@s.example")])
    await sweep_once(w.rt)
    assert set(w.store.tables.imports) == {young.import_id}
    assert old.import_id not in w.store.tables.import_items
    # What is left of the feed is the young import's changes (its student and the class).
    assert {owner for owner, _ in w.store.tables.changes.values()} == {w.ctx().user_id}
    assert len(w.store.tables.changes) == 2

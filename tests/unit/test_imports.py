"""The roster import use case on the in-memory adapters (contract §7, §5.2)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

import pytest

from adapters_sql.envelopes import ENVELOPES
from class_cli.import_pipeline import import_students_overlapped
from class_core.errors import DependencyUnavailableError, NotFoundError
from class_core.events import (
    CLASS_CREATED,
    STUDENT_CREATED,
    STUDENT_UPDATED,
    TEACHER_NOTIFICATION,
)
from class_core.model import SchoolClass, Student
from class_core.runtime import RequestContext, Runtime
from class_core.testing import (
    FixedClock,
    InMemoryOutboxStore,
    InMemoryStore,
    InMemoryUnitOfWork,
    RecordingNotifier,
    memory_runtime,
)
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.imports import (
    ImportInterruptedError,
    ImportOptions,
    ImportSummary,
    RosterRow,
    import_students,
)
from class_core.use_cases.students import CreateStudent, PersonName, create_student

OWNER = "teacher-1"


# import_students or class_cli's import_students_overlapped (the same signature)
Driver = Callable[..., Awaitable[ImportSummary]]
DRIVERS = {"sequential": import_students, "overlapped": import_students_overlapped}


class Env:
    def __init__(self, driver: Driver = import_students) -> None:
        self.import_students = driver
        self.store = InMemoryStore(ENVELOPES)
        self.clock = FixedClock()
        self.notifier = RecordingNotifier()
        self.rt: Runtime = memory_runtime(self.store, self.clock, self.notifier)

    def ctx(self, owner: str = OWNER) -> RequestContext:
        return RequestContext(owner)

    async def run(
        self, rows: Sequence[RosterRow], owner: str = OWNER, **options: Any
    ) -> ImportSummary:
        return await self.import_students(self.rt, self.ctx(owner), rows, ImportOptions(**options))

    def topics(self) -> list[str]:
        return [m.topic for m in InMemoryOutboxStore(self.store).messages()]

    def data(self, topic: str) -> list[dict[str, Any]]:
        return [
            json.loads(m.payload)["data"]
            for m in InMemoryOutboxStore(self.store).messages()
            if m.topic == topic
        ]

    def students(self, owner: str = OWNER) -> dict[str, Student]:
        return {
            s.email: s
            for s in self.store.tables.students.values()
            if s.owner_id == owner and s.email is not None
        }

    def classes(self) -> list[SchoolClass]:
        return list(self.store.tables.classes.values())

    def members(self, class_id: UUID) -> set[UUID]:
        return {s for c, s in self.store.tables.memberships if c == class_id}


def row(
    line: int,
    first: str = "Ada",
    last: str = "Lovelace",
    email: str | None = None,
    legal: str | None = None,
    class_name: str | None = None,
    course: str | None = None,
) -> RosterRow:
    return RosterRow(
        line, first, last, email if email is not None else f"s{line}@school.se", legal,
        class_name, course,
    )  # fmt: skip


def counts(s: ImportSummary) -> tuple[int, int, int, int]:
    return (s.created, s.updated, s.unchanged, s.failed)


@pytest.fixture(params=sorted(DRIVERS))
def env(request: pytest.FixtureRequest) -> Env:
    """Each case runs through the core's sequential loop and through the CLI's driver that
    plans a chunk while the previous one is written: the outcome must be the same."""
    return Env(DRIVERS[request.param])


async def test_creates_students_and_classes_with_the_api_events_but_no_student_notifications(
    env: Env,
) -> None:
    rows = [
        row(2, "Ada", "Lovelace", "ADA@School.se ", class_name=" 9a ", course="ENG5"),
        row(3, "Bo", "Ek", "bo@school.se", legal="Bo Karl Ek", class_name="9A", course="ENG5"),
        row(4, "Cy", "Fu", "cy@school.se"),
    ]
    summary = await env.run(rows)

    assert counts(summary) == (3, 0, 0, 0)
    assert summary.classes_created == ["9a"]
    (cls,) = env.classes()
    assert (cls.name, cls.course_code, cls.owner_id) == ("9a", "ENG5", OWNER)
    stored = env.students()
    assert set(stored) == {"ada@school.se", "bo@school.se", "cy@school.se"}
    assert stored["bo@school.se"].legal_full_name == "Bo Karl Ek"
    assert env.members(cls.id) == {stored["ada@school.se"].id, stored["bo@school.se"].id}

    assert env.topics() == [CLASS_CREATED, TEACHER_NOTIFICATION] + [STUDENT_CREATED] * 3
    (note,) = env.data(TEACHER_NOTIFICATION)
    assert note["notification_type"] == "class_created"
    assert [n.notification_type for n in env.notifier.sent] == ["class_created"]
    created = {d["student_email"]: d for d in env.data(STUDENT_CREATED)}
    assert created["ada@school.se"]["class_ids"] == [str(cls.id)]
    assert created["cy@school.se"]["class_ids"] == []
    assert created["ada@school.se"]["created_by_user_id"] == OWNER


async def test_running_the_same_rows_again_changes_nothing(env: Env) -> None:
    rows = [row(i, class_name="9A", course="ENG5") for i in range(2, 12)]
    await env.run(rows)
    events, snapshot = env.topics(), dict(env.store.tables.students)

    again = await env.run(rows)

    assert counts(again) == (0, 0, 10, 0)
    assert again.classes_created == []
    assert env.topics() == events
    assert env.store.tables.students == snapshot


async def test_known_emails_are_updated_only_when_names_differ_or_a_class_is_joined(
    env: Env,
) -> None:
    cls = await create_class(env.rt, env.ctx(), CreateClass("9A", ["ENG5"]))
    for email, legal in (("same@s.se", "Legal Name"), ("renamed@s.se", None), ("joins@s.se", None)):
        await create_student(
            env.rt, env.ctx(), CreateStudent(PersonName("Old", "Name", legal), email)
        )
    before = len(env.topics())
    env.clock.advance(hours=1)

    summary = await env.run(
        [
            row(2, "Old", "Name", "SAME@s.se"),  # empty legal_full_name keeps the stored one
            row(3, "New", "Name", "renamed@s.se"),
            row(4, "Old", "Name", "joins@s.se", class_name="9a"),
        ]
    )

    assert counts(summary) == (0, 2, 1, 0)
    stored = env.students()
    assert stored["same@s.se"].legal_full_name == "Legal Name"
    assert stored["same@s.se"].updated_at < env.clock.now()
    assert stored["renamed@s.se"].first_name == "New"
    assert stored["renamed@s.se"].updated_at == env.clock.now()
    assert stored["joins@s.se"].id in env.members(cls.id)
    assert env.topics()[before:] == [STUDENT_UPDATED, STUDENT_UPDATED]
    renamed, joined = env.data(STUDENT_UPDATED)
    assert (renamed["first_name"], renamed["add_class_ids"]) == ("New", None)
    assert joined["add_class_ids"] == [str(cls.id)]
    assert joined["remove_class_ids"] is None
    assert joined["student_email"] == "joins@s.se"


async def test_bad_rows_are_reported_by_line_and_the_others_imported(env: Env) -> None:
    rows = [
        row(2),
        row(3, first=" ", email="not-an-email"),
        row(5, email="x@huleedu.system"),
        row(6, first="A\tB"),
        row(7, email=""),
        row(8, class_name="9A"),  # a new class needs a course
        row(9, class_name="9B", course="XX1"),
        row(10, course="ENG5"),
        row(11, last="x" * 256),
        row(12),
    ]
    summary = await env.run(rows)

    assert counts(summary) == (2, 0, 0, 8)
    errors = {e.row: e.errors for e in summary.errors}
    assert list(errors) == [3, 5, 6, 7, 8, 9, 10, 11]
    assert errors[3] == (
        "first_name: must not be empty",
        "email: must be an email address with one '@'",
    )
    assert "reserved" in errors[5][0]
    assert errors[6] == ("first_name: must not contain control characters",)
    assert errors[7][0].startswith("email: is required")
    assert errors[8][0].startswith("course_code: is required to create the class")
    assert errors[9][0] == "course_code: unknown course code 'XX1'"
    assert errors[10][0].startswith("class_name: is required")
    assert errors[11][0].startswith("last_name: must be at most 255")
    assert env.classes() == []
    assert set(env.students()) == {"s2@school.se", "s12@school.se"}


async def test_past_1000_row_errors_are_counted_not_listed(env: Env) -> None:
    bad = [row(n, email="") for n in range(2, 1502)]
    rows = [*bad, row(1502, email="good@school.se")]
    summary = await env.run(rows, chunk_size=300)

    assert counts(summary) == (1, 0, 0, 1500)
    assert [e.row for e in summary.errors] == list(range(2, 1002))  # the first 1,000, in order
    assert summary.errors_not_listed == 500
    assert set(env.students()) == {"good@school.se"}


async def test_an_unknown_course_is_echoed_only_when_short(env: Env) -> None:
    summary = await env.run([row(2, class_name="9B", course="Z" * 100_000)])
    assert summary.errors[0].errors[0] == "course_code: unknown course code"


async def test_a_second_occurrence_of_an_email_is_a_row_error_even_across_chunks(
    env: Env,
) -> None:
    rows = [row(2, email="a@s.se"), row(3, email="b@s.se"), row(4, first="Other", email="A@s.se")]
    summary = await env.run(rows, chunk_size=2)

    assert counts(summary) == (2, 0, 0, 1)
    assert summary.errors[0].row == 4
    assert summary.errors[0].errors == ("email: a@s.se already appears on line 2",)
    assert env.students()["a@s.se"].first_name == "Ada"


async def test_a_class_created_in_one_chunk_is_found_by_the_next(env: Env) -> None:
    rows = [
        row(i, class_name="Klass 1" if i % 2 else "KLASS 1 ", course="SV1") for i in range(2, 9)
    ]
    summary = await env.run(rows, chunk_size=3)

    assert counts(summary) == (7, 0, 0, 0)
    (cls,) = env.classes()
    assert len(env.members(cls.id)) == 7
    assert env.topics().count(CLASS_CREATED) == 1


async def test_ambiguous_names_and_course_mismatches_are_row_errors(env: Env) -> None:
    for _ in range(2):
        await create_class(env.rt, env.ctx(), CreateClass("Twin", ["ENG5"]))
    await create_class(env.rt, env.ctx(), CreateClass("Solo", ["ENG6"]))
    await create_class(env.rt, env.ctx("someone-else"), CreateClass("Mine", ["ENG5"]))

    summary = await env.run(
        [
            row(2, class_name="twin"),
            row(3, class_name="Solo", course="ENG5"),
            row(4, class_name="solo"),
            row(5, class_name="Mine", course="SV2"),  # another owner's class is not found
        ]
    )

    assert counts(summary) == (2, 0, 0, 2)
    errors = {e.row: e.errors[0] for e in summary.errors}
    assert errors[2].startswith("class_name: 2 classes are named 'twin'")
    assert errors[3] == "course_code: the class 'Solo' belongs to course ENG6, not ENG5"
    assert summary.classes_created == ["Mine"]


async def test_class_id_puts_everyone_in_that_class_and_must_be_the_owners(env: Env) -> None:
    cls = await create_class(env.rt, env.ctx(), CreateClass("9A", ["ENG5"]))
    await create_student(
        env.rt, env.ctx(), CreateStudent(PersonName("Ada", "Lovelace"), "s2@school.se")
    )

    summary = await env.run([row(2), row(3)], class_id=cls.id)

    assert counts(summary) == (1, 1, 0, 0)
    assert len(env.members(cls.id)) == 2
    with pytest.raises(NotFoundError):
        await env.run([row(2)], owner="someone-else", class_id=cls.id)
    with pytest.raises(NotFoundError):
        await env.run([row(2)], class_id=uuid4())


async def test_dry_run_reports_what_a_real_run_does_and_writes_nothing(env: Env) -> None:
    await create_student(
        env.rt, env.ctx(), CreateStudent(PersonName("Old", "Name"), "s3@school.se")
    )
    rows = [
        row(2, class_name="9A", course="ENG5"),
        row(3, class_name="9a"),
        row(4, email="bad"),
        row(5, class_name="9A", course="ENG6"),
    ]
    tables_before, events_before = env.store.tables, env.topics()

    dry = await env.run(rows, dry_run=True, chunk_size=1)

    assert env.store.tables is tables_before
    assert env.topics() == events_before
    assert env.notifier.sent == []
    real = await env.run(rows, chunk_size=1)
    assert counts(dry) == counts(real) == (1, 1, 0, 2)
    assert dry.errors == real.errors
    assert dry.classes_created == real.classes_created == ["9A"]


async def test_cells_are_stored_as_given(env: Env) -> None:
    formula = '=HYPERLINK("http://evil.example","click")'
    summary = await env.run([row(2, first=formula, last="+1", legal="@SUM(A1)")])

    assert counts(summary) == (1, 0, 0, 0)
    student = env.students()["s2@school.se"]
    assert (student.first_name, student.last_name, student.legal_full_name) == (
        formula,
        "+1",
        "@SUM(A1)",
    )


class _FailingUnitOfWork(InMemoryUnitOfWork):
    async def __aenter__(self) -> Self:
        raise DependencyUnavailableError("The database is unreachable")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


async def test_a_database_outage_reports_the_chunks_already_committed(env: Env) -> None:
    opened = 0

    def flaky() -> InMemoryUnitOfWork:
        nonlocal opened
        opened += 1
        return _FailingUnitOfWork(env.store) if opened == 3 else InMemoryUnitOfWork(env.store)

    rt = memory_runtime(env.store, env.clock, env.notifier)
    rt.uow = flaky
    rows = [row(i) for i in range(2, 12)]
    with pytest.raises(ImportInterruptedError) as caught:
        await env.import_students(rt, env.ctx(), rows, ImportOptions(chunk_size=4))

    summary = caught.value.summary
    assert (summary.created, summary.rows, summary.last_line) == (8, 8, 9)
    assert len(env.students()) == 8
    assert "up to line 9" in caught.value.detail


class _RacingUnitOfWork(InMemoryUnitOfWork):
    """Another writer creates one of the file's students just before the first bulk insert."""

    racer: Student | None = None

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        if _RacingUnitOfWork.racer is not None:
            racer, _RacingUnitOfWork.racer = _RacingUnitOfWork.racer, None
            original = self.students.add_many

            async def add_many(students: Sequence[Student]) -> None:
                self.store.tables.students[racer.id] = racer  # committed elsewhere meanwhile
                self.tables.students[racer.id] = racer
                await original(students)

            self.students.add_many = add_many  # type: ignore[method-assign]
        return self


async def test_a_student_created_concurrently_is_matched_on_retry(env: Env) -> None:
    now = env.clock.now()
    _RacingUnitOfWork.racer = Student(
        uuid4(), OWNER, "Other", "Writer", None, "s3@school.se", now, now
    )
    env.rt.uow = lambda: _RacingUnitOfWork(env.store)

    summary = await env.run([row(2), row(3), row(4)])

    assert counts(summary) == (2, 1, 0, 0)
    assert env.students()["s3@school.se"].first_name == "Ada"


async def test_duplicates_and_classes_are_seen_across_many_small_chunks(env: Env) -> None:
    """Chunks of one record: each planned while the one before it may still be written."""
    rows = [
        row(2, email="a@s.se"),
        row(3, email="b@s.se", class_name="7A", course="ENG5"),
        row(4, email="c@s.se", class_name="7a"),
        row(5, first="Other", email="A@s.se", class_name="7A"),
        row(6, email="d@s.se", class_name="7A", course="SV1"),
        row(7, email="e@s.se", class_name="8B", course="SV1"),
        row(8, email="f@s.se", class_name="8b"),
    ]
    summary = await env.run(rows, chunk_size=1)

    assert counts(summary) == (5, 0, 0, 2)
    assert [e.row for e in summary.errors] == [5, 6]
    assert summary.errors[0].errors == ("email: a@s.se already appears on line 2",)
    assert summary.classes_created == ["7A", "8B"]
    by_name = {c.name: c for c in env.classes()}
    assert len(env.members(by_name["7A"].id)) == 2
    assert len(env.members(by_name["8B"].id)) == 2
    assert env.topics().count(CLASS_CREATED) == 2
    assert (summary.rows, summary.last_line) == (7, 8)


async def test_a_class_created_by_the_import_and_archived_meanwhile_is_not_joined(
    env: Env,
) -> None:
    """A chunk joining a class that the chunk before it created: archived between that
    chunk's commit and this one's write, the row is refused (§9.2) whatever the driver."""

    def archive_7a(summary: ImportSummary) -> None:
        if summary.rows == 2:  # the chunk that created 7A has committed
            for cls in env.store.tables.classes.values():
                if cls.name == "7A":
                    cls.archive(cls.owner_id, env.clock.now(), correlation_id=uuid4())

    rows = [row(2), row(3, class_name="7A", course="ENG5"), row(4, class_name="7A")]
    summary = await env.import_students(
        env.rt, env.ctx(), rows, ImportOptions(chunk_size=1), archive_7a
    )

    assert counts(summary) == (2, 0, 0, 1)
    assert summary.errors[0].row == 4
    assert "CLASS_ARCHIVED" in summary.errors[0].errors[0]
    (cls,) = env.classes()
    assert len(env.members(cls.id)) == 1


class _RaceAtUnitOfWork(InMemoryUnitOfWork):
    """Another writer creates the student with ``email`` just before the bulk insert of the
    chunk that has it (once)."""

    racer: Student | None = None

    @classmethod
    def raced(cls) -> bool:
        return cls.racer is None

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        original = self.students.add_many

        async def add_many(students: Sequence[Student]) -> None:
            racer = _RaceAtUnitOfWork.racer
            if racer is not None and any(s.email == racer.email for s in students):
                _RaceAtUnitOfWork.racer = None
                self.store.tables.students[racer.id] = racer  # committed elsewhere meanwhile
                self.tables.students[racer.id] = racer
            await original(students)

        self.students.add_many = add_many  # type: ignore[method-assign]
        return self


async def test_a_race_lost_by_a_later_chunk_replans_it_and_the_one_after(env: Env) -> None:
    now = env.clock.now()
    _RaceAtUnitOfWork.racer = Student(
        uuid4(), OWNER, "Other", "Writer", None, "s5@school.se", now, now
    )
    env.rt.uow = lambda: _RaceAtUnitOfWork(env.store)

    summary = await env.run([row(i) for i in range(2, 9)], chunk_size=2)

    assert _RaceAtUnitOfWork.raced()
    assert counts(summary) == (6, 1, 0, 0)
    assert (summary.rows, summary.last_line) == (7, 8)
    assert env.students()["s5@school.se"].first_name == "Ada"
    assert len(env.students()) == 7

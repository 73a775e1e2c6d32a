"""``StudentRepository`` on SQL. Reads return memberships by joining them in the same
statement (one round trip), grouped here."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    Text,
    Uuid,
    any_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.mapping import (
    STUDENT_RECORD_COLUMNS,
    count_params,
    like_pattern,
    list_params,
    page_window,
    student_from_row,
    student_record,
    student_row,
)
from adapters_sql.schema import class_students, students
from adapters_sql.transaction import SqlTransaction
from class_core.errors import StudentErasedError
from class_core.model import Page, Student
from class_core.queries import StudentQuery

_members = class_students.alias("m")
_with_classes = students.outerjoin(_members, _members.c.student_id == students.c.id)
_SELECT = select(students, _members.c.class_id).select_from(_with_classes)
_ORDER = (students.c.last_name, students.c.first_name, students.c.id)

_INSERT = insert(students)
_INSERT_MEMBERSHIP = insert(class_students).values(
    class_id=bindparam("class_id"), student_id=bindparam("student_id")
)
_inserted = (
    insert(students)
    .values({c.name: bindparam(c.name, type_=c.type) for c in students.columns})
    .returning(students.c.id)
    .cte("inserted")
)
_PG_INSERT_WITH_MEMBERSHIPS = insert(class_students).from_select(
    ["class_id", "student_id"],
    select(
        func.unnest(bindparam("class_ids", type_=postgresql.ARRAY(Uuid()))),
        _inserted.c.id,
    ),
)
_GET = _SELECT.where(
    students.c.id == bindparam("student_id"), students.c.owner_id == bindparam("owner_id")
)
_GET_MANY = _SELECT.where(students.c.id.in_(bindparam("student_ids", expanding=True)))
_BY_EXTERNAL_IDS = _SELECT.where(
    students.c.owner_id == bindparam("owner_id"),
    students.c.external_id.in_(bindparam("external_ids", expanding=True)),
)
_BY_EXTERNAL_IDS_PG = _SELECT.where(
    students.c.owner_id == bindparam("owner_id"),
    students.c.external_id == any_(bindparam("external_ids", type_=postgresql.ARRAY(Text()))),
)
_EXTERNAL_IDS_CHUNK = 10_000
_GET_OWNED_MANY = _GET_MANY.where(students.c.owner_id == bindparam("owner_id"))
_LOCK_MANY = (
    select(students.c.id)
    .where(
        students.c.id.in_(bindparam("student_ids", expanding=True)),
        students.c.owner_id == bindparam("owner_id"),
    )
    .order_by(students.c.id)
    .with_for_update()
)
_BY_EMAILS = _SELECT.where(
    students.c.owner_id == bindparam("owner_id"),
    students.c.email.in_(bindparam("emails", expanding=True)),
)
# Bulk lookups (imports) on PostgreSQL join the wanted emails as one array parameter. With an
# IN list (or ``= ANY(array)``) a prepared statement's generic plan may filter every row of the
# owner against every email, unhashed: seconds per lookup once an import has grown the table.
_BY_EMAILS_MANY = 64
_wanted = (
    func.unnest(bindparam("emails", type_=postgresql.ARRAY(Text())))
    .table_valued("email")
    .render_derived(name="wanted")
)
_BY_EMAILS_ARRAY = (
    select(students, _members.c.class_id)
    .select_from(
        _wanted.join(students, students.c.email == _wanted.c.email).outerjoin(
            _members, _members.c.student_id == students.c.id
        )
    )
    .where(students.c.owner_id == bindparam("owner_id"))
)
# Writers lock the rows first (PostgreSQL ``FOR UPDATE``, in id order; SQLite's write
# transactions are serial already), then read them with their memberships as they are once
# locked (contract §8, docs/architecture.md).
_LOCK = (
    select(students.c.id)
    .where(students.c.id == bindparam("student_id"), students.c.owner_id == bindparam("owner_id"))
    .with_for_update()
)
_LOCK_BY_EMAILS = (
    select(students.c.id)
    .select_from(_wanted.join(students, students.c.email == _wanted.c.email))
    .where(students.c.owner_id == bindparam("owner_id"))
    .order_by(students.c.id)
    .with_for_update(of=students)
)
_LOCK_MEMBERS = (
    select(students.c.id)
    .select_from(class_students.join(students, students.c.id == class_students.c.student_id))
    .where(class_students.c.class_id == bindparam("class_id"))
    .order_by(students.c.id)
    .with_for_update(of=students)
)
_PLACEHOLDER = _SELECT.where(students.c.placeholder_class_id == bindparam("class_id"))
# An erased student is never changed again: a change read before a concurrent erasure
# committed updates no row (PostgreSQL re-checks the condition on the new row version).
_UPDATE = (
    update(students)
    .where(students.c.id == bindparam("v_id"), students.c.erased_at.is_(None))
    .values(
        first_name=bindparam("v_first_name"),
        last_name=bindparam("v_last_name"),
        legal_full_name=bindparam("v_legal_full_name"),
        email=bindparam("v_email"),
        search_key=bindparam("v_search_key"),
        aliases=bindparam("v_aliases", type_=students.c.aliases.type),
        updated_at=bindparam("v_updated_at"),
        version=bindparam("v_version"),
        protected_identity=bindparam("v_protected_identity"),
        erased_at=bindparam("v_erased_at"),
        external_id=bindparam("v_external_id"),
    )
)
_ERASED_AMONG = select(students.c.id).where(
    students.c.id.in_(bindparam("student_ids", expanding=True)),
    students.c.erased_at.is_not(None),
)
_ERASED_CHECK_CHUNK = 1000
_DELETE = delete(students).where(students.c.id == bindparam("student_id"))
_REMOVE_MEMBERSHIP = delete(class_students).where(
    class_students.c.class_id == bindparam("v_class_id"),
    class_students.c.student_id == bindparam("v_student_id"),
)
_REMOVE_CLASS = (
    delete(class_students)
    .where(class_students.c.class_id == bindparam("class_id"))
    .returning(class_students.c.student_id)
)
_TOUCH = (
    update(students)
    .where(students.c.id.in_(bindparam("student_ids", expanding=True)))
    .values(updated_at=bindparam("at"), version=students.c.version + 1)
)
_roster_member = class_students.alias("r")
_roster_from = _roster_member.join(students, students.c.id == _roster_member.c.student_id)
_roster_where = (
    _roster_member.c.class_id == bindparam("class_id"),
    students.c.is_placeholder == false(),
)
_ROSTER = (
    select(students, _members.c.class_id)
    .select_from(_roster_from.join(_members, _members.c.student_id == students.c.id))
    .where(*_roster_where)
    .order_by(*_ORDER, _members.c.class_id)
)


def _class_ids_of(student_id: ColumnElement[UUID]) -> ColumnElement[Sequence[UUID]]:
    """PostgreSQL: the class ids of the row's student as one array column, read through
    ``ix_cms_class_students_student_id`` per student. Joining the memberships instead was
    planned, with statistics older than a bulk import, as a hash join over a sequential scan
    of every membership of every owner; a sub-select in the select list is run per row."""
    ids = (
        select(class_students.c.class_id)
        .where(class_students.c.student_id == student_id)
        .order_by(class_students.c.class_id)
        .correlate_except(class_students)
        .scalar_subquery()
    )
    return type_coerce(func.array(ids), postgresql.ARRAY(Uuid())).label("class_ids")


# The class's members as one array (an index range of pk_cms_class_students), then the
# students by primary key: a join of the members with cms_students was planned, with
# statistics that make classes look thousands strong, as a hash join over every student.
_member_ids = (
    select(class_students.c.student_id)
    .where(class_students.c.class_id == bindparam("class_id"))
    .scalar_subquery()
)
_ROSTER_PG = (
    select(students, _class_ids_of(students.c.id))
    .where(
        students.c.id == any_(func.array(_member_ids)),
        students.c.is_placeholder == false(),
    )
    .order_by(*_ORDER)
)

_MEMBER_EMAILS = (
    select(students.c.id, students.c.email)
    .join(class_students, class_students.c.student_id == students.c.id)
    .where(
        class_students.c.class_id == bindparam("class_id"),
        students.c.is_placeholder == false(),
        students.c.email.is_not(None),
    )
)
_MEMBERS_AMONG = (
    select(class_students.c.student_id)
    .join(students, students.c.id == class_students.c.student_id)
    .where(
        class_students.c.class_id == bindparam("class_id"),
        class_students.c.student_id.in_(bindparam("student_ids", expanding=True)),
        students.c.is_placeholder == false(),
    )
)
# PostgreSQL: the candidates as one array parameter, joined, so a message naming any number of
# students is one statement with two parameters (an expanding IN spends one of asyncpg's 32,767
# per id); elsewhere (SQLite: 32,766 variables) the expanding IN in chunks.
_among = (
    func.unnest(bindparam("student_ids", type_=postgresql.ARRAY(Uuid())))
    .table_valued("id")
    .render_derived(name="k")
)
_MEMBERS_AMONG_PG = (
    select(class_students.c.student_id)
    .select_from(
        _among.join(
            class_students,
            (class_students.c.class_id == bindparam("class_id"))
            & (class_students.c.student_id == _among.c.id),
        ).join(students, students.c.id == class_students.c.student_id)
    )
    .where(students.c.is_placeholder == false())
)
_IN_CHUNK = 10_000

# Bulk membership checks (sweeps): the (class, student) pairs as two arrays on PostgreSQL (one
# prepared statement whatever their number), a row-value IN list elsewhere.
_candidates = (
    func.unnest(
        bindparam("class_ids", type_=postgresql.ARRAY(Uuid())),
        bindparam("student_ids", type_=postgresql.ARRAY(Uuid())),
    )
    .table_valued("class_id", "student_id")
    .render_derived(name="k")
)
_MEMBERS_BY_CLASS_PG = (
    select(class_students.c.class_id, class_students.c.student_id)
    .select_from(
        _candidates.join(
            class_students,
            (class_students.c.class_id == _candidates.c.class_id)
            & (class_students.c.student_id == _candidates.c.student_id),
        ).join(students, students.c.id == class_students.c.student_id)
    )
    .where(students.c.is_placeholder == false())
)
_MEMBERS_BY_CLASS = (
    select(class_students.c.class_id, class_students.c.student_id)
    .join(students, students.c.id == class_students.c.student_id)
    .where(
        tuple_(class_students.c.class_id, class_students.c.student_id).in_(
            bindparam("pairs", expanding=True)
        ),
        students.c.is_placeholder == false(),
    )
)
_PLACEHOLDERS = _SELECT.where(
    students.c.placeholder_class_id.in_(bindparam("class_ids", expanding=True))
)


def _grouped(rows: Iterable[RowMapping]) -> list[Student]:
    """One student per id, in row order, with the class ids of its rows."""
    found: dict[UUID, tuple[RowMapping, list[UUID]]] = {}
    for row in rows:
        entry = found.get(row["id"])
        if entry is None:
            entry = found[row["id"]] = (row, [])
        if row["class_id"] is not None:
            entry[1].append(row["class_id"])
    return [student_from_row(row, class_ids) for row, class_ids in found.values()]


def _with_class_ids(rows: Iterable[RowMapping]) -> list[Student]:
    """One student per row, its class ids in the row's ``class_ids`` array."""
    return [student_from_row(row, row["class_ids"]) for row in rows]


def _update_params(s: Student) -> dict[str, Any]:
    row = student_row(s)
    return {
        "v_id": s.id,
        "v_first_name": row["first_name"],
        "v_last_name": row["last_name"],
        "v_legal_full_name": row["legal_full_name"],
        "v_email": row["email"],
        "v_search_key": row["search_key"],
        "v_aliases": row["aliases"],
        "v_updated_at": row["updated_at"],
        "v_version": row["version"],
        "v_protected_identity": row["protected_identity"],
        "v_erased_at": row["erased_at"],
        "v_external_id": row["external_id"],
    }


# Which of the list's filters a query sets: class, q, updated since, external id.
_Filters = tuple[bool, ...]


def _filter_values(query: StudentQuery) -> dict[str, object]:
    """The filters' parameters, in :func:`_conditions`' order (``None``: not set)."""
    return {
        "class_id": query.class_id,
        "q_pattern": None if query.q is None else like_pattern(query.q),
        "updated_since": query.updated_since,
        "external_id": query.external_id,
    }


def _conditions(filters: _Filters) -> list[ColumnElement[bool]]:
    by_class, by_q, by_since, by_external = filters
    conds: list[ColumnElement[bool]] = [students.c.owner_id == bindparam("owner_id")]
    if by_class:
        conds.append(
            exists().where(
                class_students.c.class_id == bindparam("class_id"),
                class_students.c.student_id == students.c.id,
            )
        )
    if by_q:
        conds.append(students.c.search_key.like(bindparam("q_pattern", type_=Text()), escape="/"))
    if by_since:
        conds.append(students.c.updated_at >= bindparam("updated_since"))
    if by_external:
        conds.append(students.c.external_id == bindparam("external_id"))
    return conds


@functools.cache
def _search_statement(filters: _Filters, later_page: bool, postgresql: bool) -> Select[Any]:
    """One page of the owner's students with its total and each row's class ids: on
    PostgreSQL as one array column, on SQLite one row per membership (:func:`_grouped`).
    Every value is a plain parameter, so a filter combination is one statement, built at its
    first use and kept (64 at most), compiled once and sent straight to asyncpg on PostgreSQL
    (``SqlTransaction.fetch_rows``). The first page has no ``OFFSET`` (see
    :func:`adapters_sql.mapping.page_window`)."""
    window = page_window(
        select(students, func.count().over().label("total"))
        .where(*_conditions(filters))
        .order_by(*_ORDER),
        later_page,
    )
    page = window.subquery("p")
    if postgresql:
        return select(page, _class_ids_of(page.c.id)).order_by(
            page.c.last_name, page.c.first_name, page.c.id
        )
    members = class_students.alias("pm")
    return (
        select(page, members.c.class_id)
        .select_from(page.outerjoin(members, members.c.student_id == page.c.id))
        .order_by(page.c.last_name, page.c.first_name, page.c.id, members.c.class_id)
    )


@functools.cache
def _total_statement(filters: _Filters) -> Select[Any]:
    """The number of the owner's students a filter combination finds (a page past the end)."""
    return select(func.count()).select_from(students).where(*_conditions(filters))


class SqlStudentRepository:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def add(self, student: Student) -> None:
        await self.add_many([student])

    async def add_many(self, students_: Sequence[Student]) -> None:
        if not students_:
            return
        if len(students_) == 1 and students_[0].class_ids and self._tx.is_postgresql:
            # One new student in classes (the API's create): the student and its memberships
            # in one statement (a data-modifying CTE), one round trip instead of two.
            student = students_[0]
            params = {
                **student_row(student),
                "class_ids": list(dict.fromkeys(student.class_ids)),
            }
            await self._tx.write(_PG_INSERT_WITH_MEMBERSHIPS, params)
            return
        plain = [s for s in students_ if not s.aliases]
        if use_copy(self._tx, len(plain)):
            # Imports: one COPY instead of thousands of INSERT rows, its records made as it
            # streams (the server works on the first ones while the next are encoded).
            # Students with aliases (rarer) take the INSERT below.
            records = map(student_record, plain)
            await copy_records(self._tx, students, STUDENT_RECORD_COLUMNS, records)
            self._tx.copied_students.update(s.id for s in plain)
            inserted = [s for s in students_ if s.aliases]
        else:
            inserted = list(students_)
        if inserted:
            rows = [student_row(s) for s in inserted]
            await self._tx.execute(_INSERT, rows if len(rows) > 1 else rows[0])
        pairs = [
            (c, s.id)
            for s in students_
            for c in (s.class_ids if len(s.class_ids) < 2 else dict.fromkeys(s.class_ids))
        ]
        await self._insert_memberships(pairs)

    async def _insert_memberships(self, pairs: Sequence[tuple[UUID, UUID]]) -> None:
        if not pairs:
            return
        if use_copy(self._tx, len(pairs)):
            await copy_records(self._tx, class_students, ("class_id", "student_id"), pairs)
            return
        params = [{"class_id": c, "student_id": s} for c, s in pairs]
        await self._tx.execute(_INSERT_MEMBERSHIP, params if len(params) > 1 else params[0])

    async def get(self, owner_id: str, student_id: UUID, *, lock: bool = False) -> Student | None:
        params = {"student_id": student_id, "owner_id": owner_id}
        if lock and self._tx.is_postgresql and not await self._tx.fetch_rows(_LOCK, params):
            return None
        result = await self._tx.execute(_GET, params)
        found = _grouped(result.mappings())
        return found[0] if found else None

    async def get_unscoped_many(self, student_ids: Collection[UUID]) -> dict[UUID, Student]:
        if not student_ids:
            return {}
        result = await self._tx.execute(_GET_MANY, {"student_ids": list(set(student_ids))})
        return {s.id: s for s in _grouped(result.mappings())}

    async def get_many(
        self, owner_id: str, student_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, Student]:
        wanted = sorted(set(student_ids))
        found: dict[UUID, Student] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            params = {"owner_id": owner_id, "student_ids": wanted[start : start + _IN_CHUNK]}
            if lock and self._tx.is_postgresql:
                await self._tx.execute(_LOCK_MANY, params)
            result = await self._tx.execute(_GET_OWNED_MANY, params)
            found.update((s.id, s) for s in _grouped(result.mappings()))
        return found

    async def by_emails(
        self, owner_id: str, emails: Collection[str], *, lock: bool = False
    ) -> dict[str, Student]:
        if not emails:
            return {}
        wanted = list(set(emails))
        if lock and self._tx.is_postgresql:
            await self._tx.execute(_LOCK_BY_EMAILS, {"owner_id": owner_id, "emails": wanted})
        many = len(wanted) >= _BY_EMAILS_MANY and self._tx.is_postgresql
        result = await self._tx.execute(
            _BY_EMAILS_ARRAY if many else _BY_EMAILS, {"owner_id": owner_id, "emails": wanted}
        )
        return {s.email: s for s in _grouped(result.mappings()) if s.email is not None}

    async def by_external_ids(
        self, owner_id: str, external_ids: Collection[str]
    ) -> dict[str, Student]:
        wanted = sorted(set(external_ids))
        found: dict[str, Student] = {}
        if not wanted:
            return found
        if self._tx.is_postgresql:  # one array parameter, whatever the number
            params = {"owner_id": owner_id, "external_ids": wanted}
            rows = list((await self._tx.execute(_BY_EXTERNAL_IDS_PG, params)).mappings())
            found.update((s.external_id, s) for s in _grouped(rows) if s.external_id)
            return found
        for start in range(0, len(wanted), _EXTERNAL_IDS_CHUNK):
            chunk = wanted[start : start + _EXTERNAL_IDS_CHUNK]
            params = {"owner_id": owner_id, "external_ids": chunk}
            rows = list((await self._tx.execute(_BY_EXTERNAL_IDS, params)).mappings())
            found.update((s.external_id, s) for s in _grouped(rows) if s.external_id)
        return found

    async def search(self, owner_id: str, query: StudentQuery) -> Page[Student]:
        filters, params = list_params(owner_id, query.limit, query.offset, _filter_values(query))
        pg = self._tx.is_postgresql
        statement = _search_statement(filters, query.offset > 0, pg)
        rows = await self._tx.fetch_rows(statement, params)
        found = _with_class_ids(rows) if pg else _grouped(rows)
        if rows:
            total = int(rows[0]["total"])
        else:  # past the end (or nothing): the window gave no total
            counted = await self._tx.execute(_total_statement(filters), count_params(params))
            total = int(counted.scalar_one())
        return Page(tuple(found), total, query.limit, query.offset)

    async def update(self, student: Student) -> None:
        await self.update_many([student])

    async def update_many(self, students_: Sequence[Student]) -> None:
        if not students_:
            return
        params = [_update_params(s) for s in students_]
        result = await self._tx.execute(_UPDATE, params if len(params) > 1 else params[0])
        if result.rowcount != len(params):  # fewer rows, or unknown (-1, some executemany)
            await self._refuse_erased([s.id for s in students_])

    async def _refuse_erased(self, ids: Sequence[UUID]) -> None:
        """Raise :class:`StudentErasedError` when one of ``ids`` is erased (a row the guarded
        update skipped); a student deleted meanwhile is left to the caller, as before."""
        for start in range(0, len(ids), _ERASED_CHECK_CHUNK):
            chunk = list(ids[start : start + _ERASED_CHECK_CHUNK])
            found = await self._tx.execute(_ERASED_AMONG, {"student_ids": chunk})
            if found.first() is not None:
                raise StudentErasedError()

    async def delete(self, student_id: UUID) -> None:
        await self._tx.execute(_DELETE, {"student_id": student_id})

    async def add_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None:
        if not pairs:
            return
        statement = (
            self._tx.insert(class_students)
            .values(class_id=bindparam("class_id"), student_id=bindparam("student_id"))
            .on_conflict_do_nothing(index_elements=["class_id", "student_id"])
        )
        params = [{"class_id": c, "student_id": s} for c, s in dict.fromkeys(pairs)]
        await self._tx.execute(statement, params if len(params) > 1 else params[0])

    async def remove_memberships(self, pairs: Collection[tuple[UUID, UUID]]) -> None:
        if not pairs:
            return
        params = [{"v_class_id": c, "v_student_id": s} for c, s in dict.fromkeys(pairs)]
        await self._tx.execute(_REMOVE_MEMBERSHIP, params if len(params) > 1 else params[0])

    async def remove_class_memberships(self, class_id: UUID) -> list[UUID]:
        if self._tx.is_postgresql:
            # The members first (in id order, as every writer of students locks them), then
            # their memberships: a concurrent delete of a member waits instead of deadlocking.
            await self._tx.execute(_LOCK_MEMBERS, {"class_id": class_id})
        result = await self._tx.execute(_REMOVE_CLASS, {"class_id": class_id})
        return sorted(result.scalars())

    async def touch(self, student_ids: Collection[UUID], at: datetime) -> None:
        # A version bump without an event of its own: the change feed must hear of it.
        self._tx.touched.update(dict.fromkeys(student_ids, at))
        if student_ids:
            await self._tx.execute(_TOUCH, {"student_ids": list(set(student_ids)), "at": at})

    async def roster(self, class_id: UUID) -> list[Student]:
        if self._tx.is_postgresql:
            rows = await self._tx.fetch_rows(_ROSTER_PG, {"class_id": class_id})
            return _with_class_ids(rows)
        result = await self._tx.execute(_ROSTER, {"class_id": class_id})
        return _grouped(result.mappings())

    async def member_emails(self, class_id: UUID) -> dict[UUID, str]:
        result = await self._tx.execute(_MEMBER_EMAILS, {"class_id": class_id})
        return {row.id: row.email for row in result}

    async def members_among(self, class_id: UUID, student_ids: Collection[UUID]) -> set[UUID]:
        if not student_ids:
            return set()
        wanted = list(set(student_ids))
        if self._tx.is_postgresql:
            rows = await self._tx.fetch_rows(
                _MEMBERS_AMONG_PG, {"class_id": class_id, "student_ids": wanted}
            )
            return {row["student_id"] for row in rows}
        found: set[UUID] = set()
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            result = await self._tx.execute(
                _MEMBERS_AMONG, {"class_id": class_id, "student_ids": chunk}
            )
            found.update(result.scalars())
        return found

    async def placeholder(self, class_id: UUID) -> Student | None:
        found = _grouped((await self._tx.execute(_PLACEHOLDER, {"class_id": class_id})).mappings())
        return found[0] if found else None

    async def add_placeholder(self, student: Student, class_id: UUID) -> bool:
        # No conflict target: every unique index is an arbiter. With only the class's index as
        # the target, two sweeps inserting one class's placeholder at once could meet first in
        # uq_cms_students_owner_email (the placeholder's email is made from the class id, in a
        # domain no real student may use), which DO NOTHING does not cover: a unique violation
        # instead of "already there" (seen once in CI, test_pg_concurrent_sweeps_finalize_…).
        statement = (
            self._tx.insert(students)
            .values(student_row(student, placeholder_class_id=class_id))
            .on_conflict_do_nothing()
            .returning(students.c.id)
        )
        inserted = (await self._tx.execute(statement)).first() is not None
        if inserted:
            await self._insert_memberships([(class_id, student.id)])
        return inserted

    async def members_by_class(
        self, candidates: Mapping[UUID, Collection[UUID]]
    ) -> dict[UUID, set[UUID]]:
        found: dict[UUID, set[UUID]] = {c: set() for c in candidates}
        pairs = list({(c, s) for c, ids in candidates.items() for s in ids})
        if not pairs:
            return found
        if self._tx.is_postgresql:
            params = {"class_ids": [c for c, _ in pairs], "student_ids": [s for _, s in pairs]}
            rows = await self._tx.fetch_rows(_MEMBERS_BY_CLASS_PG, params)
        else:
            rows = list((await self._tx.execute(_MEMBERS_BY_CLASS, {"pairs": pairs})).mappings())
        for row in rows:
            found[row["class_id"]].add(row["student_id"])
        return found

    async def placeholders(self, class_ids: Collection[UUID]) -> dict[UUID, Student]:
        if not class_ids:
            return {}
        result = await self._tx.execute(_PLACEHOLDERS, {"class_ids": list(set(class_ids))})
        rows = list(result.mappings())
        of_student = {row["id"]: row["placeholder_class_id"] for row in rows}
        return {of_student[s.id]: s for s in _grouped(rows)}

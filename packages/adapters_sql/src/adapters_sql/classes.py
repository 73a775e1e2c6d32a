"""``ClassRepository`` on SQL."""

from __future__ import annotations

import functools
from collections.abc import Collection
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Label,
    Select,
    Text,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from adapters_sql.mapping import (
    class_from_row,
    class_row,
    count_params,
    like_pattern,
    list_params,
    page_window,
)
from adapters_sql.schema import class_students, classes, students
from adapters_sql.transaction import SqlTransaction
from class_core.model import Page, SchoolClass
from class_core.queries import ClassQuery
from class_core.text import search_key


def _count_of(class_id: ColumnElement[UUID]) -> Label[int]:
    """The class's members without its UNKNOWN placeholder, as a column of ``class_id``'s row.

    Only a class's own placeholder is ever a member of it (it joins its class when created
    and is read-only afterwards), so the placeholder is left out by its own key — one look-up
    in ``uq_cms_students_placeholder_class_id`` — and the count is an index-only range scan of
    the class's memberships, whatever the planner thinks of the class's size. Joining every
    member to ``cms_students`` to test a flag was planned as a hash join over a sequential scan
    of all students once the statistics made classes look large.
    """
    placeholder = (
        select(students.c.id)
        .where(students.c.placeholder_class_id == class_id)
        .correlate_except(students)
        .scalar_subquery()
    )
    return (
        select(func.count())
        .select_from(class_students)
        .where(
            class_students.c.class_id == class_id,
            class_students.c.student_id.is_distinct_from(placeholder),
        )
        .correlate_except(class_students)
        .scalar_subquery()
        .label("student_count")
    )


_student_count = _count_of(classes.c.id)
_INSERT = insert(classes)
_GET = select(classes, _student_count).where(
    classes.c.id == bindparam("class_id"), classes.c.owner_id == bindparam("owner_id")
)
# Writers lock the row first (PostgreSQL ``FOR UPDATE``; SQLite's write transactions are
# serial already: ``BEGIN IMMEDIATE``), then read it as it is once locked: in READ COMMITTED
# a new statement sees what the previous holder committed (contract §8, docs/architecture.md).
_LOCK = (
    select(classes.c.id)
    .where(classes.c.id == bindparam("class_id"), classes.c.owner_id == bindparam("owner_id"))
    .with_for_update()
)
_GET_UNSCOPED = select(classes, _student_count).where(classes.c.id == bindparam("class_id"))
_GET_MANY = select(classes).where(
    classes.c.owner_id == bindparam("owner_id"),
    classes.c.id.in_(bindparam("class_ids", expanding=True)),
)
# Shared locks on the classes a student joins or leaves (a class deletion waits for them) are
# taken by the reads themselves: _GET_ONE_SHARED for one class, _GET_MANY_SHARED_PG for more.
# Several ids on PostgreSQL (an import's chunk names up to thousands of classes): one array
# parameter, so one statement text and one cached plan whatever the count, sent straight
# through the driver; shared-locked in id order by the same statement (LockRows above the
# sort), and a row whose holder committed meanwhile is returned as committed.
_GET_MANY_PG = (
    select(classes)
    .where(
        classes.c.owner_id == bindparam("owner_id"),
        classes.c.id == any_(bindparam("class_ids", type_=ARRAY(Uuid()))),
    )
    .order_by(classes.c.id)
)
_GET_MANY_SHARED_PG = _GET_MANY_PG.with_for_update(read=True)
# One id (a new student in a class): no list to expand into the statement at every call.
_GET_ONE = select(classes).where(
    classes.c.owner_id == bindparam("owner_id"), classes.c.id == bindparam("class_id")
)
# The same, share-locked in one round trip (a new student joining one class): a locking read
# that waited returns the row as the holder committed it (e.g. archived meanwhile).
_GET_ONE_SHARED = _GET_ONE.with_for_update(read=True)
# Classes whose search key (the folded name) equals the folded name sought: an index look-up
# (ix_cms_classes_owner_search_key); the exact rule (trimmed, case-folded) is applied to these
# few candidates in Python.
_BY_SEARCH_KEY = (
    select(classes, _student_count)
    .where(
        classes.c.owner_id == bindparam("owner_id"),
        classes.c.search_key == bindparam("search_key"),
    )
    .order_by(classes.c.created_at, classes.c.id)
)
# Several names at once (an import's chunk): one statement instead of one per name.
_BY_SEARCH_KEYS = (
    select(classes, _student_count)
    .where(
        classes.c.owner_id == bindparam("owner_id"),
        classes.c.search_key.in_(bindparam("search_keys", expanding=True)),
    )
    .order_by(classes.c.created_at, classes.c.id)
)
_BY_SEARCH_KEYS_PG = (
    select(classes, _student_count)
    .where(
        classes.c.owner_id == bindparam("owner_id"),
        classes.c.search_key == any_(bindparam("search_keys", type_=ARRAY(Text()))),
    )
    .order_by(classes.c.created_at, classes.c.id)
)
# An owner's class names held until the transaction ends (``lock_names``): PostgreSQL's
# transaction-scoped advisory lock in its two-key form, our own key space ("cmsc") and a hash
# of the owner (two owners whose ids hash alike merely wait for each other). On SQLite a
# write transaction is serial already (``BEGIN IMMEDIATE``).
_NAMES_KEY_SPACE = 0x636D7363
_LOCK_NAMES_PG = select(
    func.pg_advisory_xact_lock(
        literal_column(str(_NAMES_KEY_SPACE)), func.hashtext(bindparam("owner_id", type_=Text()))
    ).label("locked")
)
_UPDATE = (
    update(classes)
    .where(classes.c.id == bindparam("v_id"))
    .values(
        name=bindparam("v_name"),
        course_code=bindparam("v_course_code"),
        search_key=bindparam("v_search_key"),
        updated_at=bindparam("v_updated_at"),
        version=bindparam("v_version"),
        external_id=bindparam("v_external_id"),
        status=bindparam("v_status"),
        archived_at=bindparam("v_archived_at"),
    )
)
_DELETE = delete(classes).where(classes.c.id == bindparam("class_id"))
_GET_UNSCOPED_MANY = select(classes).where(classes.c.id.in_(bindparam("class_ids", expanding=True)))
_ORDER = (classes.c.created_at.desc(), classes.c.id.desc())


# Which of the list's filters a query sets: q, course, updated since, status, external id.
_Filters = tuple[bool, ...]


def _filter_values(query: ClassQuery) -> dict[str, object]:
    """The filters' parameters, in :func:`_conditions`' order (``None``: not set)."""
    return {
        "q_pattern": None if query.q is None else like_pattern(query.q),
        "course_code": query.course_code,
        "updated_since": query.updated_since,
        "status": query.status,
        "external_id": query.external_id,
    }


def _conditions(filters: _Filters) -> list[ColumnElement[bool]]:
    by_q, by_course, by_since, by_status, by_external = filters
    conds: list[ColumnElement[bool]] = [classes.c.owner_id == bindparam("owner_id")]
    if by_q:
        conds.append(classes.c.search_key.like(bindparam("q_pattern", type_=Text()), escape="/"))
    if by_course:
        conds.append(classes.c.course_code == bindparam("course_code"))
    if by_since:
        conds.append(classes.c.updated_at >= bindparam("updated_since"))
    if by_status:
        # With the owner: a range of ix_cms_classes_owner_status_created, already in order.
        conds.append(classes.c.status == bindparam("status"))
    if by_external:
        conds.append(classes.c.external_id == bindparam("external_id"))
    return conds


@functools.cache
def _search_statement(filters: _Filters, later_page: bool) -> Select[Any]:
    """One page of the owner's classes with its total, then the student counts of its rows
    only. Every value is a plain parameter, so a filter combination is one statement, built
    at its first use and kept (64 at most), compiled once and sent straight to asyncpg on
    PostgreSQL (``SqlTransaction.fetch_rows``). The first page has no ``OFFSET`` (see
    :func:`adapters_sql.mapping.page_window`)."""
    window = page_window(
        select(classes, func.count().over().label("total"))
        .where(*_conditions(filters))
        .order_by(*_ORDER),
        later_page,
    )
    page = window.subquery("p")
    return select(page, _count_of(page.c.id)).order_by(page.c.created_at.desc(), page.c.id.desc())


@functools.cache
def _total_statement(filters: _Filters) -> Select[Any]:
    """The number of the owner's classes a filter combination finds (a page past the end)."""
    return select(func.count()).select_from(classes).where(*_conditions(filters))


class SqlClassRepository:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def add(self, cls: SchoolClass) -> None:
        await self._tx.execute(_INSERT, class_row(cls))

    async def get(self, owner_id: str, class_id: UUID, *, lock: bool = False) -> SchoolClass | None:
        params = {"class_id": class_id, "owner_id": owner_id}
        if lock and self._tx.is_postgresql and not await self._tx.fetch_rows(_LOCK, params):
            return None
        rows = await self._tx.fetch_rows(_GET, params)
        return class_from_row(rows[0], rows[0]["student_count"]) if rows else None

    async def get_unscoped(self, class_id: UUID) -> SchoolClass | None:
        rows = await self._tx.fetch_rows(_GET_UNSCOPED, {"class_id": class_id})
        return class_from_row(rows[0], rows[0]["student_count"]) if rows else None

    async def get_many(
        self, owner_id: str, class_ids: Collection[UUID], *, lock: bool = False
    ) -> dict[UUID, SchoolClass]:
        if not class_ids:
            return {}
        ids = list(set(class_ids))
        one = {"owner_id": owner_id, "class_id": ids[0]}
        many = {"owner_id": owner_id, "class_ids": ids}
        if self._tx.is_postgresql and len(ids) == 1:
            rows = await self._tx.fetch_rows(_GET_ONE_SHARED if lock else _GET_ONE, one)
        elif self._tx.is_postgresql:
            rows = await self._tx.fetch_rows(_GET_MANY_SHARED_PG if lock else _GET_MANY_PG, many)
        elif len(ids) == 1:  # SQLite has no row locks (its writers take turns)
            rows = await self._tx.fetch_rows(_GET_ONE, one)
        else:
            rows = list((await self._tx.execute(_GET_MANY, many)).mappings())
        return {row["id"]: class_from_row(row) for row in rows}

    async def search(self, owner_id: str, query: ClassQuery) -> Page[SchoolClass]:
        filters, params = list_params(owner_id, query.limit, query.offset, _filter_values(query))
        rows = await self._tx.fetch_rows(_search_statement(filters, query.offset > 0), params)
        if rows:
            total = int(rows[0]["total"])
        else:  # past the end (or nothing): the window gave no total
            counted = await self._tx.execute(_total_statement(filters), count_params(params))
            total = int(counted.scalar_one())
        items = tuple(class_from_row(r, r["student_count"]) for r in rows)
        return Page(items, total, query.limit, query.offset)

    async def find_by_name(self, owner_id: str, name: str) -> list[SchoolClass]:
        # Python's casefold is the rule (SQL lower() differs beyond ASCII); names with the same
        # case-folded text have the same search key, so the candidates are found by the key.
        wanted = name.strip().casefold()
        params = {"owner_id": owner_id, "search_key": search_key(name.strip())}
        result = await self._tx.execute(_BY_SEARCH_KEY, params)
        return [
            class_from_row(r, r["student_count"])
            for r in result.mappings()
            if r["name"].strip().casefold() == wanted
        ]

    async def find_by_names(
        self, owner_id: str, names: Collection[str]
    ) -> dict[str, list[SchoolClass]]:
        wanted = {name.strip().casefold() for name in names}
        if not wanted:
            return {}
        params = {
            "owner_id": owner_id,
            "search_keys": sorted({search_key(name.strip()) for name in names}),
        }
        if self._tx.is_postgresql:
            rows = await self._tx.fetch_rows(_BY_SEARCH_KEYS_PG, params)
        else:
            rows = list((await self._tx.execute(_BY_SEARCH_KEYS, params)).mappings())
        found: dict[str, list[SchoolClass]] = {}
        for r in rows:
            key = r["name"].strip().casefold()
            if key in wanted:
                found.setdefault(key, []).append(class_from_row(r, r["student_count"]))
        return found

    async def lock_names(self, owner_id: str) -> None:
        if self._tx.is_postgresql:
            await self._tx.fetch_rows(_LOCK_NAMES_PG, {"owner_id": owner_id})

    async def update(self, cls: SchoolClass) -> None:
        row = class_row(cls)
        await self._tx.execute(
            _UPDATE,
            {
                "v_id": cls.id,
                "v_name": row["name"],
                "v_course_code": row["course_code"],
                "v_search_key": row["search_key"],
                "v_updated_at": row["updated_at"],
                "v_version": row["version"],
                "v_external_id": row["external_id"],
                "v_status": row["status"],
                "v_archived_at": row["archived_at"],
            },
        )

    async def delete(self, class_id: UUID) -> None:
        await self._tx.execute(_DELETE, {"class_id": class_id})

    async def get_unscoped_many(self, class_ids: Collection[UUID]) -> dict[UUID, SchoolClass]:
        if not class_ids:
            return {}
        result = await self._tx.execute(_GET_UNSCOPED_MANY, {"class_ids": list(set(class_ids))})
        return {row["id"]: class_from_row(row) for row in result.mappings()}

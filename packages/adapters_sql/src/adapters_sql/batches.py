"""``BatchRepository`` on SQL (batches and essay associations)."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    String,
    Text,
    Update,
    Uuid,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.types import TypeEngine

from adapters_sql.mapping import association_from_row, association_row, batch_from_row, batch_row
from adapters_sql.schema import batches, classes, essay_associations
from adapters_sql.transaction import SqlTransaction
from adapters_sql.types import UTCDateTime
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    BatchSummary,
    Page,
    ValidationMethod,
    ValidationStatus,
)
from class_core.queries import BatchQuery

_a = essay_associations
_GET = select(batches).where(batches.c.batch_id == bindparam("batch_id"))
_GET_LOCKED = _GET.with_for_update()
_INSERT = insert(batches)
_UPDATE = (
    update(batches)
    .where(batches.c.batch_id == bindparam("v_batch_id"))
    .values(
        {
            c.name: bindparam(f"v_{c.name}")
            for c in batches.columns
            if c.name not in ("batch_id", "created_at")
        }
    )
)
_ASSOC_ORDER = (_a.c.created_at, _a.c.essay_id)
_ASSOCIATIONS = select(_a).where(_a.c.batch_id == bindparam("batch_id")).order_by(*_ASSOC_ORDER)
_BY_ESSAY = select(_a).where(_a.c.essay_id.in_(bindparam("essay_ids", expanding=True)))
# PostgreSQL: the ids as one array parameter (one prepared statement whatever their number),
# joined rather than ``= ANY(...)``: a cached generic plan of ``= ANY`` compares every row with
# every id when the planner believes the table small.
_essay_ids = (
    func.unnest(bindparam("essay_ids", type_=ARRAY(Uuid()))).table_valued("id").render_derived("k")
)
_BY_ESSAY_PG = select(_a).join(_essay_ids, _a.c.essay_id == _essay_ids.c.id)
# Several batches' associations (sweeps), grouped by batch in the batch index's order.
_OF_BATCHES_ORDER = (_a.c.batch_id, *_ASSOC_ORDER)
_OF_BATCHES = (
    select(_a)
    .where(_a.c.batch_id.in_(bindparam("batch_ids", expanding=True)))
    .order_by(*_OF_BATCHES_ORDER)
)
# PostgreSQL: ``= ANY`` of one array parameter, read through the batch index. A join with
# ``unnest`` of the array was planned (for a sweep's 50 batches) as a hash join over a
# sequential scan of every association; with ``= ANY`` a scan that is not an index scan would
# have to compare each row with every id, so the index range is also the cheapest plan.
_OF_BATCHES_PG = (
    select(_a)
    .where(_a.c.batch_id == any_(bindparam("batch_ids", type_=ARRAY(Uuid()))))
    .order_by(*_OF_BATCHES_ORDER)
)
_INSERT_ASSOC = insert(_a)
_IN_CHUNK = 10_000
_UPDATED_ASSOC_FIELDS = (
    "suggested_student_id",
    "confidence_score",
    "runner_up_confidence",
    "match_reasons",
    "student_id",
    "validation_status",
    "validation_method",
    "validated_by",
    "validated_at",
    "updated_at",
)


def _update_by_essay(fields: Sequence[str]) -> Update:
    """``UPDATE`` of ``fields`` of one association, by essay (parameters ``v_<field>``)."""
    return (
        update(_a)
        .where(_a.c.essay_id == bindparam("v_essay_id"))
        .values({name: bindparam(f"v_{name}") for name in fields})
    )


_UPDATE_ASSOC = _update_by_essay(_UPDATED_ASSOC_FIELDS)
# A decision leaves the suggestion (and its JSON reasons) as stored. One execution per row
# where there are no arrays (SQLite); PostgreSQL below.
_DECISION_FIELDS = (
    "student_id",
    "validation_status",
    "validation_method",
    "validated_by",
    "validated_at",
    "updated_at",
)
_UPDATE_DECISION = _update_by_essay(_DECISION_FIELDS)
# PostgreSQL: a whole batch of associations in one statement (column arrays, unnest), rather
# than one execution per row.
_Column = tuple[str, str, TypeEngine[Any]]  # name, PostgreSQL array element type, bind type
_ASSOC_COLUMNS: tuple[_Column, ...] = (
    ("essay_id", "uuid", Uuid()),
    ("batch_id", "uuid", Uuid()),
    ("class_id", "uuid", Uuid()),
    ("suggested_student_id", "uuid", Uuid()),
    ("confidence_score", "float8", Double()),
    ("match_reasons", "text", Text()),
    ("student_id", "uuid", Uuid()),
    ("validation_status", "text", String()),
    ("validation_method", "text", String()),
    ("validated_by", "text", String()),
    ("validated_at", "timestamptz", UTCDateTime()),
    ("created_at", "timestamptz", UTCDateTime()),
    ("updated_at", "timestamptz", UTCDateTime()),
    ("runner_up_confidence", "float8", Double()),
)


def _unnest(columns: Sequence[_Column]) -> str:
    arrays = ", ".join(f"CAST(:c_{name} AS {sql}[])" for name, sql, _ in columns)
    return f"unnest({arrays}) AS v({', '.join(name for name, _, _ in columns)})"


def _array_params(columns: Sequence[_Column]) -> list[Any]:
    return [bindparam(f"c_{name}", type_=ARRAY(type_)) for name, _, type_ in columns]


def _value(name: str) -> str:
    return "v.match_reasons::jsonb" if name == "match_reasons" else f"v.{name}"


_INSERT_ASSOC_PG = text(
    f"INSERT INTO {_a.name} ({', '.join(n for n, _, _ in _ASSOC_COLUMNS)}) "
    f"SELECT {', '.join(_value(n) for n, _, _ in _ASSOC_COLUMNS)} "
    f"FROM {_unnest(_ASSOC_COLUMNS)}"
).bindparams(*_array_params(_ASSOC_COLUMNS))
_UPDATED_ASSOC_COLUMNS = [c for c in _ASSOC_COLUMNS if c[0] in ("essay_id", *_UPDATED_ASSOC_FIELDS)]
_UPDATE_ASSOC_PG = text(
    f"UPDATE {_a.name} AS a SET "
    + ", ".join(f"{n} = {_value(n)}" for n in _UPDATED_ASSOC_FIELDS)
    + f" FROM {_unnest(_UPDATED_ASSOC_COLUMNS)} WHERE a.essay_id = v.essay_id"
    # The same essays once more as ``= ANY``: the rows to change are found through the
    # primary key (see _OF_BATCHES_PG), not by hashing the whole table.
    " AND a.essay_id = ANY(CAST(:c_essay_id AS uuid[]))"
).bindparams(*_array_params(_UPDATED_ASSOC_COLUMNS))


# PostgreSQL: decisions that share status, method, author and time (a sweep's) in one
# statement, the essays and chosen students as two arrays.
_UPDATE_DECISIONS_PG = text(
    f"UPDATE {_a.name} AS a SET student_id = v.student_id, "
    "validation_status = :status, validation_method = :method, validated_by = :by, "
    "validated_at = :at, updated_at = :updated_at "
    "FROM unnest(CAST(:essay_ids AS uuid[]), CAST(:student_ids AS uuid[])) "
    "AS v(essay_id, student_id) WHERE a.essay_id = v.essay_id "
    "AND a.essay_id = ANY(CAST(:essay_ids AS uuid[]))"  # through the primary key (above)
).bindparams(
    bindparam("essay_ids", type_=ARRAY(Uuid())),
    bindparam("student_ids", type_=ARRAY(Uuid())),
    bindparam("status", type_=String()),
    bindparam("method", type_=String()),
    bindparam("by", type_=String()),
    bindparam("at", type_=UTCDateTime()),
    bindparam("updated_at", type_=UTCDateTime()),
)
_DecisionKey = tuple[
    ValidationStatus, ValidationMethod | None, str | None, datetime | None, datetime
]


def _decision_groups(items: Sequence[Association]) -> dict[_DecisionKey, list[Association]]:
    """The last decision given per essay, grouped by everything but the chosen student."""
    groups: dict[_DecisionKey, list[Association]] = {}
    for a in {a.essay_id: a for a in items}.values():
        key = (
            a.validation_status,
            a.validation_method,
            a.validated_by,
            a.validated_at,
            a.updated_at,
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = []
        group.append(a)
    return groups


def _column_arrays(
    items: Sequence[Association], columns: Sequence[_Column]
) -> dict[str, list[Any]]:
    rows = [association_row(a) for a in items]
    arrays: dict[str, list[Any]] = {}
    for name, _, _ in columns:
        values = [row[name] for row in rows]
        if name == "match_reasons":
            values = [json.dumps(v) for v in values]
        arrays[f"c_{name}"] = values
    return arrays


_DUE = (
    select(batches)
    .where(
        # A literal, not a parameter: a cached generic plan must be able to use the partial
        # index of pending batches (ix_cms_batches_pending_deadline).
        batches.c.status == literal_column(f"'{BatchStatus.PENDING.value}'"),
        batches.c.deadline <= bindparam("now"),
    )
    .order_by(batches.c.deadline, batches.c.batch_id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
# No parameter: one cached plan (the partial index's first entry), whatever the statistics. A
# parameterised look-up (``deadline <= $1``) is planned again at every call once the table's
# statistics make the planner prefer custom plans (docs/performance.md, "The sweep's look-up,
# time-ordered class ids, and timing in turns").
_EARLIEST_DEADLINE = select(func.min(batches.c.deadline).label("deadline")).where(
    batches.c.status == literal_column(f"'{BatchStatus.PENDING.value}'")
)
_HAS_BATCHES = select(exists().where(batches.c.class_id == bindparam("class_id")))
_IN_USE = select(
    or_(
        exists().where(_a.c.suggested_student_id == bindparam("student_id")),
        exists().where(_a.c.student_id == bindparam("student_id")),
    )
)
_IN_USE_AMONG = select(_a.c.suggested_student_id, _a.c.student_id).where(
    or_(
        _a.c.suggested_student_id.in_(bindparam("student_ids", expanding=True)),
        _a.c.student_id.in_(bindparam("student_ids", expanding=True)),
    )
)
_IN_USE_CHUNK = 5_000  # two expanding lists: 10,000 parameters per statement
_CLASS_INFO = (
    select(batches.c.batch_id, batches.c.class_id, classes.c.name)
    .join(classes, classes.c.id == batches.c.class_id)
    .where(batches.c.batch_id.in_(bindparam("batch_ids", expanding=True)))
)
_PENDING = (
    select(_a)
    .where(_a.c.validation_status == ValidationStatus.PENDING.value)
    .order_by(*_ASSOC_ORDER)
    .limit(bindparam("limit"))
)


_QUEUE_ORDER = (batches.c.deadline, batches.c.batch_id)
_COUNTED = {
    "pending": (ValidationStatus.PENDING.value,),
    "confirmed": (ValidationStatus.CONFIRMED.value, ValidationStatus.TIMEOUT_CONFIRMED.value),
    "rejected": (ValidationStatus.REJECTED.value,),
}


_ZERO: ColumnElement[Any] = literal_column("0")
_ONE: ColumnElement[Any] = literal_column("1")


def _status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    """``validation_status IN (...)`` with the statuses (our own constants) written into the
    SQL, so that the statement has plain parameters only."""
    return or_(*(_a.c.validation_status == literal_column(f"'{v}'") for v in statuses))


def _queue_conditions(by_status: bool, by_class: bool) -> list[Any]:
    conds = [batches.c.owner_id == bindparam("owner_id")]
    if by_status:
        conds.append(batches.c.status == bindparam("status"))
    if by_class:
        conds.append(batches.c.class_id == bindparam("class_id"))
    return conds


def _queue_statement(by_status: bool, by_class: bool, lateral: bool) -> Select[Any]:
    """One page of an owner's batch queue with its total and counts, one statement: the page
    is an index range scan of ``ix_cms_batches_owner_queue`` (owner, status, deadline, batch
    id) stopped at the limit, the total an index-only count beside it, then only the page's
    classes are joined and each of its batches' associations counted through
    ``ix_cms_essay_associations_batch``: on PostgreSQL a ``LATERAL`` count per page row (with
    an ``IN`` over the page a small table was hashed whole: 0.24 of the statement's 0.41 ms
    with 1,500 associations, where 20 index probes take a few µs each; the statement now
    takes 0.23 ms), on SQLite an ``IN`` over the page."""
    conds = _queue_conditions(by_status, by_class)
    page = (
        select(
            batches.c.batch_id,
            batches.c.class_id,
            batches.c.course_code,
            batches.c.status,
            batches.c.deadline,
            batches.c.created_at,
        )
        .where(*conds)
        .order_by(*_QUEUE_ORDER)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
        .cte("page")
    )
    total = select(func.count()).select_from(batches).where(*conds).scalar_subquery()
    counting = select(
        _a.c.batch_id,
        func.count().label("essay_count"),
        *(
            func.sum(case((_status_in(statuses), _ONE), else_=_ZERO)).label(name)
            for name, statuses in _COUNTED.items()
        ),
    ).group_by(_a.c.batch_id)
    counts: FromClause
    if lateral:
        counts = counting.where(_a.c.batch_id == page.c.batch_id).lateral("counts")
        on: ColumnElement[bool] = true()
    else:  # SQLite has no LATERAL
        counts = counting.where(_a.c.batch_id.in_(select(page.c.batch_id))).subquery("counts")
        on = counts.c.batch_id == page.c.batch_id
    return (
        select(
            page,
            classes.c.name.label("class_name"),
            total.label("total"),
            func.coalesce(counts.c.essay_count, _ZERO).label("essay_count"),
            *(func.coalesce(counts.c[name], _ZERO).label(name) for name in _COUNTED),
        )
        .select_from(page)
        .join(classes, classes.c.id == page.c.class_id)
        .outerjoin(counts, on)
        .order_by(page.c.deadline, page.c.batch_id)
    )


# Built once, when the module is loaded (never changed): the four filter combinations, so
# that a request only binds its values (one cached compilation and prepared statement each).
_QUEUE = {
    (s, c, lateral): _queue_statement(s, c, lateral)
    for s in (False, True)
    for c in (False, True)
    for lateral in (False, True)
}
_QUEUE_TOTAL = {
    (s, c): select(func.count()).select_from(batches).where(*_queue_conditions(s, c))
    for s in (False, True)
    for c in (False, True)
}


def _queue_params(owner_id: str, query: BatchQuery) -> dict[str, Any]:
    params: dict[str, Any] = {"owner_id": owner_id, "limit": query.limit, "offset": query.offset}
    if query.status is not None:
        params["status"] = query.status
    if query.class_id is not None:
        params["class_id"] = query.class_id
    return params


def _summary(row: Any) -> BatchSummary:
    return BatchSummary(
        batch_id=row["batch_id"],
        class_id=row["class_id"],
        class_name=row["class_name"],
        course_code=row["course_code"],
        status=BatchStatus(row["status"]),
        deadline=row["deadline"],
        essay_count=int(row["essay_count"]),
        pending=int(row["pending"]),
        confirmed=int(row["confirmed"]),
        rejected=int(row["rejected"]),
        created_at=row["created_at"],
    )


def _batch_update_params(b: Batch) -> dict[str, Any]:
    row = batch_row(b)
    return {f"v_{k}": v for k, v in row.items() if k != "created_at"}


def _update_params(a: Association, fields: Sequence[str]) -> dict[str, Any]:
    """Parameters of :func:`_update_by_essay` for ``a``."""
    row = association_row(a)
    params = {f"v_{name}": row[name] for name in fields}
    params["v_essay_id"] = a.essay_id
    return params


class SqlBatchRepository:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def _by_ids(
        self, pg: Select[Any], portable: Select[Any], params: dict[str, Any]
    ) -> list[Any]:
        """Rows (mappings) of a look-up by an id list: the array-joining statement through
        the driver on PostgreSQL, the expanding ``IN`` one elsewhere, in chunks of ids that
        stay below SQLite's limit of variables per statement (the list is the one list-valued
        parameter)."""
        if self._tx.is_postgresql:
            return await self._tx.fetch_rows(pg, params)
        name, ids = next((k, v) for k, v in params.items() if isinstance(v, list))
        rows: list[Any] = []
        for start in range(0, max(len(ids), 1), _IN_CHUNK):
            chunk = {**params, name: ids[start : start + _IN_CHUNK]}
            rows.extend((await self._tx.execute(portable, chunk)).mappings())
        return rows

    async def get(self, batch_id: UUID, *, lock: bool = False) -> Batch | None:
        rows = await self._tx.fetch_rows(_GET_LOCKED if lock else _GET, {"batch_id": batch_id})
        return batch_from_row(rows[0]) if rows else None

    async def add(self, batch: Batch) -> None:
        await self._tx.execute(_INSERT, batch_row(batch))

    async def update(self, batch: Batch) -> None:
        await self._tx.execute(_UPDATE, _batch_update_params(batch))

    async def update_many(self, batches_: Sequence[Batch]) -> None:
        if batches_:
            params = [_batch_update_params(b) for b in batches_]
            await self._tx.execute(_UPDATE, params if len(params) > 1 else params[0])

    async def associations(self, batch_id: UUID) -> list[Association]:
        rows = await self._tx.fetch_rows(_ASSOCIATIONS, {"batch_id": batch_id})
        return [association_from_row(r) for r in rows]

    async def associations_of(self, batch_ids: Collection[UUID]) -> dict[UUID, list[Association]]:
        if not batch_ids:
            return {}
        rows = await self._by_ids(_OF_BATCHES_PG, _OF_BATCHES, {"batch_ids": list(set(batch_ids))})
        found: dict[UUID, list[Association]] = {}
        for row in rows:
            a = association_from_row(row)
            group = found.get(a.batch_id)
            if group is None:
                group = found[a.batch_id] = []
            group.append(a)
        return found

    async def associations_by_essay(self, essay_ids: Collection[UUID]) -> dict[UUID, Association]:
        if not essay_ids:
            return {}
        rows = await self._by_ids(_BY_ESSAY_PG, _BY_ESSAY, {"essay_ids": list(set(essay_ids))})
        return {r["essay_id"]: association_from_row(r) for r in rows}

    async def add_associations(self, items: Sequence[Association]) -> None:
        if len(items) > 1 and self._tx.is_postgresql:
            await self._tx.execute(_INSERT_ASSOC_PG, _column_arrays(items, _ASSOC_COLUMNS))
        elif items:
            rows = [association_row(a) for a in items]
            await self._tx.execute(_INSERT_ASSOC, rows if len(rows) > 1 else rows[0])

    async def update_associations(self, items: Sequence[Association]) -> None:
        distinct = len({a.essay_id for a in items}) == len(items)
        if len(items) > 1 and distinct and self._tx.is_postgresql:
            arrays = _column_arrays(items, _UPDATED_ASSOC_COLUMNS)
            await self._tx.execute(_UPDATE_ASSOC_PG, arrays)
        elif items:
            params = [_update_params(a, _UPDATED_ASSOC_FIELDS) for a in items]
            await self._tx.execute(_UPDATE_ASSOC, params if len(params) > 1 else params[0])

    async def update_decisions(self, items: Sequence[Association]) -> None:
        if not items:
            return
        if not self._tx.is_postgresql:
            rows = [_update_params(a, _DECISION_FIELDS) for a in items]
            await self._tx.execute(_UPDATE_DECISION, rows if len(rows) > 1 else rows[0])
            return
        for (status, method, by, at, updated_at), group in _decision_groups(items).items():
            params: dict[str, Any] = {
                "essay_ids": [a.essay_id for a in group],
                "student_ids": [a.student_id for a in group],
                "status": status.value,
                "method": method.value if method is not None else None,
                "by": by,
                "at": at,
                "updated_at": updated_at,
            }
            await self._tx.execute(_UPDATE_DECISIONS_PG, params)

    async def earliest_pending_deadline(self) -> datetime | None:
        rows = await self._tx.fetch_rows(_EARLIEST_DEADLINE, {})
        deadline: datetime | None = rows[0]["deadline"]
        return deadline

    async def claim_due(self, now: datetime, limit: int) -> list[Batch]:
        result = await self._tx.execute(_DUE, {"now": now, "limit": limit})
        return [batch_from_row(r) for r in result.mappings()]

    async def associations_of_student(self, student_id: UUID) -> list[Association]:
        statement = (
            select(_a)
            .where(or_(_a.c.student_id == student_id, _a.c.suggested_student_id == student_id))
            .order_by(*_ASSOC_ORDER)
        )
        result = await self._tx.execute(statement)
        return [association_from_row(r) for r in result.mappings()]

    async def class_has_batches(self, class_id: UUID) -> bool:
        return bool((await self._tx.execute(_HAS_BATCHES, {"class_id": class_id})).scalar())

    async def student_in_use(self, student_id: UUID) -> bool:
        return bool((await self._tx.execute(_IN_USE, {"student_id": student_id})).scalar())

    async def students_in_use(self, student_ids: Collection[UUID]) -> set[UUID]:
        wanted = sorted(set(student_ids))
        found: set[UUID] = set()
        for start in range(0, len(wanted), _IN_USE_CHUNK):
            chunk = wanted[start : start + _IN_USE_CHUNK]
            result = await self._tx.execute(_IN_USE_AMONG, {"student_ids": chunk})
            for row in result:
                found.update(i for i in row if i is not None)
        return found & set(wanted)

    async def class_info(self, batch_ids: Collection[UUID]) -> dict[UUID, tuple[UUID, str]]:
        if not batch_ids:
            return {}
        result = await self._tx.execute(_CLASS_INFO, {"batch_ids": list(set(batch_ids))})
        return {r.batch_id: (r.class_id, r.name) for r in result}

    async def pending_associations(self, limit: int) -> list[Association]:
        result = await self._tx.execute(_PENDING, {"limit": limit})
        return [association_from_row(r) for r in result.mappings()]

    async def list_for_owner(self, owner_id: str, query: BatchQuery) -> Page[BatchSummary]:
        shape = (query.status is not None, query.class_id is not None)
        params = _queue_params(owner_id, query)
        rows = await self._tx.fetch_rows(_QUEUE[(*shape, self._tx.is_postgresql)], params)
        if rows:
            total = int(rows[0]["total"])
        else:  # past the end (or nothing): the window gave no total
            del params["limit"], params["offset"]
            counted = await self._tx.execute(_QUEUE_TOTAL[shape], params)
            total = int(counted.scalar_one())
        return Page(tuple(_summary(r) for r in rows), total, query.limit, query.offset)

"""``ChangeLog`` on SQL: the change feed's log (contract §9.3, docs/architecture.md).

A student has one row (``uq_cms_changes_student``), moved to a new ``seq`` by each of its
changes. A class's change appends a row and deletes the class's older rows that no other
transaction holds (migration r0030, below). So the table holds about one row per object seen
within the retention (tombstones until the purge), and a page is an index range scan of
``ix_cms_changes_owner_seq``.

Commit safety on PostgreSQL: ``seq`` values are taken before commit and transactions commit
out of order, so "``seq`` above the last one seen" alone would skip a row whose writer
committed late. Each row carries its writer's transaction id (``pg_current_xact_id()``), and
a reader's position carries the snapshot it read with (``pg_current_snapshot()``, taken
before its rows): the next read also returns rows at or below the position's ``seq`` whose
transaction that snapshot did not see (``pg_visible_in_snapshot``), found through
``ix_cms_changes_owner_xid`` from the snapshot's ``xmin``. Such rows are exactly the ones
committed after the reader looked: nothing is skipped, and only rows committed during a
read can come twice. SQLite runs one writer at a time and the log is written last, just
before the commit, so its ``seq`` order is commit order and positions need no snapshot.

Why a class's rows are appended (every join or leave changes its ``student_count``): one row
per class, moved by each change, was one lock that concurrent joins of the class queued on,
through each other's commits (moved at ``COMMIT`` by migrations r0026/r0029, still through
the commit's WAL flush). Appended, with the older rows deleted ``FOR UPDATE SKIP LOCKED``,
no writer waits for another; a class written by transactions that ran at the same time keeps
a row of each until its next change, and §9.3 allows an entry to repeat (docs/architecture.md,
"The change feed"; docs/performance.md, "An append-only feed for classes").
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Engine,
    Insert,
    Integer,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Executable
from sqlalchemy.sql.expression import ColumnClause

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.classes import _count_of
from adapters_sql.history import SqlStudentHistory
from adapters_sql.mapping import (
    HISTORY_COLUMNS,
    OUTBOX_RECORD_COLUMNS,
    class_from_row,
    history_row,
    outbox_row,
)
from adapters_sql.messaging import SqlOutbox
from adapters_sql.schema import (
    change_feed_key,
    changes,
    classes,
    outbox,
    student_history,
    students,
)
from adapters_sql.students import _SELECT as _STUDENTS_WITH_CLASSES
from adapters_sql.students import _class_ids_of, _grouped, _with_class_ids
from adapters_sql.transaction import SqlTransaction
from adapters_sql.types import UTCDateTime
from class_core.changes import ChangeKey, Entity, FeedPosition, LoggedChange, Op, PendingChange
from class_core.events import OutboxMessage
from class_core.model import HistoryEntry, SchoolClass, Student
from class_core.ports import FeedRead

_KEYS: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()
_SQLITE_CHUNK = 10_000  # ids per expanding IN (SQLite allows 32,766 variables)

# PostgreSQL: every change of a commit in one statement (arrays; no join with the objects:
# the owners come with the changes). Students are upserted in id order, so that two commits
# that move the same rows lock them in the same order; classes are appended, and their older
# rows that no other transaction holds are deleted (SKIP LOCKED: nobody waits; the rows of
# commits this one cannot see stay until the class's next change). In one statement the
# delete sees only rows committed before it, never the rows appended beside it.
_PG_WRITE = text(
    """
    WITH pruned AS (
        DELETE FROM cms_changes WHERE seq IN (
            SELECT seq FROM cms_changes
            WHERE entity = 'class' AND object_id = ANY(:class_ids)
            FOR UPDATE SKIP LOCKED
        )
    ), appended AS (
        INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at, xid)
        SELECT 'class', k.id, k.owner_id, k.op, k.version, :at,
               pg_current_xact_id()::text::bigint
        FROM unnest(:class_ids, :class_owners, :class_ops, :class_versions)
             AS k(id, owner_id, op, version)
    )
    INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at, xid)
    SELECT 'student', k.id, k.owner_id, k.op, k.version, :at,
           pg_current_xact_id()::text::bigint
    FROM unnest(:student_ids, :student_owners, :student_ops, :student_versions)
         AS k(id, owner_id, op, version)
    ORDER BY k.id
    ON CONFLICT (object_id) WHERE entity = 'student' DO UPDATE SET
        seq = excluded.seq, owner_id = excluded.owner_id, op = excluded.op,
        version = excluded.version, at = excluded.at, xid = excluded.xid
    """
).bindparams(
    bindparam("at", type_=UTCDateTime()),
    *(
        bindparam(f"{entity}_{name}", type_=postgresql.ARRAY(element))
        for entity in ("class", "student")
        for name, element in (
            ("ids", Uuid()),
            ("owners", Text()),
            ("ops", Text()),
            ("versions", Integer()),
        )
    ),
)
# PostgreSQL, a commit's few changes (most API writes: one object and its classes): the
# same as _PG_WRITE, with the history and outbox rows, as one statement with plain values,
# built once per shape (at most _PG_FEW of each). Arrays of uuid and int4 are not among
# asyncpg's built-in codecs: the first array statement on each new connection costs a type
# introspection (three more round trips), which a write after a reconnect would pay.
_FEW_STATEMENTS: dict[tuple[int, int, int, int], Executable] = {}
_OUTBOX_COLUMNS = OUTBOX_RECORD_COLUMNS  # the keys of outbox_row(message)
_XID_VALUE: ColumnClause[Any] = literal_column("pg_current_xact_id()::text::bigint")
_LOG_COLUMNS = ("entity", "object_id", "owner_id", "op", "version", "at")
# Literals, not parameters: a generic plan can use the partial indexes only for these.
_STUDENT_ROW = changes.c.entity == literal_column("'student'")
_CLASS_ROW = changes.c.entity == literal_column("'class'")


def _rows_insert(table: Table, prefix: str, columns: Sequence[str], n: int) -> Insert:
    """``INSERT INTO table (columns) VALUES …`` of ``n`` rows, parameters
    ``{prefix}{i}_{column}``."""
    return insert(table).values(
        [
            {c: bindparam(f"{prefix}{i}_{c}", type_=table.c[c].type) for c in columns}
            for i in range(n)
        ]
    )


def _log_rows(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            **{c: bindparam(f"{prefix}{i}_{c}", type_=changes.c[c].type) for c in _LOG_COLUMNS},
            "xid": _XID_VALUE,
        }
        for i in range(n)
    ]


def _few_statement(messages: int, students_: int, classes_: int, history: int) -> Executable:
    """Insert ``history`` student-history rows (parameters ``h{i}_{column}``) and
    ``messages`` outbox rows (``o{i}_{column}``), append ``classes_`` class rows
    (``c{i}_{column}``) to cms_changes deleting those classes' older rows (as _PG_WRITE), and
    upsert ``students_`` student rows (``s{i}_{column}``), in one statement (data-modifying
    CTEs)."""
    shape = (messages, students_, classes_, history)
    found = _FEW_STATEMENTS.get(shape)
    if found is not None:
        return found
    parts: list[Any] = [
        _rows_insert(table, prefix, columns, n)
        for table, prefix, columns, n in (
            (student_history, "h", HISTORY_COLUMNS, history),
            (outbox, "o", _OUTBOX_COLUMNS, messages),
        )
        if n
    ]
    if classes_:
        older = (
            select(changes.c.seq)
            .where(
                _CLASS_ROW,
                changes.c.object_id.in_([bindparam(f"c{i}_object_id") for i in range(classes_)]),
            )
            .with_for_update(skip_locked=True)
        )
        parts.append(delete(changes).where(changes.c.seq.in_(older)))
        parts.append(insert(changes).values(_log_rows("c", classes_)))
    if students_:
        upsert = postgresql.insert(changes).values(_log_rows("s", students_))
        parts.append(
            upsert.on_conflict_do_update(
                index_elements=[changes.c.object_id],
                index_where=_STUDENT_ROW,
                set_={
                    c: upsert.excluded[c] for c in ("seq", "owner_id", "op", "version", "at", "xid")
                },
            )
        )
    main = parts[-1]
    for n, part in enumerate(parts[:-1]):
        main = main.add_cte(part.cte(f"w{n}"))
    statement: Executable = main
    _FEW_STATEMENTS[shape] = statement
    return statement


_XID = text("SELECT pg_current_xact_id()::text::bigint")
_COPY_COLUMNS = ("entity", "object_id", "owner_id", "op", "version", "at", "xid")
_PG_FEW = 16  # up to this many changes of each kind: _few_statement; more: arrays
# SQLite: ``OR REPLACE`` deletes a student's old row and inserts it anew with the next
# ``seq`` (AUTOINCREMENT: never a used one); a class's old rows are deleted first.
_SQLITE_WRITE = insert(changes).prefix_with("OR REPLACE")
_SQLITE_PRUNE = delete(changes).where(
    _CLASS_ROW, changes.c.object_id.in_(bindparam("ids", expanding=True))
)
# The owners of students touched without an event (a class deletion's members: a few).
_STUDENT_OWNERS = select(students.c.id, students.c.owner_id).where(
    students.c.id.in_(bindparam("ids", expanding=True))
)

_KEY = select(change_feed_key.c.secret).where(change_feed_key.c.id == 1)
_SNAPSHOT = select(cast(func.pg_current_snapshot(), Text).label("snapshot"))
_LAST_SEQ = select(func.max(changes.c.seq)).where(changes.c.owner_id == bindparam("owner_id"))
_COLUMNS = (
    changes.c.seq,
    changes.c.entity,
    changes.c.object_id,
    changes.c.op,
    changes.c.version,
    changes.c.at,
)
_after = (
    select(*_COLUMNS)
    .where(changes.c.owner_id == bindparam("owner_id"), changes.c.seq > bindparam("seq"))
    .order_by(changes.c.seq)
    .limit(bindparam("limit"))
)
_READ = _after
# Rows at or below the position's seq that its snapshot did not see (committed later): the
# owner's rows written at or after the snapshot's xmin (few: transactions running when the
# reader looked), through ix_cms_changes_owner_xid. Materialised first, so that no plan (a
# generic one least of all) walks the owner's whole history by seq to find them.
_recent = (
    select(changes)
    .where(changes.c.owner_id == bindparam("owner_id"), changes.c.xid >= bindparam("xmin"))
    .cte("recent")
    .prefix_with("MATERIALIZED")
)
_window = select(*(_recent.c[c.name] for c in _COLUMNS)).where(
    _recent.c.seq > bindparam("window_after"),
    _recent.c.seq <= bindparam("seq"),
    text(
        "NOT pg_visible_in_snapshot(recent.xid::text::xid8, "
        "CAST(CAST(:snapshot AS TEXT) AS pg_snapshot))"
    ),
)
_both = union_all(select(_after.subquery("a")), _window).subquery("u")
_READ_PG = select(_both).order_by(_both.c.seq).limit(bindparam("limit"))

_CLASSES_PG = select(classes, _count_of(classes.c.id)).where(
    classes.c.owner_id == bindparam("owner_id"),
    classes.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(Uuid()))),
)
_CLASSES = select(classes, _count_of(classes.c.id)).where(
    classes.c.owner_id == bindparam("owner_id"),
    classes.c.id.in_(bindparam("ids", expanding=True)),
)
_STUDENTS_PG = select(students, _class_ids_of(students.c.id)).where(
    students.c.owner_id == bindparam("owner_id"),
    students.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(Uuid()))),
)
_STUDENTS = _STUDENTS_WITH_CLASSES.where(
    students.c.owner_id == bindparam("owner_id"),
    students.c.id.in_(bindparam("ids", expanding=True)),
)


def _logged(row: Any) -> LoggedChange:
    return LoggedChange(
        int(row["seq"]),
        Entity(row["entity"]),
        row["object_id"],
        Op(row["op"]),
        int(row["version"]),
        row["at"],
    )


class SqlChangeLog:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def write(self, changes_: Mapping[ChangeKey, PendingChange]) -> None:
        await self.write_commit(changes_, ())

    async def write_commit(
        self,
        changes_: Mapping[ChangeKey, PendingChange],
        messages: Sequence[OutboxMessage],
        history: Sequence[HistoryEntry] = (),
    ) -> None:
        """A commit's last rows: its students' ``history`` entries (as
        :meth:`SqlStudentHistory.add` writes them), its outbox ``messages`` (as
        :meth:`SqlOutbox.add` writes them) and its change-feed rows. On PostgreSQL a commit
        with at most ``_PG_FEW`` of each kind (every API write) sends them as one statement
        (:func:`_few_statement`), one round trip instead of three; measured in
        docs/performance.md, "POST student"."""
        rows = await self._rows(changes_)
        pg = self._tx.is_postgresql
        student_rows = [r for r in rows if r["entity"] == Entity.STUDENT.value]
        class_rows = [r for r in rows if r["entity"] == Entity.CLASS.value]
        counts = (len(messages), len(student_rows), len(class_rows), len(history))
        if pg and any(counts) and max(counts) <= _PG_FEW:
            params: dict[str, object] = {
                f"h{i}_{k}": v for i, e in enumerate(history) for k, v in history_row(e).items()
            }
            params.update(
                (f"o{i}_{k}", v) for i, m in enumerate(messages) for k, v in outbox_row(m).items()
            )
            for prefix, some in (("s", student_rows), ("c", class_rows)):
                params.update(
                    (f"{prefix}{i}_{k}", v) for i, r in enumerate(some) for k, v in r.items()
                )
            await self._tx.write(_few_statement(*counts), params)
            if messages:
                self._tx.added_outbox = True
            return
        await SqlStudentHistory(self._tx).add(history)
        await SqlOutbox(self._tx).add(messages)
        if not rows:
            return
        if not pg:
            await self._sqlite_write(rows, [r["object_id"] for r in class_rows])
            return
        params = {"at": rows[0]["at"]}
        for entity, some in (("class", class_rows), ("student", student_rows)):
            params.update(
                {
                    f"{entity}_ids": [r["object_id"] for r in some],
                    f"{entity}_owners": [r["owner_id"] for r in some],
                    f"{entity}_ops": [r["op"] for r in some],
                    f"{entity}_versions": [r["version"] for r in some],
                }
            )
        await self._tx.execute(_PG_WRITE, params)

    async def _sqlite_write(self, rows: list[dict[str, object]], class_ids: list[object]) -> None:
        """SQLite (one writer at a time): the classes' older rows go, then every row is
        inserted; ``OR REPLACE`` replaces a student's row (``uq_cms_changes_student``)."""
        for start in range(0, len(class_ids), _SQLITE_CHUNK):
            chunk = class_ids[start : start + _SQLITE_CHUNK]
            await self._tx.execute(_SQLITE_PRUNE, {"ids": chunk})
        rows = [{**r, "xid": None} for r in rows]
        await self._tx.execute(_SQLITE_WRITE, rows if len(rows) > 1 else rows[0])

    async def _rows(self, changes_: Mapping[ChangeKey, PendingChange]) -> list[dict[str, object]]:
        """The log rows of ``changes_`` still to write, in (entity, id) order (on every path:
        two commits lock shared rows in one order); an import's new students' rows are
        COPYed here already."""
        if not changes_:
            return []
        owners = await self._owners_of_touched(changes_)
        keys = sorted(k for k in changes_ if k in owners or changes_[k].owner_id is not None)
        if not keys:
            return []
        at = max(c.at for c in changes_.values())
        if self._tx.is_postgresql:
            keys = await self._copy_new_students(keys, changes_, owners, at)
        return [
            {
                "entity": k[0].value,
                "object_id": k[1],
                "owner_id": changes_[k].owner_id or owners[k],
                "op": changes_[k].op.value,
                "version": changes_[k].version,
                "at": at,
            }
            for k in keys
        ]

    async def _copy_new_students(
        self,
        keys: list[ChangeKey],
        changes_: Mapping[ChangeKey, PendingChange],
        owners: Mapping[ChangeKey, str],
        at: datetime,
    ) -> list[ChangeKey]:
        """``COPY`` the rows of the students this transaction inserted by ``COPY`` (an import
        chunk's new students: no row of theirs can exist, so no upsert is needed; measured in
        docs/performance.md, "Roster import: overlap and memory"); the other keys remain."""
        new = self._tx.copied_students
        fresh = [k for k in keys if k[0] is Entity.STUDENT and k[1] in new]
        if not use_copy(self._tx, len(fresh)):
            return keys
        xid = (await self._tx.execute(_XID)).scalar_one()
        records = (
            (e.value, i, c.owner_id or owners[k], c.op.value, c.version, at, xid)
            for k in fresh
            for e, i, c in ((k[0], k[1], changes_[k]),)
        )
        await copy_records(self._tx, changes, _COPY_COLUMNS, records)
        return [k for k in keys if not (k[0] is Entity.STUDENT and k[1] in new)]

    async def _owners_of_touched(
        self, changes_: Mapping[ChangeKey, PendingChange]
    ) -> dict[ChangeKey, str]:
        """The owners of the changes that came without one (students still there)."""
        ids = [i for (e, i), c in changes_.items() if c.owner_id is None and e is Entity.STUDENT]
        found: dict[ChangeKey, str] = {}
        for start in range(0, len(ids), _SQLITE_CHUNK):
            chunk = ids[start : start + _SQLITE_CHUNK]
            result = await self._tx.execute(_STUDENT_OWNERS, {"ids": chunk})
            found.update(((Entity.STUDENT, r["id"]), r["owner_id"]) for r in result.mappings())
        return found

    async def cursor_key(self) -> bytes:
        engine = self._tx.conn.sync_engine
        key = _KEYS.get(engine)
        if key is None:
            secret = (await self._tx.execute(_KEY)).scalar_one()
            key = _KEYS[engine] = bytes.fromhex(secret)
        return key

    async def _snapshot(self) -> str:
        if not self._tx.is_postgresql:
            return ""
        return str((await self._tx.execute(_SNAPSHOT)).scalar_one())

    async def position(self, owner_id: str) -> FeedPosition:
        snapshot = await self._snapshot()  # first: what it did not see comes later
        last = (await self._tx.execute(_LAST_SEQ, {"owner_id": owner_id})).scalar_one()
        return FeedPosition(int(last or 0), snapshot)

    async def read(self, owner_id: str, after: FeedPosition, limit: int) -> FeedRead:
        snapshot = await self._snapshot()  # before the rows (see the module's docstring)
        params: dict[str, Any] = {"owner_id": owner_id, "seq": after.seq, "limit": limit}
        statement = _READ
        if after.snapshot and self._tx.is_postgresql:
            statement = _READ_PG
            params.update(
                xmin=int(after.snapshot.split(":", 1)[0]),
                window_after=after.window_after,
                snapshot=after.snapshot,
            )
        rows = (await self._tx.execute(statement, params)).mappings()
        return FeedRead([_logged(r) for r in rows], snapshot)

    async def load(
        self, owner_id: str, class_ids: Collection[UUID], student_ids: Collection[UUID]
    ) -> tuple[dict[UUID, SchoolClass], dict[UUID, Student]]:
        found_classes: dict[UUID, SchoolClass] = {}
        found_students: dict[UUID, Student] = {}
        pg = self._tx.is_postgresql
        if class_ids:
            params = {"owner_id": owner_id, "ids": list(class_ids)}
            result = await self._tx.execute(_CLASSES_PG if pg else _CLASSES, params)
            for row in result.mappings():
                found_classes[row["id"]] = class_from_row(row, row["student_count"])
        if student_ids:
            params = {"owner_id": owner_id, "ids": list(student_ids)}
            result = await self._tx.execute(_STUDENTS_PG if pg else _STUDENTS, params)
            rows = result.mappings()
            found_students = {s.id: s for s in (_with_class_ids(rows) if pg else _grouped(rows))}
        return found_classes, found_students

    async def purge(self, before: datetime, limit: int) -> int:
        oldest = select(changes.c.seq, changes.c.at).order_by(changes.c.seq).limit(limit).subquery()
        statement = delete(changes).where(
            changes.c.seq.in_(select(oldest.c.seq).where(oldest.c.at < before))
        )
        result = await self._tx.execute(statement)
        return max(int(result.rowcount or 0), 0)

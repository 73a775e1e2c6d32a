"""The one statement that commits a new student, its memberships and its outbox rows.

Used by :meth:`adapters_sql.transaction.SqlTransaction.commit_held` (PostgreSQL only): the
unit of work of ``create_student`` writes exactly these rows and nothing else, and sends them
as data-modifying CTEs in one autocommitted statement. Unique and foreign-key violations are
raised for the statement as a whole, exactly as for the separate inserts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define, field
from sqlalchemy.sql import Executable

from adapters_sql.mapping import OUTBOX_RECORD_COLUMNS, STUDENT_RECORD_COLUMNS
from adapters_sql.schema import class_students, outbox, students

OUTBOX_INSERT_SQL = (
    f"INSERT INTO {outbox.name} ({', '.join(OUTBOX_RECORD_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(OUTBOX_RECORD_COLUMNS) + 1))})"
)
_OUTBOX_TYPES = ("uuid", "text", "text", "text", "jsonb", "timestamptz", "timestamptz")


def _combined_sql(with_outbox: bool) -> str:
    n = len(STUDENT_RECORD_COLUMNS)
    values = ", ".join(f"${i}" for i in range(1, n + 1))
    sql = (
        f"WITH s AS (INSERT INTO {students.name} ({', '.join(STUDENT_RECORD_COLUMNS)}) "
        f"VALUES ({values}) RETURNING id), "
        f"m AS (INSERT INTO {class_students.name} (class_id, student_id) "
        f"SELECT c, s.id FROM s, unnest(${n + 1}::uuid[]) AS c)"
    )
    if with_outbox:
        arrays = ", ".join(
            f"${n + 2 + i}::{t.replace('jsonb', 'text')}[]" for i, t in enumerate(_OUTBOX_TYPES)
        )
        names = ", ".join(f"u{i}" for i in range(len(OUTBOX_RECORD_COLUMNS)))
        casts = ", ".join(f"u{i}::{t}" for i, t in enumerate(_OUTBOX_TYPES))
        sql += (
            f", o AS (INSERT INTO {outbox.name} ({', '.join(OUTBOX_RECORD_COLUMNS)}) "
            f"SELECT {casts} FROM unnest({arrays}) AS u({names}))"
        )
    return sql + " SELECT 1"


COMBINED_SQL = _combined_sql(True)
COMBINED_SQL_WITHOUT_OUTBOX = _combined_sql(False)


@define
class HeldStudentInsert:
    """A new student's insert with memberships: as the repository would send it on its own
    (``statement`` and ``params``, through SQLAlchemy) and as the combined statement's first
    arguments (``student_args``: ``mapping.STUDENT_RECORD_COLUMNS`` then the list of class ids)."""

    statement: Executable
    params: dict[str, Any]
    student_args: list[Any]


@define
class HeldWrites:
    insert: HeldStudentInsert
    outbox: list[Sequence[Any]] = field(factory=list)  # records in OUTBOX_RECORD_COLUMNS order

    def combined(self) -> tuple[str, list[Any]]:
        """The SQL and its arguments (one array per outbox column)."""
        if not self.outbox:
            return COMBINED_SQL_WITHOUT_OUTBOX, list(self.insert.student_args)
        columns = [list(column) for column in zip(*self.outbox, strict=True)]
        return COMBINED_SQL, [*self.insert.student_args, *columns]

"""A class's changes are appended to the change feed, not moved (docs/architecture.md, "The
change feed"; docs/performance.md, "An append-only feed for classes").

Until now ``cms_changes`` held one row per object (``uq_cms_changes_object``), moved to a new
``seq`` by each change. Every student joining or leaving a class moves that class's row, and
r0026/r0029 moved it during ``COMMIT`` from ``cms_changes_deferred``. The row lock was still
held through the commit's WAL flush: sixteen clients adding students to one class committed
one after another, never sharing a flush (measured: with the move, POST student ran at ≈ 0.8
of its rate without it, at ≈ 1.3× its P95).

Now:

* a student keeps one row (``uq_cms_changes_student``, a partial unique index: the upsert's
  arbiter);
* a class's change inserts a new row, and deletes the class's older rows that no other
  transaction holds (``FOR UPDATE SKIP LOCKED``): nobody waits. A class written by
  transactions that ran at the same time keeps a row of each until its next change; §9.3
  allows an entry to repeat. ``ix_cms_changes_class`` finds a class's rows;
* ``cms_changes_deferred`` and its triggers go: nothing is moved at ``COMMIT``.

On SQLite the table is rebuilt (AUTOINCREMENT and its high-water mark are kept, so a ``seq``
is never reused).

Revision ID: r0030_feed_appended
Revises: r0029_feed_moved_together
Create Date: 2026-12-06
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "r0030_feed_appended"
down_revision: str | None = "r0029_feed_moved_together"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "cms_changes"
_STUDENT = sa.text("entity = 'student'")
_CLASS = sa.text("entity = 'class'")


def _revision(name: str) -> ModuleType:
    """An earlier revision's module (its SQL, for the downgrade)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"migration {name} not found beside {Path(__file__).name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sqlite_high_water() -> int:
    found = op.get_bind().execute(
        sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": _TABLE}
    )
    return int(found.scalar() or 0)


def _sqlite_keep_high_water(seq: int) -> None:
    """The rebuilt table's AUTOINCREMENT counter starts at its highest copied row: set it
    back to the old one, so that no ``seq`` a cursor may hold is given again."""
    op.execute(
        sa.text("UPDATE sqlite_sequence SET seq = max(seq, :s) WHERE name = :t").bindparams(
            s=seq, t=_TABLE
        )
    )


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute("DROP TRIGGER cms_changes_deferred_move ON cms_changes_deferred")
        op.execute("DROP TRIGGER cms_changes_deferred_write ON cms_changes_deferred")
        op.execute("DROP FUNCTION cms_changes_deferred_move()")
        op.execute("DROP FUNCTION cms_changes_deferred_write()")
        op.drop_constraint("uq_cms_changes_object", _TABLE, type_="unique")
    else:
        high = _sqlite_high_water()
        with op.batch_alter_table(
            _TABLE, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.drop_constraint("uq_cms_changes_object", type_="unique")
        _sqlite_keep_high_water(high)
    op.drop_table("cms_changes_deferred")
    op.create_index(
        "uq_cms_changes_student",
        _TABLE,
        ["object_id"],
        unique=True,
        postgresql_where=_STUDENT,
        sqlite_where=_STUDENT,
    )
    op.create_index(
        "ix_cms_changes_class",
        _TABLE,
        ["object_id"],
        postgresql_where=_CLASS,
        sqlite_where=_CLASS,
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.drop_index("ix_cms_changes_class", table_name=_TABLE)
    op.drop_index("uq_cms_changes_student", table_name=_TABLE)
    # One row per object again: a class's newest.
    op.execute(
        "DELETE FROM cms_changes WHERE entity = 'class' AND seq NOT IN "
        "(SELECT max(seq) FROM cms_changes WHERE entity = 'class' GROUP BY object_id)"
    )
    if postgresql:
        op.create_unique_constraint("uq_cms_changes_object", _TABLE, ["entity", "object_id"])
    else:
        high = _sqlite_high_water()
        with op.batch_alter_table(
            _TABLE, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.create_unique_constraint("uq_cms_changes_object", ["entity", "object_id"])
        _sqlite_keep_high_water(high)
    # The table and its triggers as r0026 made them and r0029 changed them.
    _revision("r0026_feed_deferred").upgrade()
    _revision("r0029_feed_moved_together").upgrade()

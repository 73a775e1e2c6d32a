"""Import items written in append order (docs/performance.md, "Random keys at a million rows,
and what an import writes").

A roster import writes one ``cms_import_items`` row per student it changes. Before, each row
went into two B-tree indexes at a random place (the primary key ``(import_id, student_id)``
and ``student_id``: random UUIDs) and checked a foreign key to ``cms_imports``. At a million
rows those three cost PostgreSQL more than the item rows themselves (measured: 15 → 2–3 µs a
row of server CPU at 10⁶ items on a seeded database).

Now:

* the key is a ``seq`` (BIGSERIAL, like the history and the change feed): appended;
* the items of an import are found by ``ix_cms_import_items_import_id`` (appended too: one
  import's rows are written together);
* only the items that hold a before-image (``has_before``: the personal data erasure clears)
  are indexed by student (``ix_cms_import_items_before_student``, partial); a created or
  removed student's item names no person;
* no foreign key: items are written only in their import's transaction and deleted before it
  (the purge, ``SqlImportHistory.purge``); the old ``ON DELETE CASCADE`` was never relied on.

One item per student per import was the primary key's guarantee; it is the import's (each
email once per import: a second occurrence is a row error).

Revision ID: r0027_import_items_append
Revises: r0026_feed_deferred
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0027_import_items_append"
down_revision: str | None = "r0026_feed_deferred"
branch_labels: str | None = None
depends_on: str | None = None

_TABLE = "cms_import_items"
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.drop_index("ix_cms_import_items_student_id", table_name=_TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_cms_import_items_import_id", _TABLE, type_="foreignkey")
        op.drop_constraint("pk_cms_import_items", _TABLE, type_="primary")
        # Existing rows are numbered as the table is rewritten.
        op.execute(f"ALTER TABLE {_TABLE} ADD COLUMN seq BIGSERIAL NOT NULL")
        op.create_primary_key("pk_cms_import_items", _TABLE, ["seq"])
    else:
        # SQLite: the table is rebuilt (an INTEGER PRIMARY KEY numbers the copied rows).
        with op.batch_alter_table(_TABLE, recreate="always") as batch:
            batch.drop_constraint("fk_cms_import_items_import_id", type_="foreignkey")
            batch.drop_constraint("pk_cms_import_items", type_="primary")
            batch.add_column(sa.Column("seq", _SEQ, nullable=False, autoincrement=True))
            batch.create_primary_key("pk_cms_import_items", ["seq"])
    op.create_index("ix_cms_import_items_import_id", _TABLE, ["import_id"])
    op.create_index(
        "ix_cms_import_items_before_student",
        _TABLE,
        ["student_id"],
        postgresql_where=sa.text("has_before"),
        sqlite_where=sa.text("has_before"),
    )


def downgrade() -> None:
    op.drop_index("ix_cms_import_items_before_student", table_name=_TABLE)
    op.drop_index("ix_cms_import_items_import_id", table_name=_TABLE)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("pk_cms_import_items", _TABLE, type_="primary")
        op.drop_column(_TABLE, "seq")
        op.create_primary_key("pk_cms_import_items", _TABLE, ["import_id", "student_id"])
        op.create_foreign_key(
            "fk_cms_import_items_import_id",
            _TABLE,
            "cms_imports",
            ["import_id"],
            ["import_id"],
            ondelete="CASCADE",
        )
    else:
        with op.batch_alter_table(_TABLE, recreate="always") as batch:
            batch.drop_constraint("pk_cms_import_items", type_="primary")
            batch.drop_column("seq")
            batch.create_primary_key("pk_cms_import_items", ["import_id", "student_id"])
            batch.create_foreign_key(
                "fk_cms_import_items_import_id",
                "cms_imports",
                ["import_id"],
                ["import_id"],
                ondelete="CASCADE",
            )
    op.create_index("ix_cms_import_items_student_id", _TABLE, ["student_id"])

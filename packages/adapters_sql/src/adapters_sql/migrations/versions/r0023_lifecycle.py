"""Lifecycle (contract §9.1, §9.2): external ids on classes and students (unique per owner
where set), and archived classes (``status``, ``archived_at``) with an index that keeps the
default class list (active only) a range scan of the owner's classes in order.

Revision ID: r0023_lifecycle
Revises: r0022_privacy
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters_sql.types import UTCDateTime, code_point_string

revision = "r0023_lifecycle"
down_revision: str | None = "r0022_privacy"
branch_labels: str | None = None
depends_on: str | None = None

_SET = sa.text("external_id IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("cms_classes") as batch:
        batch.add_column(sa.Column("external_id", code_point_string(255), nullable=True))
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'active'"))
        )
        batch.add_column(sa.Column("archived_at", UTCDateTime(), nullable=True))
        batch.create_check_constraint("ck_cms_classes_status", "status IN ('active', 'archived')")
    with op.batch_alter_table("cms_students") as batch:
        batch.add_column(sa.Column("external_id", code_point_string(255), nullable=True))
    op.create_index(
        "ix_cms_classes_owner_status_created",
        "cms_classes",
        ["owner_id", "status", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    for table in ("cms_classes", "cms_students"):
        op.create_index(
            f"uq_{table}_owner_external_id",
            table,
            ["owner_id", "external_id"],
            unique=True,
            postgresql_where=_SET,
            sqlite_where=_SET,
        )


def downgrade() -> None:
    for table in ("cms_students", "cms_classes"):
        op.drop_index(f"uq_{table}_owner_external_id", table_name=table)
    op.drop_index("ix_cms_classes_owner_status_created", table_name="cms_classes")
    with op.batch_alter_table("cms_students") as batch:
        batch.drop_column("external_id")
    with op.batch_alter_table("cms_classes") as batch:
        batch.drop_constraint("ck_cms_classes_status", type_="check")
        batch.drop_column("archived_at")
        batch.drop_column("status")
        batch.drop_column("external_id")

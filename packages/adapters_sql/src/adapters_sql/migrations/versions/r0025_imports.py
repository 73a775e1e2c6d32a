"""Roster import history and undo (contract §9.4): one row per applied import, one item per
student it changed (with the before-image undo restores; personal data, cleared by erasure).

Revision ID: r0025_imports
Revises: r0022_privacy
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from adapters_sql.types import UTCDateTime, code_point_string

revision = "r0025_imports"
down_revision: str | None = "r0024_changes"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "cms_imports",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("created", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("removed", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("undone_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", name="pk_cms_imports"),
        sa.CheckConstraint("source IN ('http', 'cli')", name="ck_cms_imports_source"),
    )
    op.create_index(
        "ix_cms_imports_owner_at",
        "cms_imports",
        ["owner_id", sa.text("at DESC"), sa.text("import_id DESC")],
    )
    op.create_index("ix_cms_imports_at", "cms_imports", ["at"])
    op.create_table(
        "cms_import_items",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version_after", sa.Integer(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("has_before", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("before_first_name", code_point_string(255), nullable=True),
        sa.Column("before_last_name", code_point_string(255), nullable=True),
        sa.Column("before_legal_full_name", code_point_string(255), nullable=True),
        sa.Column("before_email", code_point_string(254), nullable=True),
        sa.Column("before_aliases", _JSON, nullable=True),
        sa.Column("before_protected_identity", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("import_id", "student_id", name="pk_cms_import_items"),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["cms_imports.import_id"],
            name="fk_cms_import_items_import_id",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'removed')", name="ck_cms_import_items_action"
        ),
    )
    op.create_index("ix_cms_import_items_student_id", "cms_import_items", ["student_id"])


def downgrade() -> None:
    op.drop_index("ix_cms_import_items_student_id", table_name="cms_import_items")
    op.drop_table("cms_import_items")
    op.drop_index("ix_cms_imports_at", table_name="cms_imports")
    op.drop_index("ix_cms_imports_owner_at", table_name="cms_imports")
    op.drop_table("cms_imports")

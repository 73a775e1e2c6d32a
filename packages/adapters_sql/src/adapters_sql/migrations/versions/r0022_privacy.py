"""Privacy of students (contract §10): protected identity and erasure on students, and the
students' history (ids and actions only) for the export.

Revision ID: r0022_privacy
Revises: r0015_scale
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters_sql.types import UTCDateTime, code_point_string

revision = "r0022_privacy"
down_revision: str | None = "r0021_matching"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("cms_students") as batch:
        batch.add_column(
            sa.Column("protected_identity", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("erased_at", UTCDateTime(), nullable=True))
    op.create_table(
        "cms_student_history",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", code_point_string(255), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_cms_student_history"),
        sa.CheckConstraint(
            "action IN ('created', 'updated', 'added_to_class', 'removed_from_class', "
            "'association_decided', 'erased')",
            name="ck_cms_student_history_action",
        ),
    )
    op.create_index("ix_cms_student_history_student", "cms_student_history", ["student_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_cms_student_history_student", table_name="cms_student_history")
    op.drop_table("cms_student_history")
    with op.batch_alter_table("cms_students") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("protected_identity")

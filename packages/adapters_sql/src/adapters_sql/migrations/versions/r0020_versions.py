"""Versions of classes and students (contract §8): 1 for every existing row.

Revision ID: r0020_versions
Revises: r0015_scale
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0020_versions"
down_revision: str | None = "r0015_scale"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("cms_classes", "cms_students")


def upgrade() -> None:
    # A server default: existing rows get version 1 without a rewrite on PostgreSQL 11+.
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1"))
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("version")

"""Indexes for reads whose cost must not grow with the database: finding an owner's class
by name (imports), and the sweep's due batches among the pending ones only.

Revision ID: r0015_scale
Revises: 0001_initial
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0015_scale"
down_revision: str | None = "r0014_versions"
branch_labels: str | None = None
depends_on: str | None = None

_PENDING = "status = 'pending'"


def upgrade() -> None:
    op.create_index("ix_cms_classes_owner_search_key", "cms_classes", ["owner_id", "search_key"])
    # (status, deadline) found the pending batches but not in the sweep's order (deadline,
    # batch_id), and kept every finalized batch in the index.
    op.drop_index("ix_cms_batches_status_deadline", table_name="cms_batches")
    op.create_index(
        "ix_cms_batches_pending_deadline",
        "cms_batches",
        ["deadline", "batch_id"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    op.drop_index("ix_cms_batches_pending_deadline", table_name="cms_batches")
    op.create_index("ix_cms_batches_status_deadline", "cms_batches", ["status", "deadline"])
    op.drop_index("ix_cms_classes_owner_search_key", table_name="cms_classes")

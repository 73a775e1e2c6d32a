"""Matching beyond Phase 1 (contract §11): each association keeps the runner-up's confidence
as ingested (null for suggestions stored before), the batch queue of an owner is read
through an index in its order (owner, status, deadline, batch id), and students get their
aliases (a JSON list, empty for existing rows; search keys of existing rows need no change).

Revision ID: r0021_matching
Revises: r0015_scale
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "r0021_matching"
down_revision: str | None = "r0020_versions"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("cms_students") as batch:
        batch.add_column(
            sa.Column("aliases", _JSON, nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("cms_essay_associations") as batch:
        batch.add_column(sa.Column("runner_up_confidence", sa.Double(), nullable=True))
    op.create_index(
        "ix_cms_batches_owner_queue",
        "cms_batches",
        ["owner_id", "status", "deadline", "batch_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_cms_batches_owner_queue", table_name="cms_batches")
    with op.batch_alter_table("cms_essay_associations") as batch:
        batch.drop_column("runner_up_confidence")
    with op.batch_alter_table("cms_students") as batch:
        batch.drop_column("aliases")

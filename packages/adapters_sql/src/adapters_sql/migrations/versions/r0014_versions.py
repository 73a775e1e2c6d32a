"""Relay leadership epoch: one row that every new relay leader bumps, fencing the old
leader's writes to the outbox (contract §6).

Revision ID: r0014_versions
Revises: 0001_initial
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from adapters_sql.types import UTCDateTime

revision = "r0014_versions"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    table = op.create_table(
        "cms_relay_leadership",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("leader_since", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cms_relay_leadership"),
        sa.CheckConstraint("id = 1", name="ck_cms_relay_leadership_one_row"),
    )
    op.bulk_insert(table, [{"id": 1, "epoch": 0, "leader_since": None}])


def downgrade() -> None:
    op.drop_table("cms_relay_leadership")

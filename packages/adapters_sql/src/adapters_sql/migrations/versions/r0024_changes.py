"""The change feed (contract §9.3): its log, one row per class or student at its latest
change (ids, operations and versions only), and the key its cursors are signed with.

Revision ID: r0024_changes
Revises: r0022_privacy
Create Date: 2026-12-06
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from adapters_sql.types import UTCDateTime, code_point_string

revision = "r0024_changes"
down_revision: str | None = "r0023_lifecycle"
branch_labels: str | None = None
depends_on: str | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "cms_changes",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("entity", sa.String(16), nullable=False),
        sa.Column("object_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("xid", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_cms_changes"),
        sa.UniqueConstraint("entity", "object_id", name="uq_cms_changes_object"),
        sa.CheckConstraint("entity IN ('class', 'student')", name="ck_cms_changes_entity"),
        sa.CheckConstraint("op IN ('upsert', 'delete')", name="ck_cms_changes_op"),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_cms_changes_owner_seq",
        "cms_changes",
        ["owner_id", "seq"],
        postgresql_include=["entity", "object_id", "op", "version", "at"],
    )
    op.create_index("ix_cms_changes_owner_xid", "cms_changes", ["owner_id", "xid"])
    key = op.create_table(
        "cms_change_feed_key",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cms_change_feed_key"),
        sa.CheckConstraint("id = 1", name="ck_cms_change_feed_key_one_row"),
    )
    op.bulk_insert(key, [{"id": 1, "secret": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("cms_change_feed_key")
    op.drop_index("ix_cms_changes_owner_xid", table_name="cms_changes")
    op.drop_index("ix_cms_changes_owner_seq", table_name="cms_changes")
    op.drop_table("cms_changes")

"""Initial schema: courses (seeded), classes, students, memberships, batches, associations,
outbox and inbox.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from adapters_sql.types import UTCDateTime, code_point_string

revision = "0001_initial"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNPUBLISHED = "published_at IS NULL"
_PENDING = "validation_status = 'pending_validation'"

COURSES = [
    {"code": "ENG5", "name": "English 5", "language": "en"},
    {"code": "ENG6", "name": "English 6", "language": "en"},
    {"code": "ENG7", "name": "English 7", "language": "en"},
    {"code": "SV1", "name": "Svenska 1", "language": "sv"},
    {"code": "SV2", "name": "Svenska 2", "language": "sv"},
    {"code": "SV3", "name": "Svenska 3", "language": "sv"},
]

# Relays in other processes LISTEN on cms_outbox; notifications are delivered at commit and
# folded to one per transaction.
_NOTIFY_FUNCTION = """
CREATE FUNCTION cms_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cms_outbox', '');
    RETURN NULL;
END
$$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER cms_outbox_notify AFTER INSERT ON cms_outbox
FOR EACH STATEMENT EXECUTE FUNCTION cms_outbox_notify()
"""


def _ts(name: str, nullable: bool = False, **kw: object) -> sa.Column[object]:
    return sa.Column(name, UTCDateTime(), nullable=nullable, **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    courses = op.create_table(
        "cms_courses",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_cms_courses"),
    )
    op.bulk_insert(courses, COURSES)

    op.create_table(
        "cms_classes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("name", code_point_string(255), nullable=False),
        sa.Column("course_code", sa.String(16), nullable=False),
        sa.Column("search_key", code_point_string(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_cms_classes"),
        sa.ForeignKeyConstraint(
            ["course_code"],
            ["cms_courses.code"],
            name="fk_cms_classes_course_code",
            ondelete="RESTRICT",
        ),
    )
    op.create_index(
        "ix_cms_classes_owner_created",
        "cms_classes",
        ["owner_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )

    op.create_table(
        "cms_students",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("first_name", code_point_string(255), nullable=False),
        sa.Column("last_name", code_point_string(255), nullable=False),
        sa.Column("legal_full_name", code_point_string(255), nullable=True),
        sa.Column("email", code_point_string(254), nullable=True),
        sa.Column("search_key", code_point_string(), nullable=False),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("placeholder_class_id", sa.Uuid(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_cms_students"),
        sa.UniqueConstraint("owner_id", "email", name="uq_cms_students_owner_email"),
        sa.UniqueConstraint("placeholder_class_id", name="uq_cms_students_placeholder_class_id"),
        sa.ForeignKeyConstraint(
            ["placeholder_class_id"],
            ["cms_classes.id"],
            name="fk_cms_students_placeholder_class_id",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "is_placeholder = (placeholder_class_id IS NOT NULL)",
            name="ck_cms_students_placeholder",
        ),
    )
    op.create_index(
        "ix_cms_students_owner_name",
        "cms_students",
        ["owner_id", "last_name", "first_name", "id"],
    )

    op.create_table(
        "cms_class_students",
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=False),
        _ts("created_at", server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("class_id", "student_id", name="pk_cms_class_students"),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["cms_classes.id"],
            name="fk_cms_class_students_class_id",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["cms_students.id"],
            name="fk_cms_class_students_student_id",
            ondelete="RESTRICT",
        ),
    )
    op.create_index("ix_cms_class_students_student_id", "cms_class_students", ["student_id"])

    op.create_table(
        "cms_batches",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", code_point_string(255), nullable=False),
        sa.Column("course_code", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("deadline"),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("finalized_at", nullable=True),
        sa.Column("timeout_triggered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("batch_id", name="pk_cms_batches"),
        sa.ForeignKeyConstraint(
            ["class_id"], ["cms_classes.id"], name="fk_cms_batches_class_id", ondelete="RESTRICT"
        ),
        sa.CheckConstraint("status IN ('pending', 'finalized')", name="ck_cms_batches_status"),
    )
    op.create_index("ix_cms_batches_status_deadline", "cms_batches", ["status", "deadline"])
    op.create_index("ix_cms_batches_class_id", "cms_batches", ["class_id"])

    op.create_table(
        "cms_essay_associations",
        sa.Column("essay_id", sa.Uuid(), nullable=False),
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("class_id", sa.Uuid(), nullable=False),
        sa.Column("suggested_student_id", sa.Uuid(), nullable=True),
        sa.Column("confidence_score", sa.Double(), nullable=True),
        sa.Column("match_reasons", _JSON, nullable=False),
        sa.Column("student_id", sa.Uuid(), nullable=True),
        sa.Column("validation_status", sa.String(32), nullable=False),
        sa.Column("validation_method", sa.String(16), nullable=True),
        sa.Column("validated_by", sa.String(255), nullable=True),
        _ts("validated_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("essay_id", name="pk_cms_essay_associations"),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["cms_batches.batch_id"],
            name="fk_cms_essay_associations_batch_id",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["suggested_student_id"],
            ["cms_students.id"],
            name="fk_cms_essay_associations_suggested_student_id",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["student_id"],
            ["cms_students.id"],
            name="fk_cms_essay_associations_student_id",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(
            "validation_status IN ('pending_validation', 'confirmed', 'rejected', "
            "'timeout_confirmed')",
            name="ck_cms_essay_associations_validation_status",
        ),
    )
    op.create_index(
        "ix_cms_essay_associations_batch",
        "cms_essay_associations",
        ["batch_id", "created_at", "essay_id"],
    )
    op.create_index(
        "ix_cms_essay_associations_suggested_student_id",
        "cms_essay_associations",
        ["suggested_student_id"],
    )
    op.create_index(
        "ix_cms_essay_associations_student_id", "cms_essay_associations", ["student_id"]
    )
    op.create_index(
        "ix_cms_essay_associations_pending",
        "cms_essay_associations",
        ["created_at", "essay_id"],
        postgresql_where=sa.text(_PENDING),
        sqlite_where=sa.text(_PENDING),
    )

    op.create_table(
        "cms_outbox",
        sa.Column("seq", _SEQ, nullable=False, autoincrement=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("headers", _JSON, nullable=False),
        _ts("created_at"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("published_at", nullable=True),
        _ts("dead_at", nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_cms_outbox"),
        sa.UniqueConstraint("event_id", name="uq_cms_outbox_event_id"),
    )
    op.create_index(
        "ix_cms_outbox_unpublished",
        "cms_outbox",
        ["seq"],
        postgresql_where=sa.text(_UNPUBLISHED),
        sqlite_where=sa.text(_UNPUBLISHED),
    )
    op.create_index(
        "ix_cms_outbox_unpublished_key",
        "cms_outbox",
        ["topic", "key", "seq"],
        postgresql_where=sa.text(_UNPUBLISHED),
        sqlite_where=sa.text(_UNPUBLISHED),
    )
    op.create_index(
        "ix_cms_outbox_published_at",
        "cms_outbox",
        ["published_at"],
        postgresql_where=sa.text("published_at IS NOT NULL"),
        sqlite_where=sa.text("published_at IS NOT NULL"),
    )

    op.create_table(
        "cms_inbox",
        sa.Column("consumer", sa.String(255), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        _ts("processed_at", server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("consumer", "message_id", name="pk_cms_inbox"),
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(_NOTIFY_FUNCTION)
        op.execute(_NOTIFY_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS cms_outbox_notify ON cms_outbox")
        op.execute("DROP FUNCTION IF EXISTS cms_outbox_notify()")
    for table in (
        "cms_inbox",
        "cms_outbox",
        "cms_essay_associations",
        "cms_batches",
        "cms_class_students",
        "cms_students",
        "cms_classes",
        "cms_courses",
    ):
        op.drop_table(table)

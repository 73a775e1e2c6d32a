"""The service's tables (SQLAlchemy Core). Every name carries the ``cms_`` prefix and every
constraint and index is named, so that errors can be told apart and an embedding service can
share its database. The migrations create exactly this schema."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from adapters_sql.types import UTCDateTime, code_point_string

metadata = MetaData()

_JSON = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

courses = Table(
    "cms_courses",
    metadata,
    Column("code", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("language", String(8), nullable=False),
    PrimaryKeyConstraint("code", name="pk_cms_courses"),
)

classes = Table(
    "cms_classes",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("name", code_point_string(255), nullable=False),
    Column("course_code", String(16), nullable=False),
    Column("search_key", code_point_string(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("version", Integer(), nullable=False, server_default=text("1")),
    Column("external_id", code_point_string(255), nullable=True),
    Column("status", String(16), nullable=False, server_default=text("'active'")),
    Column("archived_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_cms_classes"),
    CheckConstraint("status IN ('active', 'archived')", name="ck_cms_classes_status"),
    ForeignKeyConstraint(
        ["course_code"],
        ["cms_courses.code"],
        name="fk_cms_classes_course_code",
        ondelete="RESTRICT",
    ),
)
Index(
    "ix_cms_classes_owner_created",
    classes.c.owner_id,
    classes.c.created_at.desc(),
    classes.c.id.desc(),
)
# Finding an owner's class by name (imports): an index look-up, not a listing (r0015).
Index("ix_cms_classes_owner_search_key", classes.c.owner_id, classes.c.search_key)
# The class list filtered by status (active by default, §9.2) in its order: a range scan of
# the owner's classes in that status (r0023).
Index(
    "ix_cms_classes_owner_status_created",
    classes.c.owner_id,
    classes.c.status,
    classes.c.created_at.desc(),
    classes.c.id.desc(),
)
# External ids are unique per owner where set (§9.1); the index also serves the filter.
Index(
    "uq_cms_classes_owner_external_id",
    classes.c.owner_id,
    classes.c.external_id,
    unique=True,
    postgresql_where=text("external_id IS NOT NULL"),
    sqlite_where=text("external_id IS NOT NULL"),
)

students = Table(
    "cms_students",
    metadata,
    Column("id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("first_name", code_point_string(255), nullable=False),
    Column("last_name", code_point_string(255), nullable=False),
    Column("legal_full_name", code_point_string(255), nullable=True),
    Column("email", code_point_string(254), nullable=True),
    Column("search_key", code_point_string(), nullable=False),
    Column("is_placeholder", Boolean(), nullable=False, server_default=false()),
    Column("placeholder_class_id", Uuid(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("version", Integer(), nullable=False, server_default=text("1")),
    Column("aliases", _JSON, nullable=False, server_default=text("'[]'")),
    Column("protected_identity", Boolean(), nullable=False, server_default=false()),
    Column("erased_at", UTCDateTime(), nullable=True),
    Column("external_id", code_point_string(255), nullable=True),
    PrimaryKeyConstraint("id", name="pk_cms_students"),
    UniqueConstraint("owner_id", "email", name="uq_cms_students_owner_email"),
    UniqueConstraint("placeholder_class_id", name="uq_cms_students_placeholder_class_id"),
    ForeignKeyConstraint(
        ["placeholder_class_id"],
        ["cms_classes.id"],
        name="fk_cms_students_placeholder_class_id",
        ondelete="RESTRICT",
    ),
    CheckConstraint(
        "is_placeholder = (placeholder_class_id IS NOT NULL)", name="ck_cms_students_placeholder"
    ),
    Index("ix_cms_students_owner_name", "owner_id", "last_name", "first_name", "id"),
    Index(
        "uq_cms_students_owner_external_id",
        "owner_id",
        "external_id",
        unique=True,
        postgresql_where=text("external_id IS NOT NULL"),
        sqlite_where=text("external_id IS NOT NULL"),
    ),
)

class_students = Table(
    "cms_class_students",
    metadata,
    Column("class_id", Uuid(), nullable=False),
    Column("student_id", Uuid(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("class_id", "student_id", name="pk_cms_class_students"),
    ForeignKeyConstraint(
        ["class_id"], ["cms_classes.id"], name="fk_cms_class_students_class_id", ondelete="RESTRICT"
    ),
    ForeignKeyConstraint(
        ["student_id"],
        ["cms_students.id"],
        name="fk_cms_class_students_student_id",
        ondelete="RESTRICT",
    ),
    Index("ix_cms_class_students_student_id", "student_id"),
)

batches = Table(
    "cms_batches",
    metadata,
    Column("batch_id", Uuid(), nullable=False),
    Column("class_id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("course_code", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("deadline", UTCDateTime(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finalized_at", UTCDateTime(), nullable=True),
    Column("timeout_triggered", Boolean(), nullable=False, server_default=false()),
    PrimaryKeyConstraint("batch_id", name="pk_cms_batches"),
    ForeignKeyConstraint(
        ["class_id"], ["cms_classes.id"], name="fk_cms_batches_class_id", ondelete="RESTRICT"
    ),
    CheckConstraint("status IN ('pending', 'finalized')", name="ck_cms_batches_status"),
    # The sweep's due batches, in its order, among the pending ones only (r0015).
    Index(
        "ix_cms_batches_pending_deadline",
        "deadline",
        "batch_id",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_cms_batches_class_id", "class_id"),
    Index("ix_cms_batches_owner_queue", "owner_id", "status", "deadline", "batch_id"),
)

essay_associations = Table(
    "cms_essay_associations",
    metadata,
    Column("essay_id", Uuid(), nullable=False),
    Column("batch_id", Uuid(), nullable=False),
    Column("class_id", Uuid(), nullable=False),
    Column("suggested_student_id", Uuid(), nullable=True),
    Column("confidence_score", Double(), nullable=True),
    Column("match_reasons", _JSON, nullable=False),
    Column("student_id", Uuid(), nullable=True),
    Column("validation_status", String(32), nullable=False),
    Column("validation_method", String(16), nullable=True),
    Column("validated_by", String(255), nullable=True),
    Column("validated_at", UTCDateTime(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("runner_up_confidence", Double(), nullable=True),
    PrimaryKeyConstraint("essay_id", name="pk_cms_essay_associations"),
    ForeignKeyConstraint(
        ["batch_id"],
        ["cms_batches.batch_id"],
        name="fk_cms_essay_associations_batch_id",
        ondelete="RESTRICT",
    ),
    ForeignKeyConstraint(
        ["suggested_student_id"],
        ["cms_students.id"],
        name="fk_cms_essay_associations_suggested_student_id",
        ondelete="RESTRICT",
    ),
    ForeignKeyConstraint(
        ["student_id"],
        ["cms_students.id"],
        name="fk_cms_essay_associations_student_id",
        ondelete="RESTRICT",
    ),
    CheckConstraint(
        "validation_status IN ('pending_validation', 'confirmed', 'rejected', 'timeout_confirmed')",
        name="ck_cms_essay_associations_validation_status",
    ),
    Index("ix_cms_essay_associations_batch", "batch_id", "created_at", "essay_id"),
    Index("ix_cms_essay_associations_suggested_student_id", "suggested_student_id"),
    Index("ix_cms_essay_associations_student_id", "student_id"),
    Index(
        "ix_cms_essay_associations_pending",
        "created_at",
        "essay_id",
        postgresql_where=text("validation_status = 'pending_validation'"),
        sqlite_where=text("validation_status = 'pending_validation'"),
    ),
)

outbox = Table(
    "cms_outbox",
    metadata,
    Column("seq", _SEQ, nullable=False, autoincrement=True),
    Column("event_id", Uuid(), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("payload", Text(), nullable=False),
    Column("headers", _JSON, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer(), nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("last_error", Text(), nullable=True),
    Column("published_at", UTCDateTime(), nullable=True),
    Column("dead_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("seq", name="pk_cms_outbox"),
    # No index on event_id (migration r0028): no statement reads by it, and each event id is
    # a random UUID given once, when the event is recorded (class_core.recording); a unique
    # index cost every event a B-tree insertion at a random place.
    Index(
        "ix_cms_outbox_unpublished",
        "seq",
        postgresql_where=text("published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    ),
    Index(
        "ix_cms_outbox_unpublished_key",
        "topic",
        "key",
        "seq",
        postgresql_where=text("published_at IS NULL"),
        sqlite_where=text("published_at IS NULL"),
    ),
    Index(
        "ix_cms_outbox_published_at",
        "published_at",
        postgresql_where=text("published_at IS NOT NULL"),
        sqlite_where=text("published_at IS NOT NULL"),
    ),
)

inbox = Table(
    "cms_inbox",
    metadata,
    Column("consumer", String(255), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("processed_at", UTCDateTime(), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("consumer", "message_id", name="pk_cms_inbox"),
)

# One row (id 1): bumped by every relay that becomes leader; the outbox writes of a leader
# are fenced on the epoch it got, so a leader that lost its lock cannot write after a newer one.
relay_leadership = Table(
    "cms_relay_leadership",
    metadata,
    Column("id", SmallInteger(), nullable=False),
    Column("epoch", BigInteger(), nullable=False, server_default=text("0")),
    Column("leader_since", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("id", name="pk_cms_relay_leadership"),
    CheckConstraint("id = 1", name="ck_cms_relay_leadership_one_row"),
)

# What was done to each student (§10 export): ids, actions and actors only, no personal data.
# No foreign key: the entries of an erased student stay; a deleted student's are deleted.
student_history = Table(
    "cms_student_history",
    metadata,
    Column("seq", _SEQ, nullable=False, autoincrement=True),
    Column("student_id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", code_point_string(255), nullable=False),
    Column("subject_id", Uuid(), nullable=True),
    PrimaryKeyConstraint("seq", name="pk_cms_student_history"),
    CheckConstraint(
        "action IN ('created', 'updated', 'added_to_class', 'removed_from_class', "
        "'association_decided', 'erased')",
        name="ck_cms_student_history_action",
    ),
    Index("ix_cms_student_history_student", "student_id", "seq"),
)

# Applied roster imports (§9.4 history and undo): one row per import, one item per student
# it changed. Items' ``before_*`` columns are the student's former values: personal data,
# cleared by erasure (adapters_sql.privacy). Kept CHANGES_RETENTION_DAYS, purged in batches.
imports = Table(
    "cms_imports",
    metadata,
    Column("import_id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("source", String(8), nullable=False),
    Column("class_id", Uuid(), nullable=True),
    Column("created", Integer(), nullable=False, server_default=text("0")),
    Column("updated", Integer(), nullable=False, server_default=text("0")),
    Column("removed", Integer(), nullable=False, server_default=text("0")),
    Column("undone_at", UTCDateTime(), nullable=True),
    PrimaryKeyConstraint("import_id", name="pk_cms_imports"),
    CheckConstraint("source IN ('http', 'cli')", name="ck_cms_imports_source"),
    Index("ix_cms_imports_at", "at"),
)
Index(
    "ix_cms_imports_owner_at", imports.c.owner_id, imports.c.at.desc(), imports.c.import_id.desc()
)

import_items = Table(
    "cms_import_items",
    metadata,
    Column("import_id", Uuid(), nullable=False),
    Column("student_id", Uuid(), nullable=False),
    Column("action", String(16), nullable=False),
    Column("version_after", Integer(), nullable=False),
    Column("class_id", Uuid(), nullable=True),
    Column("has_before", Boolean(), nullable=False, server_default=false()),
    Column("before_first_name", code_point_string(255), nullable=True),
    Column("before_last_name", code_point_string(255), nullable=True),
    Column("before_legal_full_name", code_point_string(255), nullable=True),
    Column("before_email", code_point_string(254), nullable=True),
    Column("before_aliases", _JSON, nullable=True),
    Column("before_protected_identity", Boolean(), nullable=True),
    # Appended by every write (migration r0027): the key and both indexes grow at their end
    # as an import writes its items, none at a random place (a roster import writes one item
    # per student it changes: a million at once).
    Column("seq", _SEQ, nullable=False, autoincrement=True),
    PrimaryKeyConstraint("seq", name="pk_cms_import_items"),
    CheckConstraint(
        "action IN ('created', 'updated', 'removed')", name="ck_cms_import_items_action"
    ),
    Index("ix_cms_import_items_import_id", "import_id"),
    # Erasure finds the items holding a student's before-image (personal data) by this.
    Index(
        "ix_cms_import_items_before_student",
        "student_id",
        postgresql_where=text("has_before"),
        sqlite_where=text("has_before"),
    ),
)

# The change feed's log (§9.3), ids and versions only, no personal data. A student has one
# row, moved to a new ``seq`` by each change (``uq_cms_changes_student``: the upsert's arbiter);
# a class's change appends a row and deletes the class's older rows that no concurrent writer
# holds (``ix_cms_changes_class``; migration r0030), so a class changed by transactions that
# ran at the same time keeps a row of each until its next change. ``xid`` is the writing
# transaction's id on PostgreSQL (``pg_current_xact_id()``), for commit-safe reads
# (docs/architecture.md, "The change feed"); null on SQLite, whose writers commit in order.
changes = Table(
    "cms_changes",
    metadata,
    Column("seq", _SEQ, nullable=False, autoincrement=True),
    Column("entity", String(16), nullable=False),
    Column("object_id", Uuid(), nullable=False),
    Column("owner_id", code_point_string(255), nullable=False),
    Column("op", String(16), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("xid", BigInteger(), nullable=True),
    PrimaryKeyConstraint("seq", name="pk_cms_changes"),
    CheckConstraint("entity IN ('class', 'student')", name="ck_cms_changes_entity"),
    CheckConstraint("op IN ('upsert', 'delete')", name="ck_cms_changes_op"),
    # Covering: a page of the feed is an index-only range scan where the pages are all-visible.
    Index(
        "ix_cms_changes_owner_seq",
        "owner_id",
        "seq",
        postgresql_include=["entity", "object_id", "op", "version", "at"],
    ),
    Index("ix_cms_changes_owner_xid", "owner_id", "xid"),
    Index(
        "uq_cms_changes_student",
        "object_id",
        unique=True,
        postgresql_where=text("entity = 'student'"),
        sqlite_where=text("entity = 'student'"),
    ),
    Index(
        "ix_cms_changes_class",
        "object_id",
        postgresql_where=text("entity = 'class'"),
        sqlite_where=text("entity = 'class'"),
    ),
    sqlite_autoincrement=True,  # seq values are never reused (a moved row's old one neither)
)

# One row: the key change-feed cursors are signed with, made by the migration (random), so
# that every process on one database issues and accepts the same cursors.
change_feed_key = Table(
    "cms_change_feed_key",
    metadata,
    Column("id", SmallInteger(), nullable=False),
    Column("secret", String(64), nullable=False),
    PrimaryKeyConstraint("id", name="pk_cms_change_feed_key"),
    CheckConstraint("id = 1", name="ck_cms_change_feed_key_one_row"),
)

VERSION_TABLE = "cms_alembic_version"
# Tables emptied between tests and dropped by the downgrade, children first.
DATA_TABLES: tuple[Table, ...] = (
    import_items,
    imports,
    student_history,
    essay_associations,
    batches,
    class_students,
    students,
    classes,
    outbox,
    inbox,
    changes,
)

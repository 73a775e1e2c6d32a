"""No unique index on the outbox's event ids (docs/performance.md, "Random keys at a million
rows, and what an import writes").

``uq_cms_outbox_event_id`` made every event written (one or two per API write, one per
student a roster import creates) insert into a B-tree at a random place, since event ids are
random UUIDs. No statement reads the outbox by event id (the relay reads by ``seq``, erasure
rewrites by ``seq``), and an event id is given once, when the event is recorded
(``class_core.recording``: 122 random bits from ``os.urandom``), so the index checked what
cannot happen. At 1.4 million outbox rows its pages no longer stay in PostgreSQL's buffers,
and each insertion read a page and, after every checkpoint, wrote a full-page image to the
WAL: measured, PostgreSQL CPU per POST student ≈ 1,030 → ≈ 800 µs on a seeded database, and
POST after/before seeding 92 % → 100 %. Consumers deduplicate by ``event_id`` (§5) as before.

Revision ID: r0028_outbox_event_id
Revises: r0027_import_items_append
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "r0028_outbox_event_id"
down_revision: str | None = "r0027_import_items_append"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("cms_outbox") as batch:
        batch.drop_constraint("uq_cms_outbox_event_id", type_="unique")


def downgrade() -> None:
    with op.batch_alter_table("cms_outbox") as batch:
        batch.create_unique_constraint("uq_cms_outbox_event_id", ["event_id"])

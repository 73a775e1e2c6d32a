"""The change feed's class rows of a many-class write are moved together at ``COMMIT``
(docs/performance.md, "The sweep's look-up, time-ordered class ids, and timing in turns").

Migration r0026's deferred trigger moves each ``cms_changes_deferred`` row on its own: a
PL/pgSQL call, an upsert and a delete per class. A roster import's chunk touches up to
thousands of classes; its ``COMMIT`` took ≈ 24–33 ms per 1,000 classes. A new column
``role`` says how a row is moved:

- ``0`` (the default: a write's few classes, e.g. POST student's one) — by its own trigger
  event, as in r0026 (``cms_changes_deferred_write``, now ``WHEN (NEW.role = 0)``);
- ``1`` — the first row of a many-class insert (``adapters_sql.changes``): its event
  (``cms_changes_deferred_move``, ``WHEN (NEW.role = 1)``) moves it and every row of the
  transaction after it in one statement: the rows from its ``id`` upwards (one insert takes
  its ids in its own order, the first row the lowest; other transactions' rows in that range
  are uncommitted, so not seen, or dead), the last row per class winning, one upsert per
  class in ``object_id`` order;
- ``2`` — the other rows of that insert: no trigger event is queued for them (a constraint
  trigger's ``WHEN`` is evaluated when the row is inserted).

The rows are still moved during ``COMMIT``: the feed's class rows stay locked only while the
server commits.

Revision ID: r0029_feed_moved_together
Revises: r0028_outbox_event_id
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0029_feed_moved_together"
down_revision: str | None = "r0028_outbox_event_id"
branch_labels: str | None = None
depends_on: str | None = None

_MOVE = """
CREATE FUNCTION cms_changes_deferred_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS (
        DELETE FROM cms_changes_deferred WHERE id >= NEW.id
        RETURNING id, object_id, owner_id, version, at
    ), latest AS (
        SELECT DISTINCT ON (object_id) object_id, owner_id, version, at
        FROM moved ORDER BY object_id, id DESC
    )
    INSERT INTO cms_changes (entity, object_id, owner_id, op, version, at, xid)
    SELECT 'class', object_id, owner_id, 'upsert', version, at,
           pg_current_xact_id()::text::bigint
    FROM latest ORDER BY object_id
    ON CONFLICT ON CONSTRAINT uq_cms_changes_object DO UPDATE SET
        seq = excluded.seq, owner_id = excluded.owner_id, op = excluded.op,
        version = excluded.version, at = excluded.at, xid = excluded.xid;
    RETURN NULL;
END
$$
"""


def _trigger(name: str, function: str, when: str) -> str:
    return (
        f"CREATE CONSTRAINT TRIGGER {name} AFTER INSERT ON cms_changes_deferred "
        f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW {when} EXECUTE FUNCTION {function}()"
    )


def upgrade() -> None:
    with op.batch_alter_table("cms_changes_deferred") as batch:
        batch.add_column(
            sa.Column("role", sa.SmallInteger(), nullable=False, server_default=sa.text("0"))
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_MOVE)
        op.execute("DROP TRIGGER cms_changes_deferred_write ON cms_changes_deferred")
        op.execute(
            _trigger(
                "cms_changes_deferred_write", "cms_changes_deferred_write", "WHEN (NEW.role = 0)"
            )
        )
        op.execute(
            _trigger(
                "cms_changes_deferred_move", "cms_changes_deferred_move", "WHEN (NEW.role = 1)"
            )
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cms_changes_deferred_move ON cms_changes_deferred")
        op.execute("DROP FUNCTION cms_changes_deferred_move()")
        op.execute("DROP TRIGGER cms_changes_deferred_write ON cms_changes_deferred")
        op.execute(_trigger("cms_changes_deferred_write", "cms_changes_deferred_write", ""))
    with op.batch_alter_table("cms_changes_deferred") as batch:
        batch.drop_column("role")

"""SQL adapters of the Class Management Service: PostgreSQL (asyncpg) and SQLite (aiosqlite)
behind the core's ports, plus the schema's migrations.

Typical use::

    engine = create_engine("postgresql://user@host/db")
    await ensure_at_head(engine)            # or: await upgrade(engine)
    runtime = build_sql_runtime(engine)
    cls = await create_class(runtime, RequestContext("teacher-1"), CreateClass("9A", ["ENG5"]))
"""

from adapters_sql.engine import create_engine, normalize_url, ping
from adapters_sql.envelopes import ENVELOPES, JsonEnvelopes
from adapters_sql.migrate import (
    SchemaNotAtHeadError,
    current,
    downgrade,
    ensure_at_head,
    head,
    is_at_head,
    upgrade,
)
from adapters_sql.outbox_store import OutboxWakeups, SqlOutboxStore
from adapters_sql.runtime import build_sql_runtime, load_courses
from adapters_sql.settings import SqlSettings, database_kind
from adapters_sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "ENVELOPES",
    "JsonEnvelopes",
    "OutboxWakeups",
    "SchemaNotAtHeadError",
    "SqlOutboxStore",
    "SqlSettings",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "build_sql_runtime",
    "create_engine",
    "current",
    "database_kind",
    "downgrade",
    "ensure_at_head",
    "head",
    "is_at_head",
    "load_courses",
    "normalize_url",
    "ping",
    "upgrade",
]

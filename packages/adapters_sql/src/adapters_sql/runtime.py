"""Composition helpers: a ``Runtime`` on SQL and reference-data reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql.engine import SQLITE_BEGIN_OPTION
from adapters_sql.errors import translate_errors
from adapters_sql.schema import courses
from adapters_sql.uow import OutboxCommitCallback, SqlUnitOfWorkFactory
from class_core.changes import FeedPolicy
from class_core.clock import Clock, SystemClock
from class_core.courses import Course
from class_core.ports import NullNotifier, RealtimeNotifier
from class_core.runtime import MatchingPolicy, Runtime


def build_sql_runtime(
    engine: AsyncEngine,
    *,
    clock: Clock | None = None,
    notifier: RealtimeNotifier | None = None,
    policy: MatchingPolicy | None = None,
    on_outbox_commit: OutboxCommitCallback | None = None,
    feed: FeedPolicy | None = None,
) -> Runtime:
    """A :class:`~class_core.runtime.Runtime` whose units of work run on ``engine``."""
    return Runtime(
        uow=SqlUnitOfWorkFactory(engine, on_outbox_commit=on_outbox_commit),
        reads=SqlUnitOfWorkFactory(engine, read_only=True),
        clock=clock or SystemClock(),
        notifier=notifier or NullNotifier(),
        policy=policy or MatchingPolicy(),
        feed=feed or FeedPolicy(),
    )


async def load_courses(engine: AsyncEngine) -> list[Course]:
    """The courses stored by the migrations, by code."""
    with translate_errors():
        async with engine.connect() as conn:
            reader = await conn.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
            result = await reader.execute(select(courses).order_by(courses.c.code))
            return [Course(r.code, r.name, r.language) for r in result]

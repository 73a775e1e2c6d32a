"""``class_runtime``: the one runtime factory and the one sweep job every app uses."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import uuid4

import pytest
from sqlalchemy import text

from adapters_sql import create_engine
from class_core.matching import EssayMatch, SuggestionsMessage
from class_core.ports import UnitOfWork
from class_core.runtime import RequestContext, Runtime
from class_core.testing import FixedClock, InMemoryOutboxStore
from class_core.use_cases.classes import CreateClass, create_class, get_class
from class_core.use_cases.matching import FinalizedBatch, ingest_suggestions
from class_runtime import Settings, open_runtime, sweep_once
from tests.support.postgres import PgDatabaseFactory


class _Observer:
    def __init__(self) -> None:
        self.finished: list[Sequence[FinalizedBatch]] = []
        self.failures = 0

    def sweep_finished(self, finalized: Sequence[FinalizedBatch]) -> None:
        self.finished.append(list(finalized))

    def sweep_failed(self) -> None:
        self.failures += 1


async def test_in_memory_runtime_from_settings() -> None:
    async with open_runtime(Settings(use_mock_repository=True)) as opened:
        assert opened.engine is None
        assert await opened.database_up()
        cls = await create_class(opened.runtime, RequestContext("t"), CreateClass("9A", ["ENG5"]))
        assert (await get_class(opened.runtime, RequestContext("t"), cls.id)).name == "9A"
        assert isinstance(opened.outbox_store, InMemoryOutboxStore)
        ready = await opened.outbox_store.fetch_ready(cls.created_at, 10)
        assert [r.message.topic for r in ready] == [
            "huleedu.class.created.v1",
            "huleedu.notification.teacher.requested.v1",
        ]


async def test_a_host_engine_is_used_and_left_open(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=True)
    engine = create_engine(url)
    try:
        async with open_runtime(Settings.of(database_url=url), engine=engine) as opened:
            assert opened.engine is engine
            assert await opened.database_up()
            await create_class(opened.runtime, RequestContext("t"), CreateClass("9B", ["SV1"]))
        async with engine.connect() as conn:  # still open: the host disposes of it
            assert (await conn.execute(text("SELECT count(*) FROM cms_classes"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_schema_behind_head_is_refused(pg_database_factory: PgDatabaseFactory) -> None:
    from adapters_sql import SchemaNotAtHeadError

    url = await pg_database_factory(migrated=False)
    with pytest.raises(SchemaNotAtHeadError):
        async with open_runtime(Settings.of(database_url=url)):
            pass


async def test_sweep_once_reports_to_its_observer_and_never_raises() -> None:
    clock = FixedClock()
    async with open_runtime(Settings(use_mock_repository=True)) as opened:
        rt = opened.runtime
        rt.clock = clock
        cls = await create_class(rt, RequestContext("t"), CreateClass("9C", ["ENG5"]))
        batch = uuid4()
        message = SuggestionsMessage(
            "m1", uuid4(), batch, cls.id, "ENG5", (EssayMatch(uuid4(), ()),)
        )
        await ingest_suggestions(rt, message)
        observer = _Observer()
        assert await sweep_once(rt, observer) == []
        clock.advance(hours=rt.policy.timeout_hours + 1)
        done = await sweep_once(rt, observer)
        assert [f.batch_id for f in done] == [batch]
        assert [len(f) for f in observer.finished] == [0, 1]
        assert observer.failures == 0

        broken = Runtime(uow=_broken_uow, clock=clock)
        assert await sweep_once(broken, observer) == []
        assert observer.failures == 1


def _broken_uow() -> UnitOfWork:
    raise RuntimeError("database gone")

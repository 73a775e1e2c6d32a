"""``class-admin outbox status | retry-dead`` against PostgreSQL, with the relay's own view of
the outbox (``SqlOutboxStore``) marking events published and dead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio

import adapters_sql
from tests.e2e.cli_harness import DOWN_URL, as_json, cli, inproc, one_line


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    return await pg_database_factory(migrated=True)


async def test_status_counts_and_retry_dead_puts_events_back_in_line(url: str) -> None:
    empty = await inproc(url, "outbox", "status", "--json")
    assert as_json(empty.stdout) == {
        "pending": 0, "dead": 0, "published": 0, "oldest_pending_age_seconds": None,
    }  # fmt: skip
    for name in ("A", "B", "C"):  # three classes: six events (event + notification each)
        made = await inproc(url, "classes", "create", "--owner", "t", "--name", name,
                            "--course", "ENG5")  # fmt: skip
        assert made.exit_code == 0, made.stderr
    engine = adapters_sql.create_engine(url, pool_size=1, max_overflow=0)
    try:
        store = adapters_sql.SqlOutboxStore(engine)
        now = datetime.now(UTC)
        ready = await store.fetch_ready(now + timedelta(days=1), 100)
        assert len(ready) == 6
        await store.mark_published([ready[0].seq], now)
        await store.record_failure(ready[1].seq, "rejected by broker", now, dead=True)
    finally:
        await engine.dispose()

    status = await cli(url, "outbox", "status", "--json")

    assert status.returncode == 0, status.stderr
    body = as_json(status.stdout)
    assert (body["pending"], body["dead"], body["published"]) == (4, 1, 1)
    assert body["oldest_pending_age_seconds"] >= 0
    text = await inproc(url, "outbox", "status")
    assert text.stdout.splitlines()[:3] == ["pending\t4", "dead\t1", "published\t1"]

    retried = await cli(url, "outbox", "retry-dead")

    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "1"
    assert "1 dead event(s) put back in line" in retried.stderr
    after = as_json((await inproc(url, "outbox", "status", "--json")).stdout)
    assert (after["pending"], after["dead"], after["published"]) == (5, 0, 1)
    none_left = await inproc(url, "outbox", "retry-dead", "--json")
    assert as_json(none_left.stdout) == {"retried": 0}


@pytest.mark.parametrize(
    "args",
    [
        ("outbox", "status"),
        ("outbox", "retry-dead"),
        ("classes", "list", "--owner", "t"),
        ("associations", "list", "--pending"),
        ("associations", "expire"),
    ],
)
async def test_database_down_exits_4_with_one_line(args: tuple[str, ...]) -> None:
    result = await inproc(DOWN_URL, *args)
    assert result.exit_code == 4
    line = one_line(result.stderr)
    assert "unreachable" in line
    assert "127.0.0.1:1" in line
    assert result.stdout == ""


async def test_schema_behind_and_bad_configuration_are_one_line(
    pg_database_factory: Callable[..., Awaitable[str]],
) -> None:
    bare = await pg_database_factory()
    behind = await inproc(bare, "outbox", "status")
    assert behind.exit_code == 1
    assert "class-admin db upgrade" in one_line(behind.stderr)
    mock = await inproc(bare, "classes", "list", "--owner", "t", USE_MOCK_REPOSITORY="true")
    assert mock.exit_code == 2
    assert "CLASS_MANAGEMENT_SERVICE_USE_MOCK_REPOSITORY" in one_line(mock.stderr)
    threshold = await inproc(bare, "associations", "expire", CONFIDENCE_THRESHOLD="2")
    assert threshold.exit_code == 2
    assert "CLASS_MANAGEMENT_SERVICE_CONFIDENCE_THRESHOLD" in one_line(threshold.stderr)

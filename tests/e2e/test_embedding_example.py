"""examples/embedded_service.py runs as documented, beside a host's own Alembic history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.support.postgres import PgDatabaseFactory, plain_url

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedded_service.py"


async def test_embedded_example_runs_against_postgresql(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=False)
    # The host has its own Alembic history in the default version table.
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        await conn.execute("INSERT INTO alembic_version VALUES ('host_0007')")
    finally:
        await conn.close()

    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), url], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["published"] == 4
    assert result["topics"] == [
        "huleedu.class.created.v1",
        "huleedu.notification.teacher.requested.v1",
        "huleedu.class.student.created.v1",
        "huleedu.notification.teacher.requested.v1",
    ]
    assert result["first_event_type"] == "huleedu.class.created.v1"

    conn = await asyncpg.connect(plain_url(url))
    try:
        host_version = await conn.fetchval("SELECT version_num FROM alembic_version")
        ours = await conn.fetchval("SELECT version_num FROM cms_alembic_version")
        pending = await conn.fetchval("SELECT count(*) FROM cms_outbox WHERE published_at IS NULL")
    finally:
        await conn.close()
    assert host_version == "host_0007"
    assert ours is not None
    assert pending == 0

"""Running ``class-admin`` in tests: as the installed console script (a subprocess, about a
second each) or in-process through Typer's ``CliRunner`` (for the many small cases), plus
readers of what the database holds."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
from typer.testing import CliRunner, Result

from class_cli.main import app

CLI = str(Path(sys.executable).with_name("class-admin"))
DOWN_URL = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
PREFIX = "CLASS_MANAGEMENT_SERVICE_"


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any service variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.update({PREFIX + k: v for k, v in extra.items()})
    return env


async def cli(
    url: str | None, *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``class-admin`` (``--database-url url`` first when given)."""
    argv = [CLI, *(["--database-url", url] if url else []), *args]

    def call() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else clean_env(),
            cwd=cwd,
            timeout=120,
            check=False,
        )

    return await asyncio.to_thread(call)


async def inproc(url: str | None, *args: str, **extra_env: str) -> Result:
    """Run the same app in this process (``CliRunner``, on a thread with its own event loop)."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(PREFIX)}
    env.update({PREFIX + k: v for k, v in extra_env.items()})
    argv = [*(["--database-url", url] if url else []), *args]
    return await asyncio.to_thread(CliRunner().invoke, app, argv, env=env, catch_exceptions=False)


def one_line(stderr: str) -> str:
    """The only line of ``stderr`` (no traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def as_json(stdout: str) -> Any:
    return json.loads(stdout)


async def fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def execute(url: str, sql: str) -> None:
    """Run SQL (several statements allowed)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def scalar(url: str, sql: str, *args: Any) -> Any:
    rows = await fetch(url, sql, *args)
    return rows[0][0]


async def topic_counts(url: str) -> dict[str, int]:
    """Outbox rows by topic (notifications by their type: ``notification:<type>``)."""
    rows = await fetch(
        url,
        "SELECT CASE WHEN topic = 'huleedu.notification.teacher.requested.v1' "
        "THEN 'notification:' || (payload::json -> 'data' ->> 'notification_type') "
        "ELSE topic END AS kind, count(*) AS n FROM cms_outbox GROUP BY 1",
    )
    return {r["kind"]: r["n"] for r in rows}


async def table_counts(url: str) -> dict[str, int]:
    tables = ("cms_classes", "cms_students", "cms_class_students", "cms_outbox")
    return {t: await scalar(url, f"SELECT count(*) FROM {t}") for t in tables}


async def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows as tuples, on a PostgreSQL or an SQLite (``sqlite+aiosqlite:///…``)
    database, straight from the driver (not through the service)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()
    return [tuple(r) for r in await fetch(url.replace("+asyncpg", ""), sql)]

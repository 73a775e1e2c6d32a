"""Opening a fresh SQLite file from many connections at once never fails with "locked".

``PRAGMA journal_mode = WAL`` does not run SQLite's busy handler, so a plain conversion on
every connect fails now and then when two processes (two ``class-admin db upgrade``, the API
and its workers) open a new file together."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters_sql.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, use_wal

ROUNDS = 60
OPENERS = 16


def _open_together(path: Path) -> list[str]:
    errors: list[str] = []
    start = threading.Barrier(OPENERS)

    def one() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            cursor = conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            start.wait()
            use_wal(cursor, time.sleep)
            cursor.close()
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=one) for _ in range(OPENERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_connections_convert_a_fresh_file_to_wal(tmp_path: Path) -> None:
    for n in range(ROUNDS):
        path = tmp_path / f"fresh-{n}.db"
        assert _open_together(path) == [], f"round {n}"
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_file_already_in_wal_is_only_read(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    with sqlite3.connect(path) as first:
        first.execute("PRAGMA journal_mode = WAL")
    seen: list[str] = []
    conn = sqlite3.connect(path, isolation_level=None)
    conn.set_trace_callback(seen.append)
    use_wal(conn.cursor(), time.sleep)
    conn.close()
    assert seen == ["PRAGMA journal_mode"]


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    class Broken:
        calls = 0

        def execute(self, sql: str) -> None:
            self.calls += 1
            if sql.endswith("= WAL"):
                raise sqlite3.OperationalError("disk I/O error")

        def fetchone(self) -> tuple[str]:
            return ("delete",)

    cursor = Broken()
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(cursor, time.sleep)
    assert cursor.calls == 2


async def test_engines_opening_one_fresh_file_together(tmp_path: Path) -> None:
    for n in range(10):
        url = f"sqlite+aiosqlite:///{tmp_path / f'engines-{n}.db'}"
        engines = [create_engine(url, pool_size=1, max_overflow=0) for _ in range(8)]

        async def query(engine: AsyncEngine) -> int:
            async with engine.connect() as conn:
                return int((await conn.execute(text("SELECT 1"))).scalar_one())

        try:
            assert await asyncio.gather(*(query(e) for e in engines)) == [1] * 8
        finally:
            for engine in engines:
                await engine.dispose()

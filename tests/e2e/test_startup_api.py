"""``class-api``'s one start-up line (contract §12): mode, database without its password,
workers, Kafka and Redis, and the docs page; as a real process with JSON logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_scheduler import _env
from tests.support.broker import free_port
from tests.support.postgres import PgDatabaseFactory

API = str(Path(sys.executable).with_name("class-api"))


async def test_the_api_says_once_how_it_starts_and_never_the_password(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=True)
    with_password = url.replace("postgres@", "postgres:s3cret-pw@", 1)
    assert "s3cret-pw" in with_password
    port = free_port()
    env = _env(with_password, LOG_FORMAT="json", REDIS_URL="redis://127.0.0.1:6379/0")
    proc = subprocess.Popen(
        [API, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "Application startup complete" in line:
                break
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
        lines.append(rest)
    output = "".join(lines)
    assert "s3cret-pw" not in output
    starts = [
        json.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and json.loads(line)["message"] == "class-api starting"
    ]
    assert len(starts) == 1, output
    start = starts[0]
    assert start["mode"] == "postgresql"
    assert start["database"] == url  # the same URL, without the password
    assert start["workers"] == "off (run class-scheduler)"  # RUN_WORKERS defaults to false
    assert start["kafka"].startswith("not configured")
    assert start["redis"] == "configured"
    assert start["docs"] == f"http://127.0.0.1:{port}/schema"
    assert start["version"]

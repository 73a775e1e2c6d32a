"""``class-scheduler``'s operations endpoint, start-up line and ``--version`` as real processes
(contract §12): ``/healthz`` and ``/metrics`` on ``SCHEDULER_HTTP_PORT``."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters_sql import build_sql_runtime, create_engine
from adapters_sql.envelopes import ENVELOPES
from class_core.runtime import RequestContext
from class_core.startup import version_line
from class_core.use_cases.classes import CreateClass, create_class
from tests.e2e.test_scheduler import SCHEDULER, _env
from tests.support.broker import free_port
from tests.support.postgres import PgDatabaseFactory

PORT_VAR = "CLASS_MANAGEMENT_SERVICE_SCHEDULER_HTTP_PORT"
START = "class-scheduler starting"


class Scheduler:
    """A ``class-scheduler`` process (its stderr read as it comes), stopped with SIGTERM."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [SCHEDULER, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def started(self, timeout: float = 60.0) -> list[str]:
        """Wait for the start-up line; returns the start-up lines seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = [line for line in self.lines if START in line]
            if found:
                return found
            await asyncio.sleep(0.1)
        return [line for line in self.lines if START in line]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.proc.returncode


@pytest.fixture
def schedulers() -> Iterator[list[Scheduler]]:
    started: list[Scheduler] = []
    yield started
    for s in started:
        s.stop()


async def _health_until(port: int, want: Any, timeout: float = 60.0) -> dict[str, Any]:
    """GET /healthz until ``want(body)`` holds; the last body otherwise (the test fails)."""
    body: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.get("/healthz")
            except httpx.TransportError:
                await asyncio.sleep(0.2)
                continue
            body = {"http_status": r.status_code, **r.json()}
            if want(body):
                return body
            await asyncio.sleep(0.3)
    return body


async def _create_class(url: str) -> None:
    engine = create_engine(url)
    try:
        rt = build_sql_runtime(engine)
        await create_class(rt, RequestContext("teacher-ops"), CreateClass("9A", ["ENG5"]))
    finally:
        await engine.dispose()


@pytest.mark.slow
async def test_healthz_and_metrics_of_a_leader_and_a_standby(
    pg_database_factory: PgDatabaseFactory, kafka_bootstrap: str, schedulers: list[Scheduler]
) -> None:
    url = await pg_database_factory(migrated=True)
    await _create_class(url)  # two events wait: ClassCreatedV1 and its teacher notification
    kafka = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_ENABLE_IDEMPOTENCE": "false",
        "KAFKA_CONSUMER_GROUP": f"ops-test-{free_port()}",
    }
    leader_port, standby_port = free_port(), free_port()
    schedulers.append(
        Scheduler(_env(url, SCHEDULER_HTTP_PORT=str(leader_port), HOST="127.0.0.1", **kafka))
    )
    leader = await _health_until(
        leader_port,
        lambda b: (
            b["checks"]["relay"] == "leader"
            and b["checks"]["consumer"] == "assigned"
            and b["checks"]["last_sweep_at"] is not None
        ),
    )
    assert leader["http_status"] == 200, leader
    assert leader["status"] == "healthy"
    assert leader["checks"]["database"] == "ok"
    assert leader["checks"]["kafka"] == "ok"

    schedulers.append(
        Scheduler(
            _env(url, SCHEDULER_HTTP_PORT=str(standby_port), HOST="127.0.0.1", **kafka),
            "--no-consumer",
            "--no-sweep",
        )
    )
    standby = await _health_until(standby_port, lambda b: b["checks"]["relay"] == "standby")
    assert standby["checks"]["relay"] == "standby", standby
    assert standby["checks"]["consumer"] == "off"
    assert standby["checks"]["last_sweep_at"] is None

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{leader_port}") as client:
        deadline = time.monotonic() + 30
        while True:
            r = await client.get("/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
            if "cms_events_published_total 2.0" in r.text or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        lines = set(r.text.splitlines())
        assert "cms_events_published_total 2.0" in lines, r.text
        assert "cms_relay_leader 1.0" in lines
        assert "cms_outbox_pending 0.0" in lines
        assert "cms_outbox_dead 0.0" in lines
        assert "cms_consumer_assigned_partitions 0.0" not in lines
        assert 'cms_sweep_runs_total{result="ok"} 1.0' in lines
        assert any(line.startswith("cms_consumer_lag ") for line in lines)
        assert any(
            line.startswith('cms_consumer_failures_total{reason="retried"}') for line in lines
        )
        assert (await client.get("/nothing")).status_code == 404
        assert (await client.post("/healthz")).status_code == 405
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{standby_port}") as client:
        text = (await client.get("/metrics")).text
        assert "cms_relay_leader 0.0" in text.splitlines()

    for s in schedulers:
        assert s.stop() == 0, s.stderr
    start_lines = [line for line in schedulers[0].stderr.splitlines() if START in line]
    assert len(start_lines) == 1, schedulers[0].stderr
    line = start_lines[0]
    assert "mode=postgresql" in line
    assert "kafka=configured" in line
    assert "redis=not configured" in line
    assert "workers=sweep,relay,consumer" in line
    assert f"http=http://127.0.0.1:{leader_port}" in line


async def test_a_port_that_cannot_be_bound_exits_naming_the_variable(
    pg_database_factory: PgDatabaseFactory,
) -> None:
    url = await pg_database_factory(migrated=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(url, SCHEDULER_HTTP_PORT=str(port), HOST="127.0.0.1")
        proc = subprocess.run([SCHEDULER], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(PORT_VAR + ":"), lines


async def test_port_zero_turns_the_endpoint_off_and_the_start_line_hides_the_password(
    pg_database_factory: PgDatabaseFactory, schedulers: list[Scheduler]
) -> None:
    url = await pg_database_factory(migrated=True)
    # PostgreSQL trusts local connections here: the password is accepted and never checked.
    with_password = url.replace("postgres@", "postgres:s3cret-pw@", 1)
    assert "s3cret-pw" in with_password
    s = Scheduler(_env(with_password, SCHEDULER_HTTP_PORT="0"), "--no-relay", "--no-consumer")
    schedulers.append(s)
    assert await s.started(), s.stderr
    await asyncio.sleep(0.5)  # the signal handlers are set right after the start-up line
    assert s.stop() == 0, s.stderr
    assert "s3cret-pw" not in s.stderr
    start_lines = [line for line in s.stderr.splitlines() if START in line]
    assert len(start_lines) == 1, s.stderr
    assert "http=off" in start_lines[0]
    assert "workers=sweep" in start_lines[0]
    assert "kafka=not configured" in start_lines[0]


@pytest.mark.parametrize("program", ["class-api", "class-scheduler", "class-admin"])
def test_version(program: str) -> None:
    exe = SCHEDULER.replace("class-scheduler", program)
    # A bad setting must not hide the version.
    env = _env("postgresql://127.0.0.1:1/none", CONFIDENCE_THRESHOLD="7")
    proc = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == version_line()
    assert version_line().startswith("class-management ")


async def _raw_get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.get(path)
        return r.status_code, r.json()


async def test_unreachable_database_is_503_unhealthy_and_slow_clients_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from class_core.testing import InMemoryOutboxStore, InMemoryStore
    from class_scheduler import http
    from class_scheduler.health import SchedulerStatus

    up = {"database": True}

    async def database() -> bool:
        return up["database"]

    status = SchedulerStatus(
        database=database, outbox=InMemoryOutboxStore(InMemoryStore(ENVELOPES))
    )
    monkeypatch.setattr(http, "HEADER_TIMEOUT_SECONDS", 0.5)
    server = http.OpsServer(status, "127.0.0.1", 0)
    await server.start()
    try:
        code, body = await _raw_get(server.port, "/healthz")
        assert (code, body["status"]) == (200, "healthy")
        assert body["checks"] == {
            "database": "ok",
            "kafka": "not_configured",
            "relay": "off",
            "consumer": "off",
            "last_sweep_at": None,
        }
        up["database"] = False
        code, body = await _raw_get(server.port, "/healthz/")
        assert (code, body["status"], body["checks"]["database"]) == (
            503,
            "unhealthy",
            "unavailable",
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # closed without an answer
        writer.close()
    finally:
        await server.stop()


async def test_states_of_parts_that_are_not_running_yet() -> None:
    from adapters_messaging import KafkaEventSink, OutboxRelay, SuggestionsConsumer
    from class_core.testing import InMemoryOutboxStore, InMemoryStore, memory_runtime
    from class_scheduler.health import SchedulerStatus, SweepRecord

    async def database() -> bool:
        return True

    store = InMemoryOutboxStore(InMemoryStore(ENVELOPES))
    relay = OutboxRelay(store, KafkaEventSink("127.0.0.1:1", enable_idempotence=False))
    consumer = SuggestionsConsumer("127.0.0.1:1", "group", memory_runtime(renderer=ENVELOPES))
    status = SchedulerStatus(
        database=database, outbox=store, relay=relay, consumer=consumer, sweep=SweepRecord()
    )
    body, code = await status.health()
    assert code == 200
    assert body["checks"]["relay"] == "standby"  # not (yet) holding the leadership
    assert body["checks"]["consumer"] == "waiting"  # no partitions assigned
    assert body["checks"]["last_sweep_at"] is None
    text = (await status.metrics()).decode()
    assert "cms_relay_leader 0.0" in text.splitlines()
    assert "cms_consumer_assigned_partitions 0.0" in text.splitlines()
    assert 'cms_sweep_runs_total{result="ok"} 0.0' in text.splitlines()

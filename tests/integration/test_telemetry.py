"""The optional OpenTelemetry tracing (``adapters_otel``, contract §12) with the SDK's in-memory
exporter: HTTP requests, SQL statements, relay rounds and consumed messages; and nothing at all
(not even an import) when it is not configured."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from adapters_messaging import KafkaEventSink, OutboxRelay, SuggestionsConsumer
from adapters_otel import configure_telemetry, shutdown_telemetry, wanted
from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from class_api.app import create_app
from class_core.events import SUGGESTIONS_TOPIC
from class_core.runtime import RequestContext
from class_core.use_cases.classes import CreateClass, create_class
from class_runtime import Settings
from tests.e2e.test_matching_flow import _envelope, _essay
from tests.support.broker import produce_raw

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    provider = configure_telemetry("tests", {}, processor=SimpleSpanProcessor(spans))
    assert provider is not None
    try:
        yield spans
    finally:
        shutdown_telemetry()


def _trace_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.trace_id:032x}"


async def test_http_requests_and_their_sql_are_traced_under_the_incoming_trace(
    pg_url: str, exporter: InMemorySpanExporter
) -> None:
    settings = Settings.of(database_url=pg_url, run_workers=False)
    async with AsyncTestClient(create_app(settings)) as client:
        r = await client.post(
            "/v1/classes",
            json={"name": "Otel 1", "course_codes": ["ENG5"]},
            headers={"X-User-ID": "teacher-otel", "traceparent": TRACEPARENT},
        )
        assert r.status_code == 201
        r = await client.get("/v1/classes?q=Hemligt+Namn", headers={"X-User-ID": "teacher-otel"})
        assert r.status_code == 200
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    post = next(s for s in servers if s.name.startswith("POST"))
    assert post.name == "POST /v1/classes"  # the route template
    assert _trace_id(post) == TRACE_ID
    assert post.parent is not None
    assert f"{post.parent.span_id:016x}" == PARENT_ID
    sql = [s for s in spans if s.kind is SpanKind.CLIENT and _trace_id(s) == TRACE_ID]
    assert any(s.name == "INSERT" for s in sql), [s.name for s in spans]
    assert all(s.attributes and s.attributes["db.system"] == "postgresql" for s in sql)
    get = next(s for s in servers if s.name.startswith("GET"))
    assert get.name == "GET /v1/classes"
    assert _trace_id(get) != TRACE_ID  # a request without traceparent starts its own trace
    for span in spans:  # the query string (a name) never reaches a trace
        assert "Hemligt" not in json.dumps(dict(span.attributes or {}))


async def test_consumed_messages_and_relay_rounds_are_traced(
    pg_url: str, kafka_bootstrap: str, exporter: InMemorySpanExporter
) -> None:
    engine = create_engine(pg_url)  # after tracing was configured: its statements are traced
    runtime = build_sql_runtime(engine)
    topic = f"test.{uuid4().hex[:10]}.{SUGGESTIONS_TOPIC}"
    sink = KafkaEventSink(kafka_bootstrap, enable_idempotence=False)
    try:
        cls = await create_class(
            runtime, RequestContext("teacher-otel"), CreateClass("9C", ["SV1"])
        )
        batch_id = uuid4()
        await produce_raw(
            kafka_bootstrap,
            topic,
            [
                (
                    str(batch_id).encode(),
                    _envelope(batch_id, str(cls.id), [_essay(uuid4(), [])]),
                    [("traceparent", TRACEPARENT.encode())],
                )
            ],
        )
        consumer = SuggestionsConsumer(
            kafka_bootstrap,
            f"otel-{uuid4()}",
            runtime,
            topic=topic,
            enable_idempotence=False,
            consumer_options={"session_timeout_ms": 2000, "heartbeat_interval_ms": 300},
        )
        task = asyncio.create_task(consumer.run())
        try:
            async with asyncio.timeout(60):
                while consumer.stats.processed < 1:
                    await asyncio.sleep(0.1)
        finally:
            await consumer.stop()
            await task
        relay = OutboxRelay(SqlOutboxStore(engine), sink)
        assert await relay.run_once() >= 1
    finally:
        await sink.stop()
        await engine.dispose()
    spans = exporter.get_finished_spans()
    (processed,) = [s for s in spans if s.name == "cms.suggestions.process"]
    assert _trace_id(processed) == TRACE_ID  # a child of the message's trace context
    assert processed.kind is SpanKind.CONSUMER
    assert processed.attributes is not None
    assert processed.attributes["messaging.destination.name"] == topic
    inside = [s for s in spans if s.parent is not None and _trace_id(s) == TRACE_ID]
    assert any(s.name == "INSERT" for s in inside), "the consumer's SQL is in its trace"
    publish = [s for s in spans if s.name == "cms.outbox.publish"]
    assert publish
    assert publish[0].attributes is not None
    assert int(str(publish[0].attributes["cms.events"])) >= 1
    assert any(s.name == "cms.outbox.mark_published" for s in spans)


def test_without_configuration_nothing_is_traced_or_imported() -> None:
    assert not wanted({})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    # redis-py and Litestar import parts of OpenTelemetry by themselves when it is installed
    # (redis' optional metrics; Litestar looks for its OpenTelemetry plugin when an app is
    # made): compare with what the third-party libraries import on their own.
    baseline = _otel_modules(
        "import litestar, sqlalchemy, aiokafka, redis.asyncio, uvicorn, apscheduler, typer\n"
        "litestar.Litestar(route_handlers=[])"
    )
    ours = _otel_modules(
        "from adapters_otel import configure_telemetry, http_middleware\n"
        "from class_api.app import create_app\n"
        "import class_scheduler.main, class_cli.main, adapters_sql, adapters_messaging\n"
        "from class_runtime import Settings\n"
        "assert configure_telemetry('class-api') is None\n"
        "assert http_middleware() == []\n"
        "create_app(Settings(use_mock_repository=True))\n"
        "assert 'adapters_otel.tracing' not in sys.modules\n"
        "from class_core import telemetry\n"
        "assert not telemetry.active()\n"
    )
    assert ours <= baseline, ours - baseline


def _otel_modules(code: str) -> set[str]:
    """The ``opentelemetry`` modules a fresh interpreter has imported after ``code``."""
    listing = "sorted(m for m in sys.modules if m.startswith('opentelemetry'))"
    script = f"import sys\n{code}\nprint(repr({listing}))"
    env = {"PATH": "/usr/bin:/bin"}  # no OTEL_* variable
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    found: list[str] = eval(proc.stdout.strip())
    return set(found)


@pytest.mark.parametrize("program", ["class-api", "class-scheduler"])
def test_an_unknown_trace_exporter_stops_start_up_with_one_line(program: str) -> None:
    exe = str(Path(sys.executable).with_name(program))
    env = {"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "zipkin"}
    proc = subprocess.run([exe], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "OTEL_TRACES_EXPORTER: must be one of otlp, console, none" in lines[0]

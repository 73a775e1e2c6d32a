"""Operations: /healthz, /metrics, the OpenAPI document and docs UI, in-process workers, and
the ``class-api`` entry point."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import Counter

from adapters_sql import SchemaNotAtHeadError, upgrade
from adapters_sql.envelopes import ENVELOPES
from class_api.app import create_app
from class_api.metrics import ServiceMetrics
from class_core.testing import memory_runtime
from tests.e2e.conftest import INTERNAL, A, ApiHarness, assert_problem, settings_for

PREFIX = "CLASS_MANAGEMENT_SERVICE_"


async def test_healthz_healthy(api: ApiHarness) -> None:
    r = await api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {
        "status": "healthy",
        "checks": {"database": "ok", "kafka": "not_configured", "redis": "not_configured"},
    }


async def test_healthz_degraded_when_kafka_or_redis_is_down() -> None:
    settings = settings_for(
        kafka_bootstrap_servers="127.0.0.1:9", redis_url="redis://127.0.0.1:9/0"
    )
    async with AsyncTestClient(
        create_app(settings, runtime=memory_runtime(renderer=ENVELOPES))
    ) as client:
        r = await client.get("/healthz")
        assert r.status_code == 200
        assert r.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "kafka": "unavailable", "redis": "unavailable"},
        }
        # The API itself keeps working.
        assert (await client.get("/v1/courses", headers=A)).status_code == 200


def _samples(text: str, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


async def test_metrics_by_route_template_and_outbox() -> None:
    async with AsyncTestClient(create_app(settings_for())) as client:  # bootstrap's memory mode
        created = (
            await client.post(
                "/v1/classes", json={"name": "9A", "course_codes": ["ENG5"]}, headers=A
            )
        ).json()
        await client.get(f"/v1/classes/{created['id']}", headers=A)
        await client.get(f"/v1/classes/{uuid4()}", headers=A)
        await client.get(f"/some/unknown/{uuid4()}")
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert created["id"] not in text  # never raw ids
    requests = _samples(text, "cms_http_requests_total")
    assert requests['cms_http_requests_total{method="POST",route="/v1/classes",status="201"}'] == 1
    assert (
        requests[
            'cms_http_requests_total{method="GET",route="/v1/classes/{class_id}",status="200"}'
        ]
        == 1
    )
    assert (
        requests[
            'cms_http_requests_total{method="GET",route="/v1/classes/{class_id}",status="404"}'
        ]
        == 1
    )
    assert requests['cms_http_requests_total{method="GET",route="<unmatched>",status="404"}'] == 1
    assert "cms_http_request_duration_seconds_bucket" in text
    # class.created + its teacher notification wait in the outbox (no Kafka configured).
    assert _samples(text, "cms_outbox_pending") == {"cms_outbox_pending": 2.0}
    for name in (
        "cms_outbox_dead",
        "cms_events_published_total",
        "cms_consumer_messages_total",
        "cms_consumer_failures_total",
        "cms_sweep_runs_total",
        "cms_sweep_batches_finalized_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text


async def test_metrics_registry_is_open_to_other_components(memory_api: ApiHarness) -> None:
    metrics: ServiceMetrics = memory_api.app.state.metrics
    Counter(
        "cms_relay_test_total", "registered by another component", registry=metrics.registry
    ).inc(3)
    text = (await memory_api.client.get("/metrics")).text
    assert "cms_relay_test_total 3.0" in text


async def test_openapi_document_matches_the_routes(memory_api: ApiHarness) -> None:
    r = await memory_api.client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    expected = {
        ("get", "/healthz"), ("get", "/metrics"), ("get", "/v1/courses"),
        ("post", "/v1/classes"), ("get", "/v1/classes"), ("get", "/v1/classes/{class_id}"),
        ("put", "/v1/classes/{class_id}"), ("delete", "/v1/classes/{class_id}"),
        ("post", "/v1/classes/{class_id}/archive"), ("post", "/v1/classes/{class_id}/unarchive"),
        ("get", "/v1/classes/{class_id}/roster"), ("post", "/v1/classes/students"),
        ("get", "/v1/classes/students"), ("get", "/v1/classes/students/{student_id}"),
        ("put", "/v1/classes/students/{student_id}"),
        ("delete", "/v1/classes/students/{student_id}"),
        ("post", "/v1/classes/students/{student_id}/erasure"),
        ("get", "/v1/classes/students/{student_id}/export"),
        ("get", "/v1/batches"), ("post", "/v1/batches/{batch_id}/deadline"),
        ("get", "/v1/changes"),
        ("get", "/v1/batches/{batch_id}/student-associations"),
        ("post", "/v1/batches/{batch_id}/student-associations/confirm"),
        ("get", "/internal/v1/batches/{batch_id}/student-names"),
        ("get", "/internal/v1/associations/essay/{essay_id}"),
        ("get", "/internal/v1/batches/class-info"),
        ("post", "/v1/classes/{class_id}/roster/import"), ("get", "/v1/imports"),
        ("post", "/v1/imports/{import_id}/undo"),
    }  # fmt: skip
    found = {
        (m, p)
        for p, item in doc["paths"].items()
        for m in item
        if m in {"get", "post", "put", "delete"}
    }
    assert found == expected
    schemes = doc["components"]["securitySchemes"]
    assert schemes["UserId"] == {
        "type": "apiKey",
        "name": "X-User-ID",
        "in": "header",
        "description": schemes["UserId"]["description"],
    }
    assert schemes["InternalApiKey"]["name"] == "X-Internal-API-Key"
    for method, path in expected:
        op = doc["paths"][path][method]
        if path.startswith("/v1/") and not path.endswith("/roster"):
            assert op["security"] == [{"UserId": []}], path
        if path.startswith("/internal/"):
            assert op["security"] == [{"InternalApiKey": [], "ServiceId": []}], path
        for status, response in op["responses"].items():
            assert "X-Correlation-ID" in response["headers"], (path, status)
            if status.startswith(("4", "5")) and path != "/healthz":
                schema = response["content"]["application/problem+json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ProblemDetails"}
    roster = doc["paths"]["/v1/classes/{class_id}/roster"]["get"]
    assert roster["security"] == [{"UserId": []}, {"InternalApiKey": [], "ServiceId": []}]
    assert doc["components"]["schemas"]["CreateStudentIn"]["additionalProperties"] is False
    problem = doc["components"]["schemas"]["ProblemDetails"]
    assert set(problem["required"]) == {
        "type",
        "title",
        "status",
        "detail",
        "error_code",
        "correlation_id",
    }
    confirm = doc["paths"]["/v1/batches/{batch_id}/student-associations/confirm"]["post"]
    assert set(confirm["responses"]) >= {"200", "400", "401", "404", "409", "413", "415", "503"}
    assert "Retry-After" in confirm["responses"]["503"]["headers"]
    ui = await memory_api.client.get("/schema")
    assert ui.status_code == 200
    assert "swagger" in ui.text.lower()


async def test_sweep_worker_finalizes_due_batches() -> None:
    settings = settings_for(
        run_workers=True, timeout_check_interval_seconds=0.05, association_timeout_hours=0.0
    )
    async with AsyncTestClient(create_app(settings)) as client:
        cls = (
            await client.post(
                "/v1/classes", json={"name": "9A", "course_codes": ["ENG5"]}, headers=A
            )
        ).json()
        stu = (
            await client.post(
                "/v1/classes/students",
                json={
                    "person_name": {"first_name": "Ada", "last_name": "L"},
                    "class_ids": [cls["id"]],
                },
                headers=A,
            )
        ).json()
        harness = ApiHarness(client, "memory")
        sure, unsure = uuid4(), uuid4()
        batch = harness.seed_batch(
            cls["id"], [(sure, UUID(stu["id"]), 0.9), (unsure, UUID(stu["id"]), 0.2)]
        )
        review: dict[str, Any] = {}
        for _ in range(100):
            review = (
                await client.get(f"/v1/batches/{batch}/student-associations", headers=A)
            ).json()
            if review["status"] == "finalized":
                break
            await asyncio.sleep(0.05)
        assert review["status"] == "finalized"
        by_essay = {a["essay_id"]: a for a in review["associations"]}
        assert by_essay[str(sure)]["student_id"] == stu["id"]
        assert by_essay[str(sure)]["validation_status"] == "timeout_confirmed"
        assert by_essay[str(sure)]["validated_by"] == "SYSTEM_TIMEOUT"
        assert by_essay[str(unsure)]["student_id"] != stu["id"]  # the UNKNOWN placeholder
        text = (await client.get("/metrics")).text
        assert _samples(text, "cms_sweep_batches_finalized_total") == {
            "cms_sweep_batches_finalized_total": 1.0
        }
        assert _samples(text, "cms_sweep_runs_total")['cms_sweep_runs_total{result="ok"}'] >= 1


async def test_no_workers_without_run_workers(memory_api: ApiHarness) -> None:
    cls = await memory_api.create_class()
    fast = settings_for(association_timeout_hours=0.0)
    assert fast.run_workers is False
    batch = memory_api.seed_batch(cls["id"], [(uuid4(), None, 0.0)])
    await asyncio.sleep(0.2)
    review = await memory_api.client.get(f"/v1/batches/{batch}/student-associations", headers=A)
    assert review.json()["status"] == "pending"


# --------------------------------------------------------------------------- class-api


def _run_main(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return subprocess.run(
        [sys.executable, "-c", "from class_api.main import main; main()", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONFIDENCE_THRESHOLD", "1.5"),
        ("ASSOCIATION_TIMEOUT_HOURS", "-1"),
        ("DATABASE_URL", "mysql://db/x"),
        ("PORT", "http"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(variable: str, value: str) -> None:
    done = _run_main({PREFIX + variable: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert PREFIX + variable in lines[0]
    assert "Traceback" not in done.stderr


def test_several_workers_need_postgresql(tmp_path: Any) -> None:
    done = _run_main(
        {PREFIX + "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}, "--workers", "2"
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
    memory = _run_main({PREFIX + "USE_MOCK_REPOSITORY": "true"}, "--workers", "3")
    assert memory.returncode == 2


async def test_schema_not_at_head_stops_start_up(pg_database_factory: Any) -> None:
    url = await pg_database_factory()  # an empty, unmigrated database
    done = await asyncio.to_thread(_run_main, {PREFIX + "DATABASE_URL": url})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "class-admin db upgrade" in lines[0]
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_class_api_serves_http() -> None:
    port = _free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env = {**clean, PREFIX + "USE_MOCK_REPOSITORY": "true", PREFIX + "LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from class_api.main import main; main()",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        created = httpx.post(
            f"http://127.0.0.1:{port}/v1/classes/",
            json={"name": "9A", "course_codes": ["ENG5"]},
            headers=A,
        )
        assert created.status_code == 201
        denied = httpx.get(
            f"http://127.0.0.1:{port}/internal/v1/batches/class-info?batch_ids={uuid4()}",
            headers=INTERNAL,
        )
        assert_problem(denied, 401, "AUTHENTICATION_REQUIRED")  # INTERNAL_API_KEY unset
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert proc.returncode in (0, -15)
    assert "Traceback" not in stderr
    assert "Application shutdown complete" in stderr


async def test_sqlite_mode_through_the_composition_root(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cms.db"
    settings = settings_for(use_mock_repository=False, database_url=url)
    with pytest.raises(BaseExceptionGroup) as failed:  # the API never migrates on its own
        async with AsyncTestClient(create_app(settings)):
            pass
    assert failed.value.subgroup(SchemaNotAtHeadError) is not None
    await upgrade(url)
    async with AsyncTestClient(create_app(settings)) as client:
        created = await client.post(
            "/v1/classes", json={"name": "9A", "course_codes": ["SV1"]}, headers=A
        )
        assert created.status_code == 201
        health = await client.get("/healthz")
        assert health.json()["checks"]["database"] == "ok"
        metrics = (await client.get("/metrics")).text
        assert _samples(metrics, "cms_outbox_pending") == {"cms_outbox_pending": 2.0}
    async with AsyncTestClient(create_app(settings)) as client:  # the data stayed
        listed = (await client.get("/v1/classes", headers=A)).json()
        assert [c["id"] for c in listed["classes"]] == [created.json()["id"]]

"""Common rules of contract §3.1: authentication, problem details and every error code,
correlation ids, trailing slashes, body limits and media types."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient

from class_api.app import create_app
from class_core.errors import DependencyUnavailableError
from class_core.ports import UnitOfWork
from class_core.runtime import Runtime
from tests.e2e.conftest import (
    INTERNAL,
    A,
    ApiHarness,
    assert_problem,
    fields_of,
    settings_for,
)

SECRET = "SELECT secret_column FROM cms_students -- password=hunter2"


async def test_x_user_id_is_required_on_every_v1_route(memory_api: ApiHarness) -> None:
    some = uuid4()
    routes = [
        ("GET", "/v1/courses"),
        ("GET", "/v1/classes"),
        ("POST", "/v1/classes"),
        ("GET", f"/v1/classes/{some}"),
        ("PUT", f"/v1/classes/{some}"),
        ("DELETE", f"/v1/classes/{some}"),
        ("GET", f"/v1/classes/{some}/roster"),
        ("GET", "/v1/classes/students"),
        ("POST", "/v1/classes/students"),
        ("GET", f"/v1/classes/students/{some}"),
        ("PUT", f"/v1/classes/students/{some}"),
        ("DELETE", f"/v1/classes/students/{some}"),
        ("GET", f"/v1/batches/{some}/student-associations"),
        ("POST", f"/v1/batches/{some}/student-associations/confirm"),
    ]
    bad_headers: list[dict[str, str]] = [
        {},
        {"X-User-ID": ""},
        {"X-User-ID": "   "},
        {"X-User-ID": "u" * 256},
    ]
    for method, path in routes:
        for headers in bad_headers:
            # Authentication comes first: even a bad body or a bad id gives 401.
            r = await memory_api.client.request(method, path, headers=headers, content=b"{oops")
            assert_problem(r, 401, "AUTHENTICATION_REQUIRED")
    longest = await memory_api.client.get("/v1/courses", headers={"X-User-ID": "u" * 255})
    assert longest.status_code == 200


async def test_a_non_ascii_user_id_is_read_as_the_utf8_it_was_sent_in(
    memory_api: ApiHarness,
) -> None:
    client = memory_api.client
    utf8 = {b"X-User-ID": "lärare".encode()}
    created = await client.post(
        "/v1/classes", json={"name": "9A", "course_codes": ["SV1"]}, headers=utf8
    )
    assert created.status_code == 201, created.text
    assert memory_api.events()[-2]["data"]["user_id"] == "lärare"
    # The same id sent as Latin-1 (what some clients do) is the same owner.
    latin1 = {b"X-User-ID": "lärare".encode("latin-1")}
    same = await client.get(f"/v1/classes/{created.json()['id']}", headers=latin1)
    assert same.status_code == 200
    # The length limit counts characters, not bytes.
    longest = await client.get("/v1/courses", headers={b"X-User-ID": ("é" * 255).encode()})
    assert longest.status_code == 200
    for bad in ("é" * 256, "lärare\u0085", "a\x7fb"):
        r = await client.get("/v1/courses", headers={b"X-User-ID": bad.encode()})
        assert_problem(r, 401, "AUTHENTICATION_REQUIRED")


async def test_unknown_route_and_wrong_method(memory_api: ApiHarness) -> None:
    for path in ("/nope", "/v1", "/v1/unknown", "/internal/v1/nothing", "/v2/classes"):
        assert_problem(await memory_api.client.get(path, headers=A), 404, "RESOURCE_NOT_FOUND")
    r = await memory_api.client.patch("/v1/classes", headers=A, json={})
    assert_problem(r, 405, "METHOD_NOT_ALLOWED")
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    r2 = await memory_api.client.post(f"/v1/classes/{uuid4()}/roster", headers=A, json={})
    assert_problem(r2, 405, "METHOD_NOT_ALLOWED")


async def test_body_problems(memory_api: ApiHarness) -> None:
    client = memory_api.client
    json_type = {**A, "content-type": "application/json"}
    for body in (b"{bad json", b"", b"[]", b"null", b'"text"', b"\xff\xfe"):
        r = await client.post("/v1/classes", content=body, headers=json_type)
        assert_problem(r, 400, "VALIDATION_ERROR")
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        r = await client.post(
            "/v1/classes", content=b'{"name": "x"}', headers={**A, "content-type": content_type}
        )
        assert_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    no_type = await client.post("/v1/classes", content=b'{"name": "x"}', headers=A)
    assert_problem(no_type, 415, "UNSUPPORTED_MEDIA_TYPE")
    charset = await client.post(
        "/v1/classes",
        content=b'{"name": "x", "course_codes": ["ENG5"]}',
        headers={**A, "content-type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201

    big = b'{"name": "' + b"x" * (1024 * 1024) + b'", "course_codes": ["ENG5"]}'
    assert_problem(
        await client.post("/v1/classes", content=big, headers=json_type), 413, "PAYLOAD_TOO_LARGE"
    )

    streamed = _raw_post(memory_api, "/v1/classes", [b" " * 65536] * 20)  # no Content-Length
    assert streamed[0] == 413
    assert b"PAYLOAD_TOO_LARGE" in streamed[1]
    just_fits = (
        b'{"name": "' + b"x" * 200 + b'", "course_codes": ["ENG5"]}' + b" " * (1024 * 1024 - 240)
    )
    assert len(just_fits) <= 1024 * 1024
    assert (
        await client.post("/v1/classes", content=just_fits, headers=json_type)
    ).status_code == 201


async def test_bad_uuids_in_paths_and_queries(memory_api: ApiHarness) -> None:
    for path, field in [
        ("/v1/classes/123", "class_id"),
        ("/v1/classes/123/roster", "class_id"),
        ("/v1/classes/students/not-a-uuid", "student_id"),
        ("/v1/batches/x/student-associations", "batch_id"),
        ("/v1/classes/students?class_id=1", "class_id"),
    ]:
        r = await memory_api.client.get(path, headers=A)
        assert fields_of(assert_problem(r, 400, "VALIDATION_ERROR")) == [field], path
    bad_put = await memory_api.client.put("/v1/classes/xyz", json={}, headers=A)
    assert fields_of(assert_problem(bad_put, 400, "VALIDATION_ERROR")) == ["class_id"]


async def test_correlation_id_is_honoured_or_generated(memory_api: ApiHarness) -> None:
    given = uuid4()
    r = await memory_api.client.get("/v1/courses", headers={**A, "X-Correlation-ID": str(given)})
    assert r.headers["x-correlation-id"] == str(given)
    upper = await memory_api.client.get(
        "/v1/courses", headers={**A, "X-Correlation-ID": str(given).upper()}
    )
    assert upper.headers["x-correlation-id"] == str(given)
    for bad in ("not-a-uuid", "", "123"):
        generated = await memory_api.client.get(
            "/v1/courses", headers={**A, "X-Correlation-ID": bad}
        )
        UUID(generated.headers["x-correlation-id"])
        assert generated.headers["x-correlation-id"] != bad
    fresh = await memory_api.client.get("/v1/courses", headers=A)
    assert UUID(fresh.headers["x-correlation-id"]).version == 4
    for error in (
        await memory_api.client.get("/v1/courses", headers={"X-Correlation-ID": str(given)}),
        await memory_api.client.get("/nowhere", headers={"X-Correlation-ID": str(given)}),
        await memory_api.client.delete(
            "/v1/courses", headers={**A, "X-Correlation-ID": str(given)}
        ),
    ):
        assert error.headers["x-correlation-id"] == str(given)
        assert error.json()["correlation_id"] == str(given)
    for path in ("/healthz", "/metrics", "/schema/openapi.json"):
        assert (await memory_api.client.get(path)).headers["x-correlation-id"]
    created = await memory_api.client.post(
        "/v1/classes",
        json={"name": "9A", "course_codes": ["ENG5"]},
        headers={**A, "X-Correlation-ID": str(given)},
    )
    events = [e for e in memory_api.events() if e["data"].get("class_id") == created.json()["id"]]
    assert events
    assert {e["correlation_id"] for e in events} == {str(given)}


async def test_every_route_works_with_and_without_a_trailing_slash(api: ApiHarness) -> None:
    cls = await api.create_class()
    student = await api.create_student(class_ids=[cls["id"]])
    essay = uuid4()
    batch = api.seed_batch(cls["id"], [(essay, UUID(student["id"]), 0.9)])
    confirm = {"associations": [{"essay_id": str(essay), "confirmed": True}]}
    routes = [
        ("GET", "/v1/courses", A, None, 200),
        ("GET", "/v1/classes", A, None, 200),
        ("POST", "/v1/classes", A, {"name": "x", "course_codes": ["ENG5"]}, 201),
        ("GET", f"/v1/classes/{cls['id']}", A, None, 200),
        ("PUT", f"/v1/classes/{cls['id']}", A, {}, 200),
        ("GET", f"/v1/classes/{cls['id']}/roster", A, None, 200),
        ("GET", "/v1/classes/students", A, None, 200),
        ("GET", f"/v1/classes/students/{student['id']}", A, None, 200),
        ("PUT", f"/v1/classes/students/{student['id']}", A, {}, 200),
        ("GET", f"/v1/batches/{batch}/student-associations", A, None, 200),
        ("POST", f"/v1/batches/{batch}/student-associations/confirm", A, confirm, 200),
        ("GET", f"/internal/v1/batches/{batch}/student-names", INTERNAL, None, 200),
        ("GET", f"/internal/v1/associations/essay/{essay}", INTERNAL, None, 200),
        ("GET", f"/internal/v1/batches/class-info?batch_ids={batch}", INTERNAL, None, 200),
        ("GET", "/healthz", {}, None, 200),
        ("GET", "/metrics", {}, None, 200),
        ("GET", "/schema/openapi.json", {}, None, 200),
    ]
    for method, path, headers, body, status in routes:
        base, _, query = path.partition("?")
        for variant in (base, base + "/"):
            url = f"{variant}?{query}" if query else variant
            r = await api.client.request(method, url, headers=headers, json=body)
            assert r.status_code == status, (method, url, r.text)
    other = await api.create_class(name="Doomed")
    gone = await api.create_student(first="Gone", last="Soon")
    for path in (f"/v1/classes/{other['id']}/", f"/v1/classes/students/{gone['id']}/"):
        assert (await api.client.delete(path, headers=A)).status_code == 200
    posted = await api.client.post(
        "/v1/classes/students/",
        json={"person_name": {"first_name": "T", "last_name": "S"}},
        headers=A,
    )
    assert posted.status_code == 201


def _raw_post(api: ApiHarness, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    """POST a chunked body (no Content-Length) straight through ASGI; the test client cannot
    stream."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json"),
                    (b"x-user-id", b"teacher-a"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }  # fmt: skip
    pending = list(chunks)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    api.call(api.app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


class _FailingUnitOfWork:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self) -> UnitOfWork:
        raise self.error


@pytest.fixture
def caplog_info(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def test_unexpected_errors_are_500_without_internals(
    caplog_info: pytest.LogCaptureFixture,
) -> None:
    runtime = Runtime(uow=_FailingUnitOfWork(RuntimeError(SECRET)))
    async with AsyncTestClient(create_app(settings_for(), runtime=runtime)) as client:
        r = await client.post(
            "/v1/classes", json={"name": "Private Name Åsa", "course_codes": ["ENG5"]}, headers=A
        )
        body = assert_problem(r, 500, "INTERNAL_ERROR")
        assert SECRET not in r.text
        assert "Traceback" not in r.text
        assert "RuntimeError" not in r.text
        assert body["detail"] == "An unexpected error occurred."
        listed = await client.get("/v1/classes?q=Secret+Query", headers=A)
        assert_problem(listed, 500, "INTERNAL_ERROR")
    failures = [
        rec
        for rec in caplog_info.records
        if rec.name == "class_api.errors" and rec.levelno >= logging.ERROR
    ]
    assert len(failures) == 2
    assert failures[0].exc_info is not None  # the stack is logged for the operators
    assert getattr(failures[0], "route", None) == "/v1/classes"
    assert getattr(failures[0], "correlation_id", None) == r.headers["x-correlation-id"]
    ours = [rec for rec in caplog_info.records if not rec.name.startswith("httpx")]
    logged = "\n".join(rec.getMessage() + str(vars(rec)) for rec in ours)
    assert "Private Name" not in logged  # never bodies
    assert "Secret Query" not in logged  # never query strings
    assert "Secret+Query" not in logged


async def test_client_errors_are_logged_without_a_stack(
    memory_api: ApiHarness, caplog_info: pytest.LogCaptureFixture
) -> None:
    await memory_api.client.post(
        "/v1/classes", json={"name": "x", "course_codes": ["ENG5", "SV1"]}, headers=A
    )
    rejected = [rec for rec in caplog_info.records if rec.name == "class_api.errors"]
    assert [rec.getMessage() for rec in rejected] == ["request rejected: MULTIPLE_COURSE_ERROR"]
    assert rejected[0].exc_info is None


async def test_unreachable_database_is_503_with_retry_after() -> None:
    runtime = Runtime(uow=_FailingUnitOfWork(DependencyUnavailableError("connection refused")))
    async with AsyncTestClient(create_app(settings_for(), runtime=runtime)) as client:
        for r in (
            await client.get("/v1/classes", headers=A),
            await client.post(
                "/v1/classes", json={"name": "x", "course_codes": ["ENG5"]}, headers=A
            ),
            await client.get(f"/internal/v1/batches/{uuid4()}/student-names", headers=INTERNAL),
        ):
            assert_problem(r, 503, "SERVICE_UNAVAILABLE")
            assert int(r.headers["retry-after"]) > 0
            assert "connection refused" not in r.text


async def test_unreachable_postgresql_answers_503_and_unhealthy() -> None:
    settings = settings_for(
        use_mock_repository=False, database_url="postgresql://nobody@127.0.0.1:9/nowhere"
    )
    async with AsyncTestClient(create_app(settings)) as client:
        r = await client.get("/v1/classes", headers=A)
        assert_problem(r, 503, "SERVICE_UNAVAILABLE")
        assert r.headers["retry-after"]
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert health.json() == {
            "status": "unhealthy",
            "checks": {
                "database": "unavailable",
                "kafka": "not_configured",
                "redis": "not_configured",
            },
        }

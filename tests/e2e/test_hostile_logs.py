"""No stack trace, SQL or internal message in responses; no personal data in logs (contract
§3.1), on PostgreSQL, with every kind of failure: validation, conflicts, a database error the
code does not expect (500), a database that refuses (503) and a connection cut mid-request.

Logs are captured twice: by ``caplog`` at DEBUG (every logger, every level) and through the
app's own JSON formatter (what ``LOG_FORMAT=json`` writes, exception text included).
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from class_api.app import create_app
from class_runtime.logging_setup import JsonFormatter
from tests.e2e.conftest import INTERNAL, settings_for
from tests.support.faultproxy import ThreadedFaultProxy, bounded
from tests.support.postgres import PgDatabaseFactory, plain_url

OWNER = {"X-User-ID": "teacher-logs"}
# Distinctive personal data: none of it may ever reach a log line.
FIRST, LAST, LEGAL = "Xylophonia", "Quibbleworth", "Xylophonia Zanzibar Quibbleworth"
EMAIL = "xylo.quibble@pii-example.org"
SECRETS = (FIRST, LAST, LEGAL, EMAIL, "Zanzibar", "xylo.quibble", "pii-example", "Boomer")
INTERNALS = ("Traceback", "SELECT", "INSERT", "UPDATE ", "sqlalchemy", "asyncpg", "cms_", 'File "')

# Unexpected database errors on demand: a trigger that fails inserts of one name with a
# server error (a plain bug: 500) and of another with "admin shutdown" (unavailable: 503).
TRIGGER = """
CREATE FUNCTION cms_test_explode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.first_name = 'Boomer' THEN
    RAISE EXCEPTION 'exploding on purpose' USING ERRCODE = 'XX000';
  ELSIF NEW.first_name = 'Shutdown' THEN
    RAISE EXCEPTION 'going away on purpose' USING ERRCODE = '57P01';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER cms_test_explode BEFORE INSERT OR UPDATE ON cms_students
  FOR EACH ROW EXECUTE FUNCTION cms_test_explode();
"""


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture,
) -> Iterator[tuple[pytest.LogCaptureFixture, io.StringIO]]:
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield caplog, stream
    finally:
        root.removeHandler(handler)


def _student(first: str, last: str = LAST, **extra: Any) -> dict[str, Any]:
    return {"person_name": {"first_name": first, "last_name": last}, **extra}


@pytest.mark.slow
async def test_no_internals_in_responses_and_no_personal_data_in_logs(
    pg_database_factory: PgDatabaseFactory,
    pg_server_url: str,
    logs: tuple[pytest.LogCaptureFixture, io.StringIO],
) -> None:
    caplog, json_logs = logs
    url = await pg_database_factory(migrated=True)
    conn = await asyncpg.connect(plain_url(url))
    try:
        await conn.execute(TRIGGER)
    finally:
        await conn.close()

    server = make_url(pg_server_url)
    responses: list[httpx.Response] = []
    with ThreadedFaultProxy(server.host or "127.0.0.1", server.port or 5432) as proxy:
        proxied = make_url(url).set(host="127.0.0.1", port=proxy.port)
        settings = settings_for(
            use_mock_repository=False, database_url=proxied.render_as_string(hide_password=False)
        )
        with TestClient(create_app(settings)) as client:

            async def call(method: str, path: str, status: int, **kwargs: Any) -> httpx.Response:
                kwargs.setdefault("headers", OWNER)
                r, _ = await bounded(client.request, method, path, **kwargs)
                assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
                responses.append(r)
                return r

            cls = (
                await call(
                    "POST",
                    "/v1/classes",
                    201,
                    json={"name": f"{LAST}s class", "course_codes": ["SV1"]},
                )
            ).json()
            person = {"first_name": FIRST, "last_name": LAST, "legal_full_name": LEGAL}
            student = (
                await call(
                    "POST",
                    "/v1/classes/students",
                    201,
                    json={"person_name": person, "email": EMAIL, "class_ids": [cls["id"]]},
                )
            ).json()
            sid = student["id"]
            # Client errors that carry the personal data in the request.
            await call(
                "POST", "/v1/classes/students", 409, json=_student(FIRST, email=EMAIL.upper())
            )
            await call("POST", "/v1/classes/students", 400, json=_student(FIRST + "\x07"))
            await call("POST", "/v1/classes/students", 400, json=_student(FIRST, email=f"@{EMAIL}"))
            await call("POST", "/v1/classes/students", 400, json=_student(LEGAL * 10))
            await call(
                "PUT", f"/v1/classes/students/{sid}", 400, json={"email": EMAIL, "owner": LAST}
            )
            await call("POST", "/v1/classes", 400, json={"name": LEGAL, "course_codes": [EMAIL]})
            await call("GET", "/v1/classes/students", 200, params={"q": FIRST})
            await call("GET", "/v1/classes/students", 400, params={"q": FIRST, "limit": EMAIL})
            await call("GET", f"/v1/classes/students/{sid}", 404, headers={"X-User-ID": "other"})
            await call("GET", f"/v1/classes/{cls['id']}/roster", 200, headers=INTERNAL)
            await call("GET", f"/v1/classes/students/{sid}", 401, headers={"X-User-ID": EMAIL * 10})
            # The database fails in ways the code does not expect, or goes away.
            await call(
                "POST",
                "/v1/classes/students",
                500,
                json=_student("Boomer", email="boomer." + EMAIL),
            )
            await call(
                "PUT",
                f"/v1/classes/students/{sid}",
                503,
                json={"person_name": {"first_name": "Shutdown", "last_name": LAST}},
            )
            proxy.latency(150)
            cut = threading.Timer(0.2, proxy.cut)
            cut.start()
            await call(
                "POST",
                "/v1/classes/students",
                503,
                json=_student(FIRST, email="cut." + EMAIL, class_ids=[cls["id"]]),
            )
            cut.join()
            proxy.pass_through()
            final = await call("GET", f"/v1/classes/students/{sid}", 200)
            assert final.json()["email"] == EMAIL

    for r in responses:
        for marker in INTERNALS:
            assert marker not in r.text, f"{marker!r} in the response to {r.request.url}"
    # The operators still get what they need: a stack for the 500 and the 503s…
    server_errors = [
        rec for rec in caplog.records if rec.name == "class_api.errors" and rec.exc_info
    ]
    assert len(server_errors) == 3
    assert "Traceback" in json_logs.getvalue()
    # … but no personal data, whatever the logger or the level.
    ours = [rec for rec in caplog.records if not rec.name.startswith(("httpx", "httpcore"))]
    formatter = logging.Formatter("%(message)s")
    text = "\n".join(formatter.format(rec) + " " + str(vars(rec)) for rec in ours)
    for line in json_logs.getvalue().splitlines():
        if '"logger": "httpx"' not in line and '"logger": "httpcore' not in line:
            text += "\n" + line
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} was logged"
    assert str(uuid4()) not in text  # the scan itself works on the whole text

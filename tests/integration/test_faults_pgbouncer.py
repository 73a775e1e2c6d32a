"""The SQL adapter behind PgBouncer in transaction mode (docs/operations.md, connection budget).

In transaction mode consecutive transactions of one client connection run on different server
connections, so asyncpg's prepared-statement caches must be off: the database URL carries
``?statement_cache_size=0&prepared_statement_cache_size=0``. The test runs the API's
repositories (every use case of a request's life) concurrently over more client connections
than PgBouncer has server connections, and proves the setting is what makes it work.

PgBouncer comes from Debian's ``pgbouncer`` package (``make services`` installs it); without it
the test is skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from adapters_sql import build_sql_runtime, create_engine
from class_api.app import create_app
from class_core.errors import ConfigurationError
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.queries import ClassQuery, StudentQuery
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    get_roster,
    list_classes,
    update_class,
)
from class_core.use_cases.matching import (
    ConfirmItem,
    confirm_associations,
    get_batch_associations,
    ingest_suggestions,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    UpdateStudent,
    create_student,
    list_students,
    update_student,
)
from tests.e2e.conftest import A, settings_for
from tests.support.broker import free_port
from tests.support.postgres import PgDatabaseFactory

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
)
TRANSACTION_MODE = "statement_cache_size=0&prepared_statement_cache_size=0"
SERVER_CONNECTIONS = 2
CLIENT_CONNECTIONS = 8

pytestmark = pytest.mark.skipif(
    PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)"
)


class PgBouncer:
    """A private PgBouncer in transaction mode in front of the test server."""

    def __init__(self, server_url: str) -> None:
        server = make_url(server_url)
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="cms-pgbouncer-"))
        self._dir.chmod(0o755)  # PgBouncer refuses root and runs as nobody here
        login = f"user={server.username or 'postgres'}"
        if server.password:
            login += f" password={server.password}"
        (self._dir / "users.txt").write_text('"cms" ""\n')
        (self._dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={server.host or '127.0.0.1'} port={server.port or 5432} {login}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            # "any": PgBouncer logs in to the server as the user of the [databases] line.
            f"auth_type = any\nauth_file = {self._dir / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {SERVER_CONNECTIONS}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "max_client_conn = 200\nignore_startup_parameters = extra_float_digits\n"
        )
        for path in self._dir.iterdir():
            path.chmod(0o644)
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str, query: str = "") -> str:
        return f"postgresql://cms@127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

    def start(self) -> None:
        assert PGBOUNCER is not None
        command = [PGBOUNCER]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]
        command.append(str(self._dir / "pgbouncer.ini"))
        self._proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                pytest.fail(f"pgbouncer did not start: {err.strip()[-300:]}", pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("pgbouncer did not listen in time", pytrace=False)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def pgbouncer(pg_server_url: str) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(pg_server_url)
    bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


async def _one_teacher(rt: Runtime, n: int) -> None:
    """A teacher's session: every repository a request touches, with reads and writes."""
    ctx = RequestContext(f"teacher-{n}-{uuid4()}", uuid4())
    for round_ in range(3):
        cls = await create_class(rt, ctx, CreateClass(f"Klass {n}.{round_}", ["SV1"]))
        students = [
            await create_student(
                rt,
                ctx,
                CreateStudent(PersonName("Åsa", f"Öberg {i}"), f"s{i}.{round_}@ex.org", [cls.id]),
            )
            for i in range(2)
        ]
        await update_class(rt, ctx, cls.id, UpdateClass(name=f"Klass {n}.{round_} b"))
        await update_student(rt, ctx, students[0].id, UpdateStudent(first_name="Åse"))
        assert len(await get_roster(rt, ctx.user_id, cls.id)) == 2
        assert (await list_classes(rt, ctx, ClassQuery.build(q="klass"))).total == round_ + 1
        assert (await list_students(rt, ctx, StudentQuery.build(q="oberg"))).total == 2 * (
            round_ + 1
        )
        essay = uuid4()
        batch = uuid4()
        await ingest_suggestions(
            rt,
            SuggestionsMessage(
                str(uuid4()),
                uuid4(),
                batch,
                cls.id,
                "SV1",
                (EssayMatch(essay, (Suggestion(students[1].id, 0.9, ("name",)),)),),
            ),
        )
        assert len((await get_batch_associations(rt, ctx, batch)).associations) == 1
        result = await confirm_associations(rt, ctx, batch, [ConfirmItem(essay, True)])
        assert result.status.value == "finalized"


async def test_repositories_work_through_pgbouncer_in_transaction_mode(
    pg_database_factory: PgDatabaseFactory, pgbouncer: PgBouncer
) -> None:
    url = await pg_database_factory(migrated=True)
    database = make_url(url).database
    assert database is not None
    engine = create_engine(
        pgbouncer.url(database, TRANSACTION_MODE), pool_size=CLIENT_CONNECTIONS, max_overflow=0
    )
    try:
        rt = build_sql_runtime(engine)
        await asyncio.gather(*(_one_teacher(rt, n) for n in range(CLIENT_CONNECTIONS)))
    finally:
        await engine.dispose()

    # The control: with the default caches, named prepared statements collide or vanish as
    # transactions move between server connections.
    engine = create_engine(pgbouncer.url(database), pool_size=CLIENT_CONNECTIONS, max_overflow=0)
    try:
        rt = build_sql_runtime(engine)
        outcomes = await asyncio.gather(
            *(_one_teacher(rt, n) for n in range(CLIENT_CONNECTIONS)), return_exceptions=True
        )
        errors = [str(e.__cause__ or e) for e in outcomes if isinstance(e, Exception)]
        assert any("prepared statement" in e for e in errors), errors
    finally:
        await engine.dispose()


async def test_the_api_serves_through_pgbouncer(
    pg_database_factory: PgDatabaseFactory, pgbouncer: PgBouncer
) -> None:
    url = await pg_database_factory(migrated=True)
    database = make_url(url).database
    assert database is not None
    settings = settings_for(
        use_mock_repository=False, database_url=pgbouncer.url(database, TRANSACTION_MODE)
    )
    async with AsyncTestClient(create_app(settings)) as client:
        health = await client.get("/healthz")
        assert health.json()["checks"]["database"] == "ok"
        for i in range(5):
            created = await client.post(
                "/v1/classes", json={"name": f"9{i}", "course_codes": ["ENG5"]}, headers=A
            )
            assert created.status_code == 201, created.text
            cls_id = created.json()["id"]
            student = await client.post(
                "/v1/classes/students",
                json={"person_name": {"first_name": "Ada", "last_name": f"L{i}"},
                      "class_ids": [cls_id]},
                headers=A,
            )  # fmt: skip
            assert student.status_code == 201, student.text
            assert (await client.get(f"/v1/classes/{cls_id}", headers=A)).json()[
                "student_count"
            ] == 1
        listed = await client.get("/v1/classes", headers=A)
        assert listed.json()["pagination"]["total"] == 5
        assert UUID(listed.json()["classes"][0]["id"])


def test_bad_driver_options_in_the_url_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as bad:
        create_engine("postgresql://u@127.0.0.1:1/db?statement_cache_size=none")
    assert bad.value.detail.endswith("statement_cache_size must be a whole number >= 0")

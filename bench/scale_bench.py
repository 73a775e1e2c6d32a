"""Scale: a teacher's reads cost the same whatever the database holds.

Two databases, one run:

1. **before**: a fresh database with a teacher's data only, made through the real use cases
   (a class of 30 students, a batch of 30 decided essays, a class to create students in);
2. **after**: the same teacher's data, then :mod:`bench.scale_seed` adds ``owners`` ×
   ``classes_per_owner`` × ``students_per_class`` students of other owners (≥ 1,000,000 in
   ≥ 10,000 owners' classes by default), their memberships, batches, associations and outbox
   rows, server-side, then ``VACUUM (ANALYZE)`` and ``CHECKPOINT``.

A ``class-api`` (one uvicorn worker, as deployed) serves each database. Every hot route —
class, class list, roster (owner and internal key), students of a class, student search
``q``, batch view, class-info, student-names, POST student — is loaded by
:mod:`bench.loadgen`, and the sweep's due-batch look-up (``expire_due_batches`` with nothing
due) and the relay's fetch (``fetch_ready`` with 100 events waiting) are timed in-process.
The waiting events are students of a second teacher (:data:`LATE_OWNER`), 100 added on each
side per in-process round, so after seeding; that teacher's search ``q`` is shown on a line
of its own without a target.
Routes are loaded on both databases alternately (before, after; after, before; …, ten
rounds of 1.5 s per side, each side's median round's figures; the median of the rounds'
after/before ratios is printed beside them) so that the shared machine's background load and
drift fall on both alike; the in-process calls, a few hundred microseconds each, alternate
between the databases every few milliseconds within each round. Targets per route: after/before
throughput ≥ 0.9 and P95 ≤ 1.2×.

Then, on the seeded database: ten owners import files of the same size one after the other
(the last within 1.5× of the first's time); one owner imports into its 1,000 existing classes
and another the same number of rows into its 10, in alternating rounds with new owners each
(the median per-student rate ≥ 0.9× of the 10 classes');
``class-admin import students`` (the real command, its own process) of ``import_rows`` rows
against a raw asyncpg ``COPY`` of as many rows into the same three tables (students,
memberships, outbox) in the same database (≥ 60 %), with the command's peak RSS.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from statistics import median
from uuid import UUID, uuid4

import asyncpg
from sqlalchemy.engine import make_url

from adapters_sql import SqlOutboxStore, build_sql_runtime, create_engine
from bench.http_bench import _checked, _env, _server, api_argv
from bench.import_bench import write_roster
from bench.loadgen import LoadSpec, percentile, run_in_process
from bench.results import Measurement
from bench.scale_seed import ScaleSize, seed, settle
from bench.services import free_port, fresh_database
from class_cli.gc_tuning import fewer_collections
from class_cli.import_pipeline import import_students_overlapped
from class_core.model import Association, Batch, BatchStatus, ValidationMethod, ValidationStatus
from class_core.runtime import RequestContext, Runtime
from class_core.text import search_key
from class_core.use_cases.classes import CreateClass, create_class
from class_core.use_cases.imports import ImportOptions
from class_core.use_cases.matching import expire_due_batches
from class_core.use_cases.students import CreateStudent, PersonName, create_student
from class_runtime.roster_csv import open_roster

OWNER = "scale-teacher"
# The teacher of the relay's waiting events (:func:`_waiting_events`): the teacher
# keeps its one class of 30, and this one's search is shown without a target (its rows land
# one per heap page on the seeded database; docs/performance.md, "The issue's teacher, and a
# second teacher for late rows").
LATE_OWNER = "scale-late-teacher"
LATE_SEARCH = "GET student search q (students added after seeding)"
INTERNAL_KEY = "scale-bench-internal-key"
GET_CONNECTIONS = 8
POST_CONNECTIONS = 16
THROUGHPUT_RATIO = 0.9
P95_RATIO = 1.2
TENTH_IMPORT_RATIO = 1.5
CLASSES_RATE_RATIO = 0.9
IMPORT_VS_COPY = 0.6
LASTS = ("Berg", "Lind", "Holm", "Dahl", "Fors", "Nyberg")


@dataclass(frozen=True)
class Teacher:
    read_class: UUID
    write_class: UUID
    batch_id: UUID


@dataclass(frozen=True)
class Figure:
    rate: float
    p95_ms: float


async def _teacher(rt: Runtime) -> Teacher:
    ctx = RequestContext(OWNER)
    read = await create_class(rt, ctx, CreateClass("Scale 9A", ["ENG5"]))
    write = await create_class(rt, ctx, CreateClass("Scale 9B", ["ENG5"]))
    members = []
    for i in range(30):
        name = PersonName(f"Reader{i:02d}", LASTS[i % len(LASTS)])
        members.append(await create_student(rt, ctx, CreateStudent(name, None, (read.id,))))
    now = rt.now()
    batch = Batch(uuid4(), read.id, OWNER, "ENG5", BatchStatus.FINALIZED, now, now, now, now)
    items = []
    for s in members:
        a = Association(uuid4(), batch.batch_id, read.id, s.id, 0.9, ("name",), now, now)
        a.decide(ValidationStatus.CONFIRMED, s.id, ValidationMethod.HUMAN, OWNER, now)
        items.append(a)
    async with rt.uow() as uow:
        await uow.batches.add(batch)
        await uow.batches.add_associations(items)
        await uow.commit()
    return Teacher(read.id, write.id, batch.batch_id)


def _routes(t: Teacher) -> dict[str, tuple[str, str, dict[str, str]]]:
    owner = {"X-User-ID": OWNER}
    internal = {"X-Internal-API-Key": INTERNAL_KEY, "X-Service-ID": "scale-bench"}
    b = t.batch_id
    return {
        "GET class": (f"/v1/classes/{t.read_class}", "GET", owner),
        "GET class list": ("/v1/classes", "GET", owner),
        "GET roster": (f"/v1/classes/{t.read_class}/roster", "GET", owner),
        "GET roster (internal key)": (f"/v1/classes/{t.read_class}/roster", "GET", internal),
        "GET students of a class": (f"/v1/classes/students?class_id={t.read_class}", "GET", owner),
        "GET student search q": ("/v1/classes/students?q=berg", "GET", owner),
        LATE_SEARCH: ("/v1/classes/students?q=berg", "GET", {"X-User-ID": LATE_OWNER}),
        "GET batch view": (f"/v1/batches/{b}/student-associations", "GET", owner),
        "GET class-info": (f"/internal/v1/batches/class-info?batch_ids={b}", "GET", internal),
        "GET student-names": (f"/internal/v1/batches/{b}/student-names", "GET", internal),
        "POST student": ("/v1/classes/students", "POST", owner),
    }


def _spec(port: int, t: Teacher, name: str, phase: str, duration: float, warmup: float) -> LoadSpec:
    path, method, headers = _routes(t)[name]
    post = method == "POST"
    body = (
        '{"person_name": {"first_name": "Scale", "last_name": "Student {n}"}, '
        f'"email": "s{{n}}.{phase}.{{run}}@scale.example", "class_ids": ["{t.write_class}"]}}'
    )
    return LoadSpec(
        port=port,
        method=method,
        path=path,
        connections=POST_CONNECTIONS if post else GET_CONNECTIONS,
        duration=duration,
        warmup=warmup,
        headers=headers,
        body_template=body if post else None,
        expect_status=201 if post else 200,
    )


async def _interleaved(
    calls: dict[str, Callable[[], Awaitable[object]]], duration: float, block: int = 25
) -> dict[str, Figure]:
    """Each side's call timed in turns of ``block`` calls (before, after, before, …) until
    each side has run ``duration`` seconds: a call of a few hundred microseconds is timed on
    both databases within the same few milliseconds, so the machine's drift (its speed moved
    by 40 % within half a minute, docs/performance.md) falls on both alike."""
    latencies: dict[str, list[float]] = {phase: [] for phase in calls}
    spent = dict.fromkeys(calls, 0.0)
    while min(spent.values()) < duration:
        for phase, call in calls.items():
            for _ in range(block):
                t0 = time.perf_counter()
                await call()
                elapsed = time.perf_counter() - t0
                spent[phase] += elapsed
                latencies[phase].append(elapsed * 1000)
    figures = {}
    for phase, found in latencies.items():
        found.sort()
        figures[phase] = Figure(len(found) / spent[phase], percentile(found, 0.95))
    return figures


async def _waiting_events(url: str, rt: Runtime) -> None:
    """Everything in the outbox published, then 100 events waiting (one each; no class: no
    notification), so that both databases' relay fetches return the same rows. They are
    students of :data:`LATE_OWNER`, two in each hundred named ``Berg``: its search scans
    every one of them and finds a few, as the issue's teacher's does."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE cms_outbox SET published_at = now() WHERE published_at IS NULL")
    finally:
        await conn.close()
    ctx = RequestContext(LATE_OWNER)
    for i in range(100):
        name = PersonName("Waiting", f"Berg {i}" if i % 50 == 0 else f"Event {i}")
        await create_student(rt, ctx, CreateStudent(name, None, ()))


async def _in_process(sides: tuple[Side, Side], duration: float) -> dict[str, dict[str, Figure]]:
    """The sweep's due-batch look-up (nothing due) and the relay's fetch of 100 waiting
    events, timed on both databases in turns (:func:`_interleaved`)."""
    engines = [create_engine(side.url, pool_size=1, max_overflow=0) for side in sides]
    try:
        fetches: dict[str, Callable[[], Awaitable[object]]] = {}
        for side, engine in zip(sides, engines, strict=True):
            await _waiting_events(side.url, side.rt)
            fetches[side.phase] = _relay_fetch(SqlOutboxStore(engine))
        sweeps: dict[str, Callable[[], Awaitable[object]]] = {
            side.phase: partial(expire_due_batches, side.rt) for side in sides
        }
        by_name = {
            "sweep (due-batch look-up)": await _interleaved(sweeps, duration),
            "relay fetch": await _interleaved(fetches, duration, block=5),
        }
    finally:
        for engine in engines:
            await engine.dispose()
    return {
        side.phase: {name: figures[side.phase] for name, figures in by_name.items()}
        for side in sides
    }


def _relay_fetch(store: SqlOutboxStore) -> Callable[[], Awaitable[object]]:
    async def fetch() -> None:
        rows = await store.fetch_ready(datetime.now(UTC), 500)
        if len(rows) != 100:
            raise RuntimeError(f"relay fetch: {len(rows)} rows, expected 100")

    return fetch


@dataclass(frozen=True)
class Side:
    """One database and its server: ``before`` (the teacher alone) or ``after`` (seeded)."""

    phase: str
    url: str
    rt: Runtime
    port: int
    teacher: Teacher


def _median(figures: list[Figure]) -> Figure:
    """The median round's rate and P95 (each on its own): a round a passing checkpoint or
    another process's burst hit (windows of seconds on a shared two-core machine) does not
    decide the figure, as it did a mean's (docs/performance.md, "Scale: rounds")."""
    return Figure(median(f.rate for f in figures), median(f.p95_ms for f in figures))


@dataclass(frozen=True)
class Measured:
    """Each side's median figures per measurement, and the median of the per-round
    after/before ratios (rate, P95) of each HTTP route: a round's two sides ran seconds
    apart, so their ratio is the least drift-prone figure the run has (printed beside the
    medians; docs/performance.md, "Short alternating rounds, the lists straight to the
    driver, and what is left of POST")."""

    figures: dict[str, dict[str, Figure]]
    paired: dict[str, tuple[float, float]]


async def _alternating(
    sides: tuple[Side, Side],
    rounds: int,
    duration: float,
    warmup: float,
    route_rounds: int,
    route_duration: float,
) -> Measured:
    """Every measurement on both databases, alternately, so that the shared machine's
    background load falls on both alike: the in-process calls in ``rounds`` rounds of
    ``duration`` seconds (each interleaved within itself); each HTTP route in
    ``route_rounds`` short rounds (before, after; then after, before; …) of
    ``route_duration`` seconds per side."""
    found: dict[str, dict[str, list[Figure]]] = {s.phase: {} for s in sides}

    def add(side: Side, name: str, figure: Figure) -> None:
        found[side.phase].setdefault(name, []).append(figure)
        print(
            f"  scale {side.phase} {name}: {figure.rate:,.0f}/s, p95 {figure.p95_ms:.1f} ms",
            file=sys.stderr,
        )

    for _ in range(rounds):
        timed = await _in_process(sides, duration)
        for side in sides:
            for name, figure in timed[side.phase].items():
                add(side, name, figure)
    paired: dict[str, tuple[float, float]] = {}
    for name in _routes(sides[0].teacher):
        for r in range(route_rounds):
            for side in sides if r % 2 == 0 else (sides[1], sides[0]):
                spec = _spec(side.port, side.teacher, name, side.phase, route_duration, warmup)
                result = _checked(await run_in_process(spec), f"{side.phase} {name}")
                add(side, name, Figure(result.rate, result.p95_ms))
        pairs = list(zip(found[sides[0].phase][name], found[sides[1].phase][name], strict=True))
        paired[name] = (
            median(a.rate / b.rate for b, a in pairs),
            median(a.p95_ms / b.p95_ms for b, a in pairs),
        )
    return Measured(
        {
            phase: {name: _median(figures) for name, figures in by_name.items()}
            for phase, by_name in found.items()
        },
        paired,
    )


# --------------------------------------------------------------------------- imports


def _roster(path: Path, rows: int, classes: int, tag: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["first_name", "last_name", "email", "class_name", "course_code"])
        for i in range(rows):
            out.writerow(
                [f"Elev{i % 97}", f"{LASTS[i % len(LASTS)]}-{i}", f"{tag}.{i}@import.example",
                 f"Klass {i % classes}", "SV1"]
            )  # fmt: skip


async def _import_seconds(rt: Runtime, owner: str, path: Path, rows: int) -> float:
    started = time.perf_counter()
    with fewer_collections():
        roster = open_roster(path, 1 << 40)
        summary = await import_students_overlapped(
            rt, RequestContext(owner), roster.rows(), ImportOptions()
        )
    seconds = time.perf_counter() - started
    if (summary.created, summary.failed) != (rows, 0):
        raise RuntimeError(f"import for {owner}: {summary}")
    return seconds


async def _owner_imports(
    rt: Runtime, tmp: Path, owners: int, rows: int, class_size: int
) -> list[float]:
    seconds = []
    for n in range(owners):
        path = tmp / f"owner-{n}.csv"
        _roster(path, rows, max(rows // class_size, 1), f"owner{n}")
        seconds.append(await _import_seconds(rt, f"scale-importer-{n}", path, rows))
        print(f"  scale import owner {n + 1}: {rows / seconds[-1]:,.0f}/s", file=sys.stderr)
    return seconds


async def _into_existing(rt: Runtime, tmp: Path, owner: str, classes: int, rows: int) -> float:
    """Seconds to import ``rows`` new students into the owner's ``classes`` existing classes
    (created by a first, untimed import of one student per class)."""
    setup, timed = tmp / f"{owner}-setup.csv", tmp / f"{owner}.csv"
    _roster(setup, classes, classes, f"{owner}-setup")
    await _import_seconds(rt, owner, setup, classes)
    _roster(timed, rows, classes, owner)
    seconds = await _import_seconds(rt, owner, timed, rows)
    print(f"  scale import into {classes} classes: {rows / seconds:,.0f}/s", file=sys.stderr)
    return seconds


async def _classes_imports(
    rt: Runtime, tmp: Path, many_classes: int, rows: int, rounds: int
) -> tuple[float, float]:
    """Median seconds of ``rows`` imported into an owner's ``many_classes`` classes and into
    another's 10, alternately (each round new owners): an import of 10,000 rows lasted about
    a second, and single pairs scattered from 65 % to 103 % (docs/performance.md)."""
    many: list[float] = []
    few: list[float] = []
    for r in range(rounds):
        pair = [(many, many_classes), (few, 10)]
        for found, classes in pair if r % 2 == 0 else pair[::-1]:
            owner = f"scale-{classes}-classes-{r}"
            found.append(await _into_existing(rt, tmp, owner, classes, rows))
    return median(many), median(few)


def _cli_argv() -> list[str]:
    script = Path(sys.executable).with_name("class-admin")
    return [str(script)] if script.exists() else [sys.executable, "-m", "class_cli.main"]


def _run_cli_import(url: str, path: Path, owner: str) -> tuple[float, int]:
    """``class-admin import students`` in its own process: seconds and peak RSS (KiB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASS_MANAGEMENT_SERVICE_")}
    env["CLASS_MANAGEMENT_SERVICE_IMPORT_MAX_BYTES"] = str(path.stat().st_size + 1)
    argv = [*_cli_argv(), "--database-url", url, "import", "students", str(path)]
    argv += ["--owner", owner, "--json"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        # wait4: the resource usage of this child alone (ru_maxrss: its peak RSS, KiB).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"class-admin import failed ({proc.returncode}): {tail}")
    return seconds, usage.ru_maxrss


Records = list[tuple[object, ...]]


def _copy_rows(start: int, count: int, class_ids: list[UUID]) -> tuple[Records, Records, Records]:
    now = datetime.now(UTC)
    students: Records = []
    members: Records = []
    events: Records = []
    for i in range(start, start + count):
        sid = uuid4()
        cid = class_ids[i % len(class_ids)]
        first, last, email = "Eva", f"Berg-{i}", f"copy{i}@school.example"
        students.append(
            (sid, "scale-copy", first, last, None, email, search_key(first, last, email),
             False, None, now, now)
        )  # fmt: skip
        members.append((cid, sid))
        payload = (
            f'{{"event_id": "{uuid4()}", "event_type": "huleedu.class.student.created.v1", '
            f'"data": {{"student_id": "{sid}", "first_name": "{first}", "last_name": "{last}", '
            f'"student_email": "{email}", "class_ids": ["{cid}"]}}}}'
        )
        events.append(
            (uuid4(), "huleedu.class.student.created.v1", str(sid), payload, "{}", now, 0, now)
        )
    return students, members, events


async def _copy_seconds(url: str, rows: int, chunk: int = 10_000) -> float:
    """Raw asyncpg ``COPY`` of ``rows`` students, memberships and outbox rows (built as it
    goes, in transactions of ``chunk``), into ten classes of another owner."""
    conn = await asyncpg.connect(url)
    try:
        class_ids = [uuid4() for _ in range(10)]
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO cms_classes (id, owner_id, name, course_code, search_key, created_at,"
            " updated_at) VALUES ($1, 'scale-copy', $2, 'SV1', $3, $4, $4)",
            [(c, f"Copy {n}", f"copy {n}", now) for n, c in enumerate(class_ids)],
        )
        student_columns = [
            "id", "owner_id", "first_name", "last_name", "legal_full_name", "email",
            "search_key", "is_placeholder", "placeholder_class_id", "created_at", "updated_at",
        ]  # fmt: skip
        outbox_columns = [
            "event_id", "topic", "key", "payload", "headers", "created_at", "attempts",
            "next_attempt_at",
        ]  # fmt: skip
        started = time.perf_counter()
        for start in range(0, rows, chunk):
            students, members, events = _copy_rows(start, min(chunk, rows - start), class_ids)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "cms_students", records=students, columns=student_columns
                )
                await conn.copy_records_to_table(
                    "cms_class_students", records=members, columns=["class_id", "student_id"]
                )
                await conn.copy_records_to_table(
                    "cms_outbox", records=events, columns=outbox_columns
                )
        return time.perf_counter() - started
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the run


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def run(
    pg_url: str,
    *,
    owners: int = 10_000,
    classes_per_owner: int = 4,
    students_per_class: int = 25,
    duration: float = 3.0,
    warmup: float = 0.5,
    rounds: int = 5,
    route_rounds: int = 10,
    route_duration: float = 1.5,
    importing_owners: int = 10,
    owner_import_rows: int = 5_000,
    class_import_rows: int = 30_000,  # classes of 30: 30 students in each of 1,000 classes
    import_rows: int = 1_000_000,
) -> list[Measurement]:
    small_url = _plain(pg_url)
    size = ScaleSize(
        owners=owners,
        classes_per_owner=classes_per_owner,
        students_per_class=students_per_class,
        due_batch_every=0,  # nothing due: the sweep measures its look-up
        pending_outbox_every=0,  # everything published: the relay fetches the teacher's rows
    )
    loads: dict[str, str] = {"start": _load()}
    async with fresh_database() as big_url:
        small_engine = create_engine(small_url, pool_size=4, max_overflow=0)
        big_engine = create_engine(big_url, pool_size=4, max_overflow=0)
        try:
            small_rt, big_rt = build_sql_runtime(small_engine), build_sql_runtime(big_engine)
            small_teacher, big_teacher = await _teacher(small_rt), await _teacher(big_rt)
            conn = await asyncpg.connect(big_url)
            try:
                started = time.perf_counter()
                await seed(conn, size)
                seed_seconds = time.perf_counter() - started
                await settle(conn)
                counts = await conn.fetchrow(
                    "SELECT (SELECT count(*) FROM cms_students) AS students, "
                    "(SELECT count(*) FROM cms_classes) AS classes, "
                    "(SELECT count(DISTINCT owner_id) FROM cms_classes) AS owners, "
                    "(SELECT count(*) FROM cms_essay_associations) AS associations, "
                    "(SELECT count(*) FROM cms_outbox) AS outbox"
                )
            finally:
                await conn.close()
            print(f"  scale seeded {dict(counts)} in {seed_seconds:.0f} s", file=sys.stderr)
            small_port, big_port = free_port(), free_port()
            loads["routes"] = _load()
            with (
                _server(api_argv(small_port), small_port, _server_env(small_url)),
                _server(api_argv(big_port), big_port, _server_env(big_url)),
            ):
                measured = await _alternating(
                    (
                        Side("before", small_url, small_rt, small_port, small_teacher),
                        Side("after", big_url, big_rt, big_port, big_teacher),
                    ),
                    rounds,
                    duration,
                    warmup,
                    route_rounds,
                    route_duration,
                )
            loads["imports"] = _load()
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                owner_seconds = await _owner_imports(
                    big_rt, tmp, importing_owners, owner_import_rows, 30
                )
                many_classes = min(1_000, class_import_rows)
                many, few = await _classes_imports(
                    big_rt, tmp, many_classes, class_import_rows, rounds
                )
                big_path = tmp / "big.csv"
                write_roster(big_path, import_rows)
                cli_seconds, rss_kib = _run_cli_import(big_url, big_path, "scale-big-import")
            copy_seconds = await _copy_seconds(big_url, import_rows)
        finally:
            await small_engine.dispose()
            await big_engine.dispose()
    before, after = measured.figures["before"], measured.figures["after"]
    note = (
        f"{counts['students']:,} students, {counts['classes']:,} classes of "
        f"{counts['owners']:,} owners, {counts['associations']:,} associations, "
        f"{counts['outbox']:,} outbox rows; seeded in {seed_seconds:.0f} s; "
        f"in-process: {rounds} rounds of {duration:g} s; routes: {route_rounds} alternating "
        f"rounds of {route_duration:g} s; load {loads['start']} / {loads['routes']}"
    )
    rows = _route_rows(before, after, measured.paired, note)
    first, tenth = owner_seconds[0], owner_seconds[-1]
    rows += [
        Measurement(
            f"import: last of {importing_owners} owners ({owner_import_rows:,} rows each)",
            tenth,
            "s",
            higher_is_better=False,
            reference_name="first owner",
            reference_value=first,
            target=first * TENTH_IMPORT_RATIO,
            note=f"all: {', '.join(f'{s:.2f}' for s in owner_seconds)} s",
        ),
        Measurement(
            f"import: {class_import_rows:,} rows into an owner's {many_classes:,} classes",
            class_import_rows / many,
            "students/s",
            reference_name="into another's 10 classes",
            reference_value=class_import_rows / few,
            target_ratio=CLASSES_RATE_RATIO,
        ),
        Measurement(
            f"class-admin import students ({import_rows:,} rows)",
            import_rows / cli_seconds,
            "students/s",
            reference_name="asyncpg COPY, 3 tables",
            reference_value=import_rows / copy_seconds,
            target_ratio=IMPORT_VS_COPY,
            note=(
                f"command {cli_seconds:.1f} s (process start included), COPY "
                f"{copy_seconds:.1f} s; peak RSS {rss_kib / 1024:.0f} MiB; load {loads['imports']}"
            ),
        ),
        Measurement("class-admin import peak RSS", rss_kib / 1024, "MiB", higher_is_better=False),
    ]
    return rows


def _route_rows(
    before: dict[str, Figure],
    after: dict[str, Figure],
    paired: dict[str, tuple[float, float]],
    note: str,
) -> list[Measurement]:
    rows = []
    for name, b in before.items():
        a = after[name]
        pair = paired.get(name)
        # The late teacher's search is shown, not judged (docstring of LATE_OWNER).
        judged = name != LATE_SEARCH
        shown = (
            note if judged else f"no target: rows added after seeding, one per heap page; {note}"
        )
        rate_note, p95_note = (
            (
                f"median of the rounds' ratios {pair[0]:.0%}; {shown}",
                f"rounds' ratios {pair[1]:.2f}x",
            )
            if pair
            else (shown, "")
        )
        rows.append(
            Measurement(
                f"scale {name}",
                a.rate,
                "/s",
                reference_name="before seeding",
                reference_value=b.rate,
                target_ratio=THROUGHPUT_RATIO if judged else None,
                note=rate_note,
            )
        )
        rows.append(
            Measurement(
                f"scale {name} p95",
                a.p95_ms,
                "ms",
                higher_is_better=False,
                reference_name="before seeding",
                reference_value=b.p95_ms,
                target=b.p95_ms * P95_RATIO if judged else None,
                note=p95_note,
            )
        )
    return rows


def _server_env(url: str) -> dict[str, str]:
    env = _env(url)
    env["CLASS_MANAGEMENT_SERVICE_INTERNAL_API_KEY"] = INTERNAL_KEY
    return env


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())

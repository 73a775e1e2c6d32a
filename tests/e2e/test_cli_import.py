"""``class-admin import students`` against PostgreSQL (contract §7): the installed script for
the headline cases, ``CliRunner`` in-process for the small ones."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import pytest_asyncio

import adapters_sql
from class_core.errors import DuplicateStudentEmailError, NotFoundError
from class_core.model import Student
from tests.e2e.cli_harness import (
    DOWN_URL,
    as_json,
    cli,
    execute,
    fetch,
    inproc,
    one_line,
    scalar,
    table_counts,
    topic_counts,
)

STUDENT_CREATED = "huleedu.class.student.created.v1"
STUDENT_UPDATED = "huleedu.class.student.updated.v1"
CLASS_CREATED = "huleedu.class.created.v1"
FORMULA = '=HYPERLINK("http://evil.example","click me")'
HEADER = ["Email", "First_Name", "LAST_NAME", "legal_full_name", " Class_Name ", "course_code"]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    """This module's own migrated database."""
    return await pg_database_factory(migrated=True)


def _write(
    path: Path, records: list[list[str]], *, delimiter: str = ",", bom: bool = False
) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerows(records)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))


def _big_roster(path: Path, n: int = 10_000) -> tuple[int, dict[int, str]]:
    """``n`` records in three classes; a handful are bad. Returns (bad count, {physical line:
    expected error field}). Record 3 holds a quoted two-line cell, so from there on the
    physical line of a record is its record number + 2."""
    records: list[list[str]] = [HEADER]
    expected: dict[int, str] = {}
    line = 2
    for i in range(n):
        email, first, last, legal = f"pupil{i}@school.example", f"Förnamn{i}", f"Efternamn{i}", ""
        class_name, course = ["9A", "9b", "SV-grupp"][i % 3], ["ENG5", "ENG5", "SV1"][i % 3]
        bad = None
        if i == 0:
            first = FORMULA  # a name like any other
        elif i == 3:
            legal, bad = "Anna\nMaria Lind", "legal_full_name"  # starts on line 5, ends on 6
        elif i == 10:
            email, bad = "not-an-email", "email"
        elif i == 500:
            email, bad = "pupil500@huleedu.system", "email"
        elif i == 4000:
            last, bad = "   ", "last_name"
        elif i == 7000:
            course, bad = "MATH1", "course_code"
        elif i == 9998:
            email, bad = "PUPIL20@school.example", "email"  # a second occurrence
        records.append([email, first, last, legal, class_name, course])
        if bad is not None:
            expected[line] = bad
        line += 2 if i == 3 else 1
    _write(path, records)
    return len(expected), expected


async def test_ten_thousand_rows_import_with_row_errors_events_and_an_idempotent_rerun(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    bad, expected = _big_roster(roster)
    good = 10_000 - bad

    first = await cli(url, "import", "students", str(roster), "--owner", "big", "--json")

    assert first.returncode == 1, first.stderr
    summary = as_json(first.stdout)
    assert set(summary) == {
        "created",
        "updated",
        "unchanged",
        "failed",
        "errors",
        "import_id",
        "removed",
    }
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (good, 0, 0)
    assert summary["failed"] == bad
    assert [e["row"] for e in summary["errors"]] == sorted(expected)
    for error in summary["errors"]:
        assert error["errors"][0].startswith(expected[error["row"]] + ":"), error
    assert summary["errors"][0]["row"] == 5  # the record with the two-line cell
    assert summary["errors"][1]["row"] == 13  # record 11: header + that extra line
    assert "already appears on line 23" in summary["errors"][-1]["errors"][0]
    assert "Traceback" not in first.stderr

    assert await scalar(url, "SELECT count(*) FROM cms_students WHERE owner_id = 'big'") == good
    events = await topic_counts(url)
    assert events[STUDENT_CREATED] == good
    assert events[CLASS_CREATED] == 3
    assert events["notification:class_created"] == 3
    assert "notification:student_added_to_class" not in events
    classes = await fetch(
        url,
        "SELECT c.name, c.course_code, count(m.student_id) AS n FROM cms_classes c "
        "JOIN cms_class_students m ON m.class_id = c.id WHERE c.owner_id = 'big' "
        "GROUP BY 1, 2 ORDER BY 1",
    )
    assert [(r["name"], r["course_code"]) for r in classes] == [
        ("9A", "ENG5"), ("9b", "ENG5"), ("SV-grupp", "SV1"),
    ]  # fmt: skip
    assert sum(r["n"] for r in classes) == good
    stored = await scalar(
        url, "SELECT first_name FROM cms_students WHERE email = 'pupil0@school.example'"
    )
    assert stored == FORMULA

    before = await table_counts(url)
    second = await cli(url, "import", "students", str(roster), "--owner", "big", "--json")

    assert second.returncode == 1
    again = as_json(second.stdout)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, good)
    assert again["errors"] == summary["errors"]
    assert await table_counts(url) == before


async def test_dry_run_reports_exactly_what_the_real_run_does_and_writes_nothing(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    _write(
        roster,
        [
            ["first_name", "last_name", "email", "class_name", "course_code"],
            ["Ada", "Lovelace", "ada@s.example", "Dry 1", "ENG6"],
            ["Bo", "Ek", "bo@s.example", "dry 1", ""],
            ["Cy", "Fu", "cy@s.example", "Dry 1", "ENG7"],  # course mismatch
            ["Di", "Gu", "di@s.example", "", ""],
        ],
    )
    existing = tmp_path / "existing.csv"
    _write(existing, [["first_name", "last_name", "email"], ["Old", "Name", "di@s.example"]])
    assert (await inproc(url, "import", "students", str(existing), "--owner", "dry")).exit_code == 0
    before = await table_counts(url)

    dry = await cli(url, "import", "students", str(roster), "--owner", "dry", "--dry-run", "--json")

    assert dry.returncode == 1, dry.stderr
    assert await table_counts(url) == before
    assert "dry run: nothing was written" in dry.stderr
    real = await cli(url, "import", "students", str(roster), "--owner", "dry", "--json")
    # The same summary, but only the real run is recorded (§9.4: no import_id on a dry run).
    dry_summary, real_summary = as_json(dry.stdout), as_json(real.stdout)
    assert dry_summary.pop("import_id") is None
    assert real_summary.pop("import_id") is not None
    assert dry_summary == real_summary
    assert as_json(real.stdout)["created"] == 2
    assert as_json(real.stdout)["updated"] == 1  # names differ
    assert as_json(real.stdout)["errors"][0]["row"] == 4


async def test_bom_and_semicolons_are_read(url: str, tmp_path: Path) -> None:
    roster = tmp_path / "excel.csv"
    _write(
        roster,
        [
            ["First_Name", "Last_Name", "Email"],
            ["Åsa", "Öberg; Lund", "asa@s.example"],
            ["Émile", "Zola", "emile@s.example"],
        ],
        delimiter=";",
        bom=True,
    )

    result = await inproc(url, "import", "students", str(roster), "--owner", "bom", "--json")

    assert result.exit_code == 0, result.stderr
    assert as_json(result.stdout)["created"] == 2
    names = await fetch(
        url, "SELECT first_name, last_name FROM cms_students WHERE owner_id = 'bom' ORDER BY 1"
    )
    assert [tuple(r) for r in names] == [("Åsa", "Öberg; Lund"), ("Émile", "Zola")]


async def test_blank_lines_before_a_semicolon_header(url: str, tmp_path: Path) -> None:
    roster = tmp_path / "padded.csv"
    roster.write_text(
        "\r\n  \r\nfirst_name;last_name;email\r\nAda;Lovelace;ada@s.example\r\nBad;;x\r\n",
        encoding="utf-8",
    )

    result = await inproc(url, "import", "students", str(roster), "--owner", "pad", "--json")

    summary = as_json(result.stdout)
    assert (result.exit_code, summary["created"], summary["failed"]) == (1, 1, 1)
    assert summary["errors"][0]["row"] == 5  # physical lines, the blank ones counted


async def test_an_unusable_owner_is_refused_before_anything_is_written(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "owner.csv"
    _write(roster, [["first_name", "last_name", "email"], ["Ada", "L", "ada@s.example"]])
    before = await table_counts(url)
    for owner in ("", "   ", "o" * 256):
        result = await inproc(url, "import", "students", str(roster), "--owner", owner)
        assert result.exit_code == 2
        assert "--owner" in one_line(result.stderr)
    assert await table_counts(url) == before


async def test_missing_columns_are_refused_before_anything_is_written(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "partial.csv"
    _write(roster, [["First_Name", "mail", "class_name"], ["Ada", "ada@s.example", "9A"]])
    before = await table_counts(url)

    result = await inproc(url, "import", "students", str(roster), "--owner", "cols")

    assert result.exit_code == 1
    line = one_line(result.stderr)
    assert "last_name" in line
    assert "email" in line
    assert "first_name" not in line.split("missing:")[1].split("(")[0]
    assert result.stdout == ""
    assert await table_counts(url) == before


@pytest.mark.parametrize(
    ("content", "env", "words"),
    [
        (b"first_name,last_name,email\nAda,Lovelace,ada@s.example\n", {"IMPORT_MAX_BYTES": "20"},
         ["more than", "CLASS_MANAGEMENT_SERVICE_IMPORT_MAX_BYTES=20"]),
        (b"first_name,last_name,email\nJos\xe9,Lovelace,ada@s.example\n", {},
         ["not UTF-8", "line 2"]),
        (None, {}, ["cannot read"]),
    ],
    ids=["oversize", "latin-1", "missing-file"],
)  # fmt: skip
async def test_unusable_files_exit_2_before_anything_is_written(
    url: str, tmp_path: Path, content: bytes | None, env: dict[str, str], words: list[str]
) -> None:
    roster = tmp_path / "roster.csv"
    if content is not None:
        roster.write_bytes(content)
    before = await table_counts(url)

    result = await inproc(url, "import", "students", str(roster), "--owner", "u", **env)

    assert result.exit_code == 2
    line = one_line(result.stderr)
    for word in words:
        assert word in line
    assert await table_counts(url) == before


async def test_chunks_written_side_by_side_keep_file_order_and_classes(
    url: str, tmp_path: Path
) -> None:
    """Small chunks, so that each is written while the one before it still is: classes
    created by one chunk and joined by the next ones, a bad row in the middle, every event
    once, memberships complete, and a rerun changes nothing."""
    owner = f"chunks-{uuid4().hex[:8]}"
    roster = tmp_path / "roster.csv"
    records = [["first_name", "last_name", "email", "class_name", "course_code"]]
    for i in range(1000):
        # "7A" from the first chunk on, "8B" from the third, "9C" from the seventh.
        name = "7A" if i % 3 == 0 or i < 200 else ("8B" if i % 3 == 1 or i < 600 else "9C")
        course = {"7A": "ENG5", "8B": "ENG6", "9C": "SV2"}[name]
        records.append(["Elev", f"Nr{i}", f"c{i}@chunks.example", name, course])
    records[455][2] = "broken"  # line 456: a row error in the fifth chunk
    _write(roster, records)

    result = await inproc(
        url, "import", "students", str(roster), "--owner", owner, "--chunk-size", "100", "--json"
    )
    assert result.exit_code == 1, result.output
    summary: dict[str, Any] = as_json(result.stdout)
    assert (summary["created"], summary["failed"]) == (999, 1)
    assert [e["row"] for e in summary["errors"]] == [456]
    classes = {
        r["name"]: r["id"]
        for r in await fetch(url, "SELECT id, name FROM cms_classes WHERE owner_id = $1", owner)
    }
    assert sorted(classes) == ["7A", "8B", "9C"]
    members = {
        r["name"]: r["n"]
        for r in await fetch(
            url,
            "SELECT c.name, count(*) AS n FROM cms_class_students m "
            "JOIN cms_classes c ON c.id = m.class_id WHERE c.owner_id = $1 GROUP BY c.name",
            owner,
        )
    }
    expected: dict[str, int] = {"7A": 0, "8B": 0, "9C": 0}
    for record in records[1:]:
        if record[2] != "broken":
            expected[record[3]] += 1
    assert members == expected
    events = {
        r["topic"]: r["n"]
        for r in await fetch(
            url,
            "SELECT topic, count(*) AS n FROM cms_outbox o "
            "WHERE (o.topic = $2 AND o.key IN (SELECT id::text FROM cms_students "
            "WHERE owner_id = $1)) OR (o.topic = $3 AND o.key IN (SELECT id::text "
            "FROM cms_classes WHERE owner_id = $1)) GROUP BY topic",
            owner,
            STUDENT_CREATED,
            CLASS_CREATED,
        )
    }
    assert events == {STUDENT_CREATED: 999, CLASS_CREATED: 3}

    rerun = await inproc(url, "import", "students", str(roster), "--owner", owner,
                         "--chunk-size", "100", "--json")  # fmt: skip
    again: dict[str, Any] = as_json(rerun.stdout)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 999)


async def test_class_id_flags(url: str, tmp_path: Path) -> None:
    with_classes = tmp_path / "with-classes.csv"
    _write(
        with_classes,
        [["first_name", "last_name", "email", "class_name"], ["A", "B", "a@s.example", "9A"]],
    )
    plain = tmp_path / "plain.csv"
    _write(plain, [["first_name", "last_name", "email"], ["A", "B", "a@s.example"]])
    created = await inproc(
        url, "classes", "create", "--owner", "cid", "--name", "Fixed", "--course", "ENG7"
    )
    class_id = created.stdout.strip()

    both = await inproc(url, "import", "students", str(with_classes), "--owner", "cid",
                        "--class-id", class_id)  # fmt: skip
    assert both.exit_code == 2
    assert "--class-id" in one_line(both.stderr)
    unknown = await inproc(url, "import", "students", str(plain), "--owner", "cid",
                           "--class-id", "6f1d1c0e-9a43-4c55-9a5c-2f0c1f7c9d11")  # fmt: skip
    assert unknown.exit_code == 3
    assert "not found" in one_line(unknown.stderr)
    not_uuid = await inproc(url, "import", "students", str(plain), "--owner", "cid",
                            "--class-id", "nope")  # fmt: skip
    assert not_uuid.exit_code == 2
    ok = await inproc(url, "import", "students", str(plain), "--owner", "cid", "--class-id",
                      class_id, "--json")  # fmt: skip
    assert ok.exit_code == 0
    assert as_json(ok.stdout)["created"] == 1
    members = await scalar(
        url, "SELECT count(*) FROM cms_class_students WHERE class_id = $1::uuid", class_id
    )
    assert members == 1


_FAIL_ON_INSERT = """
CREATE FUNCTION cms_test_outage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.email = 'outage@s.example' THEN
        RAISE EXCEPTION 'simulated outage' USING ERRCODE = '57P01';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER cms_test_outage BEFORE INSERT ON cms_students
FOR EACH ROW EXECUTE FUNCTION cms_test_outage();
"""


async def test_a_database_failure_mid_run_exits_4_and_reports_what_was_applied(
    url: str, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.csv"
    records = [["first_name", "last_name", "email"]]
    records += [["Ann", f"Nr{i}", f"p{i}@s.example"] for i in range(1000)]
    records[451][2] = "outage@s.example"  # record 451, in the fifth chunk of 100
    _write(roster, records)
    await execute(url, _FAIL_ON_INSERT)
    try:
        result = await cli(url, "import", "students", str(roster), "--owner", "outage",
                           "--chunk-size", "100", "--json")  # fmt: skip
    finally:
        await execute(url, "DROP TRIGGER cms_test_outage ON cms_students; "
                           "DROP FUNCTION cms_test_outage()")  # fmt: skip

    assert result.returncode == 4
    line = one_line(result.stderr)
    assert "unreachable" in line
    assert "400 record(s) up to line 401" in line
    assert as_json(result.stdout)["created"] == 400
    assert await scalar(url, "SELECT count(*) FROM cms_students WHERE owner_id = 'outage'") == 400

    rerun = await inproc(url, "import", "students", str(roster), "--owner", "outage", "--json")
    assert rerun.exit_code == 0
    summary: dict[str, Any] = as_json(rerun.stdout)
    assert (summary["created"], summary["unchanged"]) == (600, 400)


async def test_database_down_exits_4_with_one_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.csv"
    _write(roster, [["first_name", "last_name", "email"], ["A", "B", "a@s.example"]])

    result = await cli(DOWN_URL, "import", "students", str(roster), "--owner", "x")

    assert result.returncode == 4
    assert "unreachable" in one_line(result.stderr)
    assert result.stdout == ""


async def test_bulk_copy_paths_translate_constraint_errors_like_inserts(url: str) -> None:
    """The import's COPY paths (100 rows) fail like ordinary inserts: a taken email is a
    duplicate, a missing class is not found, and nothing of the chunk stays."""
    engine = adapters_sql.create_engine(url, pool_size=1, max_overflow=0)
    now = datetime.now(UTC)

    def students(owner: str, class_ids: tuple[UUID, ...] = ()) -> list[Student]:
        return [
            Student(uuid4(), owner, "A", f"N{i}", None, f"b{i}@s.example", now, now,
                    class_ids=class_ids)
            for i in range(100)
        ]  # fmt: skip

    try:
        factory = adapters_sql.SqlUnitOfWorkFactory(engine)
        async with factory() as uow:
            await uow.students.add_many(students("bulk"))
            await uow.commit()
        with pytest.raises(DuplicateStudentEmailError):
            async with factory() as uow:
                await uow.students.add_many(students("bulk"))
        with pytest.raises(NotFoundError):
            async with factory() as uow:
                await uow.students.add_many(students("bulk-2", (uuid4(),)))
        async with factory() as uow:
            found = await uow.students.by_emails("bulk", [f"b{i}@s.example" for i in range(100)])
    finally:
        await engine.dispose()
    assert len(found) == 100
    assert await scalar(url, "SELECT count(*) FROM cms_students WHERE owner_id LIKE 'bulk%'") == 100


async def test_the_import_benchmark_runs(pg_server_url: str) -> None:
    """``bench/import_bench.py`` on a small roster: its own database, a real import, a COPY."""
    from bench.import_bench import run

    (measurement,) = await run(pg_server_url, rows=300)

    assert measurement.unit == "students/s"
    assert measurement.value > 0
    assert measurement.reference_value is not None
    assert measurement.reference_value > 0
    assert measurement.target is None  # the absolute 30,000/s was retired (issue 15)


def _peak_rss_mb(argv: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """Run ``argv``; its exit code, stdout and peak resident memory (MiB, this child only)."""
    import os
    import subprocess

    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)  # reaped here: Popen must not wait again
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, out, usage.ru_maxrss / 1024  # KiB on Linux


async def test_a_hostile_file_of_bad_rows_is_imported_in_bounded_memory(tmp_path: Path) -> None:
    """2 MiB of ``a,,`` records (524,288 row errors) used to peak at ~800 MiB; the errors past
    1,000 are counted, not kept, so the import costs about what the program itself does."""
    import asyncio

    from tests.e2e.cli_harness import CLI, clean_env

    db = f"sqlite+aiosqlite:///{tmp_path / 'cms.db'}"
    assert (await cli(db, "db", "upgrade")).returncode == 0
    rows = (2 * 1024 * 1024) // 4
    path = tmp_path / "hostile.csv"
    path.write_text("first_name,last_name,email\n" + "a,,\n" * rows)
    env = clean_env()

    def run() -> tuple[tuple[int, str, float], tuple[int, str, float]]:
        baseline = _peak_rss_mb([CLI, "--database-url", db, "courses"], env)
        hostile = _peak_rss_mb(
            [CLI, "--database-url", db, "import", "students", str(path), "--owner", "t", "--json"],
            env,
        )
        return baseline, hostile

    (base_code, _, base_mb), (code, out, peak_mb) = await asyncio.to_thread(run)
    assert base_code == 0
    assert code == 1  # some rows failed
    summary = as_json(out)
    assert (summary["created"], summary["failed"]) == (0, rows)
    assert len(summary["errors"]) == 1000
    assert [e["row"] for e in summary["errors"][:2]] == [2, 3]
    assert summary["errors"][-1]["row"] == 1001
    # Same-run reference: the CLI listing courses. The import may add its chunk buffers.
    assert peak_mb - base_mb < 120, f"peak {peak_mb:.0f} MiB, baseline {base_mb:.0f} MiB"

"""Every example of docs/cli.md runs, in order, against a fresh PostgreSQL database and exits
as documented; every command's ``--help`` example is one of them."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import typer
from typer.testing import Result

import adapters_sql
from class_cli.main import app
from class_core.matching import EssayMatch, Suggestion, SuggestionsMessage
from class_core.use_cases.matching import ingest_suggestions
from tests.e2e.cli_harness import inproc, scalar

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
EXAMPLE = re.compile(r"^(class-admin .*?)(?:\s+# exit (\d))?$")


def doc_examples() -> list[tuple[str, int]]:
    """``(command line, expected exit code)`` of every ``class-admin`` line in sh blocks."""
    found: list[tuple[str, int]] = []
    for block in re.findall(r"```sh\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            match = EXAMPLE.match(line.strip())
            if match:
                found.append((match.group(1), int(match.group(2) or 0)))
    return found


def doc_files() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"`([\w.-]+\.csv)`:\n\n```csv\n(.*?)```", text, re.S))


def help_examples() -> list[str]:
    """The examples in the epilog of every command."""
    found: list[str] = []

    def walk(command: typer.core.TyperCommand | typer.core.TyperGroup) -> None:
        epilog = command.epilog or ""
        for part in re.split(r"Examples?: |; ", epilog):
            if part.startswith("class-admin"):
                found.append(part.strip())
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))  # type: ignore[arg-type]
    return found


def test_every_help_example_is_documented() -> None:
    documented = {command for command, _ in doc_examples()}
    examples = help_examples()
    assert len(examples) >= 15
    assert [e for e in examples if e not in documented] == []


async def _seed_batch(url: str, class_id: UUID, students: list[UUID]) -> tuple[UUID, UUID]:
    """A batch of three essays: the first two suggested, the third without a suggestion."""
    engine = adapters_sql.create_engine(url, pool_size=1, max_overflow=0)
    try:
        batch_id, essays = uuid4(), [uuid4(), uuid4(), uuid4()]
        message = SuggestionsMessage(
            str(uuid4()), uuid4(), batch_id, class_id, "ENG5",
            (
                EssayMatch(essays[0], (Suggestion(students[0], 0.9),)),
                EssayMatch(essays[1], (Suggestion(students[1], 0.5),)),
                EssayMatch(essays[2]),
            ),
        )  # fmt: skip
        await ingest_suggestions(adapters_sql.build_sql_runtime(engine), message)
    finally:
        await engine.dispose()
    return batch_id, essays[0]


async def test_the_documented_examples_run_as_documented(
    pg_database_factory: Callable[..., Awaitable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await pg_database_factory()  # empty: the first example migrates it
    for name, content in doc_files().items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    variables = {"DATABASE_URL": url}

    async def define(name: str) -> None:
        if name == "CLASS_ID":  # the class the roster import created
            variables[name] = str(await scalar(url, "SELECT id FROM cms_classes WHERE name = '9B'"))
        elif name == "IMPORT_ID":  # the newest recorded import (the sync run)
            newest = "SELECT import_id FROM cms_imports ORDER BY at DESC LIMIT 1"
            variables[name] = str(await scalar(url, newest))
        elif name in ("BATCH_ID", "ESSAY_ID", "STUDENT_ID"):
            class_id = await scalar(url, "SELECT id FROM cms_classes WHERE name = '9A'")
            by_email = "SELECT id FROM cms_students WHERE email = $1"
            ada = await scalar(url, by_email, "ada@school.example")
            bo = await scalar(url, by_email, "bo@school.example")
            batch, essay = await _seed_batch(url, class_id, [ada, bo])
            variables.update(BATCH_ID=str(batch), ESSAY_ID=str(essay), STUDENT_ID=str(bo))
        elif name == "DEADLINE":  # a time the deadline may move to (§11)
            variables[name] = (datetime.now(UTC) + timedelta(days=2)).isoformat()

    examples = doc_examples()
    assert len(examples) >= 20
    outputs: dict[str, str] = {}
    for line, expected in examples:
        for name in re.findall(r"\$(\w+)", line):
            if name not in variables:
                await define(name)
        first, _, fallback = line.partition(" || ")
        result = await _run(first, variables)
        if fallback and result.exit_code != 0:
            result = await _run(fallback, variables)
        assert result.exit_code == expected, (line, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        outputs.setdefault(line, result.stdout)

    (summary,) = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    dry_run = "class-admin import students roster.csv --owner teacher-1 --dry-run --json"
    assert json.loads(outputs[dry_run]) == json.loads(summary)
    students = (
        "SELECT count(*) FROM cms_students WHERE owner_id = 'teacher-1' AND NOT is_placeholder"
    )
    assert await scalar(url, students) == 4
    # The sync run was undone: Bo is back in 9B, Cy has the name the first import gave.
    assert await scalar(url, "SELECT count(*) FROM cms_imports WHERE undone_at IS NOT NULL") == 1
    cy = "SELECT last_name FROM cms_students WHERE email = 'cy@school.example'"
    assert await scalar(url, cy) == "Fu, Jr"
    assert await scalar(url, "SELECT status FROM cms_batches") == "finalized"


async def _run(line: str, variables: dict[str, str]) -> Result:
    argv = shlex.split(re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], line))
    assert argv[0] == "class-admin"
    return await inproc(None, *argv[1:], DATABASE_URL=variables["DATABASE_URL"])

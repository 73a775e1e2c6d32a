"""``class-admin db …`` and ``class-admin courses`` run as the installed console script."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from adapters_sql import head

CLI = str(Path(sys.executable).with_name("class-admin"))
DOWN_URL = "postgresql://postgres@127.0.0.1:1/nothing_listens_here"
COURSE_LINES = [
    "ENG5\tEnglish 5\ten",
    "ENG6\tEnglish 6\ten",
    "ENG7\tEnglish 7\ten",
    "SV1\tSvenska 1\tsv",
    "SV2\tSvenska 2\tsv",
    "SV3\tSvenska 3\tsv",
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLASS_MANAGEMENT_SERVICE_")}
    env.update({f"CLASS_MANAGEMENT_SERVICE_{k}": v for k, v in extra.items()})
    return env


def _start(url: str | None, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    argv = [CLI, *(["--database-url", url] if url else []), *args]
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env if env is not None else _env(),
    )


def _finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


async def cli(
    url: str | None, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(lambda: _finish(_start(url, *args, env=env)))


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
async def fresh_pg_url(pg_database_factory: Callable[..., Awaitable[str]]) -> str:
    """A new, empty PostgreSQL database."""
    return await pg_database_factory()


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


async def test_upgrade_creates_the_schema_and_commands_read_it(database_url: str) -> None:
    check = await cli(database_url, "db", "check")
    assert check.returncode == 1
    assert "class-admin db upgrade" in _one_line(check.stderr)
    before = await cli(database_url, "courses")
    assert before.returncode == 1
    assert "class-admin db upgrade" in _one_line(before.stderr)
    assert before.stdout == ""
    empty = await cli(database_url, "db", "current")
    assert (empty.returncode, empty.stdout) == (0, "")

    for _ in range(2):  # the second run is a no-op
        upgraded = await cli(database_url, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        assert head() in upgraded.stderr

    now = await cli(database_url, "db", "current")
    assert (now.returncode, now.stdout.strip()) == (0, head())
    as_json = await cli(database_url, "db", "current", "--json")
    assert json.loads(as_json.stdout) == {"current": head(), "head": head(), "at_head": True}
    assert (await cli(database_url, "db", "check")).returncode == 0

    listed = await cli(database_url, "courses")
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == COURSE_LINES
    listed_json = await cli(database_url, "courses", "--json")
    courses = json.loads(listed_json.stdout)["courses"]
    assert courses[0] == {"code": "ENG5", "name": "English 5", "language": "en"}
    assert [c["code"] for c in courses] == ["ENG5", "ENG6", "ENG7", "SV1", "SV2", "SV3"]


async def test_two_upgrades_at_once(database_url: str) -> None:
    def both() -> list[subprocess.CompletedProcess[str]]:
        procs = [_start(database_url, "db", "upgrade") for _ in range(2)]
        return [_finish(p) for p in procs]

    results = await asyncio.to_thread(both)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert (await cli(database_url, "db", "check")).returncode == 0


async def test_database_url_comes_from_the_environment(tmp_path: Path) -> None:
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'env.db'}")
    assert (await cli(None, "db", "upgrade", env=env)).returncode == 0
    assert (tmp_path / "env.db").exists()
    assert (await cli(None, "courses", env=env)).stdout.splitlines() == COURSE_LINES


@pytest.mark.parametrize(
    "args", [("db", "upgrade"), ("db", "current"), ("db", "check"), ("courses",)]
)
async def test_database_down_exits_4_with_one_line(args: tuple[str, ...]) -> None:
    result = await cli(DOWN_URL, *args)
    assert result.returncode == 4
    line = _one_line(result.stderr)
    assert "unreachable" in line
    assert "127.0.0.1:1" in line
    assert result.stdout == ""


async def test_a_missing_database_or_role_exits_4_with_one_line(pg_server_url: str) -> None:
    """A server that answers but refuses the connection (no such database, no such role) is
    an unreachable database for the operator: exit 4 and one line, never a traceback."""
    server = make_url(pg_server_url)
    for url in (
        server.set(database="cms_no_such_database_here"),
        server.set(username="cms_no_such_role_here", password=None),
    ):
        rendered = url.render_as_string(hide_password=False)
        result = await cli(rendered, "db", "upgrade")
        assert result.returncode == 4, result.stderr
        assert "unreachable" in _one_line(result.stderr)


async def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    env = _env(CONFIDENCE_THRESHOLD="7")
    result = await cli(url, "db", "upgrade", env=env)
    assert result.returncode == 2
    assert "CLASS_MANAGEMENT_SERVICE_CONFIDENCE_THRESHOLD" in _one_line(result.stderr)
    bad_url = await cli("mysql://somewhere/db", "db", "check")
    assert bad_url.returncode == 2
    assert "--database-url: must be" in _one_line(bad_url.stderr)  # the flag it came from
    bad_env = await cli(None, "db", "check", env=_env(DATABASE_URL="mysql://somewhere/db"))
    assert bad_env.returncode == 2
    assert "CLASS_MANAGEMENT_SERVICE_DATABASE_URL" in _one_line(bad_env.stderr)


async def test_database_url_is_accepted_after_the_command_too(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    env = _env(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'env.db'}")
    upgraded = await asyncio.to_thread(
        lambda: _finish(_start(None, "db", "upgrade", "--database-url", url, env=env))
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "late.db").exists()
    assert not (tmp_path / "env.db").exists()
    listed = await asyncio.to_thread(
        lambda: _finish(_start(None, "courses", f"--database-url={url}", "--json", env=env))
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["courses"]) == 6


async def test_usage_errors_exit_2_and_help_shows_examples() -> None:
    assert (await cli(None, "db", "no-such-command")).returncode == 2
    assert (await cli(None, "courses", "--no-such-flag")).returncode == 2
    for args in (("db", "upgrade"), ("db", "current"), ("db", "check"), ("courses",)):
        shown = await cli(None, *args, "--help")
        assert shown.returncode == 0
        assert "Example: class-admin" in shown.stdout

"""Runs a command's coroutine and turns outcomes into the contract's exit codes (§7):
0 ok, 1 some items failed / schema not at head, 2 usage or configuration, 3 not found or
conflict, 4 a dependency unreachable. Messages go to stderr, one line, no traceback."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from enum import IntEnum
from typing import Any, NoReturn, TypeVar

import typer

from adapters_sql import SchemaNotAtHeadError
from class_cli.state import CliState
from class_core.env import PREFIX
from class_core.errors import (
    ClassManagementError,
    ConfigurationError,
    ConflictError,
    DependencyUnavailableError,
    NotFoundError,
    ValidationError,
)
from class_core.text import user_id_problem
from class_runtime import Settings

T = TypeVar("T")
DATABASE_URL_VARIABLE = PREFIX + "DATABASE_URL"


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND_OR_CONFLICT = 3
    UNAVAILABLE = 4


def message(text: str) -> None:
    """A progress or status line for humans (stderr)."""
    typer.echo(text, err=True)


def output(text: str) -> None:
    """Data (stdout)."""
    typer.echo(text)


def output_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def fail(text: str, code: ExitCode) -> NoReturn:
    message(f"error: {text}")
    raise typer.Exit(int(code))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe(exc: ClassManagementError) -> str:
    """One line for a core error, naming the fields or the object concerned."""
    if isinstance(exc, ValidationError) and exc.errors:
        parts = [f"{e.field}: {e.message}" for e in exc.errors]
        if parts != [exc.detail]:
            return _one_line(f"{exc.detail} ({'; '.join(parts)})")
    if isinstance(exc, NotFoundError) and exc.identifier is not None:
        return _one_line(f"{exc.resource} {exc.identifier} not found")
    return _one_line(exc.detail)


OWNER_FLAGS = "--owner/--as"
"""How messages name the teacher option (``--as`` is the same option as ``--owner``)."""


def user_id(value: str, flag: str) -> str:
    """A teacher id given as ``--owner``/``--as``, held to the API's ``X-User-ID`` rules
    (:func:`class_core.text.user_id_problem`); else exit 2."""
    problem = user_id_problem(value)
    if problem is not None:
        fail(f"{flag} {problem}", ExitCode.USAGE)
    return value


def _configuration(state: CliState, exc: ConfigurationError) -> str:
    detail = exc.detail
    if state.database_url is not None and exc.variable == DATABASE_URL_VARIABLE:
        detail = detail.replace(DATABASE_URL_VARIABLE, "--database-url", 1)
    return _one_line(f"configuration: {detail}")


def settings_of(state: CliState) -> Settings:
    """The configuration, or exit 2 naming the bad variable (or ``--database-url``)."""
    try:
        return state.settings()
    except ConfigurationError as exc:
        fail(_configuration(state, exc), ExitCode.USAGE)


def run(state: CliState, work: Coroutine[Any, Any, T], *, invalid: ExitCode = ExitCode.USAGE) -> T:
    """Run ``work`` to completion; known failures exit with their code and one line.

    ``invalid`` is the exit code of a validation error: 2 (usage) where the input is the
    command's flags, 1 (items failed) where it is items such as a confirmation's."""
    try:
        return asyncio.run(work)
    except ConfigurationError as exc:
        fail(_configuration(state, exc), ExitCode.USAGE)
    except DependencyUnavailableError:
        fail(f"the database is unreachable at {state.database_label()}", ExitCode.UNAVAILABLE)
    except SchemaNotAtHeadError as exc:
        fail(_one_line(exc.detail), ExitCode.FAILED)
    except (NotFoundError, ConflictError) as exc:
        fail(describe(exc), ExitCode.NOT_FOUND_OR_CONFLICT)
    except ValidationError as exc:
        fail(describe(exc), invalid)
    except ClassManagementError as exc:
        fail(describe(exc), ExitCode.FAILED)
    except KeyboardInterrupt:
        message("interrupted")
        sys.exit(130)

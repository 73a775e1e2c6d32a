"""``class-admin``: the admin CLI (contract §7). Each command group lives in
``class_cli.commands`` and registers itself here."""

from __future__ import annotations

import sys

import typer

from class_cli.commands import (
    associations,
    classes,
    courses,
    db,
    import_history,
    imports,
    outbox,
    students,
)
from class_cli.state import CliState
from class_core.startup import version_line

app = typer.Typer(
    name="class-admin",
    help=(
        "Administer the Class Management Service. Uses the service's configuration "
        "(CLASS_MANAGEMENT_SERVICE_* variables); data goes to stdout, messages to stderr. "
        "Exit codes: 0 ok, 1 some rows or items failed, 2 usage error, 3 not found or "
        "conflict, 4 database unreachable."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit(0)


@app.callback()
def main(
    ctx: typer.Context,
    _version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version (class-management <version>) and exit.",
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Database URL (postgresql://… or sqlite+aiosqlite:///…); "
        "default: CLASS_MANAGEMENT_SERVICE_DATABASE_URL, else ./class_management.db.",
        show_default=False,
    ),
) -> None:
    """Global options."""
    ctx.obj = CliState(database_url)


db.register(app)
courses.register(app)
classes.register(app)
imports.register(app)
import_history.register(app)
students.register(app)
associations.register(app)
outbox.register(app)

GLOBAL_OPTION = "--database-url"


def hoist_global_options(argv: list[str]) -> list[str]:
    """``--database-url`` belongs to ``class-admin`` itself, before the command words; it is
    accepted anywhere (``class-admin db check --database-url …`` too) by moving it to the
    front. Nothing after ``--`` is touched."""
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest.extend(argv[i:])
            break
        if arg == GLOBAL_OPTION and i + 1 < len(argv):
            moved += argv[i : i + 2]
            i += 2
            continue
        if arg.startswith(GLOBAL_OPTION + "="):
            moved.append(arg)
        else:
            rest.append(arg)
        i += 1
    return moved + rest


def cli() -> None:
    """The ``class-admin`` console script."""
    app(args=hoist_global_options(sys.argv[1:]), prog_name="class-admin")


if __name__ == "__main__":  # pragma: no cover
    cli()

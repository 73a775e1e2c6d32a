"""``class-admin courses``: the reference courses."""

from __future__ import annotations

import typer

import adapters_sql
from class_cli.runner import output, output_json, run
from class_cli.state import state_of
from class_core.courses import Course


def courses(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the courses a class can belong to."""
    state = state_of(ctx)

    async def work() -> list[Course]:
        async with state.engine() as engine:
            await adapters_sql.ensure_at_head(engine)
            return await adapters_sql.load_courses(engine)

    found = run(state, work())
    if as_json:
        output_json(
            {"courses": [{"code": c.code, "name": c.name, "language": c.language} for c in found]}
        )
        return
    for course in found:
        output(f"{course.code}\t{course.name}\t{course.language}")


def register(root: typer.Typer) -> None:
    root.command("courses", epilog="Example: class-admin courses --json")(courses)

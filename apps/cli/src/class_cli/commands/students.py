"""``class-admin students erase | export``: answering a guardian's or a student's erasure or
access request (contract §10), through the API's use cases."""

from __future__ import annotations

from uuid import UUID

import typer

from class_cli.runner import ExitCode, fail, output, output_json, run, user_id
from class_cli.state import state_of
from class_cli.views import export_view, student_view
from class_core.model import Student
from class_core.runtime import RequestContext
from class_core.use_cases.students import StudentExport, erase_student, export_student

app = typer.Typer(help="A teacher's students: erasure and export (privacy).", no_args_is_help=True)

AS_USER = typer.Option(..., "--as", help="The owning teacher (the X-User-ID the API would see).")
AS_JSON = typer.Option(False, "--json", help="Print JSON.")


def _student_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        fail(f"STUDENT_ID must be a UUID, not {value!r}", ExitCode.USAGE)


@app.command(epilog='Example: class-admin students erase "$STUDENT_ID" --as teacher-1 --json')
def erase(
    ctx: typer.Context,
    student_id: str = typer.Argument(..., metavar="STUDENT_ID", help="The student to erase."),
    as_user: str = AS_USER,
    as_json: bool = AS_JSON,
) -> None:
    """Erase a student: an anonymous record stays (associations and decisions kept), every
    personal value is cleared everywhere the service holds it. Repeating it changes nothing;
    the UNKNOWN placeholder is refused (exit 3)."""
    owner = user_id(as_user, "--as")
    sid = _student_id(student_id)
    state = state_of(ctx)

    async def work() -> Student:
        async with state.runtime() as (rt, _):
            return await erase_student(rt, RequestContext(owner), sid)

    student = run(state, work())
    if as_json:
        output_json(student_view(student))
    else:
        output(f"{student.id}\terased at {student_view(student)['erased_at']}")


@app.command(epilog='Example: class-admin students export "$STUDENT_ID" --as teacher-1')
def export(
    ctx: typer.Context,
    student_id: str = typer.Argument(..., metavar="STUDENT_ID", help="The student to export."),
    as_user: str = AS_USER,
) -> None:
    """Print, as JSON, everything held about a student: the student, their classes, the
    essay associations naming them and the history of what was done to them."""
    owner = user_id(as_user, "--as")
    sid = _student_id(student_id)
    state = state_of(ctx)

    async def work() -> StudentExport:
        async with state.runtime() as (rt, _):
            return await export_student(rt, RequestContext(owner), sid)

    output_json(export_view(run(state, work())))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="students")

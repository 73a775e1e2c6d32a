"""``class-admin classes list | create | archive | unarchive``: a teacher's classes, through
the API's use cases."""

from __future__ import annotations

from uuid import UUID

import typer

from class_cli.runner import OWNER_FLAGS, ExitCode, fail, output, output_json, run, user_id
from class_cli.state import state_of
from class_cli.views import class_view
from class_core.model import SchoolClass
from class_core.queries import MAX_LIMIT, ClassQuery
from class_core.runtime import RequestContext
from class_core.use_cases.classes import (
    CreateClass,
    create_class,
    list_classes,
    set_class_archived,
)

app = typer.Typer(help="A teacher's classes.", no_args_is_help=True)

OWNER = typer.Option(
    ...,
    "--owner",
    "--as",
    help="The teacher (the X-User-ID the API would see). --as is the same option.",
)
AS_JSON = typer.Option(False, "--json", help="Print JSON.")


@app.command("list", epilog="Example: class-admin classes list --owner teacher-1 --json")
def list_(
    ctx: typer.Context,
    owner: str = OWNER,
    as_json: bool = AS_JSON,
    status: str = typer.Option(
        "active", "--status", help="Which classes: active (the default), archived or all."
    ),
) -> None:
    """List the owner's classes, newest first (all of them, not one page)."""
    owner = user_id(owner, OWNER_FLAGS)
    if status not in ("active", "archived", "all"):
        fail(f"--status must be active, archived or all, not {status!r}", ExitCode.USAGE)
    state = state_of(ctx)

    async def work() -> list[SchoolClass]:
        found: list[SchoolClass] = []
        async with state.runtime() as (rt, _):
            while True:
                query = ClassQuery.build(limit=MAX_LIMIT, offset=len(found), status=status)
                page = await list_classes(rt, RequestContext(owner), query)
                found.extend(page.items)
                if not page.items or len(found) >= page.total:
                    return found

    classes = run(state, work())
    if as_json:
        output_json({"classes": [class_view(c) for c in classes]})
        return
    for c in classes:
        output(f"{c.id}\t{c.name}\t{c.course_code}\t{c.student_count}")


@app.command(
    epilog="Example: class-admin classes create --owner teacher-1 --name '9A' --course ENG5"
)
def create(
    ctx: typer.Context,
    owner: str = OWNER,
    name: str = typer.Option(..., "--name", help="The class name (1..255 characters)."),
    course: str = typer.Option(..., "--course", help="The course code, e.g. ENG5 (see courses)."),
    as_json: bool = AS_JSON,
) -> None:
    """Create a class for one course (publishes ClassCreatedV1, like the API)."""
    owner = user_id(owner, OWNER_FLAGS)
    state = state_of(ctx)

    async def work() -> SchoolClass:
        async with state.runtime() as (rt, _):
            return await create_class(rt, RequestContext(owner), CreateClass(name, [course]))

    cls = run(state, work())
    if as_json:
        output_json(class_view(cls))
    else:
        output(str(cls.id))


def _set_archived(
    ctx: typer.Context, class_id: str, as_user: str, archived: bool, as_json: bool
) -> None:
    owner = user_id(as_user, "--as")
    try:
        cid = UUID(class_id)
    except ValueError:
        fail(f"CLASS_ID must be a UUID, not {class_id!r}", ExitCode.USAGE)
    state = state_of(ctx)

    async def work() -> SchoolClass:
        async with state.runtime() as (rt, _):
            return await set_class_archived(rt, RequestContext(owner), cid, archived)

    cls = run(state, work())
    if as_json:
        output_json(class_view(cls))
    else:
        output(f"{cls.id}\t{cls.status.value}")


CLASS_ID = typer.Argument(..., metavar="CLASS_ID", help="The class.")
AS_USER = typer.Option(..., "--as", help="The owning teacher (the X-User-ID the API would see).")


@app.command(epilog='Example: class-admin classes archive "$CLASS_ID" --as teacher-1 --json')
def archive(
    ctx: typer.Context, class_id: str = CLASS_ID, as_user: str = AS_USER, as_json: bool = AS_JSON
) -> None:
    """Archive a class: read-only (no changes, no students join), hidden from the default
    list; reads, roster, batches and confirmation still work. Already archived: nothing
    changes. Another owner's or an unknown class exits 3."""
    _set_archived(ctx, class_id, as_user, True, as_json)


@app.command(epilog='Example: class-admin classes unarchive "$CLASS_ID" --as teacher-1 --json')
def unarchive(
    ctx: typer.Context, class_id: str = CLASS_ID, as_user: str = AS_USER, as_json: bool = AS_JSON
) -> None:
    """Make an archived class active again. Already active: nothing changes."""
    _set_archived(ctx, class_id, as_user, False, as_json)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="classes")

"""``/v1/changes``: the change feed (contract §9.3)."""

from __future__ import annotations

from typing import Annotated

from litestar import Router, get
from litestar.params import QueryParameter

from class_api.auth import AUTH_OPT, CONTEXT, USER, USER_AUTH
from class_api.dto import ChangesOut, changes_out
from class_api.openapi import problems
from class_api.routes.params import Ctx, Rt
from class_core.changes import DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT
from class_core.use_cases.changes import read_changes

Since = Annotated[
    str | None,
    QueryParameter(
        description="A cursor from an earlier answer (`next_cursor` or an entry's `cursor`); "
        "absent: an empty page and a cursor to start from."
    ),
]
ChangesLimit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_CHANGES_LIMIT, description=f"Page size, 1..{MAX_CHANGES_LIMIT}."),
]


@get("/", responses=problems(400, 401, 410, 500, 503), summary="Change feed")
async def list_changes(
    rt: Rt, ctx: Ctx, since: Since = None, limit: ChangesLimit = DEFAULT_CHANGES_LIMIT
) -> ChangesOut:
    """The caller's classes and students changed after ``since``, in cursor order, each with
    its current representation (``null`` for a delete). At least once: entries may repeat."""
    return changes_out(await read_changes(rt, ctx, since, limit))


routes = Router(
    "/v1/changes",
    route_handlers=[list_changes],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["changes"],
)

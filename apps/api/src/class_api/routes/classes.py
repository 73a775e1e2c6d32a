"""``/v1/classes``: create, list, read, update, delete, roster."""

from __future__ import annotations

from litestar import Router, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from class_api.auth import (
    AUTH_OPT,
    CONTEXT,
    ROSTER_OWNER,
    USER,
    USER_AUTH,
    USER_OR_INTERNAL,
    USER_OR_INTERNAL_AUTH,
)
from class_api.dto import (
    ClassListOut,
    ClassOut,
    CreateClassIn,
    MessageOut,
    RosterOut,
    UpdateClassIn,
    class_list_out,
    class_out,
    roster_out,
)
from class_api.openapi import DELETE, READ, WRITE
from class_api.routes.params import (
    DEFAULT_PAGE_SIZE,
    CourseCode,
    Ctx,
    Limit,
    Offset,
    PathId,
    Rt,
    Search,
    UpdatedSince,
    parse_updated_since,
)
from class_core.queries import ClassQuery
from class_core.use_cases import classes

CLASS_PATH = "/{class_id:str}"
RosterOwner = NamedDependency[str | None]


@post("/", responses=WRITE, summary="Create a class")
async def create_class(rt: Rt, ctx: Ctx, data: JSONBody[CreateClassIn]) -> ClassOut:
    """Create a class for exactly one course."""
    return class_out(await classes.create_class(rt, ctx, data.command()))


@get("/", responses=READ, summary="List classes")
async def list_classes(
    rt: Rt,
    ctx: Ctx,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
    q: Search = None,
    course_code: CourseCode = None,
    updated_since: UpdatedSince = None,
) -> ClassListOut:
    """The caller's classes, newest first."""
    query = ClassQuery.build(limit, offset, q, course_code, parse_updated_since(updated_since))
    return class_list_out(await classes.list_classes(rt, ctx, query))


@get(CLASS_PATH, responses=READ, summary="Read a class")
async def get_class(rt: Rt, ctx: Ctx, class_id: PathId) -> ClassOut:
    return class_out(await classes.get_class(rt, ctx, class_id))


@put(CLASS_PATH, responses=WRITE, summary="Update a class")
async def update_class(
    rt: Rt, ctx: Ctx, class_id: PathId, data: JSONBody[UpdateClassIn]
) -> ClassOut:
    """Partial update; ``{}`` changes nothing and publishes nothing."""
    return class_out(await classes.update_class(rt, ctx, class_id, data.command()))


@delete(CLASS_PATH, status_code=200, responses=DELETE, summary="Delete a class")
async def delete_class(rt: Rt, ctx: Ctx, class_id: PathId) -> MessageOut:
    """Removes the class and its memberships (the students stay); refused while batches exist."""
    await classes.delete_class(rt, ctx, class_id)
    return MessageOut("Class deleted successfully")


@get(
    CLASS_PATH + "/roster",
    opt={AUTH_OPT: USER_OR_INTERNAL},
    dependencies=ROSTER_OWNER,
    security=USER_OR_INTERNAL_AUTH,
    responses=READ,
    summary="Class roster",
)
async def get_roster(rt: Rt, owner_id: RosterOwner, class_id: PathId) -> RosterOut:
    """The class's students without the UNKNOWN placeholder. The owner's ``X-User-ID`` or the
    internal key headers (when ``X-Internal-API-Key`` is present it alone decides)."""
    return roster_out(await classes.get_roster(rt, owner_id, class_id))


owner_routes = Router(
    "/v1/classes",
    route_handlers=[create_class, list_classes, get_class, update_class, delete_class],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["classes"],
)
roster_routes = Router("/v1/classes", route_handlers=[get_roster], tags=["classes"])

"""``/v1/classes``: create, list, read, update, archive, unarchive, delete, roster."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post, put
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
from class_api.openapi import GUARDED_ACTION, GUARDED_DELETE, GUARDED_WRITE, READ, WRITE
from class_api.routes.params import (
    DEFAULT_PAGE_SIZE,
    ClassStatusFilter,
    CourseCode,
    Ctx,
    ExternalId,
    Limit,
    Offset,
    PathId,
    Rt,
    Search,
    UpdatedSince,
    parse_updated_since,
    runtime_and_context,
)
from class_api.versions import ETAG_HEADERS, IfMatchHeader, if_match, with_etag
from class_core.queries import ClassQuery
from class_core.use_cases import classes

CLASS_PATH = "/{class_id:str}"
RosterOwner = NamedDependency[str | None]


@post("/", responses=WRITE, response_headers=ETAG_HEADERS, summary="Create a class")
async def create_class(rt: Rt, ctx: Ctx, data: JSONBody[CreateClassIn]) -> Response[ClassOut]:
    """Create a class for exactly one course."""
    cls = await classes.create_class(rt, ctx, data.command())
    return with_etag(class_out(cls), cls.version, 201)


@get("/", responses=READ, summary="List classes")
async def list_classes(
    rt: Rt,
    ctx: Ctx,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
    q: Search = None,
    course_code: CourseCode = None,
    updated_since: UpdatedSince = None,
    status: ClassStatusFilter = "active",
    external_id: ExternalId = None,
) -> ClassListOut:
    """The caller's classes, newest first; active ones unless ``status`` says otherwise."""
    since = parse_updated_since(updated_since)
    query = ClassQuery.build(limit, offset, q, course_code, since, status, external_id)
    return class_list_out(await classes.list_classes(rt, ctx, query))


@get(CLASS_PATH, responses=READ, response_headers=ETAG_HEADERS, summary="Read a class")
async def get_class(request: Request[Any, Any, Any], class_id: PathId) -> Response[ClassOut]:
    rt, ctx = runtime_and_context(request)  # the hottest read: no dependency resolution
    cls = await classes.get_class(rt, ctx, class_id)
    return with_etag(class_out(cls), cls.version)


@put(CLASS_PATH, responses=GUARDED_WRITE, response_headers=ETAG_HEADERS, summary="Update a class")
async def update_class(
    rt: Rt,
    ctx: Ctx,
    class_id: PathId,
    data: JSONBody[UpdateClassIn],
    if_match_header: IfMatchHeader = None,
) -> Response[ClassOut]:
    """Partial update; ``{}`` changes nothing and publishes nothing. The fields named are
    applied to the class as it is when the change commits."""
    cmd, guard = data.command(), if_match(if_match_header)
    cls = await classes.update_class(rt, ctx, class_id, cmd, guard)
    return with_etag(class_out(cls), cls.version)


@post(
    CLASS_PATH + "/archive",
    status_code=200,
    responses=GUARDED_ACTION,
    response_headers=ETAG_HEADERS,
    summary="Archive a class",
)
async def archive_class(
    rt: Rt, ctx: Ctx, class_id: PathId, if_match_header: IfMatchHeader = None
) -> Response[ClassOut]:
    """The class becomes read-only and leaves the default list; already archived: nothing
    changes. Reads, roster, removals, batches, review and confirmation still work."""
    guard = if_match(if_match_header)
    cls = await classes.set_class_archived(rt, ctx, class_id, True, guard)
    return with_etag(class_out(cls), cls.version)


@post(
    CLASS_PATH + "/unarchive",
    status_code=200,
    responses=GUARDED_ACTION,
    response_headers=ETAG_HEADERS,
    summary="Unarchive a class",
)
async def unarchive_class(
    rt: Rt, ctx: Ctx, class_id: PathId, if_match_header: IfMatchHeader = None
) -> Response[ClassOut]:
    """The class is active again; already active: nothing changes."""
    guard = if_match(if_match_header)
    cls = await classes.set_class_archived(rt, ctx, class_id, False, guard)
    return with_etag(class_out(cls), cls.version)


@delete(CLASS_PATH, status_code=200, responses=GUARDED_DELETE, summary="Delete a class")
async def delete_class(
    rt: Rt, ctx: Ctx, class_id: PathId, if_match_header: IfMatchHeader = None
) -> MessageOut:
    """Removes the class and its memberships (the students stay); refused while batches exist."""
    await classes.delete_class(rt, ctx, class_id, if_match(if_match_header))
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
    route_handlers=[
        create_class,
        list_classes,
        get_class,
        update_class,
        archive_class,
        unarchive_class,
        delete_class,
    ],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["classes"],
)
roster_routes = Router("/v1/classes", route_handlers=[get_roster], tags=["classes"])

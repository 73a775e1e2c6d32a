"""``/v1/classes/students``: create, list, read, update, delete."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, delete, get, post, put
from litestar.params import JSONBody

from class_api.auth import AUTH_OPT, CONTEXT, USER, USER_AUTH
from class_api.dto import (
    CreateStudentIn,
    MessageOut,
    StudentExportOut,
    StudentListOut,
    StudentOut,
    UpdateStudentIn,
    student_export_out,
    student_list_out,
    student_out,
)
from class_api.openapi import GUARDED_DELETE, GUARDED_WRITE, READ, WRITE, problems
from class_api.routes.params import (
    DEFAULT_PAGE_SIZE,
    Ctx,
    ExternalId,
    Limit,
    Offset,
    OptionalId,
    PathId,
    Rt,
    Search,
    UpdatedSince,
    parse_updated_since,
    runtime_and_context,
)
from class_api.versions import ETAG_HEADERS, IfMatchHeader, if_match, with_etag
from class_core.queries import StudentQuery
from class_core.use_cases import students

STUDENT_PATH = "/{student_id:str}"


@post("/", responses=WRITE, response_headers=ETAG_HEADERS, summary="Create a student")
async def create_student(
    request: Request[Any, Any, Any], data: JSONBody[CreateStudentIn]
) -> Response[StudentOut]:
    """Create a student, optionally in some of the caller's classes."""
    rt, ctx = runtime_and_context(request)  # a hot write: no dependency resolution
    student = await students.create_student(rt, ctx, data.command())
    return with_etag(student_out(student), student.version, 201)


@get("/", responses=READ, summary="List students")
async def list_students(
    rt: Rt,
    ctx: Ctx,
    limit: Limit = DEFAULT_PAGE_SIZE,
    offset: Offset = 0,
    q: Search = None,
    class_id: OptionalId = None,
    updated_since: UpdatedSince = None,
    external_id: ExternalId = None,
) -> StudentListOut:
    """The caller's students (UNKNOWN placeholders included, flagged), by last name, first
    name, id."""
    since = parse_updated_since(updated_since)
    query = StudentQuery.build(limit, offset, q, class_id, since, external_id)
    return student_list_out(await students.list_students(rt, ctx, query))


@get(STUDENT_PATH, responses=READ, response_headers=ETAG_HEADERS, summary="Read a student")
async def get_student(rt: Rt, ctx: Ctx, student_id: PathId) -> Response[StudentOut]:
    student = await students.get_student(rt, ctx, student_id)
    return with_etag(student_out(student), student.version)


@put(
    STUDENT_PATH, responses=GUARDED_WRITE, response_headers=ETAG_HEADERS, summary="Update a student"
)
async def update_student(
    rt: Rt,
    ctx: Ctx,
    student_id: PathId,
    data: JSONBody[UpdateStudentIn],
    if_match_header: IfMatchHeader = None,
) -> Response[StudentOut]:
    """Partial update: ``"email": null`` clears the email, an absent field is left as it is.
    The fields named are applied to the student as it is when the change commits."""
    cmd, guard = data.command(), if_match(if_match_header)
    student = await students.update_student(rt, ctx, student_id, cmd, guard)
    return with_etag(student_out(student), student.version)


@delete(STUDENT_PATH, status_code=200, responses=GUARDED_DELETE, summary="Delete a student")
async def delete_student(
    rt: Rt, ctx: Ctx, student_id: PathId, if_match_header: IfMatchHeader = None
) -> MessageOut:
    """Refused (409) while an essay association names the student."""
    await students.delete_student(rt, ctx, student_id, if_match(if_match_header))
    return MessageOut("Student deleted successfully")


@post(
    STUDENT_PATH + "/erasure",
    status_code=200,
    responses=problems(400, 401, 404, 409, 412, 500, 503),
    response_headers=ETAG_HEADERS,
    summary="Erase a student",
)
async def erase_student(
    rt: Rt, ctx: Ctx, student_id: PathId, if_match_header: IfMatchHeader = None
) -> Response[StudentOut]:
    """The student stays as an anonymous record (id, associations and decisions kept);
    names become ERASED / STUDENT, everything else personal is cleared everywhere the service
    holds it, memberships are removed. Repeating it changes nothing. 409 for the UNKNOWN
    placeholder; ``If-Match`` guards it like a PUT (412)."""
    student = await students.erase_student(rt, ctx, student_id, if_match(if_match_header))
    return with_etag(student_out(student), student.version)


@get(STUDENT_PATH + "/export", responses=READ, summary="Export what is held about a student")
async def export_student(rt: Rt, ctx: Ctx, student_id: PathId) -> StudentExportOut:
    """The student, their classes, the essay associations naming them and the history of
    what was done to them (who and when)."""
    return student_export_out(await students.export_student(rt, ctx, student_id))


routes = Router(
    "/v1/classes/students",
    route_handlers=[
        create_student,
        list_students,
        get_student,
        update_student,
        delete_student,
        erase_student,
        export_student,
    ],
    opt={AUTH_OPT: USER},
    dependencies=CONTEXT,
    security=USER_AUTH,
    tags=["students"],
)

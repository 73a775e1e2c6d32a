"""``/v1/courses``: the reference data."""

from __future__ import annotations

from litestar import Router, get

from class_api.auth import AUTH_OPT, USER, USER_AUTH
from class_api.dto import CoursesOut, courses_out
from class_api.openapi import problems
from class_core.courses import COURSES


@get("/", responses=problems(401, 500), summary="List courses")
async def list_courses() -> CoursesOut:
    return courses_out(COURSES)


routes = Router(
    "/v1/courses",
    route_handlers=[list_courses],
    opt={AUTH_OPT: USER},
    security=USER_AUTH,
    tags=["courses"],
)

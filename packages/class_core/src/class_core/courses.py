"""Course reference data. The migrations seed the same six rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from attrs import frozen

from class_core.errors import CourseNotFoundError, FieldError, MultipleCourseError, ValidationError


@frozen
class Course:
    code: str
    name: str
    language: str


COURSES: tuple[Course, ...] = (
    Course("ENG5", "English 5", "en"),
    Course("ENG6", "English 6", "en"),
    Course("ENG7", "English 7", "en"),
    Course("SV1", "Svenska 1", "sv"),
    Course("SV2", "Svenska 2", "sv"),
    Course("SV3", "Svenska 3", "sv"),
)
COURSES_BY_CODE: Mapping[str, Course] = MappingProxyType({c.code: c for c in COURSES})


MAX_ECHOED_CODE = 32


def get_course(code: str, field: str = "course_code") -> Course:
    """The course with this exact code, or :class:`CourseNotFoundError`."""
    course = COURSES_BY_CODE.get(code)
    if course is None:
        # The value is echoed once (in the field's message), and only when it is short: a
        # filter or a body can carry anything up to the size limits.
        shown = f" {code!r}" if len(code) <= MAX_ECHOED_CODE else ""
        raise CourseNotFoundError(
            "Unknown course code", [FieldError(field, f"unknown course code{shown}")]
        )
    return course


def single_course(codes: Sequence[str], field: str = "course_codes") -> Course:
    """The single-course rule: exactly one known course code."""
    if len(codes) == 0:
        raise ValidationError.for_field(field, "exactly one course code is required")
    if len(codes) > 1:
        raise MultipleCourseError(
            "A class belongs to exactly one course",
            [FieldError(field, "exactly one course code is allowed")],
        )
    return get_course(codes[0], f"{field}[0]")

"""Course reference data and the single-course rule (contract §3.2, §3.3)."""

from __future__ import annotations

import pytest

from class_core.courses import COURSES, COURSES_BY_CODE, Course, get_course, single_course
from class_core.errors import (
    CourseNotFoundError,
    MultipleCourseError,
    ValidationError,
)


def test_the_six_courses_of_the_contract() -> None:
    assert list(COURSES) == [
        Course("ENG5", "English 5", "en"),
        Course("ENG6", "English 6", "en"),
        Course("ENG7", "English 7", "en"),
        Course("SV1", "Svenska 1", "sv"),
        Course("SV2", "Svenska 2", "sv"),
        Course("SV3", "Svenska 3", "sv"),
    ]
    assert set(COURSES_BY_CODE) == {c.code for c in COURSES}


@pytest.mark.parametrize("code", ["ENG5", "SV3"])
def test_get_course_finds_known_codes(code: str) -> None:
    assert get_course(code).code == code


def test_get_course_refuses_unknown_codes_naming_the_field() -> None:
    with pytest.raises(CourseNotFoundError) as info:
        get_course("MATH1", "course_code")
    assert info.value.code == "COURSE_NOT_FOUND"
    assert [e.field for e in info.value.errors] == ["course_code"]


def test_single_course_accepts_exactly_one_known_code() -> None:
    assert single_course(["SV2"]) == Course("SV2", "Svenska 2", "sv")


def test_single_course_without_codes_is_a_plain_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        single_course([])
    assert info.value.code == "VALIDATION_ERROR"
    assert [e.field for e in info.value.errors] == ["course_codes"]


@pytest.mark.parametrize("codes", [["ENG5", "ENG6"], ["ENG5", "ENG5"], ["ENG5", "NOPE", "SV1"]])
def test_single_course_with_two_or_more_codes_is_a_multiple_course_error(
    codes: list[str],
) -> None:
    with pytest.raises(MultipleCourseError) as info:
        single_course(codes)
    assert info.value.code == "MULTIPLE_COURSE_ERROR"


def test_single_course_with_an_unknown_code_names_the_list_item() -> None:
    with pytest.raises(CourseNotFoundError) as info:
        single_course(["NOPE"])
    assert [e.field for e in info.value.errors] == ["course_codes[0]"]

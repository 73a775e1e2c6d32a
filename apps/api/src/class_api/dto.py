"""HTTP representations (contract §3.2): msgspec Structs, separate from the domain.

Request structs forbid unknown fields (so no one can set an owner, an id or a status) and use
``UNSET`` for "not given" where the contract tells absence and ``null`` apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import msgspec
from msgspec import UNSET, Struct, UnsetType

from class_core.courses import COURSES_BY_CODE, Course
from class_core.errors import ValidationError
from class_core.model import Association, BatchSummary, Page, SchoolClass, Student, Unset
from class_core.use_cases.changes import ChangePage
from class_core.use_cases.classes import CreateClass, UpdateClass
from class_core.use_cases.matching import (
    BatchView,
    ConfirmItem,
    ConfirmResult,
    DecidedEssay,
)
from class_core.use_cases.students import UNSET as CORE_UNSET
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    StudentExport,
    UpdateStudent,
)

Timestamp = Annotated[
    str,
    msgspec.Meta(
        description="ISO 8601 timestamp in UTC with an offset",
        # Litestar reads ``extra`` as extra OpenAPI schema keywords.
        extra_json_schema={"extra": {"format": "date-time"}},
    ),
]

# --------------------------------------------------------------------------- requests


class _Input(Struct, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are an error."""


class CreateClassIn(_Input):
    name: str
    course_codes: list[str]
    external_id: str | None = None

    def command(self) -> CreateClass:
        return CreateClass(self.name, tuple(self.course_codes), self.external_id)


T = TypeVar("T")


def given(value: T | UnsetType) -> T | Unset:
    """The one translation of "not given" at the edge: msgspec's ``UNSET`` (the field was
    absent from the JSON) becomes the core's ``UNSET``; ``None`` (JSON ``null``) stays ``None``
    (clear), any other value passes."""
    return CORE_UNSET if isinstance(value, UnsetType) else value


class UpdateClassIn(_Input):
    name: str | UnsetType = UNSET
    course_codes: list[str] | UnsetType = UNSET
    external_id: str | UnsetType | None = UNSET

    def command(self) -> UpdateClass:
        codes = self.course_codes
        return UpdateClass(
            name=given(self.name),
            course_codes=CORE_UNSET if isinstance(codes, UnsetType) else tuple(codes),
            external_id=given(self.external_id),
        )


class PersonNameIn(_Input):
    first_name: str
    last_name: str
    legal_full_name: str | None = None


class PersonNameUpdateIn(_Input):
    first_name: str | UnsetType = UNSET
    last_name: str | UnsetType = UNSET
    legal_full_name: str | UnsetType | None = UNSET


class CreateStudentIn(_Input):
    person_name: PersonNameIn
    email: str | None = None
    class_ids: list[UUID] = msgspec.field(default_factory=list)
    aliases: list[str] = msgspec.field(default_factory=list)
    protected_identity: bool = False
    external_id: str | None = None

    def command(self) -> CreateStudent:
        name = self.person_name
        return CreateStudent(
            PersonName(name.first_name, name.last_name, name.legal_full_name),
            self.email,
            tuple(self.class_ids),
            tuple(self.aliases),
            self.protected_identity,
            self.external_id,
        )


class UpdateStudentIn(_Input):
    person_name: PersonNameUpdateIn | UnsetType = UNSET
    email: str | UnsetType | None = UNSET
    add_class_ids: list[UUID] = msgspec.field(default_factory=list)
    remove_class_ids: list[UUID] = msgspec.field(default_factory=list)
    aliases: list[str] | UnsetType = UNSET
    protected_identity: bool | UnsetType = UNSET
    external_id: str | UnsetType | None = UNSET

    def command(self) -> UpdateStudent:
        name = self.person_name
        if isinstance(name, UnsetType):
            name = PersonNameUpdateIn()  # every name field absent
        aliases = self.aliases
        return UpdateStudent(
            first_name=given(name.first_name),
            last_name=given(name.last_name),
            legal_full_name=given(name.legal_full_name),
            email=given(self.email),
            add_class_ids=tuple(self.add_class_ids),
            remove_class_ids=tuple(self.remove_class_ids),
            aliases=CORE_UNSET if isinstance(aliases, UnsetType) else tuple(aliases),
            protected_identity=given(self.protected_identity),
            external_id=given(self.external_id),
        )


class ConfirmItemIn(_Input):
    essay_id: UUID
    confirmed: bool
    student_id: UUID | None = None


class ConfirmIn(_Input):
    associations: list[ConfirmItemIn]

    def items(self) -> list[ConfirmItem]:
        return [ConfirmItem(a.essay_id, a.confirmed, a.student_id) for a in self.associations]


class DeadlineIn(_Input):
    deadline: Timestamp

    def when(self) -> datetime:
        """The new deadline: ISO 8601 with an offset, else 400 naming ``deadline``."""
        try:
            parsed = datetime.fromisoformat(self.deadline.strip())
        except ValueError:
            raise ValidationError.for_field(
                "deadline", "must be an ISO 8601 timestamp with an offset"
            ) from None
        if parsed.tzinfo is None:
            raise ValidationError.for_field("deadline", "must include a UTC offset")
        return parsed


REQUEST_STRUCTS: tuple[type[Struct], ...] = (
    CreateClassIn,
    UpdateClassIn,
    PersonNameIn,
    PersonNameUpdateIn,
    CreateStudentIn,
    UpdateStudentIn,
    ConfirmItemIn,
    ConfirmIn,
    DeadlineIn,
)

# --------------------------------------------------------------------------- responses


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with an explicit ``+00:00`` offset (contract conventions)."""
    if value.tzinfo is UTC:  # what the database adapters return: no conversion needed
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


class CourseOut(Struct):
    code: str
    name: str
    language: str


class CoursesOut(Struct):
    courses: list[CourseOut]


ClassStatusOut = Literal["active", "archived"]


class ClassOut(Struct):
    id: UUID
    name: str
    course_code: str
    course: CourseOut
    student_count: int
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    external_id: str | None
    status: ClassStatusOut
    archived_at: Timestamp | None


class PaginationOut(Struct):
    limit: int
    offset: int
    returned: int
    total: int


class ClassListOut(Struct):
    classes: list[ClassOut]
    pagination: PaginationOut


class StudentOut(Struct):
    id: UUID
    first_name: str
    last_name: str
    legal_full_name: str | None
    full_name: str
    email: str | None
    class_ids: list[UUID]
    is_placeholder: bool
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    aliases: list[str]
    protected_identity: bool
    is_erased: bool
    erased_at: Timestamp | None
    external_id: str | None


class ChangeOut(Struct):
    """One entry of the change feed (contract §9.3)."""

    cursor: str
    entity: Literal["class", "student"]
    id: UUID
    op: Literal["upsert", "delete"]
    version: int
    at: Timestamp
    # A ClassOut or a StudentOut (msgspec cannot type an untagged union of structs; the
    # OpenAPI document says which: class_api.openapi.finalize_openapi).
    data: dict[str, Any] | None


class ChangesOut(Struct):
    changes: list[ChangeOut]
    next_cursor: str
    has_more: bool


class StudentListOut(Struct):
    students: list[StudentOut]
    pagination: PaginationOut


class RosterStudentOut(Struct):
    student_id: UUID
    first_name: str
    last_name: str
    full_legal_name: str
    email: str | None
    aliases: list[str]


class RosterOut(Struct):
    students: list[RosterStudentOut]


class MessageOut(Struct):
    message: str


ValidationStatusOut = Literal["pending_validation", "confirmed", "rejected", "timeout_confirmed"]
ValidationMethodOut = Literal["human", "timeout", "auto"]
BatchStatusOut = Literal["pending", "finalized"]


class AssociationOut(Struct):
    essay_id: UUID
    batch_id: UUID
    class_id: UUID
    suggested_student_id: UUID | None
    student_id: UUID | None
    student_name: str | None
    confidence_score: float | None
    match_reasons: list[str]
    validation_status: ValidationStatusOut
    validation_method: ValidationMethodOut | None
    validated_by: str | None
    validated_at: Timestamp | None
    created_at: Timestamp
    runner_up_confidence: float | None
    conflict: bool


class BatchSummaryOut(Struct):
    batch_id: UUID
    class_id: UUID
    class_name: str
    course_code: str
    status: BatchStatusOut
    deadline: Timestamp
    essay_count: int
    pending: int
    confirmed: int
    rejected: int
    created_at: Timestamp


class BatchListOut(Struct):
    batches: list[BatchSummaryOut]
    pagination: PaginationOut


class BatchAssociationsOut(Struct):
    batch_id: UUID
    class_id: UUID
    course_code: str
    status: BatchStatusOut
    deadline: Timestamp
    associations: list[AssociationOut]


class ConfirmResultOut(Struct):
    batch_id: UUID
    status: BatchStatusOut
    associations_confirmed: int
    associations_rejected: int
    pending: int


class ExportClassOut(Struct):
    id: UUID
    name: str
    course_code: str


HistoryActionOut = Literal[
    "created",
    "updated",
    "added_to_class",
    "removed_from_class",
    "association_decided",
    "erased",
]


class HistoryEntryOut(Struct):
    at: Timestamp
    action: HistoryActionOut
    by: str


class StudentExportOut(Struct):
    student: StudentOut
    classes: list[ExportClassOut]
    associations: list[AssociationOut]
    history: list[HistoryEntryOut]


class PersonNameOut(Struct):
    first_name: str
    last_name: str
    legal_full_name: str


class DecidedStudentOut(Struct):
    essay_id: UUID
    student_id: UUID
    student_person_name: PersonNameOut


class ClassInfoOut(Struct):
    class_id: UUID
    class_name: str


ChecksValue = Literal["ok", "unavailable", "not_configured"]


class HealthChecksOut(Struct):
    database: ChecksValue
    kafka: ChecksValue
    redis: ChecksValue


class HealthOut(Struct):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: HealthChecksOut


# --------------------------------------------------------------------------- converters


def course_out(course: Course) -> CourseOut:
    return CourseOut(course.code, course.name, course.language)


def courses_out(courses: Iterable[Course]) -> CoursesOut:
    return CoursesOut([course_out(c) for c in courses])


def class_out(cls: SchoolClass) -> ClassOut:
    return ClassOut(
        id=cls.id,
        name=cls.name,
        course_code=cls.course_code,
        course=course_out(COURSES_BY_CODE[cls.course_code]),
        student_count=cls.student_count,
        created_at=timestamp(cls.created_at),
        updated_at=timestamp(cls.updated_at),
        version=cls.version,
        external_id=cls.external_id,
        status=cls.status.value,
        archived_at=timestamp(cls.archived_at) if cls.archived_at else None,
    )


def pagination_out(page: Page[object]) -> PaginationOut:
    return PaginationOut(page.limit, page.offset, len(page.items), page.total)


def class_list_out(page: Page[SchoolClass]) -> ClassListOut:
    return ClassListOut([class_out(c) for c in page.items], pagination_out(page))  # type: ignore[arg-type]


def student_out(student: Student) -> StudentOut:
    return StudentOut(
        id=student.id,
        first_name=student.first_name,
        last_name=student.last_name,
        legal_full_name=student.legal_full_name,
        full_name=student.full_name,
        email=student.email,
        class_ids=sorted(student.class_ids),
        is_placeholder=student.is_placeholder,
        created_at=timestamp(student.created_at),
        updated_at=timestamp(student.updated_at),
        version=student.version,
        aliases=list(student.aliases),
        protected_identity=student.protected_identity,
        is_erased=student.is_erased,
        erased_at=timestamp(student.erased_at) if student.erased_at else None,
        external_id=student.external_id,
    )


def student_list_out(page: Page[Student]) -> StudentListOut:
    return StudentListOut([student_out(s) for s in page.items], pagination_out(page))  # type: ignore[arg-type]


def changes_out(page: ChangePage) -> ChangesOut:
    """The page, each object rendered as its ``GET`` renders it (the owner's view)."""
    items: list[ChangeOut] = []
    for item in page.items:
        data = item.data
        rendered = (
            None
            if data is None
            else msgspec.to_builtins(
                class_out(data) if isinstance(data, SchoolClass) else student_out(data)
            )
        )
        c = item.change
        items.append(
            ChangeOut(
                cursor=item.cursor,
                entity=c.entity.value,
                id=c.id,
                op=c.op.value,
                version=item.version,
                at=timestamp(c.at),
                data=rendered,
            )
        )
    return ChangesOut(items, page.next_cursor, page.has_more)


def roster_out(students: Iterable[Student]) -> RosterOut:
    return RosterOut(
        [
            RosterStudentOut(s.id, s.first_name, s.last_name, s.full_name, s.email, list(s.aliases))
            for s in students
        ]
    )


def association_out(view: BatchView, a: Association) -> AssociationOut:
    return _association_fields(a, view.student_name(a), view.conflict(a))


def _association_fields(a: Association, student_name: str | None, conflict: bool) -> AssociationOut:
    return AssociationOut(
        essay_id=a.essay_id,
        batch_id=a.batch_id,
        class_id=a.class_id,
        suggested_student_id=a.suggested_student_id,
        student_id=a.student_id,
        student_name=student_name,
        confidence_score=a.confidence_score,
        match_reasons=list(a.match_reasons),
        validation_status=a.validation_status.value,
        validation_method=a.validation_method.value if a.validation_method else None,
        validated_by=a.validated_by,
        validated_at=timestamp(a.validated_at) if a.validated_at else None,
        created_at=timestamp(a.created_at),
        runner_up_confidence=a.runner_up_confidence,
        conflict=conflict,
    )


def batch_list_out(page: Page[BatchSummary]) -> BatchListOut:
    return BatchListOut(
        [
            BatchSummaryOut(
                batch_id=b.batch_id,
                class_id=b.class_id,
                class_name=b.class_name,
                course_code=b.course_code,
                status=b.status.value,
                deadline=timestamp(b.deadline),
                essay_count=b.essay_count,
                pending=b.pending,
                confirmed=b.confirmed,
                rejected=b.rejected,
                created_at=timestamp(b.created_at),
            )
            for b in page.items
        ],
        pagination_out(page),  # type: ignore[arg-type]
    )


def batch_associations_out(view: BatchView) -> BatchAssociationsOut:
    b = view.batch
    return BatchAssociationsOut(
        batch_id=b.batch_id,
        class_id=b.class_id,
        course_code=b.course_code,
        status=b.status.value,
        deadline=timestamp(b.deadline),
        associations=[association_out(view, a) for a in view.associations],
    )


def confirm_result_out(result: ConfirmResult) -> ConfirmResultOut:
    return ConfirmResultOut(
        batch_id=result.batch_id,
        status=result.status.value,
        associations_confirmed=result.associations_confirmed,
        associations_rejected=result.associations_rejected,
        pending=result.pending,
    )


def decided_out(decided: DecidedEssay) -> DecidedStudentOut:
    s = decided.student
    return DecidedStudentOut(
        essay_id=decided.essay_id,
        student_id=s.id,
        student_person_name=PersonNameOut(s.first_name, s.last_name, s.full_name),
    )


def student_export_out(export: StudentExport) -> StudentExportOut:
    """The §10 access answer (``StudentExport.student_name`` for the associations)."""
    return StudentExportOut(
        student=student_out(export.student),
        classes=[ExportClassOut(c.id, c.name, c.course_code) for c in export.classes],
        associations=[
            _association_fields(a, export.student_name(a), export.conflict(a))
            for a in export.associations
        ],
        history=[HistoryEntryOut(timestamp(e.at), e.action.value, e.by) for e in export.history],
    )


def class_info_out(info: dict[UUID, tuple[UUID, str] | None]) -> dict[str, ClassInfoOut | None]:
    return {
        str(batch_id): ClassInfoOut(found[0], found[1]) if found is not None else None
        for batch_id, found in info.items()
    }

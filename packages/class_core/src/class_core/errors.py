"""The one error hierarchy of the core. No HTTP here: the edges map ``code`` to their own terms."""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen


@frozen
class FieldError:
    """One problem with one input field.

    ``field`` is a JSON path such as ``associations[2].essay_id``.
    """

    field: str
    message: str


class ClassManagementError(Exception):
    """Base of every error the core raises on purpose."""

    code: str = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ValidationError(ClassManagementError):
    """Input that breaks a rule; nothing was written."""

    code = "VALIDATION_ERROR"

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors: tuple[FieldError, ...] = tuple(errors)

    @classmethod
    def for_field(cls, field: str, message: str) -> ValidationError:
        return cls(f"{field}: {message}", [FieldError(field, message)])


class MultipleCourseError(ValidationError):
    """A class was given more than one course code."""

    code = "MULTIPLE_COURSE_ERROR"


class CourseNotFoundError(ValidationError):
    """An unknown course code."""

    code = "COURSE_NOT_FOUND"


class StudentNotInClassError(ValidationError):
    """A confirmation names a student who is not a member of the batch's class."""

    code = "STUDENT_NOT_IN_CLASS"


class NotFoundError(ClassManagementError):
    """The object does not exist, or belongs to someone else (indistinguishable on purpose)."""

    code = "RESOURCE_NOT_FOUND"

    def __init__(self, resource: str, identifier: object) -> None:
        super().__init__(f"{resource} not found")
        self.resource = resource
        self.identifier = identifier


class ConflictError(ClassManagementError):
    """The request clashes with the current state."""

    code = "CONFLICT"


class DuplicateStudentEmailError(ConflictError):
    code = "DUPLICATE_STUDENT_EMAIL"

    def __init__(self, detail: str = "A student with this email already exists") -> None:
        super().__init__(detail)


class DuplicateExternalIdError(ConflictError):
    """Another class (or student) of the owner has this external id (§9.1)."""

    code = "DUPLICATE_EXTERNAL_ID"

    def __init__(self, detail: str = "Another record of this owner has this external_id") -> None:
        super().__init__(detail)


class ClassArchivedError(ConflictError):
    """A change of an archived class, or a student joining it (§9.2)."""

    code = "CLASS_ARCHIVED"

    def __init__(self, detail: str = "The class is archived and read-only") -> None:
        super().__init__(detail)


class ResourceInUseError(ConflictError):
    code = "RESOURCE_IN_USE"


class StudentErasedError(ResourceInUseError):
    """A change of a student that was erased meanwhile (an erased student is read-only)."""

    def __init__(self, detail: str = "The student was erased and is read-only") -> None:
        super().__init__(detail)


class BatchFinalizedError(ConflictError):
    code = "BATCH_FINALIZED"

    def __init__(self, detail: str = "The batch is already finalized") -> None:
        super().__init__(detail)


class ImportThresholdExceededError(ConflictError):
    """A sync import would remove more of the class than allowed (§9.4); nothing written."""

    code = "IMPORT_THRESHOLD_EXCEEDED"

    def __init__(self, removals: int, counted: int, max_percent: float) -> None:
        super().__init__(
            f"The sync would remove {removals} of the class's {counted} members with an email, "
            f"more than max_remove_percent={max_percent:g}%; nothing was written"
        )
        self.removals = removals
        self.counted = counted
        self.max_percent = max_percent


class ImportAlreadyUndoneError(ConflictError):
    code = "IMPORT_ALREADY_UNDONE"

    def __init__(self, detail: str = "The import was already undone") -> None:
        super().__init__(detail)


class PreconditionFailedError(ClassManagementError):
    """``If-Match`` names no version equal to the stored one (contract §8); nothing changed."""

    code = "PRECONDITION_FAILED"

    def __init__(self, detail: str = "The object has changed since the version named") -> None:
        super().__init__(detail)


class CursorExpiredError(ClassManagementError):
    """A change-feed cursor that this service did not issue, or issued longer ago than the
    retention (contract §9.3): the client resyncs from the lists."""

    code = "CURSOR_EXPIRED"

    def __init__(
        self, detail: str = "The cursor is unknown or expired; resync from the lists"
    ) -> None:
        super().__init__(detail)


class DependencyUnavailableError(ClassManagementError):
    """A backing service (database, broker) could not be reached; retrying later may work."""

    code = "SERVICE_UNAVAILABLE"


class ConfigurationError(ClassManagementError):
    """A configuration variable has a bad value."""

    code = "CONFIGURATION_ERROR"

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable

"""The pure domain core of the Class Management Service (standard library + attrs only).

Embedding services use it through a small surface:

- :class:`Runtime` (what a use case runs with) and :class:`RequestContext` (who acts, under
  which correlation id);
- the use cases in :mod:`class_core.use_cases` (``create_class``, ``create_student``,
  ``confirm_associations``, ``ingest_suggestions``, ``expire_due_batches``, …);
- the error hierarchy (:class:`ClassManagementError` and its subclasses, each with a
  contract ``code``);
- the ports (:mod:`class_core.ports`) to implement their own adapters, and
  :mod:`class_core.testing` for in-memory adapters in their own tests.
"""

from class_core.courses import COURSES, Course
from class_core.errors import (
    BatchFinalizedError,
    ClassArchivedError,
    ClassManagementError,
    ConfigurationError,
    ConflictError,
    CourseNotFoundError,
    DependencyUnavailableError,
    DuplicateExternalIdError,
    DuplicateStudentEmailError,
    FieldError,
    MultipleCourseError,
    NotFoundError,
    PreconditionFailedError,
    ResourceInUseError,
    StudentNotInClassError,
    ValidationError,
)
from class_core.events import OutboxMessage, TeacherNotification
from class_core.model import (
    Association,
    Batch,
    BatchStatus,
    Page,
    SchoolClass,
    Student,
    ValidationMethod,
    ValidationStatus,
)
from class_core.ports import (
    OutboxStatus,
    OutboxStore,
    RealtimeNotifier,
    StoredOutboxMessage,
    UnitOfWork,
    UnitOfWorkFactory,
)
from class_core.queries import ClassQuery, StudentQuery
from class_core.runtime import MatchingPolicy, RequestContext, Runtime
from class_core.settings import CoreSettings

__all__ = [
    "COURSES",
    "Association",
    "Batch",
    "BatchFinalizedError",
    "BatchStatus",
    "ClassArchivedError",
    "ClassManagementError",
    "ClassQuery",
    "ConfigurationError",
    "ConflictError",
    "CoreSettings",
    "Course",
    "CourseNotFoundError",
    "DependencyUnavailableError",
    "DuplicateExternalIdError",
    "DuplicateStudentEmailError",
    "FieldError",
    "MatchingPolicy",
    "MultipleCourseError",
    "NotFoundError",
    "OutboxMessage",
    "OutboxStatus",
    "OutboxStore",
    "Page",
    "PreconditionFailedError",
    "RealtimeNotifier",
    "RequestContext",
    "ResourceInUseError",
    "Runtime",
    "SchoolClass",
    "StoredOutboxMessage",
    "Student",
    "StudentNotInClassError",
    "StudentQuery",
    "TeacherNotification",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "ValidationError",
    "ValidationMethod",
    "ValidationStatus",
]

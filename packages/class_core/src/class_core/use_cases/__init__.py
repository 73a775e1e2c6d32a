"""Use cases: one transaction each, events recorded in the outbox of that transaction.

Each is an async function ``(runtime, context, command) -> result``.
"""

from class_core.use_cases.classes import (
    CreateClass,
    UpdateClass,
    create_class,
    delete_class,
    get_class,
    get_roster,
    list_classes,
    set_class_archived,
    update_class,
)
from class_core.use_cases.matching import (
    ConfirmItem,
    ConfirmResult,
    confirm_associations,
    expire_due_batches,
    finalize_batch,
    get_batch_associations,
    ingest_suggestions,
)
from class_core.use_cases.students import (
    CreateStudent,
    PersonName,
    StudentExport,
    UpdateStudent,
    create_student,
    delete_student,
    erase_student,
    export_student,
    get_student,
    list_students,
    update_student,
)

__all__ = [
    "ConfirmItem",
    "ConfirmResult",
    "CreateClass",
    "CreateStudent",
    "PersonName",
    "StudentExport",
    "UpdateClass",
    "UpdateStudent",
    "confirm_associations",
    "create_class",
    "create_student",
    "delete_class",
    "delete_student",
    "erase_student",
    "expire_due_batches",
    "export_student",
    "finalize_batch",
    "get_batch_associations",
    "get_class",
    "get_roster",
    "get_student",
    "ingest_suggestions",
    "list_classes",
    "list_students",
    "set_class_archived",
    "update_class",
    "update_student",
]

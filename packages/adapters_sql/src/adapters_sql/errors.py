"""Database exceptions → core errors, in one place.

Constraint names (PostgreSQL) and SQLite's messages identify the broken rule; anything that
means "the database cannot be reached right now" becomes
:class:`~class_core.errors.DependencyUnavailableError`. Every adapter call runs inside
:func:`translate_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc

from class_core.errors import (
    ClassManagementError,
    ConflictError,
    CourseNotFoundError,
    DependencyUnavailableError,
    DuplicateExternalIdError,
    DuplicateStudentEmailError,
    FieldError,
    NotFoundError,
    ResourceInUseError,
)

UNAVAILABLE_MESSAGE = "The database is unreachable"

# SQLSTATE classes/codes that mean the server or the connection is gone (or full).
# 08 connection, 57P shutdown, 53 resources, 28 authorization refused, 3D000 no such database:
# the service cannot reach its database (an operator fixes it; retrying later can work).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P", "53", "28", "3D000")
# SQLite operational errors that are about access, not about the schema or the statement.
_SQLITE_UNAVAILABLE = re.compile(
    r"database is locked|unable to open|disk I/O error|database table is locked|busy",
    re.IGNORECASE,
)

_EMAIL_UNIQUE = "uq_cms_students_owner_email"
_EXTERNAL_ID_UNIQUE = frozenset(
    {"uq_cms_classes_owner_external_id", "uq_cms_students_owner_external_id"}
)
_SQLITE_EXTERNAL_ID_UNIQUE = re.compile(
    r"cms_(classes|students)\.owner_id, cms_(classes|students)\.external_id"
)
_SQLITE_EMAIL_UNIQUE = "cms_students.owner_id, cms_students.email"
_COURSE_FK = "fk_cms_classes_course_code"
_STUDENT_FKS = frozenset(
    {
        "fk_cms_class_students_student_id",
        "fk_cms_essay_associations_suggested_student_id",
        "fk_cms_essay_associations_student_id",
    }
)
_CLASS_FKS = frozenset(
    {
        "fk_cms_class_students_class_id",
        "fk_cms_batches_class_id",
        "fk_cms_students_placeholder_class_id",
    }
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the DBAPI error it wraps and their causes."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend([current.__cause__, getattr(current, "orig", None)])


def _sqlstate(exc: BaseException) -> str | None:
    for e in _chain(exc):
        state = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _constraint(exc: BaseException) -> str | None:
    for e in _chain(exc):
        name = getattr(e, "constraint_name", None)
        if isinstance(name, str):
            return name
    return None


# asyncpg's client-side errors: the statement or its arguments are wrong (a value the column
# type cannot hold, more than 32,767 arguments, ...). They subclass asyncpg's InterfaceError,
# which SQLAlchemy wraps like a lost connection, yet retrying them can never succeed.
_ASYNCPG_CLIENT_SIDE = frozenset(
    {
        "DataError",
        "ClientConfigurationError",
        "UnsupportedClientFeatureError",
        "UnsupportedServerFeatureError",
    }
)
_ASYNCPG_CLIENT_SIDE_MESSAGE = re.compile(
    r"number of query arguments cannot exceed|invalid input for query argument", re.IGNORECASE
)


def is_client_side(exc: BaseException) -> bool:
    """Whether ``exc`` is the driver refusing a statement or its arguments before the server
    sees them: the caller's fault, not an outage (retrying cannot help)."""
    for e in _chain(exc):
        if not type(e).__module__.startswith("asyncpg"):
            continue
        if type(e).__name__ in _ASYNCPG_CLIENT_SIDE:
            return True
        if type(e).__name__ == "InterfaceError" and _ASYNCPG_CLIENT_SIDE_MESSAGE.search(str(e)):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (retrying later may work)."""
    if isinstance(exc, DependencyUnavailableError):
        return True
    if is_client_side(exc):
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.TimeoutError):  # the pool had no connection in time
        return True
    state = _sqlstate(exc)
    if state is not None and state.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        if _is_sqlite(exc):
            return bool(_SQLITE_UNAVAILABLE.search(str(exc.orig)))
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return False
    for e in _chain(exc):
        if isinstance(e, OSError | TimeoutError | ConnectionError):
            return True
        module = type(e).__module__
        if module.startswith("asyncpg") and type(e).__name__ in {
            "ConnectionDoesNotExistError",
            "InterfaceError",
            "ConnectionFailureError",
            "CannotConnectNowError",
            "TooManyConnectionsError",
            "InternalClientError",
        }:
            return True
    return False


def _is_sqlite(exc: sa_exc.DBAPIError) -> bool:
    return type(exc.orig).__module__.startswith(("sqlite3", "aiosqlite")) or "sqlite" in repr(
        type(exc.orig)
    )


def _verb(exc: sa_exc.StatementError) -> str:
    return (exc.statement or "").lstrip().split(" ", 1)[0].upper()


def _integrity(exc: sa_exc.IntegrityError) -> ClassManagementError | None:
    name = _constraint(exc)
    message = str(exc.orig)
    state = _sqlstate(exc)
    if name == _EMAIL_UNIQUE or _SQLITE_EMAIL_UNIQUE in message:
        return DuplicateStudentEmailError()
    if name in _EXTERNAL_ID_UNIQUE or _SQLITE_EXTERNAL_ID_UNIQUE.search(message):
        return DuplicateExternalIdError()
    is_fk = state == "23503" or "FOREIGN KEY constraint failed" in message
    if is_fk:
        if _verb(exc) == "DELETE":
            return ResourceInUseError("The resource is still referenced and cannot be deleted")
        statement = exc.statement or ""
        if name == _COURSE_FK or (name is None and "INTO cms_classes " in statement):
            return CourseNotFoundError(
                "Unknown course code", [FieldError("course_code", "unknown course code")]
            )
        if name in _CLASS_FKS:
            return NotFoundError("Class", None)
        if name in _STUDENT_FKS:
            return NotFoundError("Student", None)
        return NotFoundError("Referenced record", None)
    if state == "23505" or "UNIQUE constraint failed" in message:
        return ConflictError("The change conflicts with a concurrent change; try again")
    return None


def to_core_error(exc: BaseException) -> ClassManagementError | None:
    """The core error that ``exc`` stands for, or ``None`` when it is a plain bug."""
    if isinstance(exc, ClassManagementError):
        return exc
    if isinstance(exc, sa_exc.IntegrityError):
        return _integrity(exc)
    if is_unavailable(exc):
        return DependencyUnavailableError(UNAVAILABLE_MESSAGE)
    return None


@contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise database exceptions as core errors (the original is chained)."""
    try:
        yield
    except ClassManagementError:
        raise
    except Exception as exc:
        core = to_core_error(exc)
        if core is None:
            raise
        raise core from exc

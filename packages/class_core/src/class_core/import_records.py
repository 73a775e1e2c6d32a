"""What an applied roster import leaves behind (contract §9.4): one record per import and one
item per student it changed, with what undo needs to revert it.

An item's before-image holds the student's former names, email, aliases and flags: personal
data, cleared by erasure (§10) like every other copy of them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from attrs import define, frozen


class ImportSource(StrEnum):
    HTTP = "http"
    CLI = "cli"


class ImportAction(StrEnum):
    """What an import did to one student."""

    CREATED = "created"  # created it (and put it in ``class_id``, if any)
    UPDATED = "updated"  # changed its fields (``before`` set) and/or added it to ``class_id``
    REMOVED = "removed"  # sync mode: removed it from ``class_id``


def import_actor(import_id: UUID) -> str:
    """How the student history names an import (and its undo) as the actor (§10)."""
    return f"import:{import_id}"


@frozen
class StudentImage:
    """A student's own fields as they were before an import changed them."""

    first_name: str
    last_name: str
    legal_full_name: str | None
    email: str | None
    aliases: tuple[str, ...]
    protected_identity: bool


@frozen
class ImportItem:
    """One student an import changed. ``version_after`` is the version the import left: undo
    reverts the student only while it still has that version."""

    import_id: UUID
    student_id: UUID
    action: ImportAction
    version_after: int
    class_id: UUID | None = None  # the class joined (created/updated) or left (removed)
    before: StudentImage | None = None  # updated students whose own fields changed


@define
class ImportRecord:
    """One applied import that changed something (the history of ``GET /v1/imports``)."""

    import_id: UUID
    owner_id: str
    at: datetime
    source: ImportSource
    class_id: UUID | None  # the class imported into (``--class-id`` / the HTTP route's)
    created: int = 0
    updated: int = 0
    removed: int = 0
    undone_at: datetime | None = None


@frozen
class SkippedStudent:
    """A student undo left as it is, and the first reason that applied."""

    student_id: UUID
    reason: str  # deleted | erased | associated | class_archived | changed_since


@frozen
class UndoResult:
    import_id: UUID
    reverted: int
    skipped: tuple[SkippedStudent, ...]

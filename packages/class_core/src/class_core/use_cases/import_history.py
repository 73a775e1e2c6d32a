"""Import history and undo (contract §9.4).

Undo reverts what one import did, object by object, in one transaction: students it created
are deleted, students it updated get their earlier values back and leave the class it put them
in, members it removed (sync) rejoin the class. A student is skipped, with the first reason
that applies, when it was deleted, was erased, is named by an association (a student to
delete), would rejoin an archived class, or changed since the import (its version is not the
one the import left). The usual events are published; history entries name
``import:<import_id>``. A removed member whose class was deleted since is skipped as
``deleted`` (the membership it would restore is gone).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from class_core.errors import ImportAlreadyUndoneError, NotFoundError
from class_core.events import DomainEvent, StudentDeletedV1, StudentUpdatedV1
from class_core.import_records import (
    ImportAction,
    ImportItem,
    ImportRecord,
    SkippedStudent,
    UndoResult,
    import_actor,
)
from class_core.model import HistoryEntry, Page, SchoolClass, Student, change_history
from class_core.ports import UnitOfWork
from class_core.runtime import RequestContext, Runtime

PURGE_BATCH = 500
"""Imports deleted per statement by the retention purge (with their items)."""

DELETED = "deleted"
ERASED = "erased"
ASSOCIATED = "associated"
CLASS_ARCHIVED = "class_archived"
CHANGED_SINCE = "changed_since"


async def list_imports(
    rt: Runtime, ctx: RequestContext, limit: int, offset: int
) -> Page[ImportRecord]:
    """The caller's imports, newest first."""
    async with rt.read() as uow:
        return await uow.imports.search(ctx.user_id, limit, offset)


def _skip_reason(
    item: ImportItem,
    student: Student | None,
    in_use: set[UUID],
    classes: dict[UUID, SchoolClass],
) -> str | None:
    """The first reason (in the contract's order) to leave this student as it is."""
    if student is None:
        return DELETED
    if student.is_erased:
        return ERASED
    if item.action is ImportAction.CREATED and student.id in in_use:
        return ASSOCIATED
    if item.action is ImportAction.REMOVED:
        cls = classes.get(item.class_id) if item.class_id else None
        if cls is None:
            return DELETED
        if cls.is_archived:
            return CLASS_ARCHIVED
    if student.version != item.version_after:
        return CHANGED_SINCE
    return None


async def undo_import(rt: Runtime, ctx: RequestContext | None, import_id: UUID) -> UndoResult:
    """Revert the caller's import (see the module docstring). 404 for an unknown or another
    owner's import; 409 ``IMPORT_ALREADY_UNDONE`` the second time. ``ctx`` ``None``: an
    administrator acting for the import's owner (``class-admin imports undo`` without
    ``--as``)."""
    now = rt.now()
    actor = import_actor(import_id)
    async with rt.uow() as uow:
        record = await uow.imports.get(ctx.user_id if ctx else None, import_id, lock=True)
        if record is None:
            raise NotFoundError("Import", import_id)
        if record.undone_at is not None:
            raise ImportAlreadyUndoneError()
        ctx = ctx or RequestContext(record.owner_id)
        items = await uow.imports.items(import_id)
        # Classes before students: the order every writer takes them in.
        class_ids = {i.class_id for i in items if i.class_id is not None}
        classes = await uow.classes.get_many(ctx.user_id, class_ids, lock=True)
        students = await uow.students.get_many(
            ctx.user_id, [i.student_id for i in items], lock=True
        )
        created = [i.student_id for i in items if i.action is ImportAction.CREATED]
        in_use = await uow.batches.students_in_use(created) if created else set()
        skipped: list[SkippedStudent] = []
        reverting: list[tuple[ImportItem, Student]] = []
        for item in sorted(items, key=lambda i: i.student_id):
            student = students.get(item.student_id)
            reason = _skip_reason(item, student, in_use, classes)
            if reason is not None:
                skipped.append(SkippedStudent(item.student_id, reason))
            elif student is not None:
                reverting.append((item, student))
        events = await _revert(uow, ctx, reverting, actor, now)
        await uow.imports.mark_undone(import_id, now)
        uow.record(events, ctx.correlation_id, now)
        await uow.commit()
    return UndoResult(import_id, len(reverting), tuple(skipped))


async def _revert(
    uow: UnitOfWork,
    ctx: RequestContext,
    reverting: Sequence[tuple[ImportItem, Student]],
    actor: str,
    now: datetime,
) -> list[DomainEvent]:
    """Write the reversals in bulk; returns their events."""
    events: list[DomainEvent] = []
    history: list[HistoryEntry] = []
    changed: list[Student] = []
    joins: list[tuple[UUID, UUID]] = []
    leaves: list[tuple[UUID, UUID]] = []
    deleted: list[Student] = []
    cid = ctx.correlation_id
    for item, student in reverting:
        if item.action is ImportAction.CREATED:
            deleted.append(student)
            leaves += [(c, student.id) for c in student.class_ids]
            events.append(
                StudentDeletedV1(
                    student.id,
                    student.class_ids,
                    ctx.user_id,
                    cid,
                    now,
                    aggregate_version=student.version + 1,
                )
            )
            continue
        added: list[UUID] = []
        removed: list[UUID] = []
        restored = False
        if item.action is ImportAction.REMOVED and item.class_id is not None:
            added = student.join([item.class_id])
        elif item.action is ImportAction.UPDATED:
            if item.class_id is not None:
                removed = student.leave([item.class_id])
            if item.before is not None:
                b = item.before
                restored = student.rename(b.first_name, b.last_name, b.legal_full_name)
                restored = student.changes_aliases(b.aliases) or restored
                if b.protected_identity != student.protected_identity:
                    student.protected_identity, restored = b.protected_identity, True
                if student.changes_email(b.email):
                    student.email, restored = b.email, True
        student.updated_at = now
        student.version += 1
        changed.append(student)
        joins += [(c, student.id) for c in added]
        leaves += [(c, student.id) for c in removed]
        history += change_history(
            student, actor, now, updated=restored, added=added, removed=removed
        )
        events.append(StudentUpdatedV1.of(student, added, removed, ctx.user_id, cid, now))
    if changed:
        await uow.students.update_many(changed)
    if joins:
        await uow.students.add_memberships(joins)
    if leaves:
        await uow.students.remove_memberships(leaves)
    for student in deleted:
        await uow.students.delete(student.id)
        await uow.history.delete_student(student.id)
    await uow.history.add(history)
    return events


async def purge_import_history(rt: Runtime, retention_days: float) -> int:
    """Forget imports recorded more than ``retention_days`` ago, in batches of
    :data:`PURGE_BATCH` (one short transaction each); returns how many."""
    before = rt.now() - timedelta(days=retention_days)
    total = 0
    while True:
        async with rt.uow() as uow:
            purged = await uow.imports.purge(before, PURGE_BATCH)
            await uow.commit()
        total += purged
        if purged < PURGE_BATCH:
            return total

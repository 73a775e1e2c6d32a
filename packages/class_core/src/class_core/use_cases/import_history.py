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
from class_core.import_records import (
    ImportAction,
    ImportItem,
    ImportRecord,
    SkippedStudent,
    UndoResult,
    import_actor,
)
from class_core.model import UNSET, Page, SchoolClass, Student
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
        await _revert(uow, ctx, reverting, classes, actor, now)
        await uow.imports.mark_undone(import_id, now)
        await uow.commit()
    return UndoResult(import_id, len(reverting), tuple(skipped))


async def _revert(
    uow: UnitOfWork,
    ctx: RequestContext,
    reverting: Sequence[tuple[ImportItem, Student]],
    classes: dict[UUID, SchoolClass],
    actor: str,
    now: datetime,
) -> None:
    """Write the reversals in bulk; each student reverted is collected (its events and
    history are written at commit)."""
    changed: list[Student] = []
    joins: list[tuple[UUID, UUID]] = []
    leaves: list[tuple[UUID, UUID]] = []
    deleted: list[Student] = []
    for item, student in reverting:
        uow.collect(student)
        if item.action is ImportAction.CREATED:
            deleted.append(student)
            leaves += [(c, student.id) for c in student.class_ids]
            student.delete(ctx.user_id, now, correlation_id=ctx.correlation_id)
            continue
        rejoin = item.action is ImportAction.REMOVED and item.class_id is not None
        undo = item.action is ImportAction.UPDATED
        b = item.before if undo else None
        change = student.update(
            first_name=b.first_name if b else UNSET,
            last_name=b.last_name if b else UNSET,
            legal_full_name=b.legal_full_name if b else UNSET,
            email=b.email if b else UNSET,
            aliases=b.aliases if b else UNSET,
            protected_identity=b.protected_identity if b else UNSET,
            joining=[classes[item.class_id]] if rejoin and item.class_id else [],
            leaving=[item.class_id] if undo and item.class_id else [],
            by=ctx.user_id,
            at=now,
            correlation_id=ctx.correlation_id,
            announce_joins=False,
            history_by=actor,
            always=True,  # one version per student reverted, even when nothing differs
        )
        assert change is not None  # ``always``
        changed.append(student)
        joins += [(c, student.id) for c in change.added]
        leaves += [(c, student.id) for c in change.removed]
    if changed:
        await uow.students.update_many(changed)
    if joins:
        await uow.students.add_memberships(joins)
    if leaves:
        await uow.students.remove_memberships(leaves)
    for student in deleted:
        await uow.students.delete(student.id)
        await uow.history.delete_student(student.id)


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

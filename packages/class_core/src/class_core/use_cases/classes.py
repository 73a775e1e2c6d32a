"""Class use cases: create, read, list, update, archive, unarchive, delete, roster."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from attrs import frozen

from class_core.courses import get_course, single_course
from class_core.errors import NotFoundError, ResourceInUseError
from class_core.model import (
    UNSET,
    Page,
    SchoolClass,
    Student,
    Unset,
)
from class_core.ports import UnitOfWork
from class_core.queries import ClassQuery
from class_core.runtime import RequestContext, Runtime
from class_core.text import clean_external_id, clean_name
from class_core.versions import IfMatch, check_if_match


@frozen
class CreateClass:
    name: str
    course_codes: Sequence[str]
    external_id: str | None = None


@frozen
class UpdateClass:
    """Partial update: ``UNSET`` (the default) leaves a field as it is; ``external_id=None``
    clears it. "Not given" has this one encoding from the HTTP edge to the aggregate."""

    name: str | Unset = UNSET
    course_codes: Sequence[str] | Unset = UNSET
    external_id: str | Unset | None = UNSET


async def create_class(rt: Runtime, ctx: RequestContext, cmd: CreateClass) -> SchoolClass:
    """Create a class for one course; publishes ``ClassCreatedV1`` and notifies the owner."""
    name = clean_name(cmd.name, "name")
    course = single_course(cmd.course_codes)
    external_id = clean_external_id(cmd.external_id) if cmd.external_id is not None else None
    cls = SchoolClass.create(
        ctx.user_id,
        name,
        course.code,
        external_id=external_id,
        at=rt.now(),
        correlation_id=ctx.correlation_id,
    )
    async with rt.uow() as uow:
        # A taken external id is refused by ``add`` (the partial unique index on SQL), also
        # when a concurrent writer took it first.
        await uow.classes.add(cls)
        uow.collect(cls)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    return cls


async def get_class(rt: Runtime, ctx: RequestContext, class_id: UUID) -> SchoolClass:
    async with rt.read() as uow:
        cls = await uow.classes.get(ctx.user_id, class_id)
    if cls is None:
        raise NotFoundError("Class", class_id)
    return cls


async def list_classes(rt: Runtime, ctx: RequestContext, query: ClassQuery) -> Page[SchoolClass]:
    if query.course_code is not None:
        get_course(query.course_code, "course_code")
    async with rt.read() as uow:
        return await uow.classes.search(ctx.user_id, query)


async def update_class(
    rt: Runtime,
    ctx: RequestContext,
    class_id: UUID,
    cmd: UpdateClass,
    if_match: IfMatch | None = None,
) -> SchoolClass:
    """Change name, course and/or external id; nothing changed means nothing published. An
    archived class is read-only (409 ``CLASS_ARCHIVED``, after 404, 400 and 412).

    The class is read locked (contract §8): the fields named are applied to the row as it is
    when the change commits, and a class deleted meanwhile is not found."""
    now = rt.now()
    async with rt.uow() as uow:
        cls = await uow.classes.get(ctx.user_id, class_id, lock=True)
        if cls is None:
            raise NotFoundError("Class", class_id)
        # Contract §8's order: not found, then bad input (body or If-Match), then the version.
        name = cmd.name if isinstance(cmd.name, Unset) else clean_name(cmd.name, "name")
        codes = cmd.course_codes
        course = codes if isinstance(codes, Unset) else single_course(codes).code
        external_id = cmd.external_id
        if isinstance(external_id, str):
            external_id = clean_external_id(external_id)
        check_if_match(if_match, cls.version)
        changed = cls.update(
            name=name,
            course_code=course,
            external_id=external_id,
            by=ctx.user_id,
            at=now,
            correlation_id=ctx.correlation_id,
        )
        if changed:
            await _commit_class_change(uow, ctx, cls)
    return cls


async def _commit_class_change(uow: UnitOfWork, ctx: RequestContext, cls: SchoolClass) -> None:
    """Write the class's change (its version and ``ClassUpdatedV1``) and commit."""
    await uow.classes.update(cls)
    uow.collect(cls)
    await uow.commit()


async def set_class_archived(
    rt: Runtime,
    ctx: RequestContext,
    class_id: UUID,
    archived: bool,
    if_match: IfMatch | None = None,
) -> SchoolClass:
    """Archive (``archived``) or unarchive a class (§9.2). Idempotent: a class already in
    that state changes nothing and publishes nothing; a real transition is one more version
    and publishes ``ClassUpdatedV1`` with the new ``status``. Checks: 404, 400/412
    (``If-Match``)."""
    now = rt.now()
    async with rt.uow() as uow:
        cls = await uow.classes.get(ctx.user_id, class_id, lock=True)
        if cls is None:
            raise NotFoundError("Class", class_id)
        check_if_match(if_match, cls.version)
        change = cls.archive if archived else cls.unarchive
        if change(ctx.user_id, now, correlation_id=ctx.correlation_id):
            await _commit_class_change(uow, ctx, cls)
    return cls


async def delete_class(
    rt: Runtime, ctx: RequestContext, class_id: UUID, if_match: IfMatch | None = None
) -> None:
    """Delete a class and its memberships (the students stay); refused while batches exist.

    The class is read locked: of two concurrent deletes one succeeds and the other finds
    nothing (contract §8). Each member's version goes up (a membership change is a change of
    the student) without a student event: ``ClassDeletedV1`` says it all."""
    now = rt.now()
    async with rt.uow() as uow:
        cls = await uow.classes.get(ctx.user_id, class_id, lock=True)
        if cls is None:
            raise NotFoundError("Class", class_id)
        check_if_match(if_match, cls.version)
        if await uow.batches.class_has_batches(class_id):
            raise ResourceInUseError("The class has essay batches and cannot be deleted")
        members = await uow.students.remove_class_memberships(class_id)
        if members:
            await uow.students.touch(members, now)
        await uow.classes.delete(class_id)
        cls.delete(members, ctx.user_id, now, correlation_id=ctx.correlation_id)
        uow.collect(cls)
        await uow.commit()


async def get_roster(rt: Runtime, owner_id: str | None, class_id: UUID) -> list[Student]:
    """The class's students without the placeholder. ``owner_id=None`` is the trusted
    internal caller, who may read any class."""
    async with rt.read() as uow:
        if owner_id is None:
            cls = await uow.classes.get_unscoped(class_id)
        else:
            cls = await uow.classes.get(owner_id, class_id)
        if cls is None:
            raise NotFoundError("Class", class_id)
        roster = await uow.students.roster(class_id)
    # Outside the owner's own reads a protected identity is its pseudonym (§10).
    return roster if owner_id is not None else [s.outside_view() for s in roster]

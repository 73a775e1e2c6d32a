"""Student use cases: create, read, list, update (names, email, memberships, protected
identity), delete, erase and export (§10)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from uuid import UUID

from attrs import frozen

from class_core.errors import (
    DuplicateStudentEmailError,
    FieldError,
    NotFoundError,
    ResourceInUseError,
    StudentErasedError,
    ValidationError,
)
from class_core.model import UNSET as UNSET  # the commands' "not given", re-exported
from class_core.model import (
    Association,
    HistoryEntry,
    Page,
    SchoolClass,
    Student,
    Unset,
)
from class_core.ports import UnitOfWork
from class_core.queries import StudentQuery
from class_core.runtime import RequestContext, Runtime
from class_core.text import clean_aliases, clean_email, clean_external_id, clean_name
from class_core.use_cases.matching import conflicts_in_batches
from class_core.versions import IfMatch, check_if_match


@frozen
class PersonName:
    first_name: str
    last_name: str
    legal_full_name: str | None = None


@frozen
class CreateStudent:
    person_name: PersonName
    email: str | None = None
    class_ids: Sequence[UUID] = ()
    aliases: Sequence[str] = ()
    protected_identity: bool = False
    external_id: str | None = None


@frozen
class UpdateStudent:
    """Partial update: ``UNSET`` (the default) leaves a field as it is; ``None`` clears the
    nullable ones (legal name, email, external id). "Not given" has this one encoding from
    the HTTP edge to the aggregate."""

    first_name: str | Unset = UNSET
    last_name: str | Unset = UNSET
    legal_full_name: str | Unset | None = UNSET
    email: str | Unset | None = UNSET
    add_class_ids: Sequence[UUID] = ()
    remove_class_ids: Sequence[UUID] = ()
    aliases: Sequence[str] | Unset = UNSET
    protected_identity: bool | Unset = UNSET
    external_id: str | Unset | None = UNSET  # ``None`` clears it


def clean_person_name(name: PersonName, prefix: str = "person_name") -> PersonName:
    """Validate and normalise a person's names, collecting every field error."""
    errors: list[FieldError] = []
    values: dict[str, str | None] = {}
    for field, value in (
        ("first_name", name.first_name),
        ("last_name", name.last_name),
        ("legal_full_name", name.legal_full_name),
    ):
        if value is None:
            values[field] = None
            continue
        try:
            values[field] = clean_name(value, f"{prefix}.{field}")
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationError("Invalid person name", errors)
    return PersonName(
        values["first_name"] or "", values["last_name"] or "", values["legal_full_name"]
    )


def _clean_name_and_email(
    name: PersonName, email: str | None, external_id: str | None = None
) -> tuple[PersonName, str | None, str | None]:
    """Validate names, email and external id together so that one answer names every bad
    field."""
    errors: list[FieldError] = []
    cleaned_name: PersonName | None = None
    cleaned_email: str | None = None
    cleaned_external: str | None = None
    try:
        cleaned_name = clean_person_name(name)
    except ValidationError as exc:
        errors.extend(exc.errors)
    if email is not None:
        try:
            cleaned_email = clean_email(email)
        except ValidationError as exc:
            errors.extend(exc.errors)
    if external_id is not None:
        try:
            cleaned_external = clean_external_id(external_id)
        except ValidationError as exc:
            errors.extend(exc.errors)
    if errors or cleaned_name is None:
        raise ValidationError("Invalid student", errors)
    return cleaned_name, cleaned_email, cleaned_external


def _unique(ids: Sequence[UUID]) -> list[UUID]:
    return list(dict.fromkeys(ids))


async def owned_classes(
    uow: UnitOfWork, owner_id: str, class_ids: Sequence[UUID], *, lock: bool = False
) -> dict[UUID, SchoolClass]:
    """The owner's classes for these ids; any other id is not found. ``lock`` holds them
    against deletion until commit (``ClassRepository.get_many``)."""
    if not class_ids:
        return {}
    found = await uow.classes.get_many(owner_id, class_ids, lock=lock)
    _all_found(found, class_ids)
    return found


def _all_found(found: dict[UUID, SchoolClass], class_ids: Sequence[UUID]) -> None:
    for class_id in class_ids:
        if class_id not in found:
            raise NotFoundError("Class", class_id)


async def _locked_student(uow: UnitOfWork, owner_id: str, student_id: UUID) -> Student:
    """The owner's student, read locked until commit (contract §8), unless it is missing
    (404; also when a concurrent delete removed it while this waited for the lock)."""
    student = await uow.students.get(owner_id, student_id, lock=True)
    if student is None:
        raise NotFoundError("Student", student_id)
    return student


def _check_changeable(student: Student, if_match: IfMatch | None) -> None:
    """412 unless ``If-Match`` names the stored version, then 409 for the read-only
    placeholder (the contract's order)."""
    check_if_match(if_match, student.version)
    if student.is_placeholder:
        raise ResourceInUseError("The UNKNOWN placeholder student is read-only")


async def _changeable_student(
    uow: UnitOfWork, owner_id: str, student_id: UUID, if_match: IfMatch | None
) -> Student:
    """The owner's student, locked, unless it is missing (404), at another version than
    ``If-Match`` names (412) or the read-only placeholder (409)."""
    student = await _locked_student(uow, owner_id, student_id)
    _check_changeable(student, if_match)
    return student


async def create_student(rt: Runtime, ctx: RequestContext, cmd: CreateStudent) -> Student:
    """Create a student, optionally in classes; publishes ``StudentCreatedV1`` and tells the
    owner of each class joined."""
    name, email, external_id = _clean_name_and_email(cmd.person_name, cmd.email, cmd.external_id)
    aliases = clean_aliases(cmd.aliases)
    class_ids = _unique(cmd.class_ids)
    async with rt.uow() as uow:
        # Shared locks: an archive (or delete) of a class waits for this join, or this join
        # sees it archived.
        classes = await owned_classes(uow, ctx.user_id, class_ids, lock=True)
        student = Student.create(
            ctx.user_id,
            name.first_name,
            name.last_name,
            legal_full_name=name.legal_full_name,
            email=email,
            classes=[classes[c] for c in class_ids],
            aliases=aliases,
            protected_identity=cmd.protected_identity,
            external_id=external_id,
            by=ctx.user_id,
            at=rt.now(),
            correlation_id=ctx.correlation_id,
        )
        # A taken email or external id is refused by ``add`` itself (the port promises it; the
        # SQL adapter's unique indexes): no look-up first, and a concurrent writer that took
        # it first is refused the same way.
        await uow.students.add(student)
        uow.collect(student)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    return student


async def get_student(rt: Runtime, ctx: RequestContext, student_id: UUID) -> Student:
    async with rt.read() as uow:
        student = await uow.students.get(ctx.user_id, student_id)
    if student is None:
        raise NotFoundError("Student", student_id)
    return student


async def list_students(rt: Runtime, ctx: RequestContext, query: StudentQuery) -> Page[Student]:
    async with rt.read() as uow:
        if query.class_id is not None:
            await owned_classes(uow, ctx.user_id, [query.class_id])
        return await uow.students.search(ctx.user_id, query)


def _clean_update(
    cmd: UpdateStudent,
) -> tuple[str | Unset, str | Unset, str | Unset | None, str | Unset | None, str | Unset | None]:
    """The given names and email, cleaned; one error names every bad field."""
    errors: list[FieldError] = []

    def checked(value: str, clean: Callable[[str], str]) -> str:
        try:
            return clean(value)
        except ValidationError as exc:
            errors.extend(exc.errors)
            return value

    def name(value: str, field: str) -> str:
        return checked(value, lambda v: clean_name(v, f"person_name.{field}"))

    first, last, legal = cmd.first_name, cmd.last_name, cmd.legal_full_name
    if isinstance(first, str):
        first = name(first, "first_name")
    if isinstance(last, str):
        last = name(last, "last_name")
    if isinstance(legal, str):
        legal = name(legal, "legal_full_name")
    email = cmd.email
    if isinstance(email, str):
        email = checked(email, clean_email)
    external_id = cmd.external_id
    if isinstance(external_id, str):
        external_id = checked(external_id, clean_external_id)
    if errors:
        raise ValidationError("Invalid student", errors)
    return first, last, legal, email, external_id


async def update_student(
    rt: Runtime,
    ctx: RequestContext,
    student_id: UUID,
    cmd: UpdateStudent,
    if_match: IfMatch | None = None,
) -> Student:
    """Apply a partial update; changes that change nothing are skipped, and a call that changes
    nothing publishes nothing.

    The classes named and then the student are read locked (always in that order, as a class
    deletion takes them: no deadlock), so that the fields named are applied to the row as it
    is when the change commits and a student deleted meanwhile is not found (contract §8)."""
    now = rt.now()
    add_ids = _unique(cmd.add_class_ids)
    remove_ids = _unique(cmd.remove_class_ids)
    async with rt.uow() as uow:
        classes = await uow.classes.get_many(ctx.user_id, add_ids + remove_ids, lock=True)
        student = await _locked_student(uow, ctx.user_id, student_id)
        # Contract §8's order: not found, then bad input (body or If-Match), then the version.
        if set(add_ids) & set(remove_ids):
            raise ValidationError.for_field(
                "add_class_ids", "a class id may not be both added and removed"
            )
        first, last, legal, email, external_id = _clean_update(cmd)
        aliases = cmd.aliases if isinstance(cmd.aliases, Unset) else clean_aliases(cmd.aliases)
        _check_changeable(student, if_match)
        if student.is_erased:
            raise StudentErasedError()
        _all_found(classes, add_ids + remove_ids)
        joining = [classes[c] for c in add_ids]
        student.check_joinable(joining)  # before a taken email (the contract's order)
        if (
            student.changes_email(email)
            and isinstance(email, str)
            and await uow.students.by_emails(ctx.user_id, [email])
        ):
            raise DuplicateStudentEmailError()
        change = student.update(
            first_name=first,
            last_name=last,
            legal_full_name=legal,
            email=email,
            aliases=aliases,
            protected_identity=cmd.protected_identity,
            # A taken external id is refused by ``update`` (the unique index), also under a race.
            external_id=external_id,
            joining=joining,
            leaving=remove_ids,
            by=ctx.user_id,
            at=now,
            correlation_id=ctx.correlation_id,
        )
        if change is None:
            return student
        await uow.students.update(student)
        if change.added:
            await uow.students.add_memberships([(c, student.id) for c in change.added])
        if change.removed:
            await uow.students.remove_memberships([(c, student.id) for c in change.removed])
        uow.collect(student)
        notes = await uow.commit()
    rt.notifier.publish(notes)
    return student


async def delete_student(
    rt: Runtime, ctx: RequestContext, student_id: UUID, if_match: IfMatch | None = None
) -> None:
    """Delete a student and its memberships; refused while an association names the student.

    The student is read locked: of two concurrent deletes one succeeds and the other finds
    nothing (contract §8)."""
    now = rt.now()
    async with rt.uow() as uow:
        student = await _changeable_student(uow, ctx.user_id, student_id, if_match)
        if await uow.batches.student_in_use(student_id):
            raise ResourceInUseError("The student is named by essay associations")
        if student.class_ids:
            await uow.students.remove_memberships([(c, student_id) for c in student.class_ids])
        await uow.students.delete(student_id)
        await uow.history.delete_student(student_id)
        student.delete(ctx.user_id, now, correlation_id=ctx.correlation_id)
        uow.collect(student)
        await uow.commit()


async def erase_student(
    rt: Runtime, ctx: RequestContext, student_id: UUID, if_match: IfMatch | None = None
) -> Student:
    """Erase a student (§10): it stays as an anonymous record (id, associations and
    decisions kept), everything personal is cleared everywhere the service holds it, its
    memberships are removed; ``StudentUpdatedV1`` then ``StudentErasedV1`` in the same
    transaction. Erasing an erased student changes nothing and publishes nothing.

    The student is read locked (contract §8): 404, then 412 when ``If-Match`` names another
    version, then 409 for the placeholder; the erasure is one more version."""
    now = rt.now()
    async with rt.uow() as uow:
        student = await _locked_student(uow, ctx.user_id, student_id)
        check_if_match(if_match, student.version)
        if student.is_placeholder:
            raise ResourceInUseError("The UNKNOWN placeholder student cannot be erased")
        if student.is_erased:
            return student
        former = student.personal_values()
        left = student.erase(ctx.user_id, now, correlation_id=ctx.correlation_id)
        try:
            await uow.students.update(student)
        except StudentErasedError:  # a concurrent erasure committed first: nothing new
            erased = await uow.students.get(ctx.user_id, student_id)
            if erased is None:  # pragma: no cover - an erased student is not deleted meanwhile
                raise NotFoundError("Student", student_id) from None
            return erased
        if left:
            await uow.students.remove_memberships([(c, student_id) for c in left])
        await uow.personal_data.forget(student_id, former)
        uow.collect(student)
        await uow.commit()
    return student


@frozen
class StudentExport:
    """What the service holds about one student (§10 access): the student, its classes,
    the essays associated with it and its history."""

    student: Student
    classes: tuple[SchoolClass, ...]
    associations: tuple[Association, ...]
    history: tuple[HistoryEntry, ...]
    conflicts: frozenset[UUID] = frozenset()

    def conflict(self, a: Association) -> bool:
        """§11 ``conflict`` of an association, judged within its whole batch."""
        return a.essay_id in self.conflicts

    def student_name(self, a: Association) -> str | None:
        """An association's §3.2 ``student_name`` when it is this student's own; another
        student's name is never part of this student's export."""
        named = a.student_id if a.student_id is not None else a.suggested_student_id
        return self.student.full_name if named == self.student.id else None


async def export_student(rt: Runtime, ctx: RequestContext, student_id: UUID) -> StudentExport:
    """The owner's copy of everything held about one of their students."""
    async with rt.read() as uow:
        student = await uow.students.get(ctx.user_id, student_id)
        if student is None:
            raise NotFoundError("Student", student_id)
        classes = await uow.classes.get_many(ctx.user_id, student.class_ids)
        associations = await uow.batches.associations_of_student(student_id)
        history = await uow.history.of_student(student_id)
        conflicts = await conflicts_in_batches(uow, {a.batch_id for a in associations})
    return StudentExport(
        student,
        tuple(classes[c] for c in student.class_ids if c in classes),
        tuple(associations),
        tuple(history),
        frozenset(conflicts),
    )

"""Roster import (contract §7): students from the records of a roster file.

Students are matched by email per owner: a new email creates a student, a known one is
updated only when its names differ or it joins a class it is not in yet (memberships are only
ever added), anything else is left unchanged, so importing the same file twice changes nothing
the second time. Records are validated like the API's input; a bad record is reported with
the physical line where it starts and does not stop the others.

Sync mode (§9.4, with a class): members of the class whose email appears in no record of the
file (valid or not) are removed from it (the students stay); members without an email and the
placeholder are neither removed nor counted. The removals are decided and written with the
first chunk, after the threshold check: when more than ``max_remove_percent`` of the counted
members would go, :class:`ImportThresholdExceededError` is raised before anything is written.

Every import that changes something is recorded (:class:`ImportRecord`) with one
:class:`ImportItem` per student changed, written in the same transaction as the change: a
chunked (CLI) import inserts its record with the first chunk that changes something and adds
each later chunk's counts and items in that chunk's transaction, so the history always matches
what was committed, also after an interruption. History entries name ``import:<import_id>``.

Records are applied in chunks, one transaction each, through the repositories' bulk methods,
with the API's events in the same transaction (``StudentCreatedV1``, ``StudentUpdatedV1`` and,
for a class created on the way, ``ClassCreatedV1`` with its ``class_created`` notification) but
no per-student teacher notifications (contract §5.2). A second occurrence of an email in the
same import is a row error.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from uuid import UUID, uuid4

from attrs import define, field, frozen

from class_core.courses import COURSES_BY_CODE
from class_core.errors import (
    ClassArchivedError,
    ConflictError,
    DependencyUnavailableError,
    ImportThresholdExceededError,
    NotFoundError,
    ValidationError,
)
from class_core.events import (
    DomainEvent,
    TeacherNotification,
)
from class_core.ids import uuid4_many
from class_core.import_records import (
    ImportAction,
    ImportItem,
    ImportRecord,
    ImportSource,
    StudentImage,
    import_actor,
)
from class_core.model import UNSET, Aggregate, HistoryEntry, SchoolClass, Student
from class_core.ports import UnitOfWork
from class_core.runtime import RequestContext, Runtime
from class_core.text import clean_aliases, clean_email, clean_external_id, clean_name

# The one list of roster columns (CLI and HTTP): each is a field of :class:`RosterRow`.
REQUIRED_COLUMNS: tuple[str, ...] = ("first_name", "last_name", "email")
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "legal_full_name",
    "class_name",
    "course_code",
    "protected_identity",
    "external_id",
    "aliases",
)
ALIAS_SEPARATOR = "|"
DEFAULT_MAX_REMOVE_PERCENT = 10.0
CLASS_COLUMNS: tuple[str, ...] = ("class_name", "course_code")
DEFAULT_CHUNK_SIZE = 10_000
ONE_TRANSACTION = 2**62  # a chunk size no file reaches: the whole import in one transaction
MAX_LISTED_ERRORS = 1_000
"""Row errors listed in a summary; past these, ``failed`` counts the rest (contract §6)."""
_MAX_ECHOED_CELL = 32
# A chunk that lost a race (an email or class taken by a concurrent writer) is planned again.
_CONFLICT_RETRIES = 3


@frozen
class RosterRow:
    """One record as read: cells as given; ``None`` for a column the file does not have."""

    line: int  # physical line (1-based) where the record starts
    first_name: str
    last_name: str
    email: str
    legal_full_name: str | None = None
    class_name: str | None = None
    course_code: str | None = None
    read_errors: tuple[str, ...] = ()  # problems the reader found (e.g. too many cells)
    protected_identity: str | None = None  # "true" / "false" / "" (false)
    external_id: str | None = None  # empty: keep what is stored (§9.1)
    aliases: str | None = None  # several separated by "|"; "" = none


@frozen
class RowError:
    """Why one record was not imported: ``"field: message"`` lines."""

    row: int
    errors: tuple[str, ...]


@frozen
class ImportOptions:
    class_id: UUID | None = None  # every student joins this class (the owner's)
    dry_run: bool = False  # plan everything, write nothing
    chunk_size: int = DEFAULT_CHUNK_SIZE
    sync: bool = False  # remove the class's members the file does not name (needs class_id)
    max_remove_percent: float = DEFAULT_MAX_REMOVE_PERCENT
    source: ImportSource = ImportSource.CLI

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.max_remove_percent <= 100:
            raise ValidationError.for_field("max_remove_percent", "must be between 0 and 100")
        if self.sync and self.class_id is None:
            raise ValidationError.for_field("sync", "a sync import needs a class")


@define
class ImportSummary:
    """Outcome so far. After an interruption it covers the committed chunks only."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[RowError] = field(factory=list)
    """The first :data:`MAX_LISTED_ERRORS` failed records, in file order."""
    errors_not_listed: int = 0
    """Failed records past those (counted in ``failed``, not kept: memory stays bounded)."""
    classes_created: list[str] = field(factory=list)
    rows: int = 0  # records handled (and, unless dry run, committed)
    last_line: int = 0  # physical line of the last record handled
    removed: int = 0  # members removed from the class (sync mode)
    import_id: UUID | None = None  # the recorded import; None on a dry run or no change


class ImportInterruptedError(DependencyUnavailableError):
    """The database went away mid-import; ``summary`` holds what was already committed."""

    def __init__(self, summary: ImportSummary) -> None:
        super().__init__(
            f"The database became unreachable after {summary.rows} records "
            f"(up to line {summary.last_line}) were applied"
        )
        self.summary = summary


Progress = Callable[[ImportSummary], None]


@frozen
class _Valid:
    line: int
    first_name: str
    last_name: str
    email: str
    legal_full_name: str | None  # None: keep what is stored (a new student gets none)
    class_name: str | None
    course_code: str | None
    protected_identity: bool | None = None  # None: no such column (keep what is stored)
    external_id: str | None = None  # None: no such column or an empty cell (keep)
    aliases: tuple[str, ...] | None = None  # None: no such column (keep what is stored)


@define
class _Ambiguous:
    count: int


_ClassEntry = SchoolClass | _Ambiguous


@define
class _State:
    """What the import remembers between chunks: classes found or created, emails seen."""

    classes: dict[str, _ClassEntry] = field(factory=dict)  # casefolded name → class
    emails: dict[str, int] = field(factory=dict)  # email → line that imported it
    external_ids: dict[str, int] = field(factory=dict)  # external id → line that imported it
    fixed_class: SchoolClass | None = None
    import_id: UUID = field(factory=uuid4)
    recorded: bool = False  # the import's record is written (a chunk changed something)
    synced: bool = False  # sync mode: the removals are decided (with the first chunk)
    file_emails: frozenset[str] = frozenset()


@define
class ChunkPlan:
    """One chunk's decisions, written in one transaction."""

    now: datetime
    created: list[Student] = field(factory=list)
    updated: list[Student] = field(factory=list)
    memberships: list[tuple[UUID, UUID]] = field(factory=list)
    events: list[DomainEvent] = field(factory=list)
    history: list[HistoryEntry] = field(factory=list)
    new_classes: dict[str, SchoolClass] = field(factory=dict)
    emails: dict[str, int] = field(factory=dict)
    external_ids: dict[str, int] = field(factory=dict)
    errors: list[RowError] = field(factory=list)
    unchanged: int = 0
    removed: list[Student] = field(factory=list)
    items: list[ImportItem] = field(factory=list)
    actor: str = ""  # ``import:<import_id>``: who the history says acted
    after: ChunkPlan | None = None
    """The previous chunk's plan when this one is planned before that one has committed
    (:meth:`RosterImport.plan`): its emails, external ids and new classes count as taken."""
    borrowed: set[UUID] = field(factory=set)
    """Classes of ``after.new_classes`` that this chunk's rows join: not yet committed when
    planned, so locked and checked when this chunk is written."""

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.removed)

    def collect(self, aggregate: Aggregate) -> None:
        """The import's bulk collector: what ``aggregate`` recorded (the API's events, each
        built with the import's correlation id, and its history) joins the chunk's, written
        with it (:meth:`RosterImport.write`, in bulk, under that correlation id)."""
        self.events += aggregate.pull_events()
        self.history += aggregate.pull_history()

    def earlier_email(self, state: _State, email: str) -> int | None:
        """The line of an earlier record of the import with ``email``, if any."""
        plan: ChunkPlan | None = self
        while plan is not None:
            if (line := plan.emails.get(email)) is not None:
                return line
            plan = plan.after
        return state.emails.get(email)

    def earlier_external_id(self, state: _State, external_id: str) -> int | None:
        plan: ChunkPlan | None = self
        while plan is not None:
            if (line := plan.external_ids.get(external_id)) is not None:
                return line
            plan = plan.after
        return state.external_ids.get(external_id)

    def planned_class(self, key: str, *, joined: bool = True) -> SchoolClass | None:
        """A class this chunk, or the uncommitted chunk before it, creates (``joined``: a
        row of this chunk joins it)."""
        if (cls := self.new_classes.get(key)) is not None:
            return cls
        if self.after is not None and (cls := self.after.new_classes.get(key)) is not None:
            if joined:
                self.borrowed.add(cls.id)
            return cls
        return None


def _clean(value: str, name: str, errors: list[str]) -> str:
    try:
        return clean_name(value, name)
    except ValidationError as exc:
        errors.extend(f"{e.field}: {e.message}" for e in exc.errors)
        return ""


def validate_row(row: RosterRow) -> _Valid | RowError:
    """The API's rules for one record (names, email, class name, course code)."""
    errors: list[str] = list(row.read_errors)
    first = _clean(row.first_name, "first_name", errors)
    last = _clean(row.last_name, "last_name", errors)
    legal: str | None = None
    if row.legal_full_name is not None and row.legal_full_name.strip():
        legal = _clean(row.legal_full_name, "legal_full_name", errors)
    email = ""
    if not row.email.strip():
        errors.append("email: is required (it identifies the student)")
    else:
        try:
            email = clean_email(row.email)
        except ValidationError as exc:
            errors.extend(f"{e.field}: {e.message}" for e in exc.errors)
    class_name: str | None = None
    course: str | None = None
    if row.class_name is not None and row.class_name.strip():
        class_name = _clean(row.class_name, "class_name", errors)
    if row.course_code is not None and row.course_code.strip():
        course = row.course_code.strip()
        if course not in COURSES_BY_CODE:
            shown = f" {course!r}" if len(course) <= _MAX_ECHOED_CELL else ""
            errors.append(f"course_code: unknown course code{shown}")
        if class_name is None:
            errors.append("class_name: is required when a course_code is given")
    protect: bool | None = None
    if row.protected_identity is not None:
        flag = row.protected_identity.strip().casefold()
        if flag not in ("true", "false", ""):
            errors.append("protected_identity: must be true, false or empty")
        protect = flag == "true"
    external_id: str | None = None
    if row.external_id is not None and row.external_id.strip():
        try:
            external_id = clean_external_id(row.external_id)
        except ValidationError as exc:
            errors.extend(f"{e.field}: {e.message}" for e in exc.errors)
    aliases: tuple[str, ...] | None = None
    if row.aliases is not None:
        # A present column is the whole list: an empty cell means no aliases.
        parts = [a for a in row.aliases.split(ALIAS_SEPARATOR) if a.strip()]
        try:
            aliases = clean_aliases(parts)
        except ValidationError as exc:
            errors.extend(f"{e.field}: {e.message}" for e in exc.errors)
    if errors:
        return RowError(row.line, tuple(errors))
    return _Valid(
        row.line,
        first,
        last,
        email,
        legal,
        class_name,
        course,
        protect,
        external_id=external_id,
        aliases=aliases,
    )


def email_key(cell: str) -> str:
    """The email a record names, for sync mode: the stored form when it is a valid email,
    else the cell trimmed, NFC and lower-cased (an invalid row still keeps its member)."""
    try:
        return clean_email(cell)
    except ValidationError:
        return unicodedata.normalize("NFC", cell.strip()).lower()


def file_emails(rows: Iterable[RosterRow]) -> frozenset[str]:
    """Every email named by a record of the file, valid or not (sync mode's keep list)."""
    return frozenset(email_key(r.email) for r in rows if r.email.strip())


async def import_students(
    rt: Runtime,
    ctx: RequestContext,
    rows: Iterable[RosterRow],
    options: ImportOptions = ImportOptions(),
    on_progress: Progress | None = None,
    *,
    emails_in_file: Collection[str] | None = None,
) -> ImportSummary:
    """Import roster records for ``ctx.user_id`` (see the module docstring).

    ``options.class_id`` must be one of the owner's classes (else :class:`NotFoundError`,
    before anything is written) and, for an HTTP import, not archived
    (:class:`ClassArchivedError`). In sync mode
    ``emails_in_file`` is :func:`file_emails` of the whole file (read before the first chunk;
    without it ``rows`` is read into memory to find them). A database outage raises
    :class:`ImportInterruptedError` with the summary of the chunks already committed.

    The chunks are applied one after another (:meth:`RosterImport.apply`); a caller that
    wants a chunk's planning to overlap the previous chunk's write drives the same steps
    itself (``class_cli.import_pipeline``).
    """
    if options.sync and emails_in_file is None:
        rows = list(rows)
        emails_in_file = file_emails(rows)
    run = RosterImport(rt, ctx, options, on_progress, emails_in_file=emails_in_file)
    await run.start()
    records = iter(rows)
    while (chunk := run.next_chunk(records)) is not None:
        try:
            await run.apply(chunk)
        except DependencyUnavailableError as exc:
            raise ImportInterruptedError(run.summary) from exc
    return run.summary


@frozen
class Chunk:
    """Records of the file read and validated together; applied in one transaction."""

    checked: list[_Valid | RowError]
    line: int  # physical line of its last record (0: none)

    @property
    def valid(self) -> list[_Valid]:
        return [c for c in self.checked if isinstance(c, _Valid)]


class RosterImport:
    """One import's steps, each plain and sequential: :meth:`start`, then per chunk
    :meth:`next_chunk` and :meth:`apply` (= :meth:`plan`, :meth:`write` and commit in one
    unit of work, then :meth:`committed`). ``summary`` covers the committed chunks.

    A chunk may be planned before the previous one has committed (``plan(…, after=)``: that
    plan's emails, external ids and classes count as taken); it must then be written only
    after the previous one committed, and planned again (:meth:`apply`) if that one failed.
    """

    def __init__(
        self,
        rt: Runtime,
        ctx: RequestContext,
        options: ImportOptions = ImportOptions(),
        on_progress: Progress | None = None,
        *,
        emails_in_file: Collection[str] | None = None,
    ) -> None:
        if options.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if options.sync and emails_in_file is None:
            raise ValueError("a sync import needs the file's emails")
        self.rt, self.ctx, self.options, self.on_progress = rt, ctx, options, on_progress
        self.summary = ImportSummary()
        self._state = _State()
        if options.sync:
            self._state.file_emails = frozenset(emails_in_file or ())
        else:
            self._state.synced = True
        self._started = False

    async def start(self) -> None:
        """Check ``options.class_id`` (before anything is written)."""
        state, options = self._state, self.options
        self._started = True
        if options.class_id is None:
            return
        async with self.rt.read() as uow:
            state.fixed_class = await uow.classes.get(self.ctx.user_id, options.class_id)
        if state.fixed_class is None:
            raise NotFoundError("Class", options.class_id)
        if options.source is ImportSource.HTTP and state.fixed_class.is_archived:
            # The route names the class: refused whole (§9.4). The CLI's --class-id rows are
            # judged one by one instead (§9.2: a member's row is applied, a joining student's
            # is a row error CLASS_ARCHIVED).
            raise ClassArchivedError()

    def next_chunk(self, records: Iterator[RosterRow]) -> Chunk | None:
        """The next ``chunk_size`` records, validated; ``None`` when there are no more (a
        sync import of an empty file still has one empty chunk: its removals)."""
        chunk = self.check(itertools.islice(records, self.options.chunk_size))
        if not chunk.checked and self._state.synced:
            return None
        return chunk

    @staticmethod
    def check(rows: Iterable[RosterRow]) -> Chunk:
        """``rows`` validated as one chunk (at most ``chunk_size`` of them)."""
        checked: list[_Valid | RowError] = []
        line = 0
        for row in rows:
            checked.append(validate_row(row))
            line = row.line
        return Chunk(checked, line)

    async def apply(self, chunk: Chunk) -> ChunkPlan:
        """Plan the chunk and (unless a dry run) write and commit it in one transaction;
        a chunk that lost a race is planned again."""
        assert self._started, "start() first"
        rt, options = self.rt, self.options
        retry_with: dict[str, SchoolClass] = {}
        attempt = 0
        while True:
            attempt += 1
            notes: list[TeacherNotification] = []
            plan: ChunkPlan | None = None
            try:
                async with rt.uow() as uow:
                    plan = await self.plan(uow, chunk, new_classes=retry_with)
                    if not options.dry_run:
                        notes = await self.write(uow, plan)
                        await uow.commit()
            except ConflictError as exc:
                # An email was taken concurrently: nothing of this chunk was written; plan it
                # again (classes it creates keep their ids, as the summary names them once).
                # A refused sync is an answer, not a race.
                if isinstance(exc, ImportThresholdExceededError) or attempt >= _CONFLICT_RETRIES:
                    raise
                retry_with = plan.new_classes if plan is not None else retry_with
                continue
            self.committed(chunk, plan, notes)
            return plan

    async def plan(
        self,
        uow: UnitOfWork,
        chunk: Chunk,
        *,
        after: ChunkPlan | None = None,
        new_classes: dict[str, SchoolClass] | None = None,
    ) -> ChunkPlan:
        """Decide what the chunk does (reads and locks only, in ``uow``). ``after``: the
        previous chunk's plan when that one is not committed yet (see the class)."""
        state, ctx = self._state, self.ctx
        plan = ChunkPlan(
            self.rt.now(),
            new_classes=dict(new_classes or {}),
            actor=import_actor(state.import_id),
            after=after,
        )
        if not state.synced and after is None:
            await _plan_removals(uow, ctx, state, plan, self.options)
        await _plan(uow, ctx, state, chunk.valid, plan)
        if self.options.dry_run:
            plan.items.clear()  # nothing is recorded: the summary has no import_id
        return plan

    async def write(self, uow: UnitOfWork, plan: ChunkPlan) -> list[TeacherNotification]:
        """Write the plan, the import's record and items and the events in ``uow`` (its
        caller commits). Raises :class:`ConflictError` when a class the plan borrowed from
        the previous chunk is gone or archived: plan the chunk again."""
        plan.after = None  # the previous chunk has committed: the import's state has it
        if plan.borrowed:
            fresh = await uow.classes.get_many(self.ctx.user_id, plan.borrowed, lock=True)
            if len(fresh) < len(plan.borrowed) or any(c.is_archived for c in fresh.values()):
                raise ConflictError("a class created by this import changed meanwhile")
        await _write(uow, plan)
        await _record_import(uow, self.ctx, self._state, plan, self.options)
        return uow.record(plan.events, self.ctx.correlation_id, plan.now)

    def committed(
        self, chunk: Chunk, plan: ChunkPlan, notes: Sequence[TeacherNotification] = ()
    ) -> None:
        """The chunk is committed (or, on a dry run, planned): remember what it decided,
        count it, publish its notifications, report progress."""
        state = self._state
        plan.after = None
        state.emails.update(plan.emails)
        state.external_ids.update(plan.external_ids)
        state.classes.update(plan.new_classes)
        state.synced = True
        state.recorded = state.recorded or (plan.changed and not self.options.dry_run)
        self.rt.notifier.publish(list(notes))
        _done(self.summary, chunk.checked, chunk.line, plan, self.on_progress)


def _done(
    summary: ImportSummary,
    checked: Sequence[_Valid | RowError],
    line: int,
    plan: ChunkPlan,
    on_progress: Progress | None,
) -> None:
    summary.classes_created.extend(c.name for c in plan.new_classes.values())
    bad = sorted([c for c in checked if isinstance(c, RowError)] + plan.errors, key=_line)
    room = max(0, MAX_LISTED_ERRORS - len(summary.errors))
    summary.errors.extend(bad[:room])
    summary.errors_not_listed += len(bad) - len(bad[:room])
    summary.failed += len(bad)
    summary.created += len(plan.created)
    summary.updated += len(plan.updated)
    summary.unchanged += plan.unchanged
    summary.removed += len(plan.removed)
    if plan.changed and plan.items:
        summary.import_id = plan.items[0].import_id
    summary.rows += len(checked)
    summary.last_line = line or summary.last_line
    if on_progress is not None:
        on_progress(summary)


def _line(error: RowError) -> int:
    return error.row


async def _plan_removals(
    uow: UnitOfWork,
    ctx: RequestContext,
    state: _State,
    plan: ChunkPlan,
    options: ImportOptions,
) -> None:
    """Sync mode: decide which members leave the class, refusing (before anything is
    written) when they are more than ``max_remove_percent`` of the members counted."""
    cls = state.fixed_class
    assert cls is not None  # ImportOptions refuses sync without a class
    # The class before its students, the order a class deletion takes them in (no deadlock).
    await uow.classes.get_many(ctx.user_id, [cls.id], lock=True)
    members = await uow.students.member_emails(cls.id)
    leaving = [m for m, email in members.items() if email not in state.file_emails]
    if members and 100 * len(leaving) / len(members) > options.max_remove_percent:
        raise ImportThresholdExceededError(len(leaving), len(members), options.max_remove_percent)
    if not leaving:
        return
    # Locked, then checked again: a member removed or changed meanwhile is taken as it is now.
    locked = await uow.students.get_many(ctx.user_id, leaving, lock=True)
    for student_id in sorted(locked):
        student = locked[student_id]
        left = student.update(
            leaving=[cls.id],
            by=ctx.user_id,
            at=plan.now,
            correlation_id=ctx.correlation_id,
            history_by=plan.actor,
        )
        if left is None:
            continue
        plan.removed.append(student)
        plan.collect(student)
        plan.items.append(
            ImportItem(state.import_id, student.id, ImportAction.REMOVED, student.version, cls.id)
        )


async def _record_import(
    uow: UnitOfWork, ctx: RequestContext, state: _State, plan: ChunkPlan, options: ImportOptions
) -> None:
    """The import's record (first chunk that changed something) or its added counts, and
    the chunk's items, in the chunk's transaction."""
    if not plan.changed:
        return
    counts = (len(plan.created), len(plan.updated), len(plan.removed))
    if state.recorded:
        await uow.imports.extend(state.import_id, *counts)
    else:
        record = ImportRecord(
            state.import_id, ctx.user_id, plan.now, options.source, options.class_id, *counts
        )
        await uow.imports.add(record)
    await uow.imports.add_items(plan.items)


async def _plan(
    uow: UnitOfWork, ctx: RequestContext, state: _State, valid: Sequence[_Valid], plan: ChunkPlan
) -> None:
    """Decide, record by record, what the chunk does (reads only)."""
    owner = ctx.user_id
    if plan.new_classes:  # planned again after a conflict: same classes, unless ...
        # ... another writer created one by that name while the names were not held.
        await uow.classes.lock_names(owner)
        for key in await uow.classes.find_by_names(owner, plan.new_classes):
            del plan.new_classes[key]
    for new in plan.new_classes.values():
        # The first attempt's events were rolled back.
        new.announce_created(plan.now, ctx.correlation_id)
        plan.collect(new)
    if state.fixed_class is not None:
        # The class before the students, the order a class deletion takes them in.
        locked = await uow.classes.get_many(owner, [state.fixed_class.id], lock=True)
        # As it is now (archived meanwhile?): the rows' check below uses it.
        state.fixed_class = locked.get(state.fixed_class.id, state.fixed_class)
    # The chunk's class names not seen before, looked up in one statement (not one per name).
    unseen = {
        v.class_name
        for v in valid
        if v.class_name is not None
        and plan.planned_class(v.class_name.casefold(), joined=False) is None
        and v.class_name.casefold() not in state.classes
    }
    looked_up: dict[str, list[SchoolClass]] = {name.casefold(): [] for name in unseen}
    if unseen:
        looked_up.update(await uow.classes.find_by_names(owner, unseen))
        await _hold_new_names(uow, owner, looked_up)
    await _lock_named_classes(uow, owner, state, valid, looked_up)
    # Locked until the chunk commits: an update is applied to the rows as they are then, so
    # that an import never reverts a concurrent API edit (contract §8).
    emails = [v.email for v in valid]
    existing = await uow.students.by_emails(owner, emails, lock=True) if valid else {}
    wanted_ids = {v.external_id for v in valid if v.external_id is not None}
    holders = await uow.students.by_external_ids(owner, wanted_ids) if wanted_ids else {}
    new_ids = iter(uuid4_many(len(valid)))
    for v in valid:
        earlier = plan.earlier_email(state, v.email)
        if earlier is not None and earlier != v.line:
            plan.errors.append(
                RowError(v.line, (f"email: {v.email} already appears on line {earlier}",))
            )
            continue
        student = existing.get(v.email)
        taken = _external_id_taken(state, plan, v, student, holders)
        if taken is not None:
            plan.errors.append(taken)
            continue
        cls: SchoolClass | None = state.fixed_class
        if v.class_name is not None:
            found = await _class_for(uow, ctx, state, plan, v, looked_up)
            if isinstance(found, RowError):
                plan.errors.append(found)
                continue
            cls = found
        if (
            cls is not None
            and cls.is_archived
            and (student is None or cls.id not in student.class_ids)
        ):
            # Joining an archived class is refused (§9.2); a member already stays one.
            plan.errors.append(
                RowError(v.line, (f"class: CLASS_ARCHIVED: the class {cls.name!r} is archived",))
            )
            continue
        plan.emails[v.email] = v.line
        if v.external_id is not None:
            plan.external_ids[v.external_id] = v.line
        if student is None:
            _create(plan, ctx, state, v, cls, next(new_ids))
        else:
            _update(plan, ctx, state, v, cls, student)


async def _hold_new_names(
    uow: UnitOfWork, owner: str, looked_up: dict[str, list[SchoolClass]]
) -> None:
    """Names no class has yet, which the chunk may create classes by: the owner's names are
    held (until the chunk commits) and those names looked up again, so that a class that a
    concurrent import created meanwhile is joined, not created a second time (§7). Nothing is
    locked before this (a chunk naming classes has no fixed class), so a writer holding the
    names never waits for this one."""
    missing = [key for key, found in looked_up.items() if not found]
    if missing:
        await uow.classes.lock_names(owner)
        looked_up.update(await uow.classes.find_by_names(owner, missing))


async def _lock_named_classes(
    uow: UnitOfWork,
    owner: str,
    state: _State,
    valid: Sequence[_Valid],
    looked_up: dict[str, list[SchoolClass]],
) -> None:
    """Share-lock the existing classes the chunk's rows name (before the students, the order
    a class deletion takes them in) and take them as they are now: an archive committed
    meanwhile is seen, and one that comes later waits for this chunk (§9.2)."""
    named = {v.class_name.casefold() for v in valid if v.class_name is not None}
    known = [e for k, e in state.classes.items() if k in named and isinstance(e, SchoolClass)]
    known += [c for found in looked_up.values() for c in found]
    if not known:
        return
    fresh = await uow.classes.get_many(owner, {c.id for c in known}, lock=True)
    for key, entry in state.classes.items():
        if isinstance(entry, SchoolClass) and entry.id in fresh:
            state.classes[key] = fresh[entry.id]
    for key, found in looked_up.items():
        looked_up[key] = [fresh.get(c.id, c) for c in found]


def _external_id_taken(
    state: _State, plan: ChunkPlan, v: _Valid, student: Student | None, holders: dict[str, Student]
) -> RowError | None:
    """A row error when the record's external id is on an earlier line of the file or is
    another student's (§9.1: unique per owner)."""
    if v.external_id is None:
        return None
    earlier = plan.earlier_external_id(state, v.external_id)
    if earlier is not None and earlier != v.line:
        return RowError(
            v.line,
            (f"external_id: DUPLICATE_EXTERNAL_ID: it already appears on line {earlier}",),
        )
    holder = holders.get(v.external_id)
    if holder is not None and (student is None or holder.id != student.id):
        return RowError(
            v.line, ("external_id: DUPLICATE_EXTERNAL_ID: another student has this external id",)
        )
    return None


def _create(
    plan: ChunkPlan,
    ctx: RequestContext,
    state: _State,
    v: _Valid,
    cls: SchoolClass | None,
    student_id: UUID,
) -> None:
    student = Student.create(
        ctx.user_id,
        v.first_name,
        v.last_name,
        legal_full_name=v.legal_full_name,
        email=v.email,
        classes=[cls] if cls is not None else [],
        aliases=v.aliases or (),
        protected_identity=bool(v.protected_identity),
        external_id=v.external_id,
        by=ctx.user_id,
        at=plan.now,
        correlation_id=ctx.correlation_id,
        student_id=student_id,
        announce_joins=False,  # no per-student notifications from an import (§5.2)
        history_by=plan.actor,
    )
    plan.created.append(student)
    plan.collect(student)
    joined = cls.id if cls is not None else None
    plan.items.append(
        ImportItem(state.import_id, student.id, ImportAction.CREATED, student.version, joined)
    )


def _update(
    plan: ChunkPlan,
    ctx: RequestContext,
    state: _State,
    v: _Valid,
    cls: SchoolClass | None,
    student: Student,
) -> None:
    before = StudentImage(
        student.first_name,
        student.last_name,
        student.legal_full_name,
        student.email,
        student.aliases,
        student.protected_identity,
    )
    # An empty cell keeps the stored value; memberships are only ever added.
    change = student.update(
        first_name=v.first_name,
        last_name=v.last_name,
        legal_full_name=v.legal_full_name or UNSET,
        aliases=UNSET if v.aliases is None else v.aliases,
        protected_identity=UNSET if v.protected_identity is None else v.protected_identity,
        external_id=UNSET if v.external_id is None else v.external_id,
        joining=[cls] if cls is not None else [],
        by=ctx.user_id,
        at=plan.now,
        correlation_id=ctx.correlation_id,
        announce_joins=False,  # no per-student notifications from an import (§5.2)
        history_by=plan.actor,
    )
    if change is None:
        plan.unchanged += 1
        return
    plan.memberships.extend((c, student.id) for c in change.added)
    plan.updated.append(student)
    plan.collect(student)
    plan.items.append(
        ImportItem(
            state.import_id,
            student.id,
            ImportAction.UPDATED,
            student.version,
            change.added[0] if change.added else None,
            before if change.fields else None,
        )
    )


async def _class_for(
    uow: UnitOfWork,
    ctx: RequestContext,
    state: _State,
    plan: ChunkPlan,
    v: _Valid,
    looked_up: dict[str, list[SchoolClass]],
) -> SchoolClass | RowError:
    """The owner's class named ``v.class_name`` (trimmed, case-insensitive), or a new one.
    ``looked_up``: the chunk's names already looked up (a name absent there is looked up)."""
    assert v.class_name is not None
    key = v.class_name.casefold()
    entry: _ClassEntry | None = plan.planned_class(key) or state.classes.get(key)
    if entry is None:
        found = looked_up.get(key)
        if found is None:
            found = await uow.classes.find_by_name(ctx.user_id, v.class_name)
        if len(found) > 1:
            entry = state.classes[key] = _Ambiguous(len(found))
        elif found:
            entry = state.classes[key] = found[0]
        elif v.course_code is None:
            return RowError(
                v.line,
                (f"course_code: is required to create the class {v.class_name!r}",),
            )
        else:
            entry = plan.new_classes[key] = _new_class(plan, ctx, v.class_name, v.course_code)
    if isinstance(entry, _Ambiguous):
        return RowError(
            v.line,
            (f"class_name: {entry.count} classes are named {v.class_name!r}; rename all but one",),
        )
    if v.course_code is not None and v.course_code != entry.course_code:
        return RowError(
            v.line,
            (
                f"course_code: the class {entry.name!r} belongs to course {entry.course_code}, "
                f"not {v.course_code}",
            ),
        )
    return entry


def _new_class(plan: ChunkPlan, ctx: RequestContext, name: str, course_code: str) -> SchoolClass:
    cls = SchoolClass.create(
        ctx.user_id, name, course_code, at=plan.now, correlation_id=ctx.correlation_id
    )
    plan.collect(cls)
    return cls


async def _write(uow: UnitOfWork, plan: ChunkPlan) -> None:
    for cls in plan.new_classes.values():
        await uow.classes.add(cls)
    if plan.created:
        await uow.students.add_many(plan.created)
    if plan.updated:
        await uow.students.update_many(plan.updated)
    if plan.memberships:
        await uow.students.add_memberships(plan.memberships)
    if plan.removed:
        await uow.students.update_many(plan.removed)
        leaving = [(c, s.id) for s in plan.removed for c in _left(plan, s)]
        await uow.students.remove_memberships(leaving)
    await uow.history.add(plan.history)


def _left(plan: ChunkPlan, student: Student) -> list[UUID]:
    return [
        i.class_id
        for i in plan.items
        if i.student_id == student.id and i.action is ImportAction.REMOVED and i.class_id
    ]


async def import_roster(
    rt: Runtime,
    ctx: RequestContext,
    class_id: UUID,
    rows: Iterable[RosterRow],
    *,
    dry_run: bool = False,
    sync: bool = False,
    max_remove_percent: float = DEFAULT_MAX_REMOVE_PERCENT,
    emails_in_file: Collection[str] | None = None,
) -> ImportSummary:
    """The HTTP roster import (§9.4): the owner's class, every record in ONE transaction (a
    database failure applies nothing), recorded with source ``http``. The file must not have
    the class columns (the caller refuses them: they name a class, the route has one)."""
    options = ImportOptions(
        class_id=class_id,
        dry_run=dry_run,
        chunk_size=ONE_TRANSACTION,
        sync=sync,
        max_remove_percent=max_remove_percent,
        source=ImportSource.HTTP,
    )
    return await import_students(rt, ctx, rows, options, emails_in_file=emails_in_file)

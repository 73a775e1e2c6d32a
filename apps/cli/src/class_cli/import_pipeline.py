"""The roster import of ``class-admin import students``, two chunks deep.

The core's import (:class:`class_core.use_cases.imports.RosterImport`) is a sequence of plain
steps; :func:`class_core.use_cases.imports.import_students` runs them one chunk after
another. A large file spends about half its time with this process waiting for PostgreSQL
(the chunk's ``COPY``s, index updates and commit) and the other half in Python (reading,
validating and planning the next chunk, building its rows and events) with PostgreSQL idle.
Here the two overlap, on two connections: while chunk N is written and committed (a task),
chunk N+1 is read, validated and planned (its reads and locks in its own transaction, with
chunk N's emails, external ids and new classes counted as taken); chunk N+1 is written only
once chunk N has committed, so the committed chunks are always the first ones of the file
and the summary and the import's history stay exact after an interruption. When chunk N
fails, chunk N+1's transaction is rolled back unwritten: a lost race is replanned one chunk
at a time (the core's own retry), an outage ends the import with the committed chunks'
summary. Measured in docs/performance.md ("Roster import: overlap and memory").

Dry runs write nothing and gain nothing from this; they run the core's sequential loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Collection, Iterable, Iterator
from contextlib import AsyncExitStack

from class_core.errors import ConflictError, DependencyUnavailableError
from class_core.ports import UnitOfWork
from class_core.runtime import RequestContext, Runtime
from class_core.use_cases.imports import (
    Chunk,
    ChunkPlan,
    ImportInterruptedError,
    ImportOptions,
    ImportSummary,
    Progress,
    RosterImport,
    RosterRow,
    import_students,
)

# Records validated between two turns of the event loop while the previous chunk is written
# (so that its COPY keeps being fed): a few milliseconds of Python each.
_SLICE = 250


class _Ahead:
    """A chunk planned in its own unit of work (open: its reads and locks), not written."""

    def __init__(self, chunk: Chunk) -> None:
        self.chunk = chunk
        self.stack = AsyncExitStack()
        self.plan: ChunkPlan | None = None

    async def open(self, run: RosterImport, after: ChunkPlan | None) -> UnitOfWork:
        uow = await self.stack.enter_async_context(run.rt.uow())
        self.plan = await run.plan(uow, self.chunk, after=after)
        return uow

    async def abandon(self) -> None:
        """Roll back, unwritten (also when the database is gone)."""
        with contextlib.suppress(Exception):
            await self.stack.aclose()


async def _write(run: RosterImport, ahead: _Ahead, uow: UnitOfWork) -> None:
    """Write and commit a planned chunk, then count it (the summary is what committed)."""
    assert ahead.plan is not None
    async with ahead.stack:
        notes = await run.write(uow, ahead.plan)
        await uow.commit()
    run.committed(ahead.chunk, ahead.plan, notes)


async def _committed(task: asyncio.Task[None]) -> bool:
    """Whether the chunk of ``task`` committed; ``False`` when it lost a race (nothing of it
    was written); any other failure is raised."""
    try:
        await task
    except ConflictError:
        return False
    return True


async def import_students_overlapped(
    rt: Runtime,
    ctx: RequestContext,
    rows: Iterable[RosterRow],
    options: ImportOptions = ImportOptions(),
    on_progress: Progress | None = None,
    *,
    emails_in_file: Collection[str] | None = None,
) -> ImportSummary:
    """:func:`~class_core.use_cases.imports.import_students` with chunk N+1 planned while
    chunk N is written (see the module docstring): the same outcome, summary and errors."""
    if options.dry_run:
        return await import_students(
            rt, ctx, rows, options, on_progress, emails_in_file=emails_in_file
        )
    run = RosterImport(rt, ctx, options, on_progress, emails_in_file=emails_in_file)
    await run.start()
    records = iter(rows)
    writing: tuple[asyncio.Task[None], _Ahead] | None = None  # the chunk being written
    ahead: _Ahead | None = None  # the chunk planned meanwhile
    try:
        # The first chunk alone: it decides a sync import's removals (or is refused).
        first = run.next_chunk(records)
        if first is None:
            return run.summary
        await run.apply(first)
        while (chunk := await _next_chunk(run, records)) is not None:
            ahead = _Ahead(chunk)
            uow = await ahead.open(run, writing[1].plan if writing is not None else None)
            if writing is not None:
                task, previous = writing
                writing = None
                if not await _committed(task):
                    # The previous chunk lost a race: this plan counted on it. Both are
                    # applied again, one at a time (the core's retry).
                    await ahead.abandon()
                    ahead = None
                    await run.apply(previous.chunk)
                    await run.apply(chunk)
                    continue
            writing = (asyncio.create_task(_write(run, ahead, uow)), ahead)
            ahead = None
        if writing is not None:
            task, previous = writing
            writing = None
            if not await _committed(task):
                await run.apply(previous.chunk)
    except DependencyUnavailableError as exc:
        if writing is not None:  # committed before the failure surfaced? then it counts
            with contextlib.suppress(Exception):
                await writing[0]
            writing = None
        raise ImportInterruptedError(run.summary) from exc
    finally:
        if ahead is not None:
            await ahead.abandon()
        if writing is not None:
            writing[0].cancel()
            with contextlib.suppress(BaseException):
                await writing[0]
    return run.summary


async def _next_chunk(run: RosterImport, records: Iterator[RosterRow]) -> Chunk | None:
    """The next chunk, validated in slices with a turn of the event loop between them (the
    chunk being written keeps going meanwhile); ``None`` at the end of the file."""
    pieces: list[Chunk] = []
    left = run.options.chunk_size
    while left > 0:
        piece = run.check(itertools.islice(records, min(_SLICE, left)))
        if not piece.checked:
            break
        pieces.append(piece)
        left -= len(piece.checked)
        await asyncio.sleep(0)
    if not pieces:
        return None
    return Chunk([c for p in pieces for c in p.checked], pieces[-1].line)

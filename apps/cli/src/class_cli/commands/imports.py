"""``class-admin import students FILE``: a roster import through the core's import use case
(the CSV reading, shared with the HTTP import, is :mod:`class_runtime.roster_csv`)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from class_cli.gc_tuning import fewer_collections
from class_cli.import_pipeline import import_students_overlapped
from class_cli.runner import (
    OWNER_FLAGS,
    ExitCode,
    fail,
    message,
    output,
    output_json,
    run,
    settings_of,
    user_id,
)
from class_cli.state import state_of
from class_cli.views import import_summary_view
from class_core.runtime import RequestContext
from class_core.use_cases.imports import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_REMOVE_PERCENT,
    ImportInterruptedError,
    ImportOptions,
    ImportSummary,
    file_emails,
)
from class_core.use_cases.imports import Progress as ProgressCallback
from class_runtime.roster_csv import (
    MAX_BYTES_VARIABLE,
    RosterColumnsError,
    RosterFile,
    RosterFileError,
    allow_large_cells,
    open_roster,
)

app = typer.Typer(help="Import data from files.", no_args_is_help=True)

EXAMPLE = "Example: class-admin import students roster.csv --owner teacher-1 --dry-run --json"
STDIN = "-"
STDIN_NAME = "standard input"
_BLOCK = 1 << 20


class Encoding(StrEnum):
    """The text encodings a roster file may be in (``--encoding``)."""

    UTF_8 = "utf-8"
    CP1252 = "cp1252"
    LATIN_1 = "latin-1"


@app.command(epilog=EXAMPLE)
def students(
    ctx: typer.Context,
    file: Path = typer.Argument(
        ...,
        help="CSV with a header: first_name, last_name, email [, legal_full_name] "
        "[, aliases (a|b)] [, protected_identity] [, class_name, course_code]; - reads "
        "standard input.",
        show_default=False,
    ),
    owner: str = typer.Option(
        ...,
        "--owner",
        "--as",
        help="The teacher who owns the students. --as is the same option.",
    ),
    encoding: Encoding = typer.Option(
        Encoding.UTF_8,
        "--encoding",
        help="The file's text encoding: utf-8 (with or without BOM), or cp1252 / latin-1 "
        "(plain 'CSV' from spreadsheet programs on Windows).",
    ),
    class_id: UUID | None = typer.Option(
        None, "--class-id", help="Put every student in this class of the owner's."
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Report what would be created, updated or unchanged; write nothing.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    chunk_size: int = typer.Option(
        DEFAULT_CHUNK_SIZE, "--chunk-size", min=1, max=100_000, help="Records per transaction."
    ),
    sync: bool = typer.Option(
        False,
        "--sync",
        help="Also remove from the --class-id class its members whose email is in no row "
        "(the students stay). Needs --class-id.",
    ),
    max_remove_percent: float = typer.Option(
        DEFAULT_MAX_REMOVE_PERCENT,
        "--max-remove-percent",
        min=0,
        max=100,
        help="With --sync: refuse (exit 3, nothing written) when more than this percentage "
        "of the class's members with an email would be removed.",
    ),
) -> None:
    """Import students from a roster CSV, matched by email per owner.

    New emails are created; known students are updated when their names
    differ or they join a class; the others are left unchanged.

    Exit codes:
    0  every record imported
    1  some records failed (the others were imported; nothing with --dry-run),
       or required columns are missing
    2  unusable file or flags
    3  --class-id is not one of the owner's classes, or --sync would remove more
       than --max-remove-percent of the class (nothing written)
    4  database unreachable (the records already applied are reported)
    """
    owner = user_id(owner, OWNER_FLAGS)
    if sync and class_id is None:
        fail("--sync needs --class-id (the class to keep in sync)", ExitCode.USAGE)
    state = state_of(ctx)
    max_bytes = settings_of(state).import_max_bytes
    options = ImportOptions(
        class_id=class_id,
        dry_run=dry_run,
        chunk_size=chunk_size,
        sync=sync,
        max_remove_percent=max_remove_percent,
    )
    with _source(file, max_bytes) as (path, name):
        _import(ctx, path, name, owner, encoding, options, as_json)


def _import(
    ctx: typer.Context,
    file: Path,
    name: str,
    owner: str,
    encoding: Encoding,
    options: ImportOptions,
    as_json: bool,
) -> None:
    class_id, dry_run = options.class_id, options.dry_run
    state = state_of(ctx)
    max_bytes = settings_of(state).import_max_bytes
    try:
        roster = open_roster(file, max_bytes, encoding.value, name)
    except RosterFileError as exc:
        fail(str(exc), ExitCode.USAGE)
    except RosterColumnsError as exc:
        fail(str(exc), ExitCode.FAILED)
    if class_id is not None and roster.class_columns:
        fail(
            f"--class-id cannot be combined with the file's {' and '.join(roster.class_columns)} "
            "column(s)",
            ExitCode.USAGE,
        )
    allow_large_cells(max_bytes)
    # Sync mode needs every email of the file before the first chunk: one more streamed pass.
    emails = file_emails(roster.rows()) if options.sync else None

    async def work() -> ImportSummary | ImportInterruptedError:
        with _progress(roster, show=not as_json and sys.stderr.isatty()) as on_progress:
            async with state.runtime() as (rt, _):
                try:
                    return await import_students_overlapped(
                        rt,
                        RequestContext(owner),
                        roster.rows(),
                        options,
                        on_progress,
                        emails_in_file=emails,
                    )
                except ImportInterruptedError as exc:
                    return exc

    with fewer_collections():
        outcome = run(state, work())
    if isinstance(outcome, ImportInterruptedError):
        _print_summary(outcome.summary, as_json)
        s = outcome.summary
        fail(
            f"the database became unreachable; {s.rows} record(s) up to line {s.last_line} were "
            f"applied ({s.created} created, {s.updated} updated, {s.unchanged} unchanged, "
            f"{s.failed} failed); re-run the same file to import the rest",
            ExitCode.UNAVAILABLE,
        )
    summary = outcome
    _print_summary(summary, as_json)
    for name in summary.classes_created:
        message(f"{'would create' if dry_run else 'created'} class {name!r}")
    if dry_run:
        message("dry run: nothing was written")
    if summary.failed:
        raise typer.Exit(int(ExitCode.FAILED))


@contextmanager
def _source(file: Path, max_bytes: int) -> Iterator[tuple[Path, str]]:
    """The roster as a file and the name messages use for it. ``-`` is standard input,
    spooled to a private temporary file (the roster is read twice: checked, then imported)
    and refused past ``max_bytes`` like a file."""
    if str(file) != STDIN:
        yield file, str(file)
        return
    fd, spool = tempfile.mkstemp(prefix="class-admin-import-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as out:
            if _copy_bounded(sys.stdin.buffer, out, max_bytes) > max_bytes:
                fail(
                    f"{STDIN_NAME} is more than {MAX_BYTES_VARIABLE}={max_bytes} bytes",
                    ExitCode.USAGE,
                )
        yield Path(spool), STDIN_NAME
    finally:
        Path(spool).unlink(missing_ok=True)


def _copy_bounded(source: BinaryIO, target: BinaryIO, max_bytes: int) -> int:
    """Copy until the end or just past ``max_bytes``; returns the bytes copied."""
    copied = 0
    while copied <= max_bytes and (block := source.read(_BLOCK)):
        target.write(block)
        copied += len(block)
    return copied


def _print_summary(summary: ImportSummary, as_json: bool) -> None:
    if as_json:
        output_json(import_summary_view(summary))
        return
    output(
        f"created {summary.created}, updated {summary.updated}, "
        f"unchanged {summary.unchanged}, removed {summary.removed}, failed {summary.failed}"
    )
    if summary.import_id is not None:
        output(f"import {summary.import_id} (undo: class-admin imports undo {summary.import_id})")
    for error in summary.errors:
        for text in error.errors:
            output(f"line {error.row}: {text}")
    if summary.errors_not_listed:
        output(f"... and {summary.errors_not_listed} more failed record(s), not listed")


@contextmanager
def _progress(roster: RosterFile, *, show: bool) -> Iterator[ProgressCallback | None]:
    """A Rich progress bar on stderr (by physical line) when asked for, else nothing."""
    if not show:
        with nullcontext():
            yield None
        return
    bar = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("lines"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task("import", total=roster.lines)

        def advance(summary: ImportSummary) -> None:
            bar.update(task, completed=summary.last_line)

        yield advance


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="import")

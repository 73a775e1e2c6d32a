"""Roster files (CSV): ``class-admin import students`` and ``POST
/v1/classes/{id}/roster/import`` read them through this one module (contract §7, §9.4).

A header row, then one student per record. Columns are matched case-insensitively, in any
order; unknown columns are ignored. UTF-8 with or without a byte-order mark by default, or
cp1252 / latin-1 (``--encoding``: what spreadsheet programs on Windows save as plain "CSV");
the delimiter is ``,`` or ``;``, whichever the header line uses more. Cells are handed to the
core as given (validation and normalisation happen there). Each record carries the physical
line where it starts, so that an error points at what an editor shows even after a quoted
multi-line cell.

The file is checked completely (size, encoding, header) before the first record is handed out,
so that an unreadable file is refused before anything is written; records are then streamed.
A roster is a path (:func:`open_roster`) or a seekable binary stream such as a spooled
request body (:func:`open_roster_stream`); the columns are the core's
(:data:`~class_core.use_cases.imports.REQUIRED_COLUMNS` and ``OPTIONAL_COLUMNS``), each a
field of :class:`~class_core.use_cases.imports.RosterRow`.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from attrs import frozen

from class_core.use_cases.imports import (
    CLASS_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    RosterRow,
)

ENCODING = "utf-8-sig"
ENCODINGS: dict[str, tuple[str, str]] = {
    # --encoding → (Python codec, the name used in messages)
    "utf-8": ("utf-8-sig", "UTF-8"),  # a byte-order mark is allowed and skipped
    "cp1252": ("cp1252", "cp1252"),
    "latin-1": ("latin-1", "latin-1"),
}
_BLOCK = 1 << 20
MAX_BYTES_VARIABLE = "CLASS_MANAGEMENT_SERVICE_IMPORT_MAX_BYTES"


class RosterFileError(Exception):
    """The file cannot be read as a roster at all (exit 2)."""


class RosterColumnsError(Exception):
    """The header lacks required columns or is ambiguous (exit 1)."""


RosterSource = Path | BinaryIO
"""A roster file's path, or a seekable binary stream holding it (read from the start)."""


@frozen
class RosterFile:
    path: RosterSource
    delimiter: str
    columns: dict[str, int]  # known column → cell index
    width: int  # cells in the header
    lines: int  # physical lines (for progress)
    size: int
    codec: str = ENCODING

    @property
    def class_columns(self) -> list[str]:
        return [c for c in CLASS_COLUMNS if c in self.columns]

    def rows(self) -> Iterator[RosterRow]:
        """The records after the header, with the physical line where each starts; blank
        records are skipped."""
        columns = list(self.columns.items())  # column name (a RosterRow field) → cell index
        width = self.width
        with _open_text(self.path, self.codec) as f:
            reader = csv.reader(f, delimiter=self.delimiter)
            _header(reader)
            while True:
                start = reader.line_num + 1
                cells = next(reader, None)
                if cells is None:
                    return
                n = len(cells)
                if n == 0 or (not cells[0].strip() and not any(c.strip() for c in cells)):
                    continue
                problems: tuple[str, ...] = ()
                if n > width:
                    problems = (
                        f"record: it has {n} cells but the header has {width} "
                        "(a delimiter inside an unquoted cell?)",
                    )
                    cells = cells[:width]
                elif n < width:
                    cells = cells + [""] * (width - n)
                yield RosterRow(
                    line=start,
                    read_errors=problems,
                    **{name: cells[index] for name, index in columns},
                )


def open_roster(
    path: Path, max_bytes: int, encoding: str = "utf-8", name: str | None = None
) -> RosterFile:
    """Check the whole file (size, ``encoding``: a key of :data:`ENCODINGS`) and read its
    header; ``name`` is how messages call the file (default: its path).

    Raises :class:`RosterFileError` (unreadable, too large, not valid in the encoding) or
    :class:`RosterColumnsError` (required columns missing, a column twice).
    """
    shown = name or str(path)
    try:
        size = os.stat(path).st_size
        if not path.is_file():
            raise RosterFileError(f"cannot read {shown}: not a regular file")
    except OSError as exc:
        raise RosterFileError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    return _open(path, size, max_bytes, encoding, shown)


def open_roster_stream(
    stream: BinaryIO, max_bytes: int, encoding: str = "utf-8", name: str = "the roster"
) -> RosterFile:
    """:func:`open_roster` of a seekable binary stream (e.g. a spooled HTTP body); the
    stream must stay open while the records are read."""
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    return _open(stream, size, max_bytes, encoding, name)


def _open(path: RosterSource, size: int, max_bytes: int, encoding: str, shown: str) -> RosterFile:
    codec, label = ENCODINGS[encoding]
    try:
        if size > max_bytes:
            raise RosterFileError(_too_large(shown, size, max_bytes))
        lines = _check_text(path, max_bytes, codec, label, shown)
        with _open_text(path, codec) as f:
            first_line = ""
            for line in f:  # the header is the first non-blank line
                if line.strip():
                    first_line = line
                    break
            f.seek(0)
            delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
            header = _header(csv.reader(f, delimiter=delimiter))
    except OSError as exc:
        raise RosterFileError(f"cannot read {shown}: {exc.strerror or exc}") from exc
    except csv.Error as exc:
        raise RosterFileError(f"cannot read {shown}: {exc}") from exc
    columns: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = cell.strip().lower()
        if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
            continue
        if name in columns:
            raise RosterColumnsError(f"{shown}: the column {name} appears twice in the header")
        columns[name] = index
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise RosterColumnsError(
            f"{shown}: required column(s) missing: {', '.join(missing)} "
            f"(the header needs {', '.join(REQUIRED_COLUMNS)})"
        )
    if "course_code" in columns and "class_name" not in columns:
        raise RosterColumnsError(f"{shown}: the course_code column needs a class_name column")
    return RosterFile(path, delimiter, columns, len(header), lines, size, codec)


def _too_large(shown: str, size: int, max_bytes: int) -> str:
    return f"{shown} is {size} bytes, more than {MAX_BYTES_VARIABLE}={max_bytes}"


@contextmanager
def _open_text(path: RosterSource, codec: str = ENCODING) -> Iterator[TextIO]:
    if isinstance(path, Path):
        with open(path, encoding=codec, newline="") as f:
            yield f
        return
    path.seek(0)
    wrapper = io.TextIOWrapper(path, encoding=codec, newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()  # the stream stays open for the next reading


@contextmanager
def _open_binary(path: RosterSource) -> Iterator[BinaryIO]:
    if isinstance(path, Path):
        with open(path, "rb") as f:
            yield f
        return
    path.seek(0)
    yield path


def _header(reader: Iterator[list[str]]) -> list[str]:
    """The first non-blank record."""
    for cells in reader:
        if any(c.strip() for c in cells):
            return cells
    return []


def _check_text(path: RosterSource, max_bytes: int, codec: str, label: str, shown: str) -> int:
    """Decode the whole file once; returns its number of physical lines."""
    decoder = codecs.getincrementaldecoder(codec)()
    hint = (
        "save it as CSV UTF-8, or name its encoding with --encoding cp1252 or latin-1"
        if label == "UTF-8"
        else "name its encoding with --encoding"
    )
    newlines = 0
    read = 0
    last = b""
    with _open_binary(path) as f:
        while block := f.read(_BLOCK):
            read += len(block)
            if read > max_bytes:  # it grew since it was measured
                raise RosterFileError(_too_large(shown, read, max_bytes))
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                line = newlines + 1 + block[: max(exc.start, 0)].count(b"\n")
                raise RosterFileError(f"{shown} is not {label} text (line {line}): {hint}") from exc
            newlines += block.count(b"\n")
            last = block[-1:]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise RosterFileError(
                f"{shown} is not {label} text (it ends mid-character): {hint}"
            ) from exc
    return newlines + (1 if last not in (b"", b"\n") else 0)


def allow_large_cells(max_bytes: int) -> None:
    """Let the csv module read cells up to the file size limit (they are then refused by
    validation as a row error rather than aborting the whole file)."""
    csv.field_size_limit(max(csv.field_size_limit(), min(max_bytes, sys.maxsize)))

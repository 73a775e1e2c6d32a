"""Roster files (CSV) for ``class-admin import students``.

A header row, then one student per record. Columns are matched case-insensitively, in any
order; unknown columns are ignored. UTF-8 with or without a byte-order mark by default, or
cp1252 / latin-1 (``--encoding``: what spreadsheet programs on Windows save as plain "CSV");
the delimiter is ``,`` or ``;``, whichever the header line uses more. Cells are handed to the
core as given (validation and normalisation happen there). Each record carries the physical
line where it starts, so that an error points at what an editor shows even after a quoted
multi-line cell.

The file is checked completely (size, encoding, header) before the first record is handed out,
so that an unreadable file is refused before anything is written; records are then streamed.
"""

from __future__ import annotations

import codecs
import csv
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

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


@frozen
class RosterFile:
    path: Path
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
        col = self.columns
        first, last, email = col["first_name"], col["last_name"], col["email"]
        legal, cls, course, protect, external = (col.get(name) for name in OPTIONAL_COLUMNS)
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
                    start,
                    cells[first],
                    cells[last],
                    cells[email],
                    cells[legal] if legal is not None else None,
                    cells[cls] if cls is not None else None,
                    cells[course] if course is not None else None,
                    problems,
                    protected_identity=cells[protect] if protect is not None else None,
                    external_id=cells[external] if external is not None else None,
                )


def open_roster(
    path: Path, max_bytes: int, encoding: str = "utf-8", name: str | None = None
) -> RosterFile:
    """Check the whole file (size, ``encoding``: a key of :data:`ENCODINGS`) and read its
    header; ``name`` is how messages call the file (default: its path).

    Raises :class:`RosterFileError` (unreadable, too large, not valid in the encoding) or
    :class:`RosterColumnsError` (required columns missing, a column twice).
    """
    codec, label = ENCODINGS[encoding]
    shown = name or str(path)
    try:
        size = os.stat(path).st_size
        if not path.is_file():
            raise RosterFileError(f"cannot read {shown}: not a regular file")
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


def _open_text(path: Path, codec: str = ENCODING) -> TextIO:
    return open(path, encoding=codec, newline="")


def _header(reader: Iterator[list[str]]) -> list[str]:
    """The first non-blank record."""
    for cells in reader:
        if any(c.strip() for c in cells):
            return cells
    return []


def _check_text(path: Path, max_bytes: int, codec: str, label: str, shown: str) -> int:
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
    with open(path, "rb") as f:
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

"""The SQL adapter's bulk records equal its row mapping (``adapters_sql.mapping``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from adapters_sql.envelopes import ENVELOPES
from adapters_sql.mapping import (
    OUTBOX_RECORD_COLUMNS,
    STUDENT_RECORD_COLUMNS,
    headers_json,
    outbox_record,
    outbox_row,
    student_record,
    student_row,
)
from class_core.events import StudentCreatedV1
from class_core.model import Student

build_outbox_message = ENVELOPES.render  # the outbox adapter's renderer

AT = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)


@pytest.mark.parametrize("legal", [None, "Åsa Maria Öberg"])
def test_a_student_record_is_its_row_in_column_order(legal: str | None) -> None:
    student = Student(uuid4(), "t-1", "Åsa", "Öberg", legal, "a@b.se", AT, AT, class_ids=())
    row = student_row(student)
    assert set(STUDENT_RECORD_COLUMNS) == set(row) - {"aliases"}  # bulk: the default, []
    assert student_record(student) == tuple(row[c] for c in STUDENT_RECORD_COLUMNS)


def test_an_outbox_record_is_its_row_in_column_order_with_json_headers() -> None:
    student = Student(uuid4(), "t-1", "Åsa", "Öberg", None, "a@b.se", AT, AT, class_ids=())
    event = StudentCreatedV1.of(student, (), "t-1", uuid4(), AT)
    message = build_outbox_message(event, event_id=uuid4(), correlation_id=uuid4(), at=AT)
    row = outbox_row(message)
    record = outbox_record(message)
    assert set(OUTBOX_RECORD_COLUMNS) == set(row)
    expected = tuple(row[c] for c in OUTBOX_RECORD_COLUMNS)
    headers = OUTBOX_RECORD_COLUMNS.index("headers")
    assert record[:headers] + record[headers + 1 :] == expected[:headers] + expected[headers + 1 :]
    assert json.loads(record[headers]) == row["headers"]


@pytest.mark.parametrize(
    "headers", [(), (("a", "b"),), (("event_id", 'q"uote\\'), ("ä", "\u2028\x00\n"))]
)
def test_headers_json_is_the_json_of_the_pairs(headers: tuple[tuple[str, str], ...]) -> None:
    assert json.loads(headers_json(headers)) == [list(p) for p in headers]
    assert headers_json(headers) == json.dumps(headers, separators=(",", ":"))

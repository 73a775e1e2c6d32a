"""``ImportHistory`` on SQL: applied roster imports and their per-student items (§9.4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, bindparam, delete, func, insert, select, update

from adapters_sql.bulk import copy_records, use_copy
from adapters_sql.schema import import_items, imports
from adapters_sql.transaction import SqlTransaction
from class_core.import_records import (
    ImportAction,
    ImportItem,
    ImportRecord,
    ImportSource,
    StudentImage,
)
from class_core.model import Page

_i = imports
_INSERT = insert(imports)
_INSERT_ITEMS = insert(import_items)
# Every column but ``seq`` (numbered by the database), in the order of :func:`_item_record`.
_ITEM_COLUMNS = tuple(c.name for c in import_items.columns if c.name != "seq")
_EXTEND = (
    update(imports)
    .where(imports.c.import_id == bindparam("v_import_id"))
    .values(
        created=imports.c.created + bindparam("v_created"),
        updated=imports.c.updated + bindparam("v_updated"),
        removed=imports.c.removed + bindparam("v_removed"),
    )
)
_GET_ANY = select(imports).where(imports.c.import_id == bindparam("import_id"))
_GET = _GET_ANY.where(imports.c.owner_id == bindparam("owner_id"))
_ITEMS = (
    select(*(import_items.c[c] for c in _ITEM_COLUMNS))
    .where(import_items.c.import_id == bindparam("import_id"))
    .order_by(import_items.c.student_id)
)
_UNDONE = (
    update(imports)
    .where(imports.c.import_id == bindparam("v_import_id"))
    .values(undone_at=bindparam("v_at"))
)
_OLD = (
    select(imports.c.import_id)
    .where(imports.c.at < bindparam("before"))
    .order_by(imports.c.at)
    .limit(bindparam("limit"))
)
_DELETE_ITEMS = delete(import_items).where(
    import_items.c.import_id.in_(bindparam("ids", expanding=True))
)
_DELETE = delete(imports).where(imports.c.import_id.in_(bindparam("ids", expanding=True)))


def _record_row(r: ImportRecord) -> dict[str, Any]:
    return {
        "import_id": r.import_id,
        "owner_id": r.owner_id,
        "at": r.at,
        "source": r.source.value,
        "class_id": r.class_id,
        "created": r.created,
        "updated": r.updated,
        "removed": r.removed,
        "undone_at": r.undone_at,
    }


def _record_from(row: RowMapping) -> ImportRecord:
    return ImportRecord(
        import_id=row["import_id"],
        owner_id=row["owner_id"],
        at=row["at"],
        source=ImportSource(row["source"]),
        class_id=row["class_id"],
        created=row["created"],
        updated=row["updated"],
        removed=row["removed"],
        undone_at=row["undone_at"],
    )


def _item_record(i: ImportItem) -> tuple[Any, ...]:
    """The item as a tuple in the order of the table's columns (COPY and INSERT alike)."""
    b = i.before
    return (
        i.import_id,
        i.student_id,
        i.action.value,
        i.version_after,
        i.class_id,
        b is not None,
        b.first_name if b else None,
        b.last_name if b else None,
        b.legal_full_name if b else None,
        b.email if b else None,
        list(b.aliases) if b else None,
        b.protected_identity if b else None,
    )


def _item_from(row: RowMapping) -> ImportItem:
    before = None
    if row["has_before"] and row["before_first_name"] is not None:
        before = StudentImage(
            row["before_first_name"],
            row["before_last_name"],
            row["before_legal_full_name"],
            row["before_email"],
            tuple(row["before_aliases"] or ()),
            bool(row["before_protected_identity"]),
        )
    return ImportItem(
        row["import_id"],
        row["student_id"],
        ImportAction(row["action"]),
        row["version_after"],
        row["class_id"],
        before,
    )


class SqlImportHistory:
    def __init__(self, tx: SqlTransaction) -> None:
        self._tx = tx

    async def add(self, record: ImportRecord) -> None:
        await self._tx.execute(_INSERT, _record_row(record))

    async def extend(self, import_id: UUID, created: int, updated: int, removed: int) -> None:
        params = {
            "v_import_id": import_id,
            "v_created": created,
            "v_updated": updated,
            "v_removed": removed,
        }
        await self._tx.execute(_EXTEND, params)

    async def add_items(self, items: Sequence[ImportItem]) -> None:
        if not items:
            return
        if use_copy(self._tx, len(items)) and not any(i.before for i in items):
            # Created or removed students only: no JSON column to encode for COPY.
            await copy_records(self._tx, import_items, _ITEM_COLUMNS, map(_item_record, items))
            return
        rows = [dict(zip(_ITEM_COLUMNS, _item_record(i), strict=True)) for i in items]
        await self._tx.execute(_INSERT_ITEMS, rows if len(rows) > 1 else rows[0])

    async def get(
        self, owner_id: str | None, import_id: UUID, *, lock: bool = False
    ) -> ImportRecord | None:
        statement = _GET_ANY if owner_id is None else _GET
        if lock and self._tx.is_postgresql:
            statement = statement.with_for_update()
        params: dict[str, Any] = {"import_id": import_id}
        if owner_id is not None:
            params["owner_id"] = owner_id
        result = await self._tx.execute(statement, params)
        row = result.mappings().first()
        return _record_from(row) if row is not None else None

    async def items(self, import_id: UUID) -> list[ImportItem]:
        result = await self._tx.execute(_ITEMS, {"import_id": import_id})
        return [_item_from(r) for r in result.mappings()]

    async def search(self, owner_id: str, limit: int, offset: int) -> Page[ImportRecord]:
        page = (
            select(imports, func.count().over().label("total"))
            .where(imports.c.owner_id == owner_id)
            .order_by(imports.c.at.desc(), imports.c.import_id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = list((await self._tx.execute(page)).mappings())
        if rows:
            total = int(rows[0]["total"])
        else:
            counted = select(func.count()).select_from(imports).where(_i.c.owner_id == owner_id)
            total = int((await self._tx.execute(counted)).scalar_one())
        return Page(tuple(_record_from(r) for r in rows), total, limit, offset)

    async def mark_undone(self, import_id: UUID, at: datetime) -> None:
        await self._tx.execute(_UNDONE, {"v_import_id": import_id, "v_at": at})

    async def purge(self, before: datetime, limit: int) -> int:
        result = await self._tx.execute(_OLD, {"before": before, "limit": limit})
        ids = list(result.scalars())
        if ids:
            # Items first (SQLite may run without foreign-key enforcement: no cascade).
            await self._tx.execute(_DELETE_ITEMS, {"ids": ids})
            await self._tx.execute(_DELETE, {"ids": ids})
        return len(ids)

"""The connection one unit of work runs on; every statement goes through error translation.

Deferred ``BEGIN`` (PostgreSQL, READ COMMITTED): the plain ``SELECT``s a unit of work runs
before its first write or locking read run outside a transaction, and the transaction begins
with that first write. Under READ COMMITTED every statement sees the data committed when it
starts, inside a transaction or not, so the results are the same; a read-only unit of work
then costs one round trip per query instead of ``BEGIN`` + queries + ``ROLLBACK``.

Hot plain reads (:meth:`SqlTransaction.fetch_rows`) on such a connection go straight to the
driver with the statement compiled once: the same SQL on the same connection, so inside the
transaction once it has begun, and the same rows (SQLAlchemy's asyncpg dialect returns the
driver's values for these column types), without the per-execution cost of SQLAlchemy's
execution context, which is larger than the query itself for a primary-key read.

Held first writes (PostgreSQL, while ``BEGIN`` is deferred): a new student's insert (with its
memberships) and then the outbox rows of the same unit of work are held instead of being sent
at once (:meth:`SqlTransaction.hold_student_insert`, :meth:`SqlTransaction.hold_outbox`). If
the unit of work commits with nothing else written, they go to the server as ONE statement
(data-modifying CTEs) in autocommit mode: a single statement is atomic by itself, so this is
the same all-or-nothing change as ``BEGIN`` + inserts + ``COMMIT``, in one round trip instead
of four. Any other statement first sends what is held inside a transaction (:meth:`flush`),
so later statements see it; leaving without commit drops it (nothing reached the server).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import Select, Table
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from adapters_sql.errors import translate_errors
from adapters_sql.held import OUTBOX_INSERT_SQL, HeldStudentInsert, HeldWrites
from adapters_sql.types import UTCDateTime

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]
_UTC = UTCDateTime()
# statement id → (statement, SQL, parameter names in order); module-level statements only.
_DRIVER_SQL: dict[int, tuple[Select[Any], str, tuple[str, ...]]] = {}


def _is_plain_read(statement: Executable) -> bool:
    """A ``SELECT`` that neither writes nor locks (no ``FOR UPDATE``/``FOR SHARE``)."""
    return isinstance(statement, Select) and getattr(statement, "_for_update_arg", None) is None


def _driver_sql(statement: Select[Any], conn: AsyncConnection) -> tuple[str, tuple[str, ...]]:
    entry = _DRIVER_SQL.get(id(statement))
    if entry is None or entry[0] is not statement:
        compiled = statement.compile(dialect=conn.dialect)
        names = compiled.positiontup
        if names is None or any(b.expanding for b in compiled.binds.values()):
            raise ValueError("fetch_rows needs a statement with plain positional parameters")
        entry = _DRIVER_SQL[id(statement)] = (statement, compiled.string, tuple(names))
    return entry[1], entry[2]


@contextmanager
def driver_errors(statement: str) -> Iterator[None]:
    """Translate errors of a statement sent straight to asyncpg like any other: an integrity
    violation takes the shape of a failed INSERT through SQLAlchemy (one translation table)."""
    with translate_errors():
        try:
            yield
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise sa_exc.IntegrityError(statement, None, exc) from exc


def _driver_value(value: Any, dialect: Dialect) -> Any:
    if isinstance(value, datetime):  # what the UTCDateTime columns' bind processing does
        return _UTC.process_bind_param(value, dialect)
    return value


class SqlTransaction:
    """Holds the unit of work's connection (set when the unit of work is entered)."""

    def __init__(self) -> None:
        self._conn: AsyncConnection | None = None
        self._deferred: Any = None  # the DBAPI connection while BEGIN is deferred
        self._driver: Any = None  # the driver (asyncpg) connection, on such connections
        self._held: HeldWrites | None = None
        self.added_outbox = False

    def bind(
        self, conn: AsyncConnection | None, *, deferred: Any = None, driver: Any = None
    ) -> None:
        """Use ``conn``; ``deferred`` is its DBAPI connection, already in autocommit mode,
        when ``BEGIN`` waits for the first write, and ``driver`` the asyncpg connection under
        it (see the module's docstring)."""
        self._conn = conn
        self._deferred = deferred
        self._driver = driver if deferred is not None else None

    @property
    def deferring(self) -> bool:
        """Whether ``BEGIN`` is still deferred (no write or locking read so far)."""
        return self._deferred is not None

    def begin_now(self) -> None:
        """End the deferral: the next statement opens the transaction (no round trip here)."""
        deferred, self._deferred = self._deferred, None
        if deferred is not None:
            deferred.autocommit = False

    def unbind(self) -> None:
        """Forget the connection, put back in transactional mode (it returns to the pool).
        Held writes that were not committed are dropped: they never reached the server."""
        self._held = None
        self.begin_now()
        self._conn = self._driver = None

    @property
    def conn(self) -> AsyncConnection:
        """The connection, inside the unit of work's transaction from its next statement on.
        Callers that may follow held writes call :meth:`flush` first."""
        if self._held is not None:
            raise RuntimeError("held writes must be flushed before using the connection")
        self.begin_now()
        return self._connection

    @property
    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not entered (use `async with uow:`)")
        return self._conn

    @property
    def is_postgresql(self) -> bool:
        return self._connection.dialect.name == "postgresql"

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """A dialect ``INSERT`` (for ``ON CONFLICT``)."""
        if self.is_postgresql:
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def execute(
        self, statement: Executable, params: Params | None = None
    ) -> CursorResult[Any]:
        if self._held is not None:
            await self.flush()
        if self._deferred is not None and not _is_plain_read(statement):
            self.begin_now()
        with translate_errors():
            return await self._connection.execute(statement, params)

    async def executemany_in_transaction(self, sql: str, records: Sequence[Sequence[Any]]) -> bool:
        """Run ``sql`` (PostgreSQL text, positional parameters) once per record through the
        driver when the unit of work's transaction is already open on it; returns ``False``
        (nothing done) otherwise, and the caller goes through :meth:`execute`.

        Values go to asyncpg as they are (JSON as text); datetimes are checked and converted
        as the ``UTCDateTime`` columns do.
        """
        if self._held is not None:
            await self.flush()
        driver = self._driver
        if driver is None or not driver.is_in_transaction():
            return False
        dialect = self._connection.dialect
        args = [tuple(_driver_value(v, dialect) for v in record) for record in records]
        with driver_errors(sql):
            await driver.executemany(sql, args)
        return True

    async def fetch_rows(self, statement: Select[Any], params: Mapping[str, Any]) -> list[Any]:
        """The rows of a plain read, as mappings (``row["column"]``).

        On PostgreSQL at READ COMMITTED: through the driver (see the module's docstring);
        otherwise through SQLAlchemy. Only for statements with plain parameters (no expanding
        ``IN``) whose result columns have distinct names.
        """
        if self._held is not None:
            await self.flush()
        driver = self._driver
        if driver is not None and _is_plain_read(statement):
            conn = self._connection
            sql, names = _driver_sql(statement, conn)
            args = [_driver_value(params[n], conn.dialect) for n in names]
            with translate_errors():
                return list(await driver.fetch(sql, *args))
        return list((await self.execute(statement, params)).mappings())

    # ------------------------------------------------------------------ held first writes

    def hold_student_insert(self, insert: HeldStudentInsert) -> bool:
        """Hold a new student's insert (see the module's docstring); ``False`` when it must be
        executed now (not PostgreSQL, transaction already begun, or something held)."""
        if self._deferred is None or self._driver is None or self._held is not None:
            return False
        self._held = HeldWrites(insert)
        return True

    def hold_outbox(self, records: Sequence[Sequence[Any]]) -> bool:
        """Add outbox rows (``held.OUTBOX_COLUMNS`` order, JSON as text) to the held writes;
        ``False`` when nothing is held (the caller writes them itself)."""
        if self._held is None:
            return False
        self._held.outbox.extend(records)
        return True

    async def flush(self) -> None:
        """Send held writes now, inside the unit of work's transaction (which begins here)."""
        held, self._held = self._held, None
        if held is None:
            return
        self.begin_now()
        await self.execute(held.insert.statement, held.insert.params)
        if held.outbox and not await self.executemany_in_transaction(
            OUTBOX_INSERT_SQL, held.outbox
        ):  # pragma: no cover - the insert above began the transaction
            raise RuntimeError("the unit of work's transaction did not begin")

    async def commit_held(self) -> bool:
        """Commit by sending the held writes as one autocommitted statement. ``False``
        (nothing done) when nothing is held: the caller commits as usual."""
        held, driver = self._held, self._driver
        if held is None or self._deferred is None or driver is None:
            return False
        self._held = None
        sql, args = held.combined()
        dialect = self._connection.dialect
        args = [
            [_driver_value(v, dialect) for v in a]
            if isinstance(a, list)
            else _driver_value(a, dialect)
            for a in args
        ]
        with driver_errors(sql):
            await driver.execute(sql, *args)
        return True

"""The change feed (contract §9.3): which changes a unit of work makes visible, and cursors.

Every change of a class or a student already records a domain event in its unit of work; at
commit the unit of work turns those events into change-log entries with :func:`changes_of`
(one row per object, in the same transaction as the change). The one change without an event
is a class deletion's bump of its members (``ClassDeletedV1`` says it all on Kafka); the
repositories' ``touch`` reports those students to the unit of work.

The log holds ids, operations and versions only (no personal data, §10): the ``data`` of a
page is read live. Cursors are opaque, signed with a key kept by the storage adapter, and
carry when they were issued so that an old one answers 410 (``CHANGES_RETENTION_DAYS``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from attrs import frozen

from class_core.errors import ConfigurationError, CursorExpiredError
from class_core.events import (
    ClassCreatedV1,
    ClassDeletedV1,
    ClassUpdatedV1,
    DomainEvent,
    StudentCreatedV1,
    StudentDeletedV1,
    StudentErasedV1,
    StudentUpdatedV1,
)

MAX_CHANGES_LIMIT = 1000
DEFAULT_CHANGES_LIMIT = 100


class Entity(StrEnum):
    CLASS = "class"
    STUDENT = "student"


class Op(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


ChangeKey = tuple[Entity, UUID]


@frozen
class PendingChange:
    """What a unit of work changed, for the log: the object's owner (``None``: the adapter
    reads it from the object's row) and, for a delete, its last version (an upsert's
    ``version`` is informative only: a page shows the object's version when it is read)."""

    op: Op
    at: datetime
    owner_id: str | None = None
    version: int = 0


@frozen
class LoggedChange:
    """One entry of the log, as read: ``seq`` orders the feed."""

    seq: int
    entity: Entity
    id: UUID
    op: Op
    version: int
    at: datetime


@frozen
class FeedPosition:
    """Where a reader stands: every entry with ``seq`` above ``seq`` is still to come, and so
    is every entry with ``seq`` above ``window_after`` written by a transaction that
    ``snapshot`` did not see (PostgreSQL's ``pg_snapshot`` text; empty where writers commit
    in ``seq`` order: SQLite, in-memory). ``window_after`` is above 0 only when a page ended
    inside that window (docs/architecture.md, "The change feed")."""

    seq: int
    snapshot: str = ""
    window_after: int = 0

    def next(self, last: LoggedChange | None, has_more: bool, snapshot: str) -> FeedPosition:
        """The position after a page of this position's entries (in ``seq`` order) whose last
        entry was ``last`` (``None``: an empty page), when the reader's snapshot, taken before
        the entries were read, was ``snapshot``. ``has_more``: entries may follow ``last``
        (a full page, or a position inside a page: an entry's own cursor)."""
        if last is not None and has_more and last.seq <= self.seq:
            # Cut inside the window: the old snapshot still covers everything unseen.
            return FeedPosition(self.seq, self.snapshot, last.seq)
        return FeedPosition(max(last.seq if last else self.seq, self.seq), snapshot)


@frozen
class FeedPolicy:
    """The change feed's settings (contract §1 ``CHANGES_RETENTION_DAYS``)."""

    retention_days: float = 30.0

    def __attrs_post_init__(self) -> None:
        if not self.retention_days > 0:
            raise ConfigurationError(
                "CLASS_MANAGEMENT_SERVICE_CHANGES_RETENTION_DAYS", "must be a number > 0"
            )

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


def changes_of(events: Iterable[DomainEvent]) -> dict[ChangeKey, PendingChange]:
    """The objects whose representation the events' change altered: the class or student of
    each event, and the classes whose ``student_count`` a student's memberships moved. A
    delete wins over an upsert of the same object (it cannot come back: ids are never
    reused).

    The owner is the event's acting user: every change of a class or student is made by its
    owner (contract §3.1; the sweep's placeholder is created in the class owner's name), so
    the log is written without reading the objects back (which, for an import's chunk, was a
    join over every student). The replay tests compare each owner's feed with that owner's
    lists, so an event acting for someone else would fail them."""
    found: dict[ChangeKey, PendingChange] = {}

    def upsert(entity: Entity, object_id: UUID, at: datetime, owner: str, version: int) -> None:
        current = found.get((entity, object_id))
        if current is None or current.op is Op.UPSERT:
            found[(entity, object_id)] = PendingChange(Op.UPSERT, at, owner, version)

    def deleted(entity: Entity, object_id: UUID, at: datetime, owner: str, version: int) -> None:
        found[(entity, object_id)] = PendingChange(Op.DELETE, at, owner, version)

    def classes(ids: Iterable[UUID], at: datetime, owner: str) -> None:
        for c in ids:  # their student_count moved; their own version did not
            upsert(Entity.CLASS, c, at, owner, 0)

    for e in events:
        if isinstance(e, ClassCreatedV1 | ClassUpdatedV1):
            upsert(Entity.CLASS, e.class_id, e.timestamp, e.user_id, e.aggregate_version)
        elif isinstance(e, ClassDeletedV1):
            deleted(Entity.CLASS, e.class_id, e.timestamp, e.user_id, e.aggregate_version)
        elif isinstance(e, StudentCreatedV1):
            owner = e.created_by_user_id
            upsert(Entity.STUDENT, e.student_id, e.timestamp, owner, e.aggregate_version)
            classes(e.class_ids, e.timestamp, owner)
        elif isinstance(e, StudentUpdatedV1):
            owner = e.updated_by_user_id
            upsert(Entity.STUDENT, e.student_id, e.timestamp, owner, e.aggregate_version)
            classes((*(e.add_class_ids or ()), *(e.remove_class_ids or ())), e.timestamp, owner)
        elif isinstance(e, StudentErasedV1):
            upsert(Entity.STUDENT, e.student_id, e.timestamp, e.user_id, e.aggregate_version)
            classes(e.class_ids, e.timestamp, e.user_id)
        elif isinstance(e, StudentDeletedV1):
            deleted(Entity.STUDENT, e.student_id, e.timestamp, e.user_id, e.aggregate_version)
            classes(e.class_ids, e.timestamp, e.user_id)
    return found


def with_touched(
    changes: dict[ChangeKey, PendingChange], touched: Mapping[UUID, datetime]
) -> dict[ChangeKey, PendingChange]:
    """Add the students whose version went up without an event of their own (a class
    deletion's members); their owner is read by the adapter."""
    for student_id, at in touched.items():
        key = (Entity.STUDENT, student_id)
        if key not in changes:
            changes[key] = PendingChange(Op.UPSERT, at)
    return changes


# --------------------------------------------------------------------------- cursors

_CURSOR_VERSION = "1"
_MAC_BYTES = 16


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: bytes) -> bytes:
    # No module-level cache of keyed HMACs (issue 13): a page signs up to 1,001 cursors,
    # ≈ 1.5 µs each, about 1.5 ms of a page's ≈ 50 ms.
    return hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(position: FeedPosition, issued_at: datetime, key: bytes) -> str:
    """An opaque cursor: ``base64url(payload).base64url(HMAC-SHA256(key, payload)[:16])``."""
    issued = round(issued_at.timestamp() * 1_000_000)  # µs: each answer's cursor is new
    fields = (_CURSOR_VERSION, position.seq, position.snapshot, position.window_after, issued)
    payload = "|".join(map(str, fields)).encode("ascii")
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def decode_cursor(cursor: str, key: bytes, now: datetime, policy: FeedPolicy) -> FeedPosition:
    """The position a cursor of this service stands for; :class:`CursorExpiredError` when it
    was not issued by this service (bad form or signature) or was issued longer ago than the
    retention."""
    try:
        payload_text, mac_text = cursor.split(".")
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, binascii.Error):
        raise CursorExpiredError() from None
    if not hmac.compare_digest(mac, _mac(key, payload)):
        raise CursorExpiredError()
    try:
        version, seq, snapshot, window_after, issued = payload.decode("ascii").split("|")
        position = FeedPosition(int(seq), snapshot, int(window_after))
        issued_at = datetime.fromtimestamp(int(issued) / 1_000_000, UTC)
    except (ValueError, OverflowError, OSError):  # pragma: no cover - signed by us
        raise CursorExpiredError() from None
    if version != _CURSOR_VERSION or issued_at < now - policy.retention:
        raise CursorExpiredError()
    return position

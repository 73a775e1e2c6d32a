"""What every use case runs with: a unit-of-work factory, a clock, a notifier and the policy."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from attrs import define, field, frozen

from class_core.changes import FeedPolicy
from class_core.clock import Clock, SystemClock
from class_core.errors import ConfigurationError
from class_core.ports import NullNotifier, RealtimeNotifier, UnitOfWork, UnitOfWorkFactory


@frozen
class MatchingPolicy:
    """The Phase-1 timeout rule's parameters (contract §1)."""

    timeout_hours: float = 24.0
    confidence_threshold: float = 0.7
    confidence_margin: float = 0.0
    max_deadline_days: float = 14.0

    def __attrs_post_init__(self) -> None:
        if not self.timeout_hours >= 0:
            raise ConfigurationError(
                "CLASS_MANAGEMENT_SERVICE_ASSOCIATION_TIMEOUT_HOURS", "must be a number >= 0"
            )
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ConfigurationError(
                "CLASS_MANAGEMENT_SERVICE_CONFIDENCE_THRESHOLD", "must be between 0 and 1"
            )
        if not 0.0 <= self.confidence_margin <= 1.0:
            raise ConfigurationError(
                "CLASS_MANAGEMENT_SERVICE_CONFIDENCE_MARGIN", "must be between 0 and 1"
            )
        if not self.max_deadline_days > 0:
            raise ConfigurationError(
                "CLASS_MANAGEMENT_SERVICE_MAX_DEADLINE_DAYS", "must be a number > 0"
            )


@frozen
class RequestContext:
    """Who acts and under which correlation id."""

    user_id: str
    correlation_id: UUID = field(factory=uuid4)


@define
class Runtime:
    """``uow`` opens a unit of work (one transaction); ``reads``, when given, opens one for
    use cases that only read and never commit (an adapter may run it without a transaction:
    the SQL adapter's costs one round trip per read instead of three)."""

    uow: UnitOfWorkFactory
    clock: Clock = field(factory=SystemClock)
    notifier: RealtimeNotifier = field(factory=NullNotifier)
    policy: MatchingPolicy = field(factory=MatchingPolicy)
    reads: UnitOfWorkFactory | None = None
    feed: FeedPolicy = field(factory=FeedPolicy)

    def now(self) -> datetime:
        return self.clock.now()

    def read(self) -> UnitOfWork:
        """A unit of work for reading only (``reads``, else an ordinary one)."""
        return (self.reads or self.uow)()

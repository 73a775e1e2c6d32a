"""The core's own configuration: the matching rules and the change feed (contract §1, §9, §11).

Every other variable belongs to the package it configures (``adapters_sql.SqlSettings``,
``adapters_messaging.KafkaSettings`` / ``RedisSettings``, ``class_runtime.AppSettings``);
``class_runtime.Settings`` composes them and reads the whole environment at once.
"""

from __future__ import annotations

from attrs import frozen

from class_core.changes import FeedPolicy
from class_core.env import EnvReader
from class_core.runtime import MatchingPolicy


@frozen(kw_only=True)
class CoreSettings:
    association_timeout_hours: float = 24.0
    confidence_threshold: float = 0.7
    confidence_margin: float = 0.0
    max_deadline_days: float = 14.0
    changes_retention_days: float = 30.0

    @classmethod
    def from_env(cls, reader: EnvReader) -> CoreSettings:
        return cls(
            association_timeout_hours=reader.number("ASSOCIATION_TIMEOUT_HOURS", 24.0, 0.0),
            confidence_threshold=reader.number("CONFIDENCE_THRESHOLD", 0.7, 0.0, 1.0),
            confidence_margin=reader.number("CONFIDENCE_MARGIN", 0.0, 0.0, 1.0),
            max_deadline_days=reader.number("MAX_DEADLINE_DAYS", 14.0, 0.001),
            changes_retention_days=reader.number("CHANGES_RETENTION_DAYS", 30.0, 0.001),
        )

    def matching_policy(self) -> MatchingPolicy:
        return MatchingPolicy(
            self.association_timeout_hours,
            self.confidence_threshold,
            self.confidence_margin,
            self.max_deadline_days,
        )

    def feed_policy(self) -> FeedPolicy:
        return FeedPolicy(self.changes_retention_days)

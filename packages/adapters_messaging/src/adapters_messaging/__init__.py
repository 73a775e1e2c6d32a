"""Messaging adapters: the outbox relay (Kafka or a custom sink), the Redis notifier and the
Kafka consumer of suggestion messages. Talks to storage only through ``class_core`` ports."""

from adapters_messaging.consumer import DLT_SUFFIX, ConsumerStats, SuggestionsConsumer
from adapters_messaging.decoding import (
    DecodedSuggestions,
    UndecodableMessage,
    decode_suggestions,
)
from adapters_messaging.kafka import KafkaSecurity, is_outage, kafka_ping
from adapters_messaging.notifier import NotifierStats, RedisNotifier, channel_for, redis_ping
from adapters_messaging.relay import OutboxRelay, RelayStats, WakeupSource
from adapters_messaging.settings import KafkaSettings, RedisSettings
from adapters_messaging.sink import (
    Delivery,
    DeliveryStatus,
    EventSink,
    KafkaEventSink,
    SinkUnavailableError,
)

__all__ = [
    "DLT_SUFFIX",
    "ConsumerStats",
    "DecodedSuggestions",
    "Delivery",
    "DeliveryStatus",
    "EventSink",
    "KafkaEventSink",
    "KafkaSecurity",
    "KafkaSettings",
    "NotifierStats",
    "OutboxRelay",
    "RedisNotifier",
    "RedisSettings",
    "RelayStats",
    "SinkUnavailableError",
    "SuggestionsConsumer",
    "UndecodableMessage",
    "WakeupSource",
    "channel_for",
    "decode_suggestions",
    "is_outage",
    "kafka_ping",
    "redis_ping",
]

"""Shared Kafka plumbing: connection settings, error classification and a health probe."""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    BrokerResponseError,
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidRequestError,
    InvalidTimestampError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    ProducerClosed,
    RecordListTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    UnsupportedForMessageFormatError,
)
from attrs import frozen

from adapters_messaging.settings import KafkaSettings

# Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")

# Errors about the client's credentials or the cluster as a whole: every event would fail the
# same way, so they are outages (retried without limit), never an event's own fault.
_CLUSTER_WIDE: tuple[type[BaseException], ...] = (
    ClusterAuthorizationFailedError,
    SaslAuthenticationFailed,
    ProducerClosed,
)

# The broker (or the client, before sending) refuses this one message or its topic.
_EVENT_SPECIFIC: tuple[type[BaseException], ...] = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    InvalidTopicError,
    TopicAuthorizationFailedError,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidRequestError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
)


@frozen
class KafkaSecurity:
    """Connection security for real clusters (contract §1 ``KAFKA_SECURITY_PROTOCOL`` etc.).

    ``SSL`` and ``SASL_SSL`` use ``ssl_context`` or, when none is given, the system's default
    trust store.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> KafkaSecurity:
        return cls(
            security_protocol=(settings.kafka_security_protocol or "PLAINTEXT").upper(),
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments shared by aiokafka producers, consumers and clients."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self.ssl_context or ssl.create_default_context()
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = (self.sasl_mechanism or "PLAIN").upper()
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def __repr__(self) -> str:  # never print the password
        return (
            f"KafkaSecurity(security_protocol={self.security_protocol!r}, "
            f"sasl_mechanism={self.sasl_mechanism!r}, sasl_username={self.sasl_username!r})"
        )


def valid_topic_name(topic: str) -> bool:
    return topic not in (".", "..") and _TOPIC_NAME.fullmatch(topic) is not None


def is_outage(exc: BaseException) -> bool:
    """Whether a Kafka client error means "the broker cannot be reached or is not ready"
    (retry later, without limit) rather than "the broker refuses this message".

    Timeouts, connection errors, ``NodeNotReady``, request timeouts and every error aiokafka
    flags as retriable are outages; so are cluster-wide authentication problems. A non-retriable
    broker answer about one message or topic (too large, invalid topic, not authorised for the
    topic, corrupt record, policy violation, …) is the event's own failure.

    ``UnknownTopicOrPartitionError`` is ambiguous (the topic cannot be created, or the broker
    never answered the metadata request); callers decide it with :func:`broker_reachable`.
    """
    if isinstance(exc, _EVENT_SPECIFIC):
        return False
    if isinstance(exc, TimeoutError | OSError):
        return True
    if isinstance(exc, _CLUSTER_WIDE):
        return True
    if isinstance(exc, UnknownTopicOrPartitionError):
        return True
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False)) or not _is_broker_answer(exc)
    return False


def _is_broker_answer(exc: KafkaError) -> bool:
    # BrokerResponseError subclasses carry a protocol error code: the broker answered.
    return isinstance(exc, BrokerResponseError)


def describe(exc: BaseException) -> str:
    """A short, log-safe description of an error (type and message; no payloads)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text and text != name else name


async def kafka_ping(
    bootstrap_servers: str,
    timeout: float = 2.0,  # noqa: ASYNC109 - a probe's own budget, not a cancellation scope
    *,
    security: KafkaSecurity | None = None,
    client_id: str = "class_management_service-health",
) -> bool:
    """Whether the cluster answers a metadata request within ``timeout`` seconds."""
    try:
        client = AIOKafkaClient(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=max(1, int(timeout * 1000)),
            **(security or KafkaSecurity()).client_kwargs(),
        )
    except Exception:
        return False  # cannot be built with these options: not usable
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
        return True
    except Exception:
        return False
    finally:
        try:
            async with asyncio.timeout(timeout):
                await client.close()
        except Exception:  # noqa: S110 - a failed close of a probe changes nothing
            pass

"""The messaging adapters' configuration (contract §1): Kafka (connection, security, the relay's
and the consumer's attempts) and Redis."""

from __future__ import annotations

from attrs import frozen

from class_core.env import EnvReader, variable
from class_core.errors import ConfigurationError

KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms that work from a user name and a password (all that configuration can give).
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
REDIS_URL_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_CONSUMER_GROUP = "class_management_service-consumer-group"


@frozen(kw_only=True)
class KafkaSettings:
    """Without ``kafka_bootstrap_servers`` no relay or consumer runs: events wait in the
    outbox."""

    kafka_bootstrap_servers: str | None = None
    kafka_consumer_group: str = DEFAULT_CONSUMER_GROUP
    kafka_enable_idempotence: bool = True
    outbox_max_attempts: int = 10
    outbox_retention_days: float = 7.0
    consumer_max_attempts: int = 3
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None

    @classmethod
    def from_env(cls, reader: EnvReader) -> KafkaSettings:
        bootstrap = reader.text("KAFKA_BOOTSTRAP_SERVERS")
        group = reader.text("KAFKA_CONSUMER_GROUP") or DEFAULT_CONSUMER_GROUP
        idempotence = reader.flag("KAFKA_ENABLE_IDEMPOTENCE", True)
        outbox_attempts = reader.integer("OUTBOX_MAX_ATTEMPTS", 10, 1, 1_000_000)
        outbox_retention = reader.number("OUTBOX_RETENTION_DAYS", 7.0, 0.0)
        consumer_attempts = reader.integer("CONSUMER_MAX_ATTEMPTS", 3, 1, 1_000_000)
        protocol, mechanism, username, password = _kafka_security(reader)
        return cls(
            kafka_bootstrap_servers=bootstrap,
            kafka_consumer_group=group,
            kafka_enable_idempotence=idempotence,
            outbox_max_attempts=outbox_attempts,
            outbox_retention_days=outbox_retention,
            consumer_max_attempts=consumer_attempts,
            kafka_security_protocol=protocol,
            kafka_sasl_mechanism=mechanism,
            kafka_sasl_username=username,
            kafka_sasl_password=password,
        )


def _kafka_security(
    reader: EnvReader,
) -> tuple[str | None, str | None, str | None, str | None]:
    """The Kafka security variables, checked together: a protocol aiokafka knows, a SASL
    mechanism that works with a user name and password, both of those given for SASL, and no
    SASL settings that a non-SASL protocol would silently ignore. Returns (protocol, mechanism,
    user name, password); the protocol is ``None`` when not given."""
    protocol_given = reader.text("KAFKA_SECURITY_PROTOCOL") is not None
    protocol = reader.choice("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", KAFKA_SECURITY_PROTOCOLS)
    mechanism = (
        reader.choice("KAFKA_SASL_MECHANISM", "PLAIN", KAFKA_SASL_MECHANISMS)
        if reader.text("KAFKA_SASL_MECHANISM") is not None
        else None
    )
    username = reader.text("KAFKA_SASL_USERNAME")
    password = reader.text("KAFKA_SASL_PASSWORD")
    if protocol.startswith("SASL_"):
        for var, value in (("KAFKA_SASL_USERNAME", username), ("KAFKA_SASL_PASSWORD", password)):
            if value is None:
                raise ConfigurationError(
                    variable(var), f"is required when KAFKA_SECURITY_PROTOCOL is {protocol}"
                )
    else:
        for var, value in (
            ("KAFKA_SASL_MECHANISM", mechanism),
            ("KAFKA_SASL_USERNAME", username),
            ("KAFKA_SASL_PASSWORD", password),
        ):
            if value is not None:
                raise ConfigurationError(
                    variable(var),
                    "is set, but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT or SASL_SSL",
                )
    return (protocol if protocol_given else None), mechanism, username, password


@frozen(kw_only=True)
class RedisSettings:
    """Without ``redis_url`` no real-time notifications are published."""

    redis_url: str | None = None

    @classmethod
    def from_env(cls, reader: EnvReader) -> RedisSettings:
        return cls(redis_url=reader.url("REDIS_URL", REDIS_URL_SCHEMES))

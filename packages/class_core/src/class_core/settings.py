"""Configuration from the environment (prefix ``CLASS_MANAGEMENT_SERVICE_``, contract §1).

A bad value raises :class:`ConfigurationError` naming the variable; the apps print that one
line and exit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from attrs import frozen

from class_core.errors import ConfigurationError

PREFIX = "CLASS_MANAGEMENT_SERVICE_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./class_management.db"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _name(var: str) -> str:
    return PREFIX + var


@frozen
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    use_mock_repository: bool = False
    kafka_bootstrap_servers: str | None = None
    redis_url: str | None = None
    host: str = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by default
    port: int = 5002
    internal_api_key: str | None = None
    association_timeout_hours: float = 24.0
    confidence_threshold: float = 0.7
    confidence_margin: float = 0.0
    max_deadline_days: float = 14.0
    timeout_check_interval_seconds: float = 3600.0
    database_pool_size: int = 10
    database_max_overflow: int = 20
    kafka_consumer_group: str = "class_management_service-consumer-group"
    kafka_enable_idempotence: bool = True
    run_workers: bool = True
    log_level: str = "INFO"
    log_format: str = "json"
    outbox_max_attempts: int = 10
    outbox_retention_days: float = 7.0
    changes_retention_days: float = 30.0
    import_max_bytes: int = 52_428_800
    http_import_max_bytes: int = 2_097_152
    kafka_security_protocol: str | None = None
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    scheduler_http_port: int = 5003
    consumer_max_attempts: int = 3

    @property
    def database_kind(self) -> str:
        """``memory``, ``sqlite`` or ``postgresql``."""
        if self.use_mock_repository:
            return "memory"
        return database_kind(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read every variable; ``overrides`` (e.g. ``--database-url``) win over the environment."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        database_url = reader.text("DATABASE_URL") or DEFAULT_DATABASE_URL
        if overrides.get("database_url"):
            database_url = str(overrides.pop("database_url"))
        overrides.pop("database_url", None)
        kind = database_kind(database_url)
        use_mock = reader.flag("USE_MOCK_REPOSITORY", False)
        values: dict[str, object] = {
            "database_url": database_url,
            "use_mock_repository": use_mock,
            "kafka_bootstrap_servers": reader.text("KAFKA_BOOTSTRAP_SERVERS"),
            "redis_url": reader.url("REDIS_URL", ("redis", "rediss", "unix")),
            "host": reader.text("HOST") or "0.0.0.0",  # noqa: S104
            "port": reader.integer("PORT", 5002, 1, 65535),
            "internal_api_key": reader.text("INTERNAL_API_KEY"),
            "association_timeout_hours": reader.number("ASSOCIATION_TIMEOUT_HOURS", 24.0, 0.0),
            "confidence_threshold": reader.number("CONFIDENCE_THRESHOLD", 0.7, 0.0, 1.0),
            "confidence_margin": reader.number("CONFIDENCE_MARGIN", 0.0, 0.0, 1.0),
            "max_deadline_days": reader.number("MAX_DEADLINE_DAYS", 14.0, 0.001),
            "timeout_check_interval_seconds": reader.number(
                "TIMEOUT_CHECK_INTERVAL_SECONDS", 3600.0, 0.001
            ),
            "database_pool_size": reader.integer("DATABASE_POOL_SIZE", 10, 1, 10_000),
            "database_max_overflow": reader.integer("DATABASE_MAX_OVERFLOW", 20, 0, 10_000),
            "kafka_consumer_group": reader.text("KAFKA_CONSUMER_GROUP")
            or "class_management_service-consumer-group",
            "kafka_enable_idempotence": reader.flag("KAFKA_ENABLE_IDEMPOTENCE", True),
            "run_workers": reader.flag("RUN_WORKERS", use_mock or kind != "postgresql"),
            "log_level": reader.choice(
                "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
            ),
            "log_format": reader.choice("LOG_FORMAT", "json", ("json", "console")).lower(),
            "outbox_max_attempts": reader.integer("OUTBOX_MAX_ATTEMPTS", 10, 1, 1_000_000),
            "outbox_retention_days": reader.number("OUTBOX_RETENTION_DAYS", 7.0, 0.0),
            "changes_retention_days": reader.number("CHANGES_RETENTION_DAYS", 30.0, 0.001),
            "import_max_bytes": reader.integer("IMPORT_MAX_BYTES", 52_428_800, 1, 2**62),
            "http_import_max_bytes": reader.integer("HTTP_IMPORT_MAX_BYTES", 2_097_152, 1, 2**40),
            "consumer_max_attempts": reader.integer("CONSUMER_MAX_ATTEMPTS", 3, 1, 1_000_000),
            **_kafka_security(reader),
            "scheduler_http_port": reader.integer("SCHEDULER_HTTP_PORT", 5003, 0, 65535),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
# The mechanisms that work from a user name and a password (all that configuration can give).
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka_security(reader: _Reader) -> dict[str, str | None]:
    """The Kafka security variables, checked together: a protocol aiokafka knows, a SASL
    mechanism that works with a user name and password, both of those given for SASL, and no
    SASL settings that a non-SASL protocol would silently ignore."""
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
                    _name(var), f"is required when KAFKA_SECURITY_PROTOCOL is {protocol}"
                )
    else:
        for var, value in (
            ("KAFKA_SASL_MECHANISM", mechanism),
            ("KAFKA_SASL_USERNAME", username),
            ("KAFKA_SASL_PASSWORD", password),
        ):
            if value is not None:
                raise ConfigurationError(
                    _name(var),
                    "is set, but KAFKA_SECURITY_PROTOCOL is not SASL_PLAINTEXT or SASL_SSL",
                )
    return {
        "kafka_security_protocol": protocol if protocol_given else None,
        "kafka_sasl_mechanism": mechanism,
        "kafka_sasl_username": username,
        "kafka_sasl_password": password,
    }


def database_kind(url: str) -> str:
    """``sqlite`` or ``postgresql`` for a database URL, else :class:`ConfigurationError`."""
    var = _name("DATABASE_URL")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        _ = parts.port  # an unparsable port raises here, not at connect time
    except ValueError as exc:
        raise ConfigurationError(var, "is not a valid URL") from exc
    if scheme in {"postgresql", "postgres", "postgresql+asyncpg"}:
        return "postgresql"
    if scheme in {"sqlite", "sqlite+aiosqlite"}:
        return "sqlite"
    raise ConfigurationError(
        var, "must be a postgresql://, postgresql+asyncpg:// or sqlite+aiosqlite:/// URL"
    )


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, var: str) -> str | None:
        value = self._env.get(_name(var))
        if value is None or not value.strip():
            return None
        return value.strip()

    def flag(self, var: str, default: bool) -> bool:
        value = self.text(var)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigurationError(_name(var), "must be true or false")

    def number(
        self, var: str, default: float, minimum: float, maximum: float | None = None
    ) -> float:
        value = self.text(var)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError as exc:
            raise ConfigurationError(_name(var), "must be a number") from exc
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigurationError(_name(var), "must be a finite number")
        if number < minimum or (maximum is not None and number > maximum):
            bound = (
                f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            )
            raise ConfigurationError(_name(var), f"must be {bound}")
        return number

    def integer(self, var: str, default: int, minimum: int, maximum: int) -> int:
        value = self.text(var)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise ConfigurationError(_name(var), "must be a whole number") from exc
        if not minimum <= number <= maximum:
            raise ConfigurationError(_name(var), f"must be between {minimum} and {maximum}")
        return number

    def choice(self, var: str, default: str, options: tuple[str, ...]) -> str:
        value = self.text(var)
        if value is None:
            return default
        for option in options:
            if value.lower() == option.lower():
                return option
        raise ConfigurationError(_name(var), f"must be one of {', '.join(options)}")

    def url(self, var: str, schemes: tuple[str, ...]) -> str | None:
        value = self.text(var)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            scheme = parts.scheme.lower()
            _ = parts.port  # an unparsable port raises here, not at connect time
        except ValueError as exc:
            raise ConfigurationError(_name(var), "is not a valid URL") from exc
        if scheme not in schemes:
            raise ConfigurationError(_name(var), f"must be a {' or '.join(schemes)} URL")
        return value

"""The whole configuration of a process: the settings of each package, read from one
environment (prefix ``CLASS_MANAGEMENT_SERVICE_``, contract §1).

Each package owns the variables of what it configures and reads them with
:class:`class_core.env.EnvReader`:

- ``class_core.settings.CoreSettings``: the matching rules and the change feed's retention;
- ``adapters_sql.SqlSettings``: ``DATABASE_URL`` (which schemes select which database) and
  the pool;
- ``adapters_messaging.KafkaSettings`` / ``RedisSettings``: the brokers, Kafka security, the
  relay's and the consumer's attempts, the outbox retention; ``REDIS_URL``;
- :class:`AppSettings` here: what the apps read (listeners, API key, logging, in-process
  workers, sweep interval, import limits). The three apps share one environment and each of
  them refuses any bad variable, so their settings are read together, below the apps.

:class:`Settings` composes them with the runtime's own choice, ``USE_MOCK_REPOSITORY``. A bad
value stops :meth:`Settings.from_env` with a :class:`ConfigurationError` naming the variable;
when several are bad, the one reported is the first of :data:`CHECK_ORDER`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

import attrs
from attrs import Factory, frozen

from adapters_messaging.settings import KafkaSettings, RedisSettings
from adapters_sql.settings import SqlSettings
from class_core.env import PREFIX, EnvReader
from class_core.errors import ConfigurationError
from class_core.settings import CoreSettings

T = TypeVar("T")

# The order in which the variables are checked (when several are bad, the first is reported).
CHECK_ORDER = (
    "DATABASE_URL",
    "USE_MOCK_REPOSITORY",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_URL",
    "HOST",
    "PORT",
    "INTERNAL_API_KEY",
    "ASSOCIATION_TIMEOUT_HOURS",
    "CONFIDENCE_THRESHOLD",
    "CONFIDENCE_MARGIN",
    "MAX_DEADLINE_DAYS",
    "TIMEOUT_CHECK_INTERVAL_SECONDS",
    "DATABASE_POOL_SIZE",
    "DATABASE_MAX_OVERFLOW",
    "KAFKA_CONSUMER_GROUP",
    "KAFKA_ENABLE_IDEMPOTENCE",
    "RUN_WORKERS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "OUTBOX_MAX_ATTEMPTS",
    "OUTBOX_RETENTION_DAYS",
    "CHANGES_RETENTION_DAYS",
    "IMPORT_MAX_BYTES",
    "HTTP_IMPORT_MAX_BYTES",
    "CONSUMER_MAX_ATTEMPTS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "SCHEDULER_HTTP_PORT",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a service listens on all interfaces by default


@frozen(kw_only=True)
class AppSettings:
    """What the apps read: ``class-api`` (``HOST``/``PORT``, ``INTERNAL_API_KEY``,
    ``RUN_WORKERS``, ``HTTP_IMPORT_MAX_BYTES``), ``class-scheduler`` (``HOST``,
    ``SCHEDULER_HTTP_PORT``), ``class-admin`` (``IMPORT_MAX_BYTES``), the sweep interval of the
    API's in-process workers and the scheduler, and the log level and format of all three."""

    host: str = DEFAULT_HOST
    port: int = 5002
    internal_api_key: str | None = None
    timeout_check_interval_seconds: float = 3600.0
    run_workers: bool = True
    log_level: str = "INFO"
    log_format: str = "json"
    import_max_bytes: int = 52_428_800
    http_import_max_bytes: int = 2_097_152
    scheduler_http_port: int = 5003

    @classmethod
    def from_env(cls, reader: EnvReader, *, run_workers_default: bool) -> AppSettings:
        """``run_workers_default``: whether the API runs the workers when ``RUN_WORKERS`` is
        unset (true on SQLite and in memory)."""
        return cls(
            host=reader.text("HOST") or DEFAULT_HOST,
            port=reader.integer("PORT", 5002, 1, 65535),
            internal_api_key=reader.text("INTERNAL_API_KEY"),
            timeout_check_interval_seconds=reader.number(
                "TIMEOUT_CHECK_INTERVAL_SECONDS", 3600.0, 0.001
            ),
            run_workers=reader.flag("RUN_WORKERS", run_workers_default),
            log_level=reader.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
            log_format=reader.choice("LOG_FORMAT", "json", ("json", "console")).lower(),
            import_max_bytes=reader.integer("IMPORT_MAX_BYTES", 52_428_800, 1, 2**62),
            http_import_max_bytes=reader.integer("HTTP_IMPORT_MAX_BYTES", 2_097_152, 1, 2**40),
            scheduler_http_port=reader.integer("SCHEDULER_HTTP_PORT", 5003, 0, 65535),
        )


class _Flat(Generic[T]):
    """A read-only attribute of :class:`Settings` named after its variable, read from the part
    that owns it (``settings.database_url`` is ``settings.sql.database_url``)."""

    def __init__(self, get: Callable[[Settings], T]) -> None:
        self._get = get

    @overload
    def __get__(self, obj: None, owner: type[Settings]) -> _Flat[T]: ...

    @overload
    def __get__(self, obj: Settings, owner: type[Settings]) -> T: ...

    def __get__(self, obj: Settings | None, owner: type[Settings]) -> T | _Flat[T]:
        return self if obj is None else self._get(obj)


@frozen(kw_only=True)
class Settings:
    """One process's configuration: each package's settings and ``USE_MOCK_REPOSITORY``.

    Build it with :meth:`from_env` (the environment) or :meth:`of` (values by variable name,
    e.g. ``Settings.of(database_url=url)``; the rest keeps its defaults). Every setting is
    also readable under its variable's name (``settings.redis_url``), wherever it lives.
    """

    use_mock_repository: bool = False
    sql: SqlSettings = Factory(SqlSettings)
    kafka: KafkaSettings = Factory(KafkaSettings)
    redis: RedisSettings = Factory(RedisSettings)
    core: CoreSettings = Factory(CoreSettings)
    app: AppSettings = Factory(AppSettings)

    @property
    def database_kind(self) -> str:
        """``memory``, ``sqlite`` or ``postgresql``."""
        if self.use_mock_repository:
            return "memory"
        return self.sql.kind

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read every variable; ``overrides`` by variable name (e.g. ``--database-url``) win
        over the environment; ``None`` overrides nothing."""
        reader = EnvReader(os.environ if environ is None else environ)
        url = overrides.pop("database_url", None)
        errors: list[ConfigurationError] = []

        def read(part: Callable[[], T], instead: T) -> T:
            try:
                return part()
            except ConfigurationError as exc:  # keep reading: a later part may be first
                errors.append(exc)
                return instead

        given = str(url) if url else None
        sql = read(lambda: SqlSettings.from_env(reader, database_url=given), SqlSettings())
        use_mock = read(lambda: reader.flag("USE_MOCK_REPOSITORY", False), False)
        kafka = read(lambda: KafkaSettings.from_env(reader), KafkaSettings())
        redis = read(lambda: RedisSettings.from_env(reader), RedisSettings())
        core = read(lambda: CoreSettings.from_env(reader), CoreSettings())
        in_process = use_mock or sql.kind != "postgresql"
        app = read(
            lambda: AppSettings.from_env(reader, run_workers_default=in_process), AppSettings()
        )
        if errors:  # each part stops at its first bad variable; report the first of them all
            raise min(errors, key=_check_position)
        settings = cls(
            use_mock_repository=use_mock, sql=sql, kafka=kafka, redis=redis, core=core, app=app
        )
        return settings.replace(**{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def of(cls, **values: object) -> Settings:
        """The defaults with ``values`` (by variable name, lower case) replaced."""
        return cls().replace(**values)

    def replace(self, **values: object) -> Settings:
        """A copy with ``values`` replaced: by variable name, lower case (in whichever part
        owns it), or whole parts (``sql=SqlSettings(...)``); an unknown name is a
        :class:`TypeError`."""
        own = attrs.fields_dict(Settings)
        whole: dict[str, Any] = {k: v for k, v in values.items() if k in own}
        updated = attrs.evolve(self, **whole)
        changes: dict[str, dict[str, object]] = {}
        for name, value in values.items():
            if name in own:
                continue
            part = next((p for p in _PARTS if name in attrs.fields_dict(_PARTS[p])), None)
            if part is None:
                raise TypeError(f"Settings has no setting {name!r}")
            changes.setdefault(part, {})[name] = value
        parts: dict[str, Any] = {
            part: attrs.evolve(getattr(updated, part), **changed)
            for part, changed in changes.items()
        }
        return attrs.evolve(updated, **parts)

    # Every setting under its variable's name (the parts own them).
    database_url = _Flat(lambda s: s.sql.database_url)
    database_pool_size = _Flat(lambda s: s.sql.database_pool_size)
    database_max_overflow = _Flat(lambda s: s.sql.database_max_overflow)
    kafka_bootstrap_servers = _Flat(lambda s: s.kafka.kafka_bootstrap_servers)
    kafka_consumer_group = _Flat(lambda s: s.kafka.kafka_consumer_group)
    kafka_enable_idempotence = _Flat(lambda s: s.kafka.kafka_enable_idempotence)
    kafka_security_protocol = _Flat(lambda s: s.kafka.kafka_security_protocol)
    kafka_sasl_mechanism = _Flat(lambda s: s.kafka.kafka_sasl_mechanism)
    kafka_sasl_username = _Flat(lambda s: s.kafka.kafka_sasl_username)
    kafka_sasl_password = _Flat(lambda s: s.kafka.kafka_sasl_password)
    outbox_max_attempts = _Flat(lambda s: s.kafka.outbox_max_attempts)
    outbox_retention_days = _Flat(lambda s: s.kafka.outbox_retention_days)
    consumer_max_attempts = _Flat(lambda s: s.kafka.consumer_max_attempts)
    redis_url = _Flat(lambda s: s.redis.redis_url)
    association_timeout_hours = _Flat(lambda s: s.core.association_timeout_hours)
    confidence_threshold = _Flat(lambda s: s.core.confidence_threshold)
    confidence_margin = _Flat(lambda s: s.core.confidence_margin)
    max_deadline_days = _Flat(lambda s: s.core.max_deadline_days)
    changes_retention_days = _Flat(lambda s: s.core.changes_retention_days)
    host = _Flat(lambda s: s.app.host)
    port = _Flat(lambda s: s.app.port)
    internal_api_key = _Flat(lambda s: s.app.internal_api_key)
    timeout_check_interval_seconds = _Flat(lambda s: s.app.timeout_check_interval_seconds)
    run_workers = _Flat(lambda s: s.app.run_workers)
    log_level = _Flat(lambda s: s.app.log_level)
    log_format = _Flat(lambda s: s.app.log_format)
    import_max_bytes = _Flat(lambda s: s.app.import_max_bytes)
    http_import_max_bytes = _Flat(lambda s: s.app.http_import_max_bytes)
    scheduler_http_port = _Flat(lambda s: s.app.scheduler_http_port)


_PARTS: dict[str, type] = {
    "sql": SqlSettings,
    "kafka": KafkaSettings,
    "redis": RedisSettings,
    "core": CoreSettings,
    "app": AppSettings,
}


def _check_position(error: ConfigurationError) -> int:
    name = error.variable.removeprefix(PREFIX)
    return CHECK_ORDER.index(name) if name in CHECK_ORDER else len(CHECK_ORDER)

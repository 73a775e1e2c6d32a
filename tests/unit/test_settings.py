"""Settings.from_env against the contract §1 table."""

from __future__ import annotations

import pytest

from class_core.env import PREFIX
from class_core.errors import ConfigurationError
from class_core.runtime import MatchingPolicy
from class_runtime import Settings

P = "CLASS_MANAGEMENT_SERVICE_"


def env(**values: str) -> dict[str, str]:
    return {P + k: v for k, v in values.items()}


def test_prefix_is_the_contracts() -> None:
    assert PREFIX == P


def test_defaults_equal_the_contract_table() -> None:
    s = Settings.from_env({})
    assert s.database_url == "sqlite+aiosqlite:///./class_management.db"
    assert s.use_mock_repository is False
    assert s.kafka_bootstrap_servers is None
    assert s.redis_url is None
    assert (s.host, s.port) == ("0.0.0.0", 5002)
    assert s.internal_api_key is None
    assert s.association_timeout_hours == 24.0
    assert s.confidence_threshold == 0.7
    assert s.timeout_check_interval_seconds == 3600
    assert (s.database_pool_size, s.database_max_overflow) == (10, 20)
    assert s.kafka_consumer_group == "class_management_service-consumer-group"
    assert s.kafka_enable_idempotence is True
    assert s.run_workers is True
    assert (s.log_level, s.log_format) == ("INFO", "json")
    assert (s.outbox_max_attempts, s.outbox_retention_days) == (10, 7)
    assert s.import_max_bytes == 52_428_800
    assert s.consumer_max_attempts == 3
    assert s.changes_retention_days == 30
    assert s.kafka_security_protocol is None
    assert s.kafka_sasl_mechanism is None
    assert s.kafka_sasl_username is None
    assert s.kafka_sasl_password is None
    assert s.database_kind == "sqlite"


def test_unrelated_variables_are_ignored_and_blank_means_unset() -> None:
    s = Settings.from_env({"PORT": "1", "DATABASE_URL": "x", **env(PORT="  ", REDIS_URL="")})
    assert s.port == 5002
    assert s.redis_url is None


def test_values_are_read() -> None:
    s = Settings.from_env(
        env(
            DATABASE_URL="postgresql://u:p@db:5432/cms",
            KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2:9092",
            REDIS_URL="redis://cache:6379/0",
            HOST="127.0.0.1",
            PORT="8080",
            INTERNAL_API_KEY="secret",
            ASSOCIATION_TIMEOUT_HOURS="1.5",
            CONFIDENCE_THRESHOLD="1",
            TIMEOUT_CHECK_INTERVAL_SECONDS="30",
            DATABASE_POOL_SIZE="3",
            DATABASE_MAX_OVERFLOW="0",
            KAFKA_CONSUMER_GROUP="g",
            KAFKA_ENABLE_IDEMPOTENCE="FALSE",
            LOG_LEVEL="debug",
            LOG_FORMAT="Console",
            OUTBOX_MAX_ATTEMPTS="3",
            OUTBOX_RETENTION_DAYS="0.5",
            IMPORT_MAX_BYTES="1024",
            CONSUMER_MAX_ATTEMPTS="5",
            CHANGES_RETENTION_DAYS="2.5",
            KAFKA_SECURITY_PROTOCOL="SASL_SSL",
            KAFKA_SASL_MECHANISM="PLAIN",
            KAFKA_SASL_USERNAME="u",
            KAFKA_SASL_PASSWORD="p",
        )
    )
    assert s.database_kind == "postgresql"
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert s.redis_url == "redis://cache:6379/0"
    assert (s.host, s.port, s.internal_api_key) == ("127.0.0.1", 8080, "secret")
    assert (s.association_timeout_hours, s.confidence_threshold) == (1.5, 1.0)
    assert s.timeout_check_interval_seconds == 30
    assert (s.database_pool_size, s.database_max_overflow) == (3, 0)
    assert (s.kafka_consumer_group, s.kafka_enable_idempotence) == ("g", False)
    assert (s.log_level, s.log_format) == ("DEBUG", "console")
    assert (s.outbox_max_attempts, s.outbox_retention_days, s.import_max_bytes) == (3, 0.5, 1024)
    assert s.consumer_max_attempts == 5
    assert s.changes_retention_days == 2.5
    assert s.kafka_security_protocol == "SASL_SSL"
    assert (s.kafka_sasl_mechanism, s.kafka_sasl_username, s.kafka_sasl_password) == (
        "PLAIN",
        "u",
        "p",
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, True),
        ({"DATABASE_URL": "sqlite:///x.db"}, True),
        ({"DATABASE_URL": "postgresql://h/db"}, False),
        ({"DATABASE_URL": "postgresql+asyncpg://h/db"}, False),
        ({"DATABASE_URL": "postgresql://h/db", "USE_MOCK_REPOSITORY": "true"}, True),
        ({"USE_MOCK_REPOSITORY": "1"}, True),
        ({"DATABASE_URL": "postgresql://h/db", "RUN_WORKERS": "yes"}, True),
        ({"RUN_WORKERS": "false"}, False),
    ],
)
def test_run_workers_default_depends_on_the_database(
    values: dict[str, str], expected: bool
) -> None:
    assert Settings.from_env(env(**values)).run_workers is expected


def test_database_kind_of_the_mock_repository_is_memory() -> None:
    assert Settings.from_env(env(USE_MOCK_REPOSITORY="true")).database_kind == "memory"


def test_overrides_win_over_the_environment() -> None:
    s = Settings.from_env(
        env(DATABASE_URL="sqlite:///a.db"), database_url="postgresql://h/db", port=9000
    )
    assert (s.database_url, s.database_kind, s.run_workers, s.port) == (
        "postgresql://h/db",
        "postgresql",
        False,
        9000,
    )


BAD_VALUES = [
    ("DATABASE_URL", "mysql://h/db"),
    ("DATABASE_URL", "not a url"),
    ("DATABASE_URL", "postgresql://h:notaport/db"),
    ("DATABASE_URL", "postgresql://[::1/db"),
    ("USE_MOCK_REPOSITORY", "maybe"),
    ("REDIS_URL", "http://cache:6379"),
    ("REDIS_URL", "redis://cache:99999"),
    ("PORT", "http"),
    ("PORT", "0"),
    ("PORT", "65536"),
    ("ASSOCIATION_TIMEOUT_HOURS", "-1"),
    ("ASSOCIATION_TIMEOUT_HOURS", "soon"),
    ("ASSOCIATION_TIMEOUT_HOURS", "nan"),
    ("ASSOCIATION_TIMEOUT_HOURS", "inf"),
    ("CONFIDENCE_THRESHOLD", "1.01"),
    ("CONFIDENCE_THRESHOLD", "-0.1"),
    ("CONFIDENCE_THRESHOLD", "high"),
    ("TIMEOUT_CHECK_INTERVAL_SECONDS", "0"),
    ("TIMEOUT_CHECK_INTERVAL_SECONDS", "-60"),
    ("DATABASE_POOL_SIZE", "0"),
    ("DATABASE_POOL_SIZE", "2.5"),
    ("DATABASE_MAX_OVERFLOW", "-1"),
    ("KAFKA_ENABLE_IDEMPOTENCE", "perhaps"),
    ("RUN_WORKERS", "2"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("OUTBOX_MAX_ATTEMPTS", "0"),
    ("OUTBOX_RETENTION_DAYS", "-1"),
    ("CONSUMER_MAX_ATTEMPTS", "0"),
    ("CHANGES_RETENTION_DAYS", "0"),
    ("CHANGES_RETENTION_DAYS", "-3"),
    ("CHANGES_RETENTION_DAYS", "a month"),
    ("IMPORT_MAX_BYTES", "0"),
    ("IMPORT_MAX_BYTES", "50MB"),
    ("KAFKA_SECURITY_PROTOCOL", "BOGUS"),
    ("KAFKA_SECURITY_PROTOCOL", "TLS"),
    ("KAFKA_SASL_MECHANISM", "MD5"),
]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # SASL without credentials, or SASL settings that a non-SASL protocol would ignore.
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_USERNAME": "u"},
            "KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "s3cret"}, "KAFKA_SASL_USERNAME"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "MECHANISM"),
    ],
)
def test_kafka_security_settings_are_checked_together(values: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env(**values))
    assert named in info.value.variable
    assert "s3cret" not in str(info.value)


def test_kafka_security_values_are_canonical() -> None:
    s = Settings.from_env(
        env(
            KAFKA_SECURITY_PROTOCOL="sasl_ssl",
            KAFKA_SASL_MECHANISM="scram-sha-512",
            KAFKA_SASL_USERNAME="u",
            KAFKA_SASL_PASSWORD="p",
        )
    )
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert Settings.from_env(env(KAFKA_SECURITY_PROTOCOL="ssl")).kafka_security_protocol == "SSL"


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_a_bad_value_names_the_full_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env(**{variable: value}))
    assert info.value.variable == P + variable
    assert str(info.value).startswith(P + variable + ":")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"timeout_hours": -0.5}, "ASSOCIATION_TIMEOUT_HOURS"),
        ({"timeout_hours": float("nan")}, "ASSOCIATION_TIMEOUT_HOURS"),
        ({"confidence_threshold": 1.5}, "CONFIDENCE_THRESHOLD"),
        ({"confidence_threshold": float("nan")}, "CONFIDENCE_THRESHOLD"),
    ],
)
def test_matching_policy_refuses_bad_values(kwargs: dict[str, float], variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        MatchingPolicy(**kwargs)
    assert info.value.variable == P + variable


def test_matching_policy_accepts_the_bounds() -> None:
    assert MatchingPolicy(0.0, 0.0).confidence_threshold == 0.0
    assert MatchingPolicy(24.0, 1.0).confidence_threshold == 1.0


def test_scheduler_http_port() -> None:
    assert Settings.from_env({}).scheduler_http_port == 5003
    assert Settings.from_env(env(SCHEDULER_HTTP_PORT="0")).scheduler_http_port == 0
    assert Settings.from_env(env(SCHEDULER_HTTP_PORT="9100")).scheduler_http_port == 9100
    for bad in ("-1", "65536", "http"):
        with pytest.raises(ConfigurationError) as info:
            Settings.from_env(env(SCHEDULER_HTTP_PORT=bad))
        assert info.value.variable == P + "SCHEDULER_HTTP_PORT"


def test_start_up_summary_never_shows_the_password() -> None:
    from class_core.startup import docs_url, redacted_url
    from class_runtime import startup_summary

    url = "postgresql+asyncpg://cms:s3cret@db.example:6432/cms?password=other"
    assert redacted_url(url) == "postgresql+asyncpg://cms@db.example:6432/cms"
    settings = Settings.from_env(env(DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS="k:9092"))
    message, fields = startup_summary(
        "class-api", settings, workers="off", docs=docs_url("0.0.0.0", 5002)
    )
    assert "s3cret" not in message
    assert "other" not in message
    assert "s3cret" not in str(fields)
    assert fields["mode"] == "postgresql"
    assert fields["kafka"] == "configured"
    assert message == "class-api starting"
    assert fields["redis"] == "not configured"
    assert fields["docs"] == "http://localhost:5002/schema"
    assert redacted_url("sqlite+aiosqlite:///./class_management.db") == (
        "sqlite+aiosqlite:///./class_management.db"
    )


# The order in which the variables are checked: when several are bad, the first of this list is
# the one reported (whichever package owns it).
CHECK_ORDER = [
    ("DATABASE_URL", "mysql://h/db"),
    ("USE_MOCK_REPOSITORY", "maybe"),
    ("REDIS_URL", "http://cache:6379"),
    ("PORT", "0"),
    ("ASSOCIATION_TIMEOUT_HOURS", "-1"),
    ("CONFIDENCE_THRESHOLD", "high"),
    ("CONFIDENCE_MARGIN", "2"),
    ("MAX_DEADLINE_DAYS", "0"),
    ("TIMEOUT_CHECK_INTERVAL_SECONDS", "0"),
    ("DATABASE_POOL_SIZE", "0"),
    ("DATABASE_MAX_OVERFLOW", "-1"),
    ("KAFKA_ENABLE_IDEMPOTENCE", "perhaps"),
    ("RUN_WORKERS", "2"),
    ("LOG_LEVEL", "LOUD"),
    ("LOG_FORMAT", "xml"),
    ("OUTBOX_MAX_ATTEMPTS", "0"),
    ("OUTBOX_RETENTION_DAYS", "-1"),
    ("CHANGES_RETENTION_DAYS", "0"),
    ("IMPORT_MAX_BYTES", "0"),
    ("HTTP_IMPORT_MAX_BYTES", "0"),
    ("CONSUMER_MAX_ATTEMPTS", "0"),
    ("KAFKA_SECURITY_PROTOCOL", "BOGUS"),
    ("KAFKA_SASL_MECHANISM", "MD5"),
    ("SCHEDULER_HTTP_PORT", "-1"),
]
ORDER_PAIRS = [
    (first, second)
    for i, first in enumerate(CHECK_ORDER)
    for second in CHECK_ORDER[i + 1 :]
    if first[0] != second[0]
]


@pytest.mark.parametrize(("first", "second"), ORDER_PAIRS, ids=lambda pair: pair[0])
def test_of_two_bad_variables_the_first_checked_is_reported(
    first: tuple[str, str], second: tuple[str, str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env(**dict([first, second])))
    assert info.value.variable == P + first[0]


@pytest.mark.parametrize(
    ("values", "named"),
    [
        # The SASL checks run after CONSUMER_MAX_ATTEMPTS and before SCHEDULER_HTTP_PORT.
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "SCHEDULER_HTTP_PORT": "-1"},
            "KAFKA_SASL_USERNAME",
        ),
        ({"KAFKA_SASL_PASSWORD": "p", "SCHEDULER_HTTP_PORT": "x"}, "KAFKA_SASL_PASSWORD"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CONSUMER_MAX_ATTEMPTS": "0"},
            "CONSUMER_MAX_ATTEMPTS",
        ),
        ({"KAFKA_SASL_USERNAME": "u", "HTTP_IMPORT_MAX_BYTES": "0"}, "HTTP_IMPORT_MAX_BYTES"),
        # A --database-url override hides a bad DATABASE_URL in the environment.
        ({"DATABASE_URL": "mysql://h/db", "PORT": "0"}, "PORT"),
    ],
)
def test_cross_checks_and_overrides_keep_their_place_in_the_order(
    values: dict[str, str], named: str
) -> None:
    overrides = {"database_url": "sqlite:///x.db"} if "DATABASE_URL" in values else {}
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env(**values), **overrides)
    assert info.value.variable == P + named


def test_the_check_order_names_every_variable_once() -> None:
    from class_runtime.settings import CHECK_ORDER as CHECKED

    assert len(set(CHECKED)) == len(CHECKED)
    assert {v.lower() for v in CHECKED} == set(FLAT_NAMES) | {"use_mock_repository"}
    assert [v for v, _ in CHECK_ORDER] == [v for v in CHECKED if v in dict(CHECK_ORDER)]


def _part_fields() -> dict[str, str]:
    import attrs

    return {
        name: part
        for part in ("sql", "kafka", "redis", "core", "app")
        for name in attrs.fields_dict(type(getattr(Settings(), part)))
    }


FLAT_NAMES = sorted(_part_fields())


@pytest.mark.parametrize("name", FLAT_NAMES)
def test_every_setting_is_owned_by_one_part_and_readable_by_its_name(name: str) -> None:
    owner = _part_fields()[name]
    marker = object()
    s = Settings.of(**{name: marker})
    assert getattr(s, name) is marker
    assert getattr(getattr(s, owner), name) is marker
    assert getattr(Settings(), name) == getattr(getattr(Settings(), owner), name)


def test_each_package_reads_its_own_variables() -> None:
    from adapters_messaging.settings import KafkaSettings, RedisSettings
    from adapters_sql.settings import SqlSettings
    from class_core.env import EnvReader
    from class_core.settings import CoreSettings

    values = env(
        DATABASE_URL="postgresql://h/db",
        DATABASE_POOL_SIZE="4",
        KAFKA_BOOTSTRAP_SERVERS="k:9092",
        CONSUMER_MAX_ATTEMPTS="7",
        REDIS_URL="rediss://r:6380",
        CONFIDENCE_MARGIN="0.25",
    )
    reader = EnvReader(values)
    assert SqlSettings.from_env(reader) == SqlSettings(
        database_url="postgresql://h/db", database_pool_size=4
    )
    assert SqlSettings.from_env(reader, database_url="sqlite:///o.db").kind == "sqlite"
    kafka = KafkaSettings.from_env(reader)
    assert (kafka.kafka_bootstrap_servers, kafka.consumer_max_attempts) == ("k:9092", 7)
    assert RedisSettings.from_env(reader).redis_url == "rediss://r:6380"
    core = CoreSettings.from_env(reader)
    assert core.matching_policy().confidence_margin == 0.25
    assert core.feed_policy().retention_days == 30.0
    s = Settings.from_env(values)  # the same environment, composed
    assert (s.sql, s.kafka, s.redis, s.core) == (
        SqlSettings.from_env(reader),
        kafka,
        RedisSettings.from_env(reader),
        core,
    )


def test_replace_by_name_or_by_part_and_unknown_names_are_refused() -> None:
    from adapters_sql.settings import SqlSettings

    s = Settings.of(sql=SqlSettings(database_url="postgresql://h/db"), database_pool_size=2)
    assert (s.database_url, s.database_pool_size, s.database_kind) == (
        "postgresql://h/db",
        2,
        "postgresql",
    )
    assert Settings.of(use_mock_repository=True).database_kind == "memory"
    with pytest.raises(TypeError, match="no_such_setting"):
        Settings.of(no_such_setting=1)


def test_the_configuration_page_lists_the_variables_in_the_order_they_are_checked() -> None:
    import re
    from pathlib import Path

    from class_runtime.settings import CHECK_ORDER as CHECKED

    page = Path(__file__).parents[2] / "docs" / "configuration.md"
    rows = [line for line in page.read_text().splitlines() if line.startswith("| `")]
    table = rows[: rows.index(next(r for r in rows if r.startswith("| `class_core`")))]
    listed = [name for row in table for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])]
    assert listed == list(CHECKED)

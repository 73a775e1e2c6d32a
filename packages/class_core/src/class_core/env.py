"""Reading configuration variables (prefix ``CLASS_MANAGEMENT_SERVICE_``, contract §1).

The one parser every package's settings use: each settings class (the core's
:class:`~class_core.settings.CoreSettings`, ``adapters_sql.SqlSettings``,
``adapters_messaging.KafkaSettings`` / ``RedisSettings``, ``class_runtime.AppSettings``) reads
its own variables through an :class:`EnvReader`. A bad value raises
:class:`~class_core.errors.ConfigurationError` naming the variable (never the value).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from class_core.errors import ConfigurationError

PREFIX = "CLASS_MANAGEMENT_SERVICE_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def variable(name: str) -> str:
    """The full name of a variable: ``DATABASE_URL`` → ``CLASS_MANAGEMENT_SERVICE_DATABASE_URL``."""
    return PREFIX + name


class EnvReader:
    """Typed reads of ``PREFIX + name`` from an environment; blank means unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, var: str) -> str | None:
        value = self._env.get(variable(var))
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
        raise ConfigurationError(variable(var), "must be true or false")

    def number(
        self, var: str, default: float, minimum: float, maximum: float | None = None
    ) -> float:
        value = self.text(var)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError as exc:
            raise ConfigurationError(variable(var), "must be a number") from exc
        if number != number or number in (float("inf"), float("-inf")):
            raise ConfigurationError(variable(var), "must be a finite number")
        if number < minimum or (maximum is not None and number > maximum):
            bound = (
                f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            )
            raise ConfigurationError(variable(var), f"must be {bound}")
        return number

    def integer(self, var: str, default: int, minimum: int, maximum: int) -> int:
        value = self.text(var)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError as exc:
            raise ConfigurationError(variable(var), "must be a whole number") from exc
        if not minimum <= number <= maximum:
            raise ConfigurationError(variable(var), f"must be between {minimum} and {maximum}")
        return number

    def choice(self, var: str, default: str, options: tuple[str, ...]) -> str:
        value = self.text(var)
        if value is None:
            return default
        for option in options:
            if value.lower() == option.lower():
                return option
        raise ConfigurationError(variable(var), f"must be one of {', '.join(options)}")

    def url(self, var: str, schemes: tuple[str, ...]) -> str | None:
        value = self.text(var)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            scheme = parts.scheme.lower()
            _ = parts.port  # an unparsable port raises here, not at connect time
        except ValueError as exc:
            raise ConfigurationError(variable(var), "is not a valid URL") from exc
        if scheme not in schemes:
            raise ConfigurationError(variable(var), f"must be a {' or '.join(schemes)} URL")
        return value

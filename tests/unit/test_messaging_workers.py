"""The messaging workers take their attempts from the settings (contract §1, §6)."""

from __future__ import annotations

from adapters_messaging.settings import KafkaSettings
from adapters_messaging.workers import MessagingWorkers
from class_core.testing import InMemoryOutboxStore, InMemoryStore
from class_core.testing.memory import memory_runtime
from class_runtime.settings import Settings


def _workers(settings: KafkaSettings) -> MessagingWorkers:
    store = InMemoryStore()
    return MessagingWorkers(settings, memory_runtime(store), InMemoryOutboxStore(store))


def test_consumer_and_relay_take_their_attempts_from_the_settings() -> None:
    env = {
        "CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "CLASS_MANAGEMENT_SERVICE_CONSUMER_MAX_ATTEMPTS": "7",
        "CLASS_MANAGEMENT_SERVICE_OUTBOX_MAX_ATTEMPTS": "4",
    }
    workers = _workers(Settings.from_env(env).kafka)
    assert workers.consumer is not None
    assert workers.relay is not None
    assert workers.consumer.max_attempts == 7
    assert workers.relay.max_attempts == 4


def test_the_defaults_are_the_contracts() -> None:
    workers = _workers(KafkaSettings(kafka_bootstrap_servers="127.0.0.1:9"))
    assert workers.consumer is not None
    assert workers.relay is not None
    assert (workers.consumer.max_attempts, workers.relay.max_attempts) == (3, 10)


def test_nothing_runs_without_brokers() -> None:
    workers = _workers(KafkaSettings())
    assert workers.consumer is None
    assert workers.relay is None

"""The router's producer settings as librdkafka takes them."""

import pytest
from confluent_kafka import Producer

from shared.kafka_native import producer_config
from shared.settings import RouterSettings


def test_the_default_linger_is_a_fraction_of_a_millisecond_librdkafka_accepts() -> None:
    linger = RouterSettings().producer_linger_ms
    assert 0 < linger < 1
    config = producer_config("127.0.0.1:9", linger_ms=linger)
    assert config["linger.ms"] == linger
    producer = Producer(config)  # raises KafkaException on a value librdkafka refuses
    assert producer.flush(0) == 0


def test_a_linger_is_read_from_the_environment_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERTYARD_ROUTER_PRODUCER_LINGER_MS", "2.5")
    assert RouterSettings().producer_linger_ms == 2.5

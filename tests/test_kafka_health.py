"""librdkafka's log through Python logging, one line per distinct line per
interval; a client's health from librdkafka's callbacks."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from eventio.kafka_config import KafkaSettings
from eventio.kafka_health import ClientHealth, KafkaUnavailableError
from eventio.kafka_log import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


FMT = "%s [%s] %s"


def test_each_distinct_line_once_per_interval_then_how_many_were_held_back(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("test.librdkafka"), interval_s=60, clock=clock).for_client(
        lambda text: text.replace("hunter2", "***"))
    refused = "[thrd:b:1/bootstrap]: b:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    with caplog.at_level(logging.INFO, logger="test.librdkafka"):
        for i in range(140):  # a second of reconnect attempts from several clients
            clock.now = i / 140
            log.log(logging.ERROR, FMT, "FAIL", f"rdkafka#producer-{i % 4}",
                    f"{refused} (after {i}ms in state CONNECT, {i} identical error(s) suppressed)")
        log.log(logging.WARNING, FMT, "SASL", "rdkafka#consumer-1", "auth with hunter2 failed")
        clock.now = 61
        log.log(logging.ERROR, FMT, "FAIL", "rdkafka#producer-9", f"{refused} (after 0ms in state CONNECT)")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("librdkafka: FAIL [rdkafka#producer-0]") and "Connection refused" in lines[0]
    assert lines[1] == "librdkafka: SASL [rdkafka#consumer-1] auth with *** failed"
    assert lines[2].endswith("(139 more like it in the last 60 s)")


def test_a_client_without_brokers_for_the_connect_timeout_is_unavailable() -> None:
    clock = Clock()
    kafka = KafkaSettings.resolve(bootstrap_servers="b:1", connect_timeout_s=30)
    health = ClientHealth(kafka, "input topic 'events' (INPUT_TOPIC)", clock=clock)
    health.on_error(KafkaError(KafkaError._TRANSPORT, "b:1/bootstrap: Connect to b:1 failed (after 0ms in state CONNECT)"))
    health.check()  # one broker connection failing is not the cluster lost
    health.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    clock.now = 29
    health.check()
    health.on_stats({"brokers": {"b:1/1": {"state": "UP"}}})  # back: the clock starts again
    clock.now = 100
    health.check()
    health.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    health.on_stats({"brokers": {"b:1/1": {"state": "CONNECT"}}})
    clock.now = 131
    with pytest.raises(KafkaUnavailableError) as raised:
        health.check()
    assert str(raised.value).startswith(
        "lost Kafka: no broker of b:1 (KAFKA_BOOTSTRAP_SERVERS) answered for 30 s (KAFKA_CONNECT_TIMEOUT_S) "
        "for input topic 'events' (INPUT_TOPIC); last error: 1/1 brokers are down.")
    fatal = ClientHealth(kafka, "output topic 'results' (OUTPUT_TOPIC)", clock=clock)
    fatal.on_error(KafkaError(KafkaError._FATAL, "producer fenced", fatal=True))
    with pytest.raises(KafkaUnavailableError, match="output topic 'results' .*producer fenced"):
        fatal.check()

"""The decoding Kafka source: partitions, decoding, dead letters, resume, monitoring commits."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any, Optional

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from confluent_kafka import OFFSET_INVALID, Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from eventio.broker import EmbeddedBroker, free_port
from eventio.config import IOConfig
from eventio.deadletter import DeadLetter
from eventio.decoding import SerdeConfig
from eventio.event import Event
from eventio.flowio import read_events
from eventio.kafka_config import KafkaSettings
from eventio.kafka_health import KafkaUnavailableError
from eventio.kafka_source import DecodingKafkaSource
from tests.topic_reader import read_source_part


def test_partitions_decode_and_resume_from_their_snapshot(broker: EmbeddedBroker, topic_name: str) -> None:
    broker.create_topics({topic_name: 2})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(20):
        event = {"event_id": f"e{i}", "user_id": "u", "event_type": "click", "timestamp": i}
        producer.produce(topic_name, json.dumps(event).encode(), key=b"u", partition=i % 2)
    producer.produce(topic_name, b"{not json", key=b"bad", partition=1)
    producer.flush(10)
    decode = SerdeConfig().decoder(max_bytes=1 << 20)
    source = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], decode, tail=False, batch_size=4)
    assert sorted(source.list_parts()) == [f"0-{topic_name}", f"1-{topic_name}"]

    first = source.build_part("read", f"1-{topic_name}", None)
    head = first.next_batch()
    while not head:  # the first fetch may come back empty
        head = first.next_batch()
    resume_at = first.snapshot()
    first.close()
    assert resume_at == len(head)
    rest = read_source_part(source.build_part("read", f"1-{topic_name}", resume_at))
    items = head + rest
    events = [x for x in items if isinstance(x, Event)]
    assert [e.event_id for e in events] == [f"e{i}" for i in range(1, 20, 2)]
    assert {e.channel for e in events} == {f"{topic_name}:1"}
    (dead,) = [x for x in items if isinstance(x, DeadLetter)]
    assert (dead.source, dead.partition, dead.offset, dead.key, dead.value) == (topic_name, 1, 10, b"bad", b"{not json")
    assert dead.error_class == "InvalidJsonError"

    zero = read_source_part(source.build_part("read", f"0-{topic_name}", None))
    assert [e.event_id for e in zero] == [f"e{i}" for i in range(0, 20, 2)]


def test_partitions_are_listed_without_warnings_for_consumer_settings(
    broker: EmbeddedBroker, topic_name: str, capfd: Any
) -> None:
    broker.create_topics({topic_name: 3})
    decode = SerdeConfig().decoder()
    config = {"isolation.level": "read_committed", "fetch.wait.max.ms": "50"}
    source = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], decode, config=config)
    assert sorted(source.list_parts()) == [f"{i}-{topic_name}" for i in range(3)]
    assert "CONFWARN" not in capfd.readouterr().err


def _committed(broker: EmbeddedBroker, group: str, topic: str, partition: int, want: Optional[int] = None) -> int:
    """The group's committed offset; with `want`, polled until it is that
    (commits are asynchronous) or 10 s pass."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group})
    try:
        deadline = time.monotonic() + 10
        while True:
            (tp,) = consumer.committed([TopicPartition(topic, partition)], timeout=10)
            if want is None or tp.offset == want or time.monotonic() > deadline:
                return tp.offset
            time.sleep(0.05)
    finally:
        consumer.close()


def test_snapshots_commit_offsets_to_the_monitoring_group_only_when_asked(
    broker: EmbeddedBroker, topic_name: str
) -> None:
    broker.create_topics({topic_name: 1})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(12):
        event = {"event_id": f"e{i}", "user_id": "u", "event_type": "click", "timestamp": i}
        producer.produce(topic_name, json.dumps(event).encode(), partition=0)
    producer.flush(10)
    decode = SerdeConfig().decoder()
    group = f"{topic_name}-monitor"
    watched = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], decode, tail=False, batch_size=5,
                                  commit_group=group)
    part = watched.build_part("read", f"0-{topic_name}", None)
    read = part.next_batch()
    while not read:
        read = part.next_batch()
    first = part.snapshot()
    assert first == len(read)
    assert _committed(broker, group, topic_name, 0, first) == first
    read += read_source_part(part)
    assert len(read) == 12

    resumed = watched.build_part("read", f"0-{topic_name}", 12)
    assert resumed.snapshot() == 12
    resumed.close()
    assert _committed(broker, group, topic_name, 0) == first  # the resumed part had nothing new to commit

    plain = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], decode, tail=False, batch_size=5)
    part = plain.build_part("read", f"0-{topic_name}", None)
    while not part.next_batch():
        pass
    assert part.snapshot() == 5
    part.close()
    assert _committed(broker, group, topic_name, 0) == first
    assert _committed(broker, "BYTEWAX_IGNORED", topic_name, 0) == OFFSET_INVALID


def test_a_flow_with_consumer_group_set_commits_its_progress(broker: EmbeddedBroker, topic_name: str) -> None:
    """`CONSUMER_GROUP` reaches the flow's Kafka input: after a bounded run the
    group's committed offset is the end of the topic, bad records included."""
    broker.create_topics({topic_name: 2})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(30):
        event = {"event_id": f"e{i}", "user_id": f"u{i}", "event_type": "click", "timestamp": i}
        producer.produce(topic_name, json.dumps(event).encode(), partition=i % 2)
    producer.produce(topic_name, b"{not json", partition=1)
    producer.flush(10)
    group = f"{topic_name}-flow"
    cfg = IOConfig.from_env(env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "INPUT_TOPIC": topic_name,
                                 "STOP_AT_END": "true", "CONSUMER_GROUP": group})
    flow = Dataflow("commits")
    events_in = read_events(flow, "in", cfg)
    events: list[Event] = []
    errors: list[DeadLetter] = []
    op.output("events", events_in.events, TestingSink(events))
    op.output("errors", events_in.errors, TestingSink(errors))
    run_main(flow, epoch_interval=timedelta(milliseconds=20))
    assert (len(events), len(errors)) == (30, 1)
    assert _committed(broker, group, topic_name, 0, 15) == 15
    assert _committed(broker, group, topic_name, 1, 16) == 16


def test_listing_partitions_without_a_reachable_broker_is_a_clear_error() -> None:
    brokers = f"127.0.0.1:{free_port()}"
    kafka = KafkaSettings.resolve(bootstrap_servers=brokers, connect_timeout_s=1)
    source = DecodingKafkaSource(kafka, ["events"], SerdeConfig().decoder())
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError) as raised:
        source.list_parts()
    assert time.monotonic() - started < 10
    assert str(raised.value).startswith(
        f"cannot reach Kafka: no broker of {brokers} (KAFKA_BOOTSTRAP_SERVERS) answered within 1 s "
        "(KAFKA_CONNECT_TIMEOUT_S) for input topic 'events' (INPUT_TOPIC); last error: ")
    assert "Connection refused" in str(raised.value)


def test_records_read_are_counted_decoded_or_not(broker: EmbeddedBroker, topic_name: str) -> None:
    """`stream_kafka_records_read_total{step,topic}`, the dead-letter ratio's
    denominator, counts every record a partition returns, events and dead letters."""
    broker.create_topics({topic_name: 2})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in range(30):
        event = {"event_id": f"e{i}", "user_id": "u", "event_type": "click", "timestamp": i}
        producer.produce(topic_name, json.dumps(event).encode(), partition=i % 2)
    for raw in (b"{not json", b"[1]", b"\xff"):
        producer.produce(topic_name, raw, partition=0)
    producer.flush(10)
    source = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], SerdeConfig().decoder(max_bytes=1 << 20),
                                 tail=False, batch_size=4)
    items = [x for part in source.list_parts() for x in read_source_part(source.build_part("counted", part, None))]
    assert sum(isinstance(x, DeadLetter) for x in items) == 3 and len(items) == 33
    labels = {"step": "counted", "topic": topic_name}
    assert REGISTRY.get_sample_value("stream_kafka_records_read_total", labels) == 33

"""The decoding Kafka source: partitions, decoding, dead letters, resume."""

from __future__ import annotations

import json
from typing import Any

from confluent_kafka import Producer

from eventio.broker import EmbeddedBroker
from eventio.deadletter import DeadLetter
from eventio.decoding import SerdeConfig
from eventio.event import Event
from eventio.kafka_source import DecodingKafkaSource


def _read_to_end(part: Any) -> list[Any]:
    out: list[Any] = []
    try:
        while True:
            out += part.next_batch()
    except StopIteration:
        return out
    finally:
        part.close()


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
    rest = _read_to_end(source.build_part("read", f"1-{topic_name}", resume_at))
    items = head + rest
    events = [x for x in items if isinstance(x, Event)]
    assert [e.event_id for e in events] == [f"e{i}" for i in range(1, 20, 2)]
    assert {e.channel for e in events} == {f"{topic_name}:1"}
    (dead,) = [x for x in items if isinstance(x, DeadLetter)]
    assert (dead.source, dead.partition, dead.offset, dead.key, dead.value) == (topic_name, 1, 10, b"bad", b"{not json")
    assert dead.error_class == "InvalidJsonError"

    zero = _read_to_end(source.build_part("read", f"0-{topic_name}", None))
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

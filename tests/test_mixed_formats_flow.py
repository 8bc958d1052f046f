"""A flow fed a mix of valid Avro, valid JSON and bad input keeps running,
writes every valid record's result, and dead-letters exactly the bad ones
with their original bytes and provenance headers (`VALUE_FORMAT=auto`)."""

from __future__ import annotations

import json
import time

import pytest
from bytewax.testing import run_main
from confluent_kafka import Consumer, Producer, TopicPartition

from eventio.avro import AvroSerializer, registry_client, user_event_schema
from eventio.broker import EmbeddedBroker
from eventio.demo import read_topic
from flows.multi_output import build


def test_mixed_avro_json_and_garbage(broker: EmbeddedBroker, topic_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"mock://{topic_name}"
    monkeypatch.setenv("VALUE_FORMAT", "auto")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", url)
    t = {k: f"{topic_name}-{k}" for k in ("in", "out", "late", "dlq", "errors", "audit", "metrics")}
    broker.create_topics({name: 1 for name in t.values()})

    def event(n: int, version: int) -> dict:
        e = {"event_id": f"e{n}", "user_id": f"u{n % 7}", "event_type": "page_view", "timestamp": 1_704_067_200_000 + n}
        return {**e, "amount": n} if version == 1 else e

    v1 = AvroSerializer(registry_client(url), user_event_schema(1))
    v3 = AvroSerializer(registry_client(url), user_event_schema(3))
    valid: list[tuple[str, bytes]] = []
    for n in range(60):
        if n % 3 == 0:
            valid.append((f"e{n}", v1.serialize(event(n, 1), t["in"])))
        elif n % 3 == 1:
            valid.append((f"e{n}", v3.serialize(event(n, 3), t["in"])))
        else:
            valid.append((f"e{n}", json.dumps(event(n, 3)).encode()))
    some_avro = valid[1][1]
    invalid = [
        b"\xff\xfe not json, not avro",
        b"\x00" + (987654).to_bytes(4, "big") + some_avro[5:],  # unknown schema id
        some_avro[: len(some_avro) // 2],  # truncated Avro
        b'{"event_id": "x", "user_id": "u"}',  # JSON missing fields
        b"\x00\x00",  # magic byte and nothing else
    ]
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    records = [v for _, v in valid] + invalid
    for i, value in enumerate(records):
        producer.produce(t["in"], value, key=f"k{i}".encode())
    producer.flush(10)

    run_main(build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=t["in"], output_topic=t["out"],
                   late_topic=t["late"], dlq_topic=t["dlq"], errors_topic=t["errors"], audit_topic=t["audit"],
                   metrics_topic=t["metrics"], stop_at_end=True))

    main = [json.loads(v) for _, v in read_topic(broker.bootstrap_servers, t["out"])]
    assert sorted(r["event_id"] for r in main) == sorted(i for i, _ in valid)
    dead = _read_with_headers(broker.bootstrap_servers, t["dlq"])
    assert sorted(value for value, _ in dead) == sorted(invalid)
    for value, headers in dead:
        offset = records.index(value)
        assert headers["dlq.source.topic"] == t["in"].encode()
        assert headers["dlq.source.partition"] == b"0"
        assert headers["dlq.source.offset"] == str(offset).encode()
        assert headers["dlq.error.class"] and headers["dlq.error.message"]


def _read_with_headers(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    expected = len(read_topic(bootstrap, topic))
    got: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + 30
    while len(got) < expected and time.monotonic() < deadline:
        for m in consumer.consume(100, 1.0):
            if m.error() is None:
                got.append((m.value(), dict(m.headers() or [])))
    consumer.close()
    return got

"""Raw confluent-kafka rates on the embedded broker: the machine's Kafka limit."""

from __future__ import annotations

import json
import time

from confluent_kafka import Consumer, Producer, TopicPartition

from benchmarks.harness import Result
from eventio.broker import EmbeddedBroker

PAYLOAD = json.dumps({"event_id": "e00000000", "user_id": "u00001", "event_type": "page_view",
                      "timestamp": 1704067200000, "value": 42.5, "category": "books",
                      "region": "emea"}).encode()


def fill(bootstrap: str, topic: str, n: int, partitions: int = 1) -> float:
    """Produce `n` records; return seconds until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 1_000_000})
    started = time.perf_counter()
    for i in range(n):
        while True:
            try:
                producer.produce(topic, PAYLOAD, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return time.perf_counter() - started


def raw_produce(n: int) -> Result:
    with EmbeddedBroker() as broker:
        broker.create_topics({"bench": 1})
        return {"events": n, "seconds": fill(broker.bootstrap_servers, "bench", n)}


def raw_consume(n: int) -> Result:
    with EmbeddedBroker() as broker:
        broker.create_topics({"bench": 1})
        fill(broker.bootstrap_servers, "bench", n)
        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "bench",
                             "enable.auto.commit": False, "fetch.max.bytes": 52428800})
        consumer.assign([TopicPartition("bench", 0, 0)])
        got = 0
        started = time.perf_counter()
        while got < n:
            got += len(consumer.consume(1000, 1.0))
        seconds = time.perf_counter() - started
        consumer.close()
        return {"events": n, "seconds": seconds}

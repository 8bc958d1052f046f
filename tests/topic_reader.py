"""Every record of a topic written without transactions (at-least-once
output), read with a plain consumer until the topic is quiet: the embedded
broker's reported end offsets lag the log (a batch counts as one), so they
cannot say where the end is. Transactional output is read with
`tests.committed_log` instead."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

from confluent_kafka import Consumer, TopicPartition


@dataclass(frozen=True)
class Record:
    partition: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: tuple[tuple[str, bytes], ...]


def read_all(bootstrap: str, topic: str, quiet_s: float = 1.5, timeout_s: float = 20,
             config: Optional[dict[str, Any]] = None) -> list[Record]:
    """`config` adds consumer settings (TLS, say)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "topic-reader", "enable.auto.commit": False,
                         "fetch.max.bytes": 50_000_000, **(config or {})})
    try:
        parts = sorted(consumer.list_topics(topic, timeout=timeout_s).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[Record] = []
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    out.append(Record(msg.partition(), msg.key(), msg.value(), tuple(msg.headers() or ())))
                    last = time.monotonic()
        return out
    finally:
        consumer.close()


def read_source_part(part: Any) -> list[Any]:
    """Everything a bounded source partition (`tail=False`) returns, then closed."""
    out: list[Any] = []
    try:
        while True:
            out += part.next_batch()
    except StopIteration:
        return out
    finally:
        part.close()

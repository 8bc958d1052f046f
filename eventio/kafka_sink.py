"""At-least-once Kafka output that never loses a record silently.

Bytewax's own `KafkaSink` flushes after each batch but ignores delivery
reports, so a record the broker refused is dropped without a trace (observed
here with the embedded broker). This sink checks every delivery report: a
batch returns only once all its records are acknowledged, and a failed one
raises `KafkaDeliveryError`, which stops the worker so a restart resumes from
the last recovery snapshot and writes the batch again. The producer is
idempotent, so librdkafka's own retries neither reorder nor duplicate.
"""

from __future__ import annotations

from typing import Any, Optional

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

PRODUCER_DEFAULTS = {
    "enable.idempotence": "true",
    "linger.ms": "5",
    "compression.type": "lz4",
}


class KafkaDeliveryError(RuntimeError):
    """A record was not acknowledged by the broker."""


class _CheckedPartition(StatelessSinkPartition[KafkaSinkMessage[Optional[bytes], Optional[bytes]]]):
    def __init__(self, producer: Producer, topic: Optional[str], flush_timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s
        self._failures: list[str] = []

    def _on_delivery(self, err: Optional[KafkaError], msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def write_batch(self, items: list[KafkaSinkMessage[Optional[bytes], Optional[bytes]]]) -> None:
        produce = self._producer.produce
        poll = self._producer.poll
        for msg in items:
            topic = msg.topic or self._topic
            if topic is None:
                raise ValueError(f"no topic to produce {msg!r} to")
            while True:
                try:
                    produce(topic, msg.value, msg.key, headers=msg.headers or None,
                            on_delivery=self._on_delivery)
                    break
                except BufferError:
                    poll(0.05)
            poll(0)
        self._settle()

    def _settle(self) -> None:
        left = self._producer.flush(self._flush_timeout_s)
        if left:
            raise KafkaDeliveryError(f"{left} records unacknowledged after {self._flush_timeout_s}s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise KafkaDeliveryError(f"{len(failures)} records not delivered, first: {failures[0]}")

    def close(self) -> None:
        self._settle()


class CheckedKafkaSink(DynamicSink[KafkaSinkMessage[Optional[bytes], Optional[bytes]]]):
    """One idempotent producer per worker; see the module docstring."""

    def __init__(self, brokers: list[str], topic: Optional[str], add_config: Optional[dict[str, Any]] = None,
                 flush_timeout_s: float = 60.0) -> None:
        self._config = {"bootstrap.servers": ",".join(brokers), **PRODUCER_DEFAULTS, **(add_config or {})}
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        return _CheckedPartition(Producer(self._config), self._topic, self._flush_timeout_s)

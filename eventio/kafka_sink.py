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

from typing import TYPE_CHECKING, Any, Optional

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, Message, Producer

if TYPE_CHECKING:
    from eventio.flowio import Encoded

PRODUCER_DEFAULTS = {
    "enable.idempotence": "true",
    "linger.ms": "5",
    "compression.type": "lz4",
}


KafkaRecord = tuple[Optional[bytes], Optional[bytes], Optional[list[tuple[str, bytes]]]]
"""`(key, value, headers)` of one output record."""


class KafkaDeliveryError(RuntimeError):
    """A record was not acknowledged by the broker."""


class _CheckedPartition(StatelessSinkPartition["Encoded[list[KafkaRecord]]"]):
    def __init__(self, producer: Producer, topic: str, flush_timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s
        self._failures: list[str] = []

    def _on_delivery(self, err: Optional[KafkaError], msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    def write_batch(self, items: list[Encoded[list[KafkaRecord]]]) -> None:
        produce = self._producer.produce
        poll = self._producer.poll
        topic, on_delivery = self._topic, self._on_delivery
        for batch in items:
            for key, value, headers in batch.records:
                while True:
                    try:
                        if headers is None:
                            produce(topic, value, key, on_delivery=on_delivery)
                        else:
                            produce(topic, value, key, headers=headers, on_delivery=on_delivery)
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


class CheckedKafkaSink(DynamicSink["Encoded[list[KafkaRecord]]"]):
    """One idempotent producer per worker writing `Encoded` batches of
    records to `topic`; see the module docstring."""

    def __init__(self, brokers: list[str], topic: str, add_config: Optional[dict[str, Any]] = None,
                 flush_timeout_s: float = 60.0) -> None:
        self._config = {"bootstrap.servers": ",".join(brokers), **PRODUCER_DEFAULTS, **(add_config or {})}
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        return _CheckedPartition(Producer(self._config), self._topic, self._flush_timeout_s)

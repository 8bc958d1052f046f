"""At-least-once Kafka output that never loses a record silently and never wedges.

Bytewax's own `KafkaSink` flushes after each batch but ignores delivery
reports, so a record the broker refused is dropped without a trace (observed
here with the embedded broker). This sink checks every delivery: a batch
returns only once all its records are acknowledged (librdkafka reports only
failures, `delivery.report.only.error`, so acknowledged records cost no
Python call). The producer is idempotent, so librdkafka's own retries
neither reorder nor duplicate.

A record the broker refuses for its content (too large, invalid) would be
refused again on every restart, so it is not retried: the sink finds which
records of the refused batches the broker refuses on their own (a broker
refuses whole batches) and writes each as a dead letter, cut to fit, to the
flow's dead-letter topic, with the reason; the batch's other records are
written again. Any other failure (no broker answering within
`KAFKA_CONNECT_TIMEOUT_S`, access refused) stops the run with one message
(`eventio.bytewax_run.stop_run`): a resumed run writes the batch again from
its recovery snapshot.

At start-up each worker's producer asks for the topic's metadata within
`KAFKA_CONNECT_TIMEOUT_S` and stops the run with a message naming the
brokers, the topic and the variable if it gets none.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from eventio import metrics
from eventio.bytewax_run import stop_run
from eventio.deadletter import DeadLetter
from eventio.kafka_config import KafkaConfigError, KafkaSettings
from eventio.kafka_health import ClientHealth, KafkaUnavailableError, check_topic

if TYPE_CHECKING:
    from eventio.flowio import Encoded

PRODUCER_DEFAULTS = {
    "linger.ms": "5",
    "compression.type": "lz4",
}
"""Tuned defaults of the flows' producers; the user's Kafka properties win."""

KafkaRecord = tuple[Optional[bytes], Optional[bytes], Optional[list[tuple[str, bytes]]], Optional[int]]
"""`(key, value, headers, partition)` of one output record; partition None:
placed by its key (librdkafka's partitioner)."""

_UNASSIGNED = -1
"""librdkafka's "no partition": its partitioner places the record."""

CONTENT_REFUSALS = frozenset(
    getattr(KafkaError, name) for name in (
        "MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "INVALID_RECORD", "INVALID_MSG", "INVALID_MSG_SIZE",
        "RECORD_LIST_TOO_LARGE", "INVALID_TIMESTAMP", "POLICY_VIOLATION", "UNSUPPORTED_FOR_MESSAGE_FORMAT",
    ) if hasattr(KafkaError, name)
)
"""Delivery errors that say the broker will never take this record."""

REFUSED = "RecordRefusedError"
"""Error class of the dead letter of a record the broker refused."""


class KafkaDeliveryError(KafkaUnavailableError):
    """Records could not be delivered, for a reason other than their content."""


def refused_dead_letter(topic: str, partition: Optional[int], key: Optional[bytes], value: Optional[bytes],
                        reason: str, limit: int) -> DeadLetter:
    """The dead letter of a record the broker refused, cut to fit `limit`."""
    message = f"Kafka refused the record for topic {topic!r}: {reason}"
    return DeadLetter(f"output:{topic}", partition, None, key, value, REFUSED, message).fit(limit)


class _CheckedPartition(StatelessSinkPartition["Encoded[list[KafkaRecord]]"]):
    def __init__(self, settings: KafkaSettings, topic: str, endpoint: str, dead_letter_topic: Optional[str],
                 tuned: dict[str, Any]) -> None:
        self._settings = settings
        self._topic = topic
        self._endpoint = endpoint
        self._dead_letter_topic = dead_letter_topic
        self._health = ClientHealth(settings, endpoint)
        timeout_ms = int(settings.connect_timeout_s * 1000)
        self._config = settings.producer(
            {**tuned, "message.timeout.ms": timeout_ms},
            {**self._health.config(), "enable.idempotence": True, "delivery.report.only.error": True,
             "on_delivery": self._on_failure},
        )
        self._failures: list[tuple[KafkaError, Optional[bytes], Optional[bytes]]] = []
        self._producer = settings.make(Producer, self._config)
        self._plain: Optional[Producer] = None
        """A producer without idempotence, for sending refused batches again."""
        check_topic(self._producer, self._health, topic)

    def _on_failure(self, err: Optional[KafkaError], msg: Message) -> None:
        if err is not None:
            self._failures.append((err, msg.key(), msg.value()))

    def write_batch(self, items: list[Encoded[list[KafkaRecord]]]) -> None:
        topic = self._topic
        for batch in items:
            self._produce(topic, batch.records)
        if self._settle():
            records = [record for batch in items for record in batch.records]
            failures = self._take_failures()
            # After a refusal librdkafka bumps the idempotent producer's epoch,
            # which the embedded broker answers by fencing it: the refused
            # records go again through a plain producer (at least once, as
            # before), then the idempotent one starts afresh.
            idempotent = self._producer
            if self._plain is None:
                self._plain = self._settings.make(Producer, {**self._config, "enable.idempotence": False})
            self._producer = self._plain
            try:
                refused = self._isolate(_matching(records, failures))
                if refused:
                    self._write_dead_letters(refused)
            finally:
                idempotent.flush(0)
                self._producer = self._settings.make(Producer, self._config)

    def _produce(self, topic: str, records: Sequence[KafkaRecord]) -> None:
        produce = self._producer.produce
        for key, value, headers, partition in records:
            where = _UNASSIGNED if partition is None else partition
            while True:
                try:
                    if headers is None:
                        produce(topic, value, key, where)
                    else:
                        produce(topic, value, key, where, headers=headers)
                    break
                except BufferError:
                    self._producer.poll(0.05)
                    self._check()
                except KafkaException as ex:  # refused before sending (its size)
                    self._failures.append((ex.args[0], key, value))
                    break
        self._producer.poll(0)

    def _settle(self) -> bool:
        """Wait until every record is acknowledged or failed (at most
        `KAFKA_CONNECT_TIMEOUT_S` without a broker); whether some failed."""
        deadline = time.monotonic() + self._settings.connect_timeout_s + 5
        while True:
            left = self._producer.flush(1.0)
            if not left:
                break
            self._check()
            if time.monotonic() > deadline:
                stop_run(self._health.lost(f"delivering {left} records"))
        if self._failures:
            return True
        self._health.up()
        return False

    def _check(self) -> None:
        try:
            self._health.check()
        except KafkaUnavailableError as ex:
            stop_run(ex)

    def _take_failures(self) -> list[tuple[KafkaError, Optional[bytes], Optional[bytes]]]:
        """The failed deliveries so far, all refusals of content; any other
        failure stops the run (a resumed run writes the batch again)."""
        failures, self._failures = self._failures, []
        other = [f for f in failures if f[0].code() not in CONTENT_REFUSALS]
        if other:
            reason = self._settings.redact(other[0][0].str())
            stop_run(KafkaDeliveryError(
                f"{len(other)} records not delivered to {self._endpoint} on brokers "
                f"{self._settings.describe_brokers()}: {reason}. The run stops; resume it to write them again"))
        return failures

    def _isolate(self, suspects: list[KafkaRecord]) -> list[tuple[KafkaRecord, str]]:
        """Send `suspects` again, halving the refused groups until each
        refused record stands alone (a broker refuses a whole batch); the
        others are delivered. Returns the refused records with the reasons."""
        refused: list[tuple[KafkaRecord, str]] = []
        groups = [suspects]
        while groups:
            group = groups.pop()
            self._produce(self._topic, group)
            if not self._settle():
                continue
            failures = self._take_failures()
            failed = _matching(group, failures)
            if len(failed) == 1:  # a batch of one record: that record is refused
                refused.append((failed[0], self._settings.redact(failures[0][0].str())))
            else:
                groups += [failed[: len(failed) // 2], failed[len(failed) // 2:]]
        return refused

    def _write_dead_letters(self, refused: list[tuple[KafkaRecord, str]]) -> None:
        """The dead letters of refused records to the dead-letter topic; one
        refused there too is written once more without key and value."""
        topic = self._dead_letter_topic
        if topic is None:
            stop_run(KafkaDeliveryError(
                f"Kafka refused {len(refused)} records for {self._endpoint} and this sink has no dead-letter topic: "
                f"{refused[0][1]}"))
        limit = self._settings.max_message_bytes
        letters = [refused_dead_letter(self._topic, None, key, value, reason, limit)
                   for (key, value, _, _), reason in refused]
        self._produce(topic, [(d.key, d.value, d.headers(), None) for d in letters])
        if self._settle():
            failed = {(key, value) for _, key, value in self._take_failures()}
            bare = [DeadLetter(d.source, d.partition, d.offset, None, None, d.error_class, d.message,
                               d.original_size, d.original_sha256) for d in letters if (d.key, d.value) in failed]
            self._produce(topic, [(d.key, d.value, d.headers(), None) for d in bare])
            if self._settle():
                reason = self._settings.redact(self._take_failures()[0][0].str())
                stop_run(KafkaDeliveryError(
                    f"dead-letter topic {topic!r} on brokers {self._settings.describe_brokers()} refused the dead "
                    f"letters of records refused for {self._endpoint}: {reason}"))
        metrics.DEAD_LETTERS.labels(REFUSED).inc(len(letters))

    def close(self) -> None:
        if self._settle():  # every batch was settled when written: a failure now is a bug worth stopping for
            failures = self._take_failures()
            stop_run(KafkaDeliveryError(f"{len(failures)} records refused for {self._endpoint} at close"))


def _matching(records: Sequence[KafkaRecord], failures: Sequence[tuple[KafkaError, Any, Any]]) -> list[KafkaRecord]:
    """The records whose key and value match a failed delivery (delivery
    reports carry no headers), each failure matched once."""
    wanted = Counter((key, value) for _, key, value in failures)
    out = []
    for record in records:
        pair = (record[0], record[1])
        if wanted[pair]:
            wanted[pair] -= 1
            out.append(record)
    return out


class CheckedKafkaSink(DynamicSink["Encoded[list[KafkaRecord]]"]):
    """One idempotent producer per worker writing `Encoded` batches of
    records to `topic`; see the module docstring. `kafka` is the flow's
    `KafkaSettings` (or a broker list); `add_config` holds tuned defaults
    the user's properties override; `endpoint` names the topic and its
    variable in messages; refused records go to `dead_letter_topic`."""

    def __init__(self, kafka: Union[KafkaSettings, Sequence[str]], topic: str,
                 add_config: Optional[dict[str, Any]] = None, *, endpoint: Optional[str] = None,
                 dead_letter_topic: Optional[str] = None) -> None:
        self._settings = KafkaSettings.of(kafka)
        self._topic = topic
        self._endpoint = endpoint or f"output topic {topic!r}"
        self._dead_letter_topic = dead_letter_topic
        self._tuned = {**PRODUCER_DEFAULTS, **(add_config or {})}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        try:
            return _CheckedPartition(self._settings, self._topic, self._endpoint, self._dead_letter_topic, self._tuned)
        except (KafkaUnavailableError, KafkaConfigError) as ex:
            stop_run(ex)

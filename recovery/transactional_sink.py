"""Exactly-once Kafka output on Bytewax recovery: a transactional sink whose
transactions follow Bytewax epochs.

    sink = TransactionalKafkaSink(brokers, "results", transactional_id_prefix="orders")
    exactly_once_output("out", messages, sink)   # messages: KeyedStream[KafkaSinkMessage]

Each sink partition owns one transactional producer with the stable id
`{prefix}-{step_id}-{partition}`: a restarted worker's `init_transactions()`
fences the zombie and aborts its open transaction. Each Kafka partition of
the output is written by exactly one sink partition (`OutputPartitions`), so
no two of the sink's transactions are ever open on the same Kafka partition.
The records of an epoch are kept in the partition's snapshot and committed in
one transaction at the partition's first call after that snapshot is durable
(see `recovery/epoch_commit.py` and `recovery/README.md`). The transaction
also commits the epoch's sequence number as the offset of partition 0 of the
output topic in the consumer group `{transactional id}.progress`, so on
resume the pending epoch is committed only if Kafka has not seen it yet.

Run with recovery (`python -m bytewax.run ... -r DIR -s 1 -b 0`); without it
nothing is durable and the last epoch before the end of input is never
committed. A transaction carries one epoch of output, so the sink's
`transaction.timeout.ms` must be larger than the epoch (snapshot) interval:
by default it is derived from that interval (`transaction_timeout_ms`), and a
sink given a smaller one refuses to start.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from eventio import metrics
from recovery.epoch_commit import EpochCommitter, OutRecord, SinkState
from recovery.heartbeat import heartbeats

log = logging.getLogger(__name__)

ROUTE_KEY_PREFIX = "\x00sink-partition:"
"""Routing key of items and heartbeat ticks: `prefix + str(sink partition index)`."""

_FENCING_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)

Message = Optional[OutRecord]
"""What a sink partition receives: a record placed on its Kafka partition
(`OutputPartitions.route`), or `None` for a heartbeat."""

_UNASSIGNED = -1
"""librdkafka's "no partition": its partitioner places the record."""


class FencedError(RuntimeError):
    """Another instance with the same transactional id took over this partition."""


class CommitTimeoutError(RuntimeError):
    """A transaction could not be committed in time; the epoch stays pending
    in the recovery store and a resumed execution commits it."""


MIN_TRANSACTION_TIMEOUT_MS = 60_000
"""The smallest derived `transaction.timeout.ms` (librdkafka's default)."""


def transaction_timeout_ms(epoch_interval_s: Optional[float], sink_timeout_s: float) -> int:
    """The default `transaction.timeout.ms`: twice one epoch plus one sink
    timeout, and at least 60 s. A transaction is open while an epoch's output
    is produced and committed (retried for up to `sink_timeout_s`); a flow
    that keeps up produces an epoch's output in less than an epoch, and the
    factor 2 leaves room for a slow epoch. Kafka brokers refuse timeouts above
    their `transaction.max.timeout.ms` (15 min by default)."""
    epoch_ms = 0.0 if epoch_interval_s is None else epoch_interval_s * 1000
    return max(MIN_TRANSACTION_TIMEOUT_MS, int(2 * epoch_ms + sink_timeout_s * 1000))


def check_transaction_timeout(timeout_ms: int, epoch_interval_s: Optional[float]) -> None:
    """Refuse a transaction timeout that is not larger than the epoch
    interval: the coordinator would abort transactions the sink still needs."""
    if epoch_interval_s is not None and timeout_ms <= epoch_interval_s * 1000:
        raise ValueError(
            f"transaction.timeout.ms ({timeout_ms} ms) must be larger than the snapshot interval "
            f"({epoch_interval_s:g} s, bytewax.run -s): a transaction carries one epoch of output; "
            "leave it unset (TRANSACTION_TIMEOUT_MS) to derive it from the interval, or raise it"
        )


class KafkaTransactionalWriter:
    """One transactional producer plus the progress group it commits to."""

    def __init__(
        self,
        brokers: Sequence[str],
        transactional_id: str,
        progress_topic: str,
        config: dict[str, Any],
        timeout_s: float,
        max_attempts: int = 5,
    ) -> None:
        self.transactional_id = transactional_id
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._progress = TopicPartition(progress_topic, 0)
        bootstrap = ",".join(brokers)
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                **config,
                "transactional.id": transactional_id,
            }
        )
        # Fences any zombie with this id and aborts (or completes) its open
        # transaction before we read the recorded progress.
        self._producer.init_transactions(timeout_s)
        for outcome in metrics.TRANSACTION_OUTCOMES:
            metrics.TRANSACTIONS.labels(outcome)  # series at 0, so alerts see the first change
        self._group = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{transactional_id}.progress",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self._group_metadata = self._group.consumer_group_metadata()

    def committed_seq(self) -> int:
        (tp,) = self._group.committed([self._progress], timeout=self._timeout_s)
        if tp.error is not None:
            raise KafkaException(tp.error)
        return max(tp.offset, 0)

    def commit(self, records: Sequence[OutRecord], seq: int) -> None:
        progress = [TopicPartition(self._progress.topic, 0, seq)]
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._producer.begin_transaction()
                for topic, partition, key, value, headers in records:
                    self._produce(topic, partition, key, value, headers)
                self._producer.send_offsets_to_transaction(progress, self._group_metadata, self._timeout_s)
                self._retrying(self._producer.commit_transaction)
                metrics.TRANSACTIONS.labels("committed").inc()
                return
            except KafkaException as ex:
                err: KafkaError = ex.args[0]
                if err.code() in _FENCING_CODES:
                    metrics.TRANSACTIONS.labels("fenced").inc()
                    raise FencedError(
                        f"transactional id {self.transactional_id!r} was taken over by another "
                        f"instance; this one stops without committing: {err.str()}"
                    ) from ex
                if err.fatal() or not err.txn_requires_abort() or attempt == self._max_attempts:
                    # Stopping is always safe: a resumed execution commits
                    # the pending epoch unless Kafka recorded it.
                    raise
                log.warning("transaction of %s aborted, retrying: %s", self.transactional_id, err.str())
                metrics.TRANSACTIONS.labels("aborted").inc()
                self._producer.abort_transaction(self._timeout_s)

    def _produce(self, topic: str, partition: Optional[int], key: Optional[bytes], value: Optional[bytes],
                 headers: Any) -> None:
        """One record into the open transaction; positional arguments where
        possible, as this runs for every output record (1.0 -> 0.6 us)."""
        partition = _UNASSIGNED if partition is None else partition
        produce = self._producer.produce
        while True:
            try:
                if headers is None:
                    produce(topic, value, key, partition)
                else:
                    produce(topic, value, key, partition, headers=headers)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _retrying(self, call: Callable[[float], None]) -> None:
        """`call(timeout)`, again while it fails with a retriable error, for at
        most the writer's timeout in all."""
        deadline = time.monotonic() + self._timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                call(max(remaining, 0.1))
                return
            except KafkaException as ex:
                if not ex.args[0].retriable():
                    raise
                if time.monotonic() >= deadline:
                    raise CommitTimeoutError(
                        f"commit of transactional id {self.transactional_id!r} did not complete "
                        f"within {self._timeout_s}s (broker unreachable, or the id was taken over "
                        f"by another instance); stopping without committing: {ex.args[0].str()}"
                    ) from ex

    def close(self) -> None:
        """Drop anything not committed (closing never commits)."""
        self._group.close()
        self._producer.purge()
        self._producer.flush(0)


class _TransactionalPartition(StatefulSinkPartition[Message, SinkState]):
    """Bytewax face of an `EpochCommitter`."""

    def __init__(self, committer: EpochCommitter) -> None:
        self._committer = committer

    def write_batch(self, values: list[Message]) -> None:
        self._committer.add([record for record in values if record is not None])

    def snapshot(self) -> SinkState:
        return self._committer.snapshot()

    def close(self) -> None:
        self._committer.close()


class OutputPartitions:
    """Places each output message on a Kafka partition and names the one
    sink partition that owns that Kafka partition.

    A message's `partition` is kept if set; otherwise it is the CRC-32 of the
    message key modulo the topic's partition count, as librdkafka's default
    partitioner (`consistent_random`) computes it, so a flow's keys land on
    the same partitions whichever delivery guarantee it runs with. Messages
    without a key are placed by the CRC-32 of their routing key instead of
    at random, so a replayed epoch goes where it went before. Kafka
    partition `p` of topic `t` belongs to sink partition `(crc32(t) + p) mod
    sink partitions`: consecutive partitions go to different producers.
    """

    def __init__(self, brokers: Sequence[str], default_topic: str, sink_partitions: int, timeout_s: float) -> None:
        self._brokers = ",".join(brokers)
        self._default_topic = default_topic
        self._sink_partitions = sink_partitions
        self._timeout_s = timeout_s
        self.route_keys = [f"{ROUTE_KEY_PREFIX}{i}" for i in range(sink_partitions)]
        """The routing key of each sink partition."""
        self._counts: dict[str, int] = {}
        self._topic_hashes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._metadata: Optional[Producer] = None

    def partition_count(self, topic: str) -> int:
        """Partitions of `topic`, asked of the cluster once per topic."""
        count = self._counts.get(topic)
        if count is None:
            with self._lock:
                if self._metadata is None:
                    self._metadata = Producer({"bootstrap.servers": self._brokers})
                meta = self._metadata.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise KafkaException(
                    meta.error if meta is not None and meta.error is not None
                    else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"output topic {topic!r} has no partitions"))
            count = self._counts[topic] = len(meta.partitions)
        return count

    def owner(self, topic: str, partition: int) -> int:
        """Index of the sink partition that writes Kafka partition `partition` of `topic`."""
        base = self._topic_hashes.get(topic)
        if base is None:
            base = self._topic_hashes[topic] = zlib.crc32(topic.encode())
        return (base + partition) % self._sink_partitions

    def route(self, item: tuple[str, KafkaSinkMessage[Any, Any]]) -> tuple[str, OutRecord]:
        """`(routing key, record)`: the message as an `OutRecord` with its
        topic and partition set. Its timestamp is left to the producer."""
        key, msg = item
        topic = msg.topic or self._default_topic
        partition = msg.partition
        if partition is None:
            hashed = msg.key if msg.key else key
            raw = hashed.encode() if isinstance(hashed, str) else hashed
            partition = zlib.crc32(raw) % self.partition_count(topic)
        return self.route_keys[self.owner(topic, partition)], (topic, partition, msg.key, msg.value, msg.headers)


class TransactionalKafkaSink(FixedPartitionedSink[Message, SinkState]):
    """Kafka sink with exactly-once output under Bytewax recovery; use it
    through `exactly_once_output`.

    Items are `(routing key, OutRecord)` pairs as made by
    `OutputPartitions.route` (records with topic and partition set) or
    heartbeat ticks `(routing key, None)`. `partitions` is the number of
    transactional producers and must stay the same for the life of a
    recovery store; with fewer output partitions than that, the surplus
    producers stay idle. `epoch_interval_s` is the snapshot interval the
    flow runs with (`recovery.epoch_interval.epoch_interval_s()`); the
    producers' `transaction.timeout.ms` is `add_config`'s if given, else
    derived from it (`transaction_timeout_ms`), and must be larger.
    """

    def __init__(
        self,
        brokers: Sequence[str],
        topic: str,
        *,
        transactional_id_prefix: str,
        partitions: int = 4,
        add_config: Optional[dict[str, Any]] = None,
        timeout_s: float = 30.0,
        epoch_interval_s: Optional[float] = None,
    ) -> None:
        if isinstance(brokers, str):
            raise TypeError("brokers must be a list of host:port strings, not a string")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if not transactional_id_prefix:
            raise ValueError("transactional_id_prefix must not be empty")
        self.brokers = list(brokers)
        self.topic = topic
        self.transactional_id_prefix = transactional_id_prefix
        self.partitions = partitions
        self.add_config = dict(add_config or {})
        self.timeout_s = timeout_s
        configured = self.add_config.get("transaction.timeout.ms")
        self.transaction_timeout_ms = (
            transaction_timeout_ms(epoch_interval_s, timeout_s) if configured is None else int(configured)
        )
        check_transaction_timeout(self.transaction_timeout_ms, epoch_interval_s)
        self.add_config["transaction.timeout.ms"] = self.transaction_timeout_ms
        width = len(str(partitions - 1))
        # Equal-width names sort in index order, which `part_fn` relies on.
        self._names = [str(i).zfill(width) for i in range(partitions)]
        self.placement = OutputPartitions(self.brokers, topic, partitions, timeout_s)

    def list_parts(self) -> list[str]:
        return list(self._names)

    def part_fn(self, item_key: str) -> int:
        if not item_key.startswith(ROUTE_KEY_PREFIX):
            raise ValueError(
                f"item key {item_key!r} is not a sink routing key: write to a TransactionalKafkaSink "
                "with exactly_once_output, which routes each message to the producer owning its partition"
            )
        return int(item_key[len(ROUTE_KEY_PREFIX):])

    def heartbeat_keys(self) -> list[str]:
        """One routing key per partition, for heartbeat ticks."""
        return list(self.placement.route_keys)

    def transactional_id(self, step_id: str, part: str) -> str:
        return f"{self.transactional_id_prefix}-{step_id}-{part}"

    def build_part(
        self, step_id: str, for_part: str, resume_state: Optional[SinkState]
    ) -> _TransactionalPartition:
        writer = KafkaTransactionalWriter(
            self.brokers,
            self.transactional_id(step_id, for_part),
            self.topic,
            self.add_config,
            self.timeout_s,
        )
        return _TransactionalPartition(EpochCommitter(writer, resume_state))


def exactly_once_output(
    step_id: str,
    up: Stream[tuple[str, KafkaSinkMessage[Optional[bytes], Optional[bytes]]]],
    sink: TransactionalKafkaSink,
    heartbeat_interval: Optional[timedelta] = timedelta(milliseconds=500),
) -> None:
    """Write keyed messages to `sink`, each to the sink partition that owns
    its Kafka partition (the key places messages without a Kafka key), with
    heartbeat ticks to every partition every `heartbeat_interval` so quiet
    partitions commit promptly. Pass `None` for bounded input: the heartbeat
    never ends, so neither would the flow."""
    routed: Stream[tuple[str, Message]] = op.map(f"{step_id}_route", up, sink.placement.route)
    if heartbeat_interval is None:
        op.output(step_id, routed, sink)
        return
    keys = sink.heartbeat_keys()
    ticks = heartbeats(f"{step_id}_heartbeat", up.flow(), heartbeat_interval)
    fanned: Stream[tuple[str, Message]] = op.flat_map(
        f"{step_id}_heartbeat_fan", ticks, lambda _: [(k, None) for k in keys]
    )
    op.output(step_id, op.merge(f"{step_id}_merge", routed, fanned), sink)

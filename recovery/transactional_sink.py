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

A record the broker refuses for its content (too large, invalid) is replaced
in the transaction by its dead letter on `dead_letter_topic`: the commit is
aborted, the refused record found (the sink produces the suspects one at a
time in a transaction it then aborts, as a broker refuses whole batches) and
the transaction retried, so a pending epoch always commits, on resume too.
Any other failure (fenced, no broker within `SINK_TIMEOUT_S`) stops the run
with one message (`eventio.bytewax_run.stop_run`); a resumed run commits the
pending epoch.
"""

from __future__ import annotations

import atexit
import logging
import pickle
import time
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Stream
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from eventio import metrics
from eventio.bytewax_run import stop_run
from eventio.kafka_config import KafkaConfigError, KafkaSettings
from eventio.kafka_health import ClientHealth, KafkaUnavailableError, check_topic
from eventio.kafka_sink import CONTENT_REFUSALS, REFUSED, refused_dead_letter
from eventio.partitioning import PartitionCounts, Partitioner, checked
from recovery.directories import stored_states
from recovery.epoch_commit import EpochCommitter, OutRecord
from recovery.fixed_settings import StoreMismatchError, check_parts, recovery_directory
from recovery.heartbeat import heartbeats

log = logging.getLogger(__name__)

ROUTE_KEY_PREFIX = "\x00sink-partition:"
"""Routing key of items and heartbeat ticks: `prefix + str(sink partition index)`."""

_FENCING_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
_TIMEOUTS = (KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._MSG_TIMED_OUT)

Item = Optional[OutRecord]
"""What a sink partition receives: a record placed on its Kafka partition
(`OutputPartitions.route`), or `None` for a heartbeat."""

_UNASSIGNED = -1
"""librdkafka's "no partition": its partitioner places the record."""


class FencedError(RuntimeError):
    """Another instance with the same transactional id took over this partition."""


class CommitTimeoutError(KafkaUnavailableError):
    """A transaction could not be committed in time; the epoch stays pending
    in the recovery store and a resumed execution commits it."""


DeadLetterRoute = Callable[[Optional[bytes]], tuple[str, int]]
"""Topic and partition for the dead letter of a refused record with this key."""


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
    """One transactional producer plus the progress group it commits to.

    `kafka` is the flow's `KafkaSettings` (or a broker list); `config` holds
    the sink's own producer settings (`transaction.timeout.ms`), which the
    user's properties do not override; `endpoint` names the output topic
    and its variable in messages; refused records are replaced by dead
    letters placed by `dead_letter_route`. Every Kafka call of a commit,
    retries included, ends within `timeout_s`."""

    def __init__(
        self,
        kafka: Union[KafkaSettings, Sequence[str]],
        transactional_id: str,
        progress_topic: str,
        config: dict[str, Any],
        timeout_s: float,
        max_attempts: int = 5,
        *,
        endpoint: Optional[str] = None,
        dead_letter_route: Optional[DeadLetterRoute] = None,
    ) -> None:
        self.transactional_id = transactional_id
        self._settings = KafkaSettings.of(kafka)
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._dead_letter_route = dead_letter_route
        self._progress = TopicPartition(progress_topic, 0)
        self._failed: list[tuple[KafkaError, tuple[Any, ...]]] = []
        self.health = ClientHealth(
            self._settings, f"{endpoint or f'output topic {progress_topic!r}'} (transactional id {transactional_id!r})")
        self._producer = self._settings.make(Producer, self._settings.producer(
            {"linger.ms": 5},
            {**config, **self.health.config(), "transactional.id": transactional_id,
             "delivery.report.only.error": True, "on_delivery": self._on_failure},
        ))
        check_topic(self._producer, self.health, progress_topic)
        # Fences any zombie with this id and aborts (or completes) its open
        # transaction before we read the recorded progress.
        self._call("initialising the transactional producer", self._producer.init_transactions, timeout_s)
        for outcome in metrics.TRANSACTION_OUTCOMES:
            metrics.TRANSACTIONS.labels(outcome)  # series at 0, so alerts see the first change
        self._group = self._settings.make(Consumer, self._settings.consumer({}, {
            **self.health.config(stats=False),
            "group.id": f"{transactional_id}.progress",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }))
        self._group_metadata = self._group.consumer_group_metadata()

    def _on_failure(self, err: Optional[KafkaError], msg: Message) -> None:
        if err is not None:
            self._failed.append((err, (msg.topic(), msg.partition(), msg.key(), msg.value())))

    def _call(self, doing: str, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`; a timeout becomes `CommitTimeoutError`, naming the brokers."""
        try:
            return call(*args)
        except KafkaException as ex:
            if ex.args[0].code() not in _TIMEOUTS:
                raise
            raise self._timed_out(doing, ex.args[0]) from None

    def _timed_out(self, doing: str, err: KafkaError) -> CommitTimeoutError:
        return CommitTimeoutError(
            f"lost Kafka: {doing} did not complete within {self._timeout_s:g} s (SINK_TIMEOUT_S) on brokers "
            f"{self._settings.describe_brokers()} for {self.health.endpoint}; last error: "
            f"{self.health.last_error or self._settings.redact(err.str())}. The run stops without committing; "
            "a resumed run commits the pending epoch"
        )

    def committed_seq(self) -> int:
        (tp,) = self._call("reading the committed sequence", self._group.committed, [self._progress], self._timeout_s)
        if tp.error is not None:
            raise KafkaException(tp.error)
        return max(tp.offset, 0)

    def watch(self) -> None:
        """Serve the clients' callbacks; `KafkaUnavailableError` once no
        broker has answered for `KAFKA_CONNECT_TIMEOUT_S`."""
        self._producer.poll(0)
        self._group.poll(0)
        self.health.check()

    def commit(self, records: Sequence[OutRecord], seq: int) -> None:
        """`records` and `seq` in one transaction, each record the broker
        refuses replaced by its dead letter. Each try ends within
        `timeout_s`; finding a refused record starts the clock again."""
        deadline = time.monotonic() + self._timeout_s
        progress = [TopicPartition(self._progress.topic, 0, seq)]
        substitutes: dict[int, OutRecord] = {}
        attempt = 0
        while True:
            attempt += 1
            self._failed.clear()
            try:
                self._producer.begin_transaction()
                for i, record in enumerate(records):
                    self._produce(*substitutes.get(i, record))
                if self._failed:  # refused before sending: no use committing
                    raise KafkaException(self._failed[0][0])
                self._producer.send_offsets_to_transaction(progress, self._group_metadata, _left(deadline))
                self._retrying(self._producer.commit_transaction, deadline)
                metrics.TRANSACTIONS.labels("committed").inc()
                if substitutes:
                    metrics.DEAD_LETTERS.labels(REFUSED).inc(len(substitutes))
                return
            except KafkaException as ex:
                err: KafkaError = ex.args[0]
                if err.code() in _FENCING_CODES:
                    metrics.TRANSACTIONS.labels("fenced").inc()
                    raise FencedError(
                        f"transactional id {self.transactional_id!r} was taken over by another "
                        f"instance; this one stops without committing: {err.str()}"
                    ) from ex
                if err.code() in _TIMEOUTS or time.monotonic() >= deadline:
                    raise self._timed_out("committing the transaction", err) from None
                refused = {f[1] for f in self._failed if f[0].code() in CONTENT_REFUSALS}
                if err.fatal() or attempt >= self._max_attempts or not (refused or err.txn_requires_abort()):
                    # Stopping is always safe: a resumed execution commits
                    # the pending epoch unless Kafka recorded it.
                    raise
                self._call("aborting the transaction", self._producer.abort_transaction, _left(deadline))
                metrics.TRANSACTIONS.labels("aborted").inc()
                if refused and self._replace_refused(records, substitutes, refused):
                    attempt, deadline = 0, time.monotonic() + self._timeout_s
                else:
                    log.warning("transaction of %s aborted, retrying: %s", self.transactional_id, err.str())

    def _replace_refused(self, records: Sequence[OutRecord], substitutes: dict[int, OutRecord],
                         failed: set[tuple[Any, ...]]) -> bool:
        """Find the records the broker refuses on their own among those of
        the refused batches and put their dead letters in their place (a dead
        letter refused itself gives way to one without key and value); the
        suspects are produced one at a time in probe transactions that are
        aborted, a new one after each refusal. Each Kafka call is bounded by
        `timeout_s`, not the whole search, so a large epoch always gets
        through. Whether a refused record was found."""
        suspects = [i for i, r in enumerate(records) if substitutes.get(i, r)[:4] in failed]
        found: list[tuple[int, KafkaError]] = []
        self._failed.clear()
        self._producer.begin_transaction()
        try:
            for i in suspects:
                self._produce(*substitutes.get(i, records[i]))
                self._call("probing a refused record", self._producer.flush, self._timeout_s)
                if self._failed:
                    found.append((i, self._failed[0][0]))
                    self._call("aborting a probe transaction", self._producer.abort_transaction, self._timeout_s)
                    self._failed.clear()
                    self._producer.begin_transaction()
        finally:
            self._call("aborting a probe transaction", self._producer.abort_transaction, self._timeout_s)
        replaced = False
        for index, err in found:
            if err.code() not in CONTENT_REFUSALS:
                continue
            replaced = True
            reason = self._settings.redact(err.str())
            if self._dead_letter_route is None:
                raise KafkaUnavailableError(
                    f"Kafka refused a record for {self.health.endpoint} and the sink has no dead-letter topic: {reason}")
            topic, partition, key, value, _ = substitutes.get(index, records[index])
            dlq_topic, dlq_partition = self._dead_letter_route(key)
            if index in substitutes:
                if key is None and value is None:
                    raise KafkaUnavailableError(
                        f"dead-letter topic {dlq_topic!r} refused the dead letter of a record refused for "
                        f"{self.health.endpoint}: {reason}")
                key = value = None
            letter = refused_dead_letter(topic, partition, key, value, reason, self._settings.max_message_bytes)
            substitutes[index] = (dlq_topic, dlq_partition, letter.key, letter.value, letter.headers())
        return replaced

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
            except KafkaException as ex:  # refused before sending (its size): handled as a failed delivery
                if ex.args[0].code() not in CONTENT_REFUSALS:
                    raise
                self._failed.append((ex.args[0], (topic, None if partition == _UNASSIGNED else partition, key, value)))
                return

    def _retrying(self, call: Callable[[float], None], deadline: float) -> None:
        """`call(timeout)`, again while it fails with a retriable error,
        until `deadline`."""
        while True:
            try:
                call(_left(deadline))
                return
            except KafkaException as ex:
                if not ex.args[0].retriable() or time.monotonic() >= deadline:
                    raise

    def close(self) -> None:
        """Drop anything not committed (closing never commits)."""
        self._group.close()
        self._producer.purge()
        self._producer.flush(0)


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.1)


StoredState = tuple[int, tuple[OutRecord, ...], int]
"""A sink partition's recovery state: its `SinkState` and the sink's
partition count, which must not change for the life of a store (older
stores hold the `SinkState` alone)."""


class _TransactionalPartition(StatefulSinkPartition[Item, StoredState]):
    """Bytewax face of an `EpochCommitter`: a failure that stops the
    partition stops the run with its message (`stop_run`)."""

    def __init__(self, committer: EpochCommitter, writer: KafkaTransactionalWriter, partitions: int) -> None:
        self._committer = committer
        self._writer = writer
        self._partitions = partitions

    def write_batch(self, values: list[Item]) -> None:
        try:
            self._committer.add([record for record in values if record is not None])
            self._writer.watch()
        except (KafkaException, KafkaUnavailableError, FencedError) as ex:
            stop_run(_stopping(ex, self._writer.health.settings, self._writer.health.endpoint))

    def snapshot(self) -> StoredState:
        try:
            return (*self._committer.snapshot(), self._partitions)
        except (KafkaException, KafkaUnavailableError, FencedError) as ex:
            stop_run(_stopping(ex, self._writer.health.settings, self._writer.health.endpoint))

    def close(self) -> None:
        self._committer.close()


def _stopping(ex: Exception, settings: KafkaSettings, endpoint: str) -> Exception:
    """The error to stop with: ours as they are, librdkafka's in a sentence."""
    if not isinstance(ex, KafkaException):
        return ex
    return KafkaUnavailableError(
        f"Kafka transaction of {endpoint} failed on brokers {settings.describe_brokers()}: "
        f"{settings.redact(ex.args[0].str())}")


class OutputPartitions:
    """Places each output message on a Kafka partition and names the one
    sink partition that owns that Kafka partition.

    A message's `partition` is kept if set; otherwise the `partitioner`
    places messages to `default_topic` if it is given and says where
    (`eventio.partitioning`: it sees the `(key, KafkaSinkMessage)` item), and
    the rest get the CRC-32 of the
    message key modulo the topic's partition count, as librdkafka's default
    partitioner (`consistent_random`) computes it, so a flow's keys land on
    the same partitions whichever delivery guarantee it runs with. Messages
    without a key are placed by the CRC-32 of their routing key instead of
    at random, so a replayed epoch goes where it went before. Kafka
    partition `p` of topic `t` belongs to sink partition `(crc32(t) + p) mod
    sink partitions`: consecutive partitions go to different producers.
    """

    def __init__(self, kafka: Union[KafkaSettings, Sequence[str]], default_topic: str, sink_partitions: int,
                 timeout_s: float, partitioner: Optional[Partitioner] = None) -> None:
        self._settings = KafkaSettings.of(kafka)
        self._default_topic = default_topic
        self._sink_partitions = sink_partitions
        self._timeout_s = timeout_s
        self._partitioner = partitioner
        self.route_keys = [f"{ROUTE_KEY_PREFIX}{i}" for i in range(sink_partitions)]
        """The routing key of each sink partition."""
        self._topic_hashes: dict[str, int] = {}
        self._counts = PartitionCounts(self._settings)

    def partition_count(self, topic: str) -> int:
        """Partitions of `topic`, asked of the cluster once per topic; no
        answer within `KAFKA_CONNECT_TIMEOUT_S` stops the run."""
        try:
            return self._counts(topic)
        except (KafkaUnavailableError, KafkaConfigError) as ex:
            stop_run(ex)

    def owned_partition(self, topic: str, owner: int, key: Optional[bytes]) -> int:
        """A partition of `topic` that sink partition `owner` writes: the
        first it owns, else (fewer partitions than producers) where `key`
        hashes to."""
        count = self.partition_count(topic)
        for partition in range(count):
            if self.owner(topic, partition) == owner:
                return partition
        return zlib.crc32(key or b"") % count

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
        if partition is None and self._partitioner is not None and topic == self._default_topic:
            count = self.partition_count(topic)
            partition = checked(self._partitioner(item, msg.key, msg.value, count), count, topic)
        if partition is None:
            hashed = msg.key if msg.key else key
            raw = hashed.encode() if isinstance(hashed, str) else hashed
            partition = zlib.crc32(raw) % self.partition_count(topic)
        return self.route_keys[self.owner(topic, partition)], (topic, partition, msg.key, msg.value, msg.headers)


class TransactionalKafkaSink(FixedPartitionedSink[Item, StoredState]):
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
    `partitioner` places the messages to `topic` (`OutputPartitions`); each
    Kafka partition is still written by one transactional producer.
    """

    def __init__(
        self,
        kafka: Union[KafkaSettings, Sequence[str]],
        topic: str,
        *,
        transactional_id_prefix: str,
        partitions: int = 4,
        add_config: Optional[dict[str, Any]] = None,
        timeout_s: float = 30.0,
        epoch_interval_s: Optional[float] = None,
        dead_letter_topic: Optional[str] = None,
        endpoint: Optional[str] = None,
        partitioner: Optional[Partitioner] = None,
    ) -> None:
        if isinstance(kafka, str):
            raise TypeError("brokers must be a list of host:port strings, not a string")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if not transactional_id_prefix:
            raise ValueError("transactional_id_prefix must not be empty")
        self.settings = KafkaSettings.of(kafka)
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.endpoint = endpoint or f"output topic {topic!r}"
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
        self.placement = OutputPartitions(self.settings, topic, partitions, timeout_s, partitioner)

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

    def check_store(self, step_id: str, directory: Optional[Path] = None) -> None:
        """Refuse a recovery store written with another partition count
        (`StoreMismatchError` naming `SINK_PARTITIONS`); `step_id` is the
        sink's full id. Call it when building, before the run opens the store."""
        directory = directory or recovery_directory()
        if directory is None:
            return
        states = [pickle.loads(blob) for blob in stored_states(directory, step_id).values()]
        counts = {state[2] for state in states if len(state) > 2}
        if counts and counts != {self.partitions}:
            count = max(counts)
            raise StoreMismatchError(
                f"SINK_PARTITIONS is {self.partitions}, but the recovery store {directory} was written with "
                f"SINK_PARTITIONS={count} (step {step_id!r}); it is fixed for the life of a recovery store: set "
                f"SINK_PARTITIONS={count}, or start on a new recovery directory")
        check_parts(step_id, self._names, "SINK_PARTITIONS",
                    lambda names: f"{len(names)} sink partitions ({', '.join(names)})" if names else "none",
                    directory)

    def commit_stored(self, step_id: str, directory: Path) -> None:
        """Commit what the recovery store holds pending for this sink: what
        a resumed run does first, done as the process ends, so a bounded run
        leaves no epoch uncommitted (Bytewax writes the last epoch's
        snapshot as the input ends, and no call follows it)."""
        for part, blob in sorted(stored_states(directory, step_id).items()):
            self.build_part(step_id, part, pickle.loads(blob)).close()

    def build_part(
        self, step_id: str, for_part: str, resume_state: Optional[StoredState]
    ) -> _TransactionalPartition:
        """A partition's producer, ready (its zombie fenced, the pending
        epoch of `resume_state` committed); a failure stops the run."""
        index = int(for_part)
        dlq = self.dead_letter_topic
        route: Optional[DeadLetterRoute] = None
        if dlq is not None:
            def route(key: Optional[bytes]) -> tuple[str, int]:
                return dlq, self.placement.owned_partition(dlq, index, key)
        try:
            writer = KafkaTransactionalWriter(
                self.settings,
                self.transactional_id(step_id, for_part),
                self.topic,
                self.add_config,
                self.timeout_s,
                endpoint=self.endpoint,
                dead_letter_route=route,
            )
            resume = None if resume_state is None else (resume_state[0], resume_state[1])
            return _TransactionalPartition(EpochCommitter(writer, resume), writer, self.partitions)
        except (KafkaException, KafkaUnavailableError, FencedError, KafkaConfigError) as ex:
            stop_run(_stopping(ex, self.settings, self.endpoint))


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
    never ends, so neither would the flow. Run by `bytewax.run -r DIR`,
    the pending output of the store is committed when the process ends
    (`TransactionalKafkaSink.commit_stored`)."""
    full_id = f"{up.flow().flow_id}.{step_id}"
    sink.check_store(full_id)
    directory = recovery_directory()
    if directory is not None:
        atexit.register(sink.commit_stored, full_id, directory)
    routed: Stream[tuple[str, Item]] = op.map(f"{step_id}_route", up, sink.placement.route)
    if heartbeat_interval is None:
        op.output(step_id, routed, sink)
        return
    keys = sink.heartbeat_keys()
    ticks = heartbeats(f"{step_id}_heartbeat", up.flow(), heartbeat_interval)
    fanned: Stream[tuple[str, Item]] = op.flat_map(
        f"{step_id}_heartbeat_fan", ticks, lambda _: [(k, None) for k in keys]
    )
    op.output(step_id, op.merge(f"{step_id}_merge", routed, fanned), sink)

"""Kafka input that decodes as it reads: each partition yields `Event`s and
`DeadLetter`s, not message objects.

Bytewax's `KafkaSource` builds a `KafkaSourceMessage` (eight accessor calls
and a dataclass) per record and leaves decoding to a step of its own; on the
session analytics flow that was about 15% of the time per event. This source
lists partitions and keeps its resume state as `KafkaSource` does
(parts named `"{partition}-{topic}"`, state = next offset), so a recovery
store written by one resumes with the other, and it keeps Bytewax's
`bytewax_kafka_consumer_lag` gauge up to date the same way; it also counts
the records it reads (`stream_kafka_records_read_total`, per batch).

With a `commit_group`, each partition also commits its snapshot offset to
that consumer group at every snapshot (the end of a Bytewax epoch), as
Flink's Kafka source commits on checkpoint, so Kafka's consumer-group tools
show the flow's progress and lag. Those commits are for monitoring only: the
recovery store decides where a resumed flow starts, and a commit made at a
snapshot can run one epoch ahead of what that store finally holds.

A partition without resume state starts where `START_OFFSET` says
(`eventio.start_position`) on a first start, from its beginning on a
resume. With partition discovery, partitions that appear while it runs are
read by the source partitions it started with (`eventio.partition_discovery`):
such a source partition's state is then a dict of next offsets by
partition, its own included.

Listing partitions asks the cluster within `KAFKA_CONNECT_TIMEOUT_S` and
stops the run with a message naming the brokers, the topic and the variable
if no broker answers; a partition whose client has had no broker for that
long while running stops the run the same way (`eventio.kafka_health`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from bytewax.connectors.kafka import BYTEWAX_CONSUMER_LAG_GAUGE
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaException, TopicPartition
from confluent_kafka import KafkaError as ConfluentKafkaError

from eventio import metrics
from eventio.bytewax_run import stop_run
from eventio.deadletter import DeadLetter
from eventio.decoding import Decoded, Decoder
from eventio.event import Event
from eventio.kafka_config import KafkaConfigError, KafkaSettings
from eventio.kafka_health import ClientHealth, KafkaUnavailableError, check_topic
from eventio.partition_discovery import PartitionDiscovery, TopicSelection, owner_of, part_key, topic_of
from eventio.start_position import NoCommittedOffsetError, StartPosition

_PARTITION_EOF = ConfluentKafkaError._PARTITION_EOF
_IGNORED_GROUP = "BYTEWAX_IGNORED"
_log = logging.getLogger(__name__)


def _on_commit(error: Optional[ConfluentKafkaError], partitions: list[TopicPartition]) -> None:
    """A failed monitoring commit is logged, not raised: offsets live in recovery."""
    if error is not None:
        _log.warning("committing offsets %s for monitoring failed: %s", partitions, error)


class _DecodingPartition(StatefulSourcePartition[Decoded, int]):
    """One topic partition, read with `assign()` from `offset`, or where
    `start` puts it when there is none (`eventio.start_position`). With
    `record_time`, an event's `timestamp` becomes the record's timestamp."""

    def __init__(
        self, step_id: str, config: dict[str, Any], topic: str, partition: int, offset: Union[int, StartPosition],
        batch_size: int, decode: Decoder, health: ClientHealth, commit: bool = False, record_time: bool = False,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._channel = f"{topic}:{partition}"
        self._commit = commit
        self._record_time = record_time
        self._batch_size = batch_size
        self._decode = decode
        self._eof = False
        self._lag = BYTEWAX_CONSUMER_LAG_GAUGE.labels(step_id=step_id, topic=topic, partition=partition)
        self._records_read = metrics.KAFKA_RECORDS_READ.labels(step_id, topic)
        self._health = health
        self._offset = OFFSET_BEGINNING  # until known: no lag to report
        self._consumer = health.settings.make(Consumer, {**config, **health.config(stats=False),
                                                         "stats_cb": self._on_stats})
        self._skip_before: Optional[int] = None
        """With a timestamp start: records before the first one stamped at
        or after this are skipped (see `_skip_early`)."""
        if isinstance(offset, StartPosition):
            if offset.kind == "timestamp":
                self._skip_before = offset.timestamp_ms
            offset = self._first_offset(offset, config["group.id"])
        self._offset = offset
        self._committed = offset
        self._consumer.assign([TopicPartition(topic, partition, offset)])

    def _first_offset(self, start: StartPosition, group: str) -> int:
        """Where `start` puts this partition; a cluster that does not say
        stops the run."""
        error: Exception
        try:
            return start.offset(self._consumer, group, self._topic, self._partition,
                                self._health.settings.connect_timeout_s)
        except KafkaException as ex:
            error = self._health.unreachable(f"finding where START_OFFSET starts: {ex.args[0].str()}")
        except NoCommittedOffsetError as ex:
            error = ex
        self._consumer.close()
        raise error

    def _on_stats(self, stats: str) -> None:
        """librdkafka's statistics callback: consumer lag = log end - next
        offset; whether a broker is up."""
        parsed = json.loads(stats)
        self._health.on_stats(parsed)
        if self._offset >= 0:
            part = parsed["topics"].get(self._topic, {}).get("partitions", {}).get(str(self._partition))
            if part is not None:
                self._lag.set(part["ls_offset"] - self._offset)

    def next_batch(self) -> list[Decoded]:
        if self._eof:
            raise StopIteration()
        if self._health.down_since is not None or self._health.fatal is not None:
            try:
                self._health.check()
            except KafkaUnavailableError as ex:
                stop_run(ex)
        decode, topic, partition, channel = self._decode, self._topic, self._partition, self._channel
        out: list[Decoded] = []
        append = out.append
        last = None
        record_time = self._record_time
        msgs = self._consumer.consume(self._batch_size, 0.001)
        if self._skip_before is not None:
            msgs = self._skip_early(msgs)
        for msg in msgs:
            error = msg.error()
            if error is None:
                last = msg.offset()
                item = decode(msg.value(), msg.key(), topic, partition, last, channel)
                if record_time and item.__class__ is Event:
                    kind, stamp = msg.timestamp()
                    if kind != TIMESTAMP_NOT_AVAILABLE:
                        item.timestamp = stamp
                append(item)
                continue
            if error.code() == _PARTITION_EOF:
                self._eof = True  # emit this batch; stop at the next call
                break
            offset = msg.offset()
            append(DeadLetter(msg.topic() or topic, partition, offset, msg.key(), msg.value(),
                              "KafkaError", str(error)))
            if offset is not None and offset >= 0:
                last = offset
        if last is not None:
            self._offset = last + 1
        if out:
            self._records_read.inc(len(out))
            self._health.up()
        return out

    def _skip_early(self, msgs: list[Any]) -> list[Any]:
        """`msgs` from the first record stamped at or after the start
        timestamp on (which ends the skipping), the offset moved past the
        skipped ones. The broker's offsets-for-times answer is where reading
        starts; a broker that answers coarsely (Tansu 0.6 answers the start
        of the partition) is made exact here, as Kafka's is."""
        target = self._skip_before
        for index, msg in enumerate(msgs):
            if msg.error() is not None or msg.timestamp()[1] >= target:
                self._skip_before = None
                return msgs[index:]
            self._offset = msg.offset() + 1
        return []

    def snapshot(self) -> int:
        """The next offset to read; committed to the group too when asked."""
        offset = self._offset
        if self._commit and offset >= 0 and offset != self._committed:
            self._consumer.commit(offsets=[TopicPartition(self._topic, self._partition, offset)], asynchronous=True)
            self._committed = offset
        return offset

    def topic_counts(self) -> dict[str, int]:
        """The partition count of every topic of the cluster (partition
        discovery's metadata: all topics, so none is auto-created)."""
        return all_topics(self._consumer, self._health)

    def close(self) -> None:
        self._consumer.close()


def all_topics(client: Consumer, health: ClientHealth) -> dict[str, int]:
    """The partition count of every topic of the cluster, asked within
    `KAFKA_CONNECT_TIMEOUT_S`; `KafkaUnavailableError` without an answer."""
    try:
        meta = client.list_topics(timeout=health.settings.connect_timeout_s)
    except KafkaException as ex:
        raise health.unreachable(ex.args[0].str()) from None
    health.up()
    return {topic: len(m.partitions) for topic, m in meta.topics.items() if m.error is None and m.partitions}


SourceState = Union[int, dict[str, int]]
"""A source partition's recovery state: its next offset, or, once it owns
discovered partitions, the next offset of each by key (its own included)."""


class _DiscoveringPartition(StatefulSourcePartition[Decoded, SourceState]):
    """Source partition `key` and the partitions found while running that it
    owns (`eventio.partition_discovery`), each read by a `_DecodingPartition`
    of its own: `adopt(key, offset)` makes one (offset None: from its
    beginning). `owns(key)` says whether a found partition is this one's."""

    def __init__(self, key: str, own: _DecodingPartition, resumed: dict[str, int],
                 adopt: Callable[[str, Optional[int]], _DecodingPartition], owns: Callable[[str], bool],
                 discovery: Optional[PartitionDiscovery]) -> None:
        self._key = key
        self._adopt = adopt
        self._owns = owns
        self._discovery = discovery
        self._readers = {key: own}
        self._ended: set[str] = set()
        for other, offset in sorted(resumed.items()):
            self._readers[other] = adopt(other, offset)

    def next_batch(self) -> list[Decoded]:
        if self._discovery is not None:
            for found in self._discovery.poll():
                if self._owns(found) and found not in self._readers:
                    _log.info("reading partition %s, found while running, from its beginning", found)
                    self._readers[found] = self._adopt(found, None)
        if len(self._readers) == 1:
            return self._readers[self._key].next_batch()
        out: list[Decoded] = []
        for key, reader in self._readers.items():
            if key in self._ended:
                continue
            try:
                out += reader.next_batch()
            except StopIteration:
                self._ended.add(key)
        if len(self._ended) == len(self._readers):
            raise StopIteration()
        return out

    def snapshot(self) -> SourceState:
        if len(self._readers) == 1:
            return self._readers[self._key].snapshot()
        return {key: reader.snapshot() for key, reader in self._readers.items()}

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


class DecodingKafkaSource(FixedPartitionedSource[Decoded, SourceState]):
    """Every partition of `topics` (or, with `pattern`, of every topic that
    matches it), decoded by `decode` (see `eventio.decoding`).

    `kafka` is the flow's `KafkaSettings` (or a broker list); `tail=False`
    stops at the end of each partition; `start` places a partition without
    resume state (`eventio.start_position`, the committed offsets those of
    `commit_group`) on a first start, and a resumed run (`resumed`) reads
    such a partition from its beginning, as Flink reads a partition its
    checkpoint does not know; `record_time` makes each event's `timestamp`
    its record's (`TIMESTAMP_SOURCE=kafka`); `config`
    holds tuned consumer defaults, which the user's Kafka properties
    override; `commit_group` names a consumer group to commit snapshot
    offsets to, for monitoring (see the module docstring); `topic_var` is
    the variable that named the topics, for messages.

    With `discovery_interval_ms` (tailing only), partitions that appear
    while it runs are read too (`eventio.partition_discovery`); `adopted`
    names, for each partition found so in an earlier run, the source
    partition that reads it (from the recovery store: `adopted_partitions`).
    """

    def __init__(
        self, kafka: Union[KafkaSettings, Sequence[str]], topics: list[str], decode: Decoder, *, tail: bool = True,
        start: StartPosition = StartPosition(), config: Optional[dict[str, str]] = None, batch_size: int = 1000,
        commit_group: Optional[str] = None, topic_var: str = "INPUT_TOPIC", record_time: bool = False,
        pattern: Optional[str] = None, discovery_interval_ms: int = 0, adopted: Optional[Mapping[str, str]] = None,
        resumed: bool = False,
    ) -> None:
        self._settings = KafkaSettings.of(kafka)
        self._selection = TopicSelection(topics, pattern)
        self._decode = decode
        self._tail = tail
        self._start = start
        self._record_time = record_time
        self._config = dict(config or {})
        self._batch_size = batch_size
        self._commit_group = commit_group
        self._topic_var = topic_var
        self._discovery_interval_ms = discovery_interval_ms if tail else 0
        self._adopted = dict(adopted or {})
        self._resumed = resumed
        self._listed: Optional[list[str]] = None

    def _consumer_config(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A consumer of these brokers: the tuned `config`, the user's
        properties, then `settings`. Partitions are assigned, never joined
        to a group: offsets live in Bytewax recovery (the group only
        receives monitoring commits)."""
        group = self._commit_group or _IGNORED_GROUP
        return self._settings.consumer(self._config, {"group.id": group, **settings})

    def _health(self, topic: str) -> ClientHealth:
        return ClientHealth(self._settings, f"input topic {topic!r} ({self._topic_var})")

    def list_parts(self) -> list[str]:
        """`"{partition}-{topic}"` for every partition (but those an earlier
        run found and `adopted` names an owner for), sorted, listed once per
        process, read with a consumer so consumer-only settings are not
        handed to an admin client (librdkafka warns about each one). With a
        pattern, the topics are found among all the cluster's. No answer
        within `KAFKA_CONNECT_TIMEOUT_S` stops the run (`stop_run`)."""
        if self._listed is None:
            try:
                self._listed = sorted(key for key in self._list() if key not in self._adopted)
            except (KafkaUnavailableError, KafkaConfigError) as ex:
                stop_run(ex)
        return list(self._listed)

    def _list(self) -> list[str]:
        selection = self._selection
        if selection.pattern is None:
            parts = []
            for topic in selection.topics:
                health = self._health(topic)
                consumer = self._settings.make(Consumer, self._consumer_config(health.config()))
                try:
                    parts.extend(part_key(topic, idx) for idx in range(check_topic(consumer, health, topic)))
                finally:
                    consumer.close()
            return parts
        health = ClientHealth(self._settings, f"input {selection.describe()} ({self._topic_var})")
        consumer = self._settings.make(Consumer, self._consumer_config(health.config()))
        try:
            counts = all_topics(consumer, health)
        finally:
            consumer.close()
        parts = [part_key(topic, idx) for topic, count in counts.items() if topic in selection for idx in range(count)]
        if not parts:
            raise KafkaUnavailableError(
                f"no topic on Kafka brokers {self._settings.describe_brokers()} matches {self._topic_var} "
                f"{selection.pattern.pattern!r} (of {len(counts)} topics): a run starts with at least one")
        return parts

    def partition_count(self) -> int:
        """The partitions a run starts with: those listed and those adopted;
        each is a watermark channel."""
        return len(self.list_parts()) + len(self._adopted)

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[SourceState]) -> StatefulSourcePartition:
        topic = topic_of(for_part)
        if topic not in self._selection:
            raise ValueError(f"{step_id}: recovery state names topic {topic!r}, not one of the "
                             f"{self._selection.describe()}")
        config = self._consumer_config({
            "isolation.level": "read_committed",
            "enable.auto.commit": "false",
            "enable.partition.eof": str(not self._tail),
            "statistics.interval.ms": 1000,
            **({"on_commit": _on_commit} if self._commit_group else {}),
        })
        resumed = dict(resume_state) if isinstance(resume_state, dict) else {}
        own_offset = resumed.pop(for_part, None) if isinstance(resume_state, dict) else resume_state
        first = StartPosition("earliest") if self._resumed else self._start

        def reader(key: str, offset: Union[int, StartPosition]) -> _DecodingPartition:
            topic, idx = topic_of(key), int(key.split("-", 1)[0])
            try:
                return _DecodingPartition(step_id, config, topic, idx, offset, self._batch_size, self._decode,
                                          self._health(topic), commit=bool(self._commit_group),
                                          record_time=self._record_time)
            except (KafkaConfigError, KafkaUnavailableError, NoCommittedOffsetError) as ex:
                stop_run(ex)

        own = reader(for_part, first if own_offset is None else own_offset)
        if not self._discovery_interval_ms and not resumed:
            return own
        base = self.list_parts()
        discovery = None
        if self._discovery_interval_ms:
            discovery = PartitionDiscovery(own.topic_counts, self._selection, [*base, *resumed],
                                           self._discovery_interval_ms)
        return _DiscoveringPartition(
            for_part, own, resumed,
            adopt=lambda key, offset: reader(key, StartPosition("earliest") if offset is None else offset),
            owns=lambda key: owner_of(key, base, self._adopted) == for_part,
            discovery=discovery)


def adopted_partitions(states: Mapping[str, SourceState]) -> dict[str, str]:
    """For each partition a source partition reads besides its own (it was
    found while running), that source partition: from the source's stored
    recovery states by source partition."""
    return {key: owner for owner, state in states.items() if isinstance(state, dict)
            for key in state if key != owner}

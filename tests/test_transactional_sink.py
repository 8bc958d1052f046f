"""The epoch-aligned committer and the Kafka transactional writer.

The property test drives `EpochCommitter` through executions that die at
arbitrary points, with a model of Bytewax recovery (a snapshot becomes
durable before the next epoch starts, a resumed execution replays from the
last durable snapshot, possibly split into different epochs) and a fake
transactional store. Whatever the crashes, the store must end up holding
the input exactly once, in order. The Kafka tests replay the three crash
points of the design against the embedded broker.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Optional, Sequence

import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from confluent_kafka import Producer
from hypothesis import given
from hypothesis import strategies as st

from eventio.broker import EmbeddedBroker
from recovery.epoch_commit import EpochCommitter, OutRecord, SinkState
from recovery.heartbeat import MAX_SLEEP, HeartbeatSource
from recovery.transactional_sink import (
    ROUTE_KEY_PREFIX,
    KafkaTransactionalWriter,
    TransactionalKafkaSink,
)
from tests.committed_log import read_committed, read_topic


class Crash(Exception):
    """The process dies here."""


class FakeStore:
    """Transactional store: records and the recorded sequence change together."""

    def __init__(self) -> None:
        self.log: list[OutRecord] = []
        self.seq = 0


class FakeWriter:
    """Writer over a `FakeStore` that can die just before or just after a commit."""

    def __init__(self, store: FakeStore, die_at_commit: Optional[tuple[int, bool]]) -> None:
        self.store = store
        self.die_at_commit = die_at_commit
        self.commits = 0

    def committed_seq(self) -> int:
        return self.store.seq

    def commit(self, records: Sequence[OutRecord], seq: int) -> None:
        self.commits += 1
        die = self.die_at_commit is not None and self.die_at_commit[0] == self.commits
        if die and not self.die_at_commit[1]:  # type: ignore[index]
            raise Crash("before commit")
        self.store.log.extend(records)
        self.store.seq = seq
        if die:
            raise Crash("after commit")

    def close(self) -> None:
        pass


def rec(i: int) -> OutRecord:
    return ("t", None, None, str(i).encode(), [])


@given(st.integers(1, 40), st.integers(0, 8), st.data())
def test_every_record_is_committed_once_whatever_the_crashes(n: int, crashes: int, data: st.DataObject) -> None:
    records = [rec(i) for i in range(n)]
    store = FakeStore()
    durable: tuple[Optional[SinkState], int] = (None, 0)  # (sink state, input position)
    for execution in range(crashes + 1):
        may_crash = execution < crashes

        def crash_now(why: str) -> None:
            if may_crash and data.draw(st.integers(0, 5)) == 0:
                raise Crash(why)

        state, pos = durable
        crash_at_commit = data.draw(st.none() | st.tuples(st.integers(1, 4), st.booleans())) if may_crash else None
        try:
            committer = EpochCommitter(FakeWriter(store, crash_at_commit), state)
            while pos < n:
                empty_epoch = data.draw(st.booleans())  # a heartbeat-only epoch
                epoch = [] if empty_epoch else records[pos:pos + data.draw(st.integers(1, 6))]
                split = data.draw(st.integers(0, len(epoch)))
                committer.add(epoch[:split])
                crash_now("mid-epoch")
                committer.add(epoch[split:])
                snap = committer.snapshot()
                crash_now("after the snapshot, before it is durable")
                pos += len(epoch)
                durable = (snap, pos)
            committer.add([])  # a heartbeat once the last snapshot is durable
            break
        except Crash:
            continue
    assert store.log == records


def test_resume_never_reuses_a_sequence_number() -> None:
    store = FakeStore()
    first = EpochCommitter(FakeWriter(store, None), None)
    first.add([rec(1)])
    first.snapshot()
    first.add([])
    assert store.seq == 1
    # The recovery store is wiped but Kafka remembers: numbering continues.
    fresh = EpochCommitter(FakeWriter(store, None), None)
    fresh.add([rec(2)])
    assert fresh.snapshot()[0] == 2


def test_recovery_state_older_than_kafka_warns_and_moves_on(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.seq = 5
    with caplog.at_level(logging.WARNING):
        c = EpochCommitter(FakeWriter(store, None), (3, (rec(0),)))
    assert "older than the output" in caplog.text
    assert store.log == [] and c.seq == 5
    c.add([rec(1)])
    assert c.snapshot()[0] == 6


def test_close_never_commits() -> None:
    store = FakeStore()
    c = EpochCommitter(FakeWriter(store, None), None)
    c.add([rec(1)])
    c.snapshot()
    c.close()
    assert store.log == []


def test_sink_routes_heartbeats_to_each_partition_and_validates() -> None:
    sink = TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="p", partitions=12)
    parts = sink.list_parts()
    assert parts == sorted(parts) and len(parts) == 12
    assert [parts[sink.part_fn(k) % 12] for k in sink.heartbeat_keys()] == parts
    assert sink.heartbeat_keys()[3] == f"{ROUTE_KEY_PREFIX}3"
    with pytest.raises(ValueError, match="exactly_once_output"):
        sink.part_fn("u1")  # only keys made by OutputPartitions.route
    assert sink.transactional_id("flow.out", "07") == "p-flow.out-07"
    with pytest.raises(ValueError):
        TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="p", partitions=0)
    with pytest.raises(ValueError):
        TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="", partitions=1)
    with pytest.raises(TypeError):
        TransactionalKafkaSink("b:1", "t", transactional_id_prefix="p")  # type: ignore[arg-type]


def test_heartbeat_ticks_once_per_interval_but_wakes_often() -> None:
    ticker = HeartbeatSource(timedelta(milliseconds=200)).build("hb", 0, 1)
    assert ticker.next_batch() == [None]
    assert ticker.next_batch() == []
    wake = ticker.next_awake()
    assert wake is not None and wake - datetime.now(timezone.utc) <= MAX_SLEEP
    time.sleep(0.25)
    assert ticker.next_batch() == [None]
    with pytest.raises(ValueError):
        HeartbeatSource(timedelta(0))


def _values(bootstrap: str, topic: str) -> list[bytes]:
    return [r.value for r in read_committed(bootstrap, topic) if r.value is not None]


def _writer(broker: EmbeddedBroker, tid: str, topic: str) -> KafkaTransactionalWriter:
    return KafkaTransactionalWriter([broker.bootstrap_servers], tid, topic, {}, timeout_s=20)


def test_keyed_output_lands_where_the_default_partitioner_puts_it_and_each_partition_has_one_writer(
    broker: EmbeddedBroker, topic_name: str,
) -> None:
    """Switching a flow from at-least-once (plain producer) to exactly-once
    must not move its keys; no two producers may write one Kafka partition."""
    bs = broker.bootstrap_servers
    broker.create_topics({topic_name: 5, f"{topic_name}-dlq": 1})
    keys = [f"user-{i}".encode() for i in range(300)]
    delivered: dict[bytes, int] = {}
    plain = Producer({"bootstrap.servers": bs})
    for k in keys:
        plain.produce(topic_name, b"v", k, on_delivery=lambda err, msg: delivered.__setitem__(msg.key(), msg.partition()))
    assert plain.flush(20) == 0
    sink = TransactionalKafkaSink([bs], topic_name, transactional_id_prefix="p", partitions=4)
    routed = [sink.placement.route(("ignored", KafkaSinkMessage(k, b"v"))) for k in keys]
    assert {key: partition for _, (_, partition, key, _, _) in routed} == delivered
    assert {topic for _, (topic, *_) in routed} == {topic_name}
    assert {value for _, (_, _, _, value, _) in routed} == {b"v"}
    owners = {(topic, partition): sink.part_fn(route) % 4 for route, (topic, partition, *_) in routed}
    assert {owners[(t, p)] for (t, p) in owners} == {0, 1, 2, 3}, "five partitions spread over four producers"
    for route, (topic, partition, *_) in routed:
        assert sink.part_fn(route) % 4 == owners[(topic, partition)]
    # No Kafka key: placed by the routing key, the same way every time;
    # an explicit topic and partition are kept, and so are headers.
    unkeyed = [sink.placement.route((f"k{i}", KafkaSinkMessage(None, b"v"))) for i in range(50)]
    assert unkeyed == [sink.placement.route((f"k{i}", KafkaSinkMessage(None, b"v"))) for i in range(50)]
    assert {partition for _, (_, partition, *_) in unkeyed} == set(range(5))
    _, dlq = sink.placement.route(("k", KafkaSinkMessage(b"x", b"v", topic=f"{topic_name}-dlq", headers=[("h", b"1")])))
    assert dlq == (f"{topic_name}-dlq", 0, b"x", b"v", [("h", b"1")])
    _, pinned = sink.placement.route(("k", KafkaSinkMessage(b"x", b"v", partition=3)))
    assert pinned[:2] == (topic_name, 3)


def test_kafka_writer_commits_records_and_sequence_together(broker: EmbeddedBroker, topic_name: str) -> None:
    broker.create_topics({topic_name: 2})
    w = _writer(broker, topic_name, topic_name)
    assert w.committed_seq() == 0
    w.commit([(topic_name, None, b"k", b"a", []), (topic_name, 1, b"j", b"b", [("h", b"1")])], 7)
    assert w.committed_seq() == 7
    assert sorted(_values(broker.bootstrap_servers, topic_name)) == [b"a", b"b"]
    w.close()
    assert _writer(broker, topic_name, topic_name).committed_seq() == 7


def test_kafka_crash_points_of_the_design(broker: EmbeddedBroker, topic_name: str) -> None:
    """Each crash leaves the partition's producer behind (no close), as SIGKILL would."""
    broker.create_topics({topic_name: 1})
    bs = broker.bootstrap_servers
    tid = topic_name

    def part(state: Optional[SinkState]) -> EpochCommitter:
        return EpochCommitter(_writer(broker, tid, topic_name), state)

    def batch(*values: str) -> list[OutRecord]:
        return [(topic_name, 0, None, v.encode(), []) for v in values]

    c = part(None)
    c.add(batch("e1a", "e1b"))
    s1 = c.snapshot()
    # Crash mid-epoch: epoch 2's output exists only in memory.
    c.add(batch("lost"))
    c = part(s1)  # resume: s1 is durable and not committed -> committed now
    assert _values(bs, topic_name) == [b"e1a", b"e1b"]
    c.add(batch("e2"))
    s2 = c.snapshot()
    c.add([])  # next epoch: s2 durable -> committed
    assert _values(bs, topic_name) == [b"e1a", b"e1b", b"e2"]
    # Crash after the Kafka commit, before the next snapshot is durable.
    c = part(s2)
    assert _values(bs, topic_name) == [b"e1a", b"e1b", b"e2"]
    c.add(batch("e3"))
    s3 = c.snapshot()
    # Crash after the snapshot is durable, before the Kafka commit.
    c = part(s3)
    assert _values(bs, topic_name) == [b"e1a", b"e1b", b"e2", b"e3"]
    # Crash in the middle of a transaction: records reach the log, no marker.
    zombie = _writer(broker, tid, topic_name)
    zombie._producer.begin_transaction()
    zombie._produce(topic_name, 0, None, b"open", [])
    zombie._producer.flush(10)
    c = part(s3)
    log = read_topic(bs, topic_name)[0]
    assert [r.value for r in log.aborted()] == [b"open"]
    c.add(batch("e4"))
    c.add([])
    c.snapshot()
    c.add([])
    assert _values(bs, topic_name) == [b"e1a", b"e1b", b"e2", b"e3", b"e4"]

"""A second instance with the same transactional ids fences the first, and
the first one's open transaction never becomes visible."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from eventio.broker import EmbeddedBroker
from recovery.directories import init
from recovery.transactional_sink import FencedError, KafkaTransactionalWriter, TransactionalKafkaSink
from tests.committed_log import LogRecord, read_committed, read_topic
from tests.exactly_once_harness import (
    FLOW,
    FlowProcess,
    assert_exactly_once,
    flow_env,
    make_events,
    produce,
    reference,
    wait_for_outputs,
    wait_until,
)
from tests.stalling_flow import StallingProducer


def _open_records(bootstrap: str, topic: str) -> list[LogRecord]:
    return [r for log in read_topic(bootstrap, topic) for txn in log.open_transactions().values() for r in txn]


def test_new_writer_fences_the_old_and_aborts_its_open_transaction(broker: EmbeddedBroker, topic_name: str) -> None:
    bs = broker.bootstrap_servers
    broker.create_topics({topic_name: 1})
    old = KafkaTransactionalWriter([bs], topic_name, topic_name, {}, timeout_s=20)
    old.commit([(topic_name, None, None, b"before", [])], 1)
    replacement: list[KafkaTransactionalWriter] = []

    def start_replacement(produced: int) -> None:
        assert produced == 1
        assert [r.value for r in _open_records(bs, topic_name)] == [b"zombie"]
        replacement.append(KafkaTransactionalWriter([bs], topic_name, topic_name, {}, timeout_s=20))

    old._producer = StallingProducer(old._producer, start_replacement)  # type: ignore[assignment]
    with pytest.raises(FencedError, match="taken over"):
        old.commit([(topic_name, None, None, b"zombie", [])], 2)
    (new,) = replacement
    assert new.committed_seq() == 1
    new.commit([(topic_name, None, None, b"after", [])], 2)

    log = read_topic(bs, topic_name)[0]
    assert [r.value for r in log.visible()] == [b"before", b"after"]
    assert [r.value for r in log.aborted()] == [b"zombie"]
    assert not log.open_transactions()


def test_rebuilding_a_sink_partition_fences_the_previous_one(broker: EmbeddedBroker, topic_name: str) -> None:
    broker.create_topics({topic_name: 1})
    sink = TransactionalKafkaSink([broker.bootstrap_servers], topic_name, transactional_id_prefix=topic_name, partitions=2)
    first = sink.build_part("flow.out", "1", None)
    first.write_batch([(topic_name, None, None, b"a", None)])
    state = first.snapshot()
    second = sink.build_part("flow.out", "1", state)  # commits "a"
    with pytest.raises(FencedError):
        first.write_batch([None])  # the first would commit "a" too
    second.write_batch([(topic_name, None, None, b"b", None)])
    second.snapshot()
    second.write_batch([None])
    assert [r.value for r in read_committed(broker.bootstrap_servers, topic_name)] == [b"a", b"b"]


def test_a_stalled_flow_is_fenced_by_its_replacement(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Stop flow A (SIGSTOP) inside a transaction, start B with the same
    transactional ids from a copy of A's recovery store, then let A go on:
    A dies fenced, its open transaction is aborted, B's output is exact."""
    bs = broker.bootstrap_servers
    topic = "eo-fencing"
    out = f"{topic}-out"
    broker.create_topics({f"{topic}-in": 3, out: 3})
    events = make_events(3_000, 100, seed=3)
    trigger = tmp_path / "stall"
    env = flow_env(bs, topic, SINK_TIMEOUT_S="5", STALL_TRIGGER=str(trigger))
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    init(a_dir, 1)
    with FlowProcess("tests.stalling_flow:stalling_flow()", a_dir, env) as a:
        produce(bs, f"{topic}-in", events[:1000])
        wait_for_outputs(bs, out, 1000, a)
        trigger.touch()  # A stops itself once its next transaction's records are in the log
        produce(bs, f"{topic}-in", events[1000:1050])
        assert wait_until(lambda: a.stopped() or not a.alive(), 20), "A never reached a transaction"
        caught = _open_records(bs, out)
        assert caught, f"A stopped outside a transaction:\n{a.log_tail()}"
        shutil.copytree(a_dir, b_dir)
        with FlowProcess(FLOW, b_dir, env) as b:
            assert wait_until(lambda: not _open_records(bs, out), 20), "B did not abort A's transaction"
            time.sleep(2)  # B builds its other partitions on its first heartbeat
            a.signal(signal.SIGCONT)
            assert wait_until(lambda: not a.alive(), 20), f"A kept running after being fenced:\n{a.log_tail()}"
            # A real broker answers a fenced producer's EndTxn with
            # PRODUCER_FENCED; the embedded one drops the connection, so
            # A stops when its commit times out instead.
            assert any(why in a.log_tail(50_000) for why in ("taken over by another instance", "did not complete"))
            produce(bs, f"{topic}-in", events[1050:])
            outs = wait_for_outputs(bs, out, len(events), b)
    visible = {(r.partition, r.offset) for r in read_committed(bs, out)}
    assert not visible & {(r.partition, r.offset) for r in caught}, "A's open transaction became visible"
    assert_exactly_once(outs, reference(events))

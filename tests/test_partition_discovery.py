"""Partition discovery (`PARTITION_DISCOVERY_INTERVAL_MS`, `INPUT_TOPIC_PATTERN`).

Tansu 0.6 refuses CreatePartitions, so the growth of an existing topic is
tested here against a fake metadata source; new topics that match the
pattern are tested on the embedded broker, the source on its own and the
exactly-once flow killed and resumed after the addition."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import pytest
from confluent_kafka import Producer

from eventio.broker import EmbeddedBroker, free_port
from eventio.config import IOConfig
from eventio.decoding import SerdeConfig
from eventio.event import Event
from eventio.kafka_source import DecodingKafkaSource, adopted_partitions
from eventio.partition_discovery import PartitionDiscovery, TopicSelection, owner_of
from operators.time.eventtime import ChannelWatermarks
from recovery.directories import init
from tests.exactly_once_harness import (
    FLOW,
    FlowProcess,
    assert_exactly_once,
    flow_env,
    make_events,
    produce,
    reference,
    wait_for_outputs,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _discovery(cluster: dict[str, int], selection: TopicSelection, known: list[str],
               interval_ms: int = 1000) -> tuple[PartitionDiscovery, Clock]:
    clock = Clock()
    return PartitionDiscovery(lambda: dict(cluster), selection, known, interval_ms, clock), clock


def test_new_partitions_of_a_listed_topic_are_found_once_per_interval() -> None:
    cluster = {"orders": 2, "other": 4}
    discovery, clock = _discovery(cluster, TopicSelection(["orders"]), ["0-orders", "1-orders"])
    assert discovery.poll() == []
    cluster["orders"] = 4
    clock.now = 0.999
    assert discovery.poll() == [], "not before the interval"
    clock.now = 1.0
    assert discovery.poll() == ["2-orders", "3-orders"]
    cluster["other"] = 9
    clock.now = 2.0
    assert discovery.poll() == [], "found once; other topics are not input"
    cluster["orders"] = 5
    clock.now = 2.5
    assert discovery.poll() == []
    clock.now = 3.0
    assert discovery.poll() == ["4-orders"]


def test_new_topics_matching_the_pattern_are_found_but_not_internal_or_others() -> None:
    cluster = {"orders-eu": 1}
    discovery, clock = _discovery(cluster, TopicSelection(pattern=r"orders-.*"), ["0-orders-eu"])
    cluster.update({"orders-us": 2, "orders": 1, "x-orders-ch": 1, "__orders-internal": 1})
    clock.now = 1.0
    assert discovery.poll() == ["0-orders-us", "1-orders-us"]


def test_zero_interval_never_asks() -> None:
    def metadata() -> dict[str, int]:
        raise AssertionError("asked")

    discovery = PartitionDiscovery(metadata, TopicSelection(["t"]), [], 0, lambda: 1e9)
    assert discovery.poll() == []


def test_a_failed_metadata_request_is_retried_at_the_next_interval(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[Callable[[], dict[str, int]]] = [lambda: (_ for _ in ()).throw(RuntimeError("no broker")),
                                                   lambda: {"t": 2}]
    clock = Clock()
    discovery = PartitionDiscovery(lambda: answers.pop(0)(), TopicSelection(["t"]), ["0-t"], 100, clock)
    clock.now = 0.1
    assert discovery.poll() == []
    assert "partition discovery of topics ['t'] failed, trying again in 0.1 s: no broker" in caplog.text
    clock.now = 0.2
    assert discovery.poll() == ["1-t"]


def test_each_found_partition_has_one_owner_the_same_in_every_process() -> None:
    base = sorted(f"{p}-t" for p in range(5))
    found = [f"{p}-t" for p in range(5, 40)] + [f"{p}-u" for p in range(10)]
    owners = {key: owner_of(key, base, {}) for key in found}
    assert set(owners.values()) <= set(base) and len(set(owners.values())) > 1
    assert owners == {key: owner_of(key, list(base), {}) for key in found}
    assert owner_of("7-t", base, {"7-t": "0-t"}) == "0-t", "the store's owner wins"


def test_adopted_partitions_are_read_from_the_stored_states() -> None:
    states = {"0-t": 12, "1-t": {"1-t": 5, "2-t": 7, "0-u": 0}}
    assert adopted_partitions(states) == {"2-t": "1-t", "0-u": "1-t"}


def test_the_operator_watermark_never_goes_back_when_a_partition_appears() -> None:
    """A partition found later is a new channel: its older events do not
    take the watermark back, and until it has data it holds nothing."""
    clocks = ChannelWatermarks(expected=2)
    clocks.update("t:0", 100, now_ms=0)
    assert clocks.update("t:1", 90, now_ms=0) == 90
    assert clocks.update("t:0", 200, now_ms=1) == 90
    assert clocks.update("t:1", 150, now_ms=1) == 150, "the discovered t:2, without data, holds nothing"
    assert clocks.update("t:2", 10, now_ms=2) == 150, "never back"
    assert clocks.update("t:1", 400, now_ms=3) == 150, "t:2 now counts"
    assert clocks.update("t:2", 300, now_ms=3) == 200


def test_bad_discovery_settings_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^INPUT_TOPIC_PATTERN='orders-\(': expected a regular expression "
                                         r"\(missing \), unterminated subpattern at position 7\)$"):
        IOConfig.from_env(env={"INPUT_TOPIC_PATTERN": "orders-("})
    with pytest.raises(ValueError, match=r"^PARTITION_DISCOVERY_INTERVAL_MS='-1': expected a non-negative integer "
                                         r"number of milliseconds$"):
        IOConfig.from_env(env={"PARTITION_DISCOVERY_INTERVAL_MS": "-1"})
    assert IOConfig.from_env(env={}).partition_discovery_interval_ms == 30_000


def _produce(broker: EmbeddedBroker, topic: str, ids: range, partitions: int = 1) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i in ids:
        event = {"event_id": f"{topic}/{i}", "user_id": "u", "event_type": "click", "timestamp": i}
        producer.produce(topic, json.dumps(event).encode(), partition=i % partitions)
    assert producer.flush(10) == 0


def _read_until(parts: list[Any], want: set[str], timeout_s: float = 30) -> list[Event]:
    """Batches of every part in turn until the events read have the ids `want`."""
    read: list[Event] = []
    deadline = time.monotonic() + timeout_s
    while {e.event_id for e in read} != want:
        assert time.monotonic() < deadline, f"missing {sorted(want - {e.event_id for e in read})[:5]} of {len(want)}, read {sorted(e.event_id for e in read)[:5]}"
        for part in parts:
            read += part.next_batch()
    return read


@pytest.fixture
def prefix(topic_name: str) -> Iterator[str]:
    yield topic_name.replace("_", "-")


def test_topics_created_while_running_that_match_the_pattern_are_read_and_resumed_exactly(
    broker: EmbeddedBroker, prefix: str,
) -> None:
    first, later, unrelated = f"{prefix}-a", f"{prefix}-b", f"x{prefix}-c"
    broker.create_topics({first: 2})
    _produce(broker, first, range(10), partitions=2)
    source = DecodingKafkaSource([broker.bootstrap_servers], [], SerdeConfig().decoder(),
                                 pattern=f"{prefix}-.*", discovery_interval_ms=100)
    listed = source.list_parts()
    assert listed == [f"0-{first}", f"1-{first}"]
    parts = [source.build_part("read", key, None) for key in listed]
    read = _read_until(parts, {f"{first}/{i}" for i in range(10)})

    broker.create_topics({later: 3, unrelated: 1})
    _produce(broker, later, range(30), partitions=3)
    _produce(broker, unrelated, range(5))
    read += _read_until(parts, {f"{later}/{i}" for i in range(30)})
    assert len(read) == 40, "each record once"
    assert {e.channel for e in read} == {f"{first}:0", f"{first}:1", f"{later}:0", f"{later}:1", f"{later}:2"}
    snapshots = {key: part.snapshot() for key, part in zip(listed, parts)}
    for part in parts:
        part.close()
    assert adopted_partitions(snapshots).keys() == {f"{p}-{later}" for p in range(3)}
    assert sum(s for state in snapshots.values() for s in (state.values() if isinstance(state, dict) else [state])) \
        == 40

    _produce(broker, later, range(30, 36), partitions=3)
    resumed = DecodingKafkaSource([broker.bootstrap_servers], [], SerdeConfig().decoder(), pattern=f"{prefix}-.*",
                                  discovery_interval_ms=100, adopted=adopted_partitions(snapshots), resumed=True)
    assert resumed.list_parts() == listed, "found partitions stay with their owners"
    assert resumed.partition_count() == 5
    parts = [resumed.build_part("read", key, snapshots[key]) for key in listed]
    again = _read_until(parts, {f"{later}/{i}" for i in range(30, 36)})
    time.sleep(0.3)
    again += [e for part in parts for e in part.next_batch()]
    for part in parts:
        part.close()
    assert sorted(e.event_id for e in again) == sorted(f"{later}/{i}" for i in range(30, 36)), "nothing twice"


class Discovered(NamedTuple):
    """An exactly-once flow set-up on topic `{topic}-in` read by pattern,
    `first` events already on it, `added` (other users) for `more`, the
    topic to create while it runs."""

    out: str
    more: str
    first: list[dict[str, Any]]
    added: list[dict[str, Any]]
    recovery: Path
    env: dict[str, str]


def _discovered(broker: EmbeddedBroker, tmp_path: Path, topic: str, sizes: tuple[int, int],
                processes: int) -> Discovered:
    bs = broker.bootstrap_servers
    broker.create_topics({f"{topic}-in": 2, f"{topic}-out": 3, f"{topic}-dlq": 1})
    first = make_events(sizes[0], 10, seed=1)
    added = [{**e, "event_id": f"b{e['event_id']}", "user_id": f"b{e['user_id']}"}
             for e in make_events(sizes[1], 12, seed=2)]
    produce(bs, f"{topic}-in", first)
    recovery = tmp_path / "state"
    init(recovery, processes)
    env = flow_env(bs, topic, INPUT_TOPIC_PATTERN=f"{topic}-in.*", PARTITION_DISCOVERY_INTERVAL_MS="200")
    return Discovered(f"{topic}-out", f"{topic}-in-more", first, added, recovery, env)


def test_the_exactly_once_flow_reads_a_topic_created_while_running_exactly_once_across_a_kill(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    """INPUT_TOPIC_PATTERN: a matching topic created while the flow runs is
    read; after a kill -9 and a resume, with more records on it meanwhile,
    every event's output is committed exactly once."""
    bs = broker.bootstrap_servers
    run = _discovered(broker, tmp_path, "eo-discovered", (300, 400), processes=1)
    with FlowProcess(FLOW, run.recovery, run.env) as flow:
        wait_for_outputs(bs, run.out, len(run.first), flow)
        broker.create_topics({run.more: 2})
        produce(bs, run.more, run.added[:200])
        wait_for_outputs(bs, run.out, len(run.first) + 200, flow)
        flow.kill()
    produce(bs, run.more, run.added[200:])
    with FlowProcess(FLOW, run.recovery, run.env) as flow:
        outs = wait_for_outputs(bs, run.out, len(run.first) + len(run.added), flow)
    assert_exactly_once(outs, reference(run.first + run.added))
    assert len(outs) == len(run.first) + len(run.added)


def test_two_processes_read_each_found_partition_once(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Two Bytewax processes (`-i`, `-a`) on one pattern: each partition of a
    topic created while they run is read by one of them, so every output
    is committed once."""
    bs = broker.bootstrap_servers
    run = _discovered(broker, tmp_path, "eo-discovered-two", (200, 300), processes=2)
    addresses = ";".join(f"localhost:{free_port()}" for _ in range(2))
    flows = [FlowProcess(FLOW, run.recovery, run.env) for _ in range(2)]
    for index, flow in enumerate(flows):
        flow.args += ["-i", str(index), "-a", addresses]
    with flows[0], flows[1]:
        wait_for_outputs(bs, run.out, len(run.first), flows[0])
        broker.create_topics({run.more: 4})
        produce(bs, run.more, run.added)
        outs = wait_for_outputs(bs, run.out, len(run.first) + len(run.added), flows[1])
    assert_exactly_once(outs, reference(run.first + run.added))
    assert len(outs) == len(run.first) + len(run.added)

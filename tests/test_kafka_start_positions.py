"""Where a first start reads from (`START_OFFSET`) and the Kafka record's
timestamp as event time (`TIMESTAMP_SOURCE`), on the embedded broker: the
tests commit the group's offsets and stamp the records themselves."""

from __future__ import annotations

import json
from pathlib import Path
from datetime import timedelta
import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main
from confluent_kafka import Consumer, Producer, TopicPartition

from eventio.broker import EmbeddedBroker
from eventio.config import IOConfig
from eventio.decoding import SerdeConfig
from eventio.event import Event
from eventio.flowio import read_events
from eventio.kafka_source import DecodingKafkaSource
from eventio.settings import SettingsError
from eventio.start_position import NoCommittedOffsetError, StartPosition, parse_start_offset
from tests.topic_reader import read_source_part

T0 = 1_700_000_000_000
"""The first record's timestamp (2023-11-14T22:13:20Z)."""


def _fill(broker: EmbeddedBroker, topic: str, per_partition: int = 10) -> None:
    """Two partitions of `per_partition` events; event `p{p}-{i}` is stamped
    `T0 + 1000 * i` by the producer while its `timestamp` field is `i`. One
    record per produce request: Tansu 0.6 reports a partition's end after a
    batch of several records as just past the batch's first one."""
    broker.create_topics({topic: 2})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for p in (0, 1):
        for i in range(per_partition):
            event = {"event_id": f"p{p}-{i}", "user_id": "u", "event_type": "click", "timestamp": i}
            producer.produce(topic, json.dumps(event).encode(), partition=p, timestamp=T0 + 1000 * i)
            producer.flush(10)


def _commit(broker: EmbeddedBroker, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit `offsets` (partition -> offset) for `group`, with `assign()`: no group join."""
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": group,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p) for p in offsets])
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def _read(broker: EmbeddedBroker, topic: str, **env: str) -> list[Event]:
    """Every event a bounded run of `read_events` reads with `env` set."""
    cfg = IOConfig.from_env(env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "INPUT_TOPIC": topic,
                                 "STOP_AT_END": "true", **env})
    flow = Dataflow("start_positions")
    events: list[Event] = []
    op.output("events", read_events(flow, "in", cfg).events, TestingSink(events))
    run_main(flow, epoch_interval=timedelta(milliseconds=50))
    return events


def _ids(events: list[Event]) -> list[str]:
    return sorted(e.event_id for e in events)


def _expected(**first: int) -> list[str]:
    """The ids of a run starting partition `p{n}` at offset `first[f"p{n}"]` (10 records each)."""
    return sorted(f"{p}-{i}" for p, start in first.items() for i in range(start, 10))


def test_earliest_and_latest(broker: EmbeddedBroker, topic_name: str) -> None:
    _fill(broker, topic_name)
    assert _ids(_read(broker, topic_name, START_OFFSET="earliest")) == _expected(p0=0, p1=0)
    assert _read(broker, topic_name, START_OFFSET="latest") == []


def test_committed_offsets_with_each_fallback(broker: EmbeddedBroker, topic_name: str) -> None:
    """Partition 0 has a committed offset (3), partition 1 none: `committed:earliest`
    reads 1 from its beginning, `committed:latest` from its end, and plain
    `committed` stops, naming the partition, the group and the ways out. A
    group per run: each run commits its progress to its group."""
    _fill(broker, topic_name)
    groups = [f"{topic_name}-{fallback}" for fallback in ("earliest", "latest", "none")]
    for group in groups:
        _commit(broker, group, topic_name, {0: 3})
    assert _ids(_read(broker, topic_name, START_OFFSET="committed:earliest", CONSUMER_GROUP=groups[0])) == \
        _expected(p0=3, p1=0)
    assert _ids(_read(broker, topic_name, START_OFFSET="committed:latest", CONSUMER_GROUP=groups[1])) == \
        _expected(p0=3)
    with pytest.raises(Exception) as raised:  # Bytewax wraps what build_part raised
        _read(broker, topic_name, START_OFFSET="committed", CONSUMER_GROUP=groups[2])
    cause = raised.value
    while not isinstance(cause, NoCommittedOffsetError) and cause.__cause__ is not None:
        cause = cause.__cause__
    message = str(cause)
    assert f"group {groups[2]!r} (CONSUMER_GROUP) has no committed offset for partition 1 of topic" in message
    assert "committed:earliest" in message


def test_a_run_resumes_its_group_from_where_the_last_one_committed(broker: EmbeddedBroker,
                                                                  topic_name: str) -> None:
    """Without a recovery store, `committed` continues a group's progress,
    as a Flink job restarted without a checkpoint does."""
    _fill(broker, topic_name)
    group = f"{topic_name}-group"
    _commit(broker, group, topic_name, {0: 5, 1: 5})
    assert _ids(_read(broker, topic_name, START_OFFSET="committed", CONSUMER_GROUP=group)) == _expected(p0=5, p1=5)
    assert _read(broker, topic_name, START_OFFSET="committed", CONSUMER_GROUP=group) == []


def test_committed_offsets_of_every_partition(broker: EmbeddedBroker, topic_name: str) -> None:
    _fill(broker, topic_name)
    group = f"{topic_name}-group"
    _commit(broker, group, topic_name, {0: 7, 1: 2})
    assert _ids(_read(broker, topic_name, START_OFFSET="committed", CONSUMER_GROUP=group)) == _expected(p0=7, p1=2)


@pytest.mark.parametrize("when", [str(T0 + 4000), str(T0 + 3500), "2023-11-14T22:13:24Z",
                                  "2023-11-14T23:13:23.500+01:00"])
def test_a_timestamp_starts_at_the_first_record_at_or_after_it(broker: EmbeddedBroker, topic_name: str,
                                                               when: str) -> None:
    _fill(broker, topic_name)
    assert _ids(_read(broker, topic_name, START_OFFSET=f"timestamp:{when}")) == _expected(p0=4, p1=4)


def test_a_timestamp_after_every_record_starts_at_the_end(broker: EmbeddedBroker, topic_name: str) -> None:
    _fill(broker, topic_name)
    assert _read(broker, topic_name, START_OFFSET=f"timestamp:{T0 + 60_000}") == []


def test_start_offset_applies_only_to_partitions_without_a_resume_position(broker: EmbeddedBroker,
                                                                         topic_name: str) -> None:
    _fill(broker, topic_name)
    source = DecodingKafkaSource([broker.bootstrap_servers], [topic_name], SerdeConfig().decoder(), tail=False,
                                 start=parse_start_offset(f"timestamp:{T0 + 8000}"))
    resumed = [e.event_id for e in read_source_part(source.build_part("read", f"0-{topic_name}", 2))]
    assert resumed == [f"p0-{i}" for i in range(2, 10)]
    fresh = source.build_part("read", f"0-{topic_name}", None)
    assert [e.event_id for e in read_source_part(fresh)] == ["p0-8", "p0-9"]
    assert fresh.snapshot() == 10


def test_record_timestamps_become_event_time(broker: EmbeddedBroker, topic_name: str) -> None:
    _fill(broker, topic_name, per_partition=3)
    stamped = {e.event_id: e.timestamp for e in _read(broker, topic_name, TIMESTAMP_SOURCE="kafka")}
    assert stamped == {f"p{p}-{i}": T0 + 1000 * i for p in (0, 1) for i in range(3)}
    fields = {e.event_id: e.timestamp for e in _read(broker, topic_name)}
    assert fields == {f"p{p}-{i}": i for p in (0, 1) for i in range(3)}


@pytest.mark.parametrize("raw, parsed", [
    ("earliest", StartPosition("earliest")),
    (" LATEST ", StartPosition("latest")),
    ("committed", StartPosition("committed")),
    ("committed:earliest", StartPosition("committed", fallback="earliest")),
    ("committed:latest", StartPosition("committed", fallback="latest")),
    ("timestamp:0", StartPosition("timestamp", timestamp_ms=0)),
    ("timestamp:1700000000123", StartPosition("timestamp", timestamp_ms=1_700_000_000_123)),
    ("timestamp:2023-11-14T22:13:20.123Z", StartPosition("timestamp", timestamp_ms=1_700_000_000_123)),
    ("timestamp:2023-11-14T23:13:20+01:00", StartPosition("timestamp", timestamp_ms=1_700_000_000_000)),
])
def test_start_offset_values(raw: str, parsed: StartPosition) -> None:
    assert parse_start_offset(raw) == parsed


@pytest.mark.parametrize("raw", ["begin", "committed:none", "latest:1", "timestamp:", "timestamp:-5",
                                 "timestamp:yesterday", "timestamp:2023-11-14T22:13:20"])
def test_bad_start_offsets_are_refused_by_name(raw: str) -> None:
    expected = ("expected earliest, latest, committed, committed:earliest, committed:latest or "
                "timestamp:<epoch milliseconds or ISO-8601 time with a UTC offset>")
    with pytest.raises(SettingsError) as raised:
        IOConfig.from_env(env={"START_OFFSET": raw})
    assert str(raised.value) == f"START_OFFSET={raw!r}: {expected}"
    with pytest.raises(SettingsError) as raised:
        IOConfig.from_env(env={}, overrides={"start_offset": raw})
    assert str(raised.value) == f"start_offset={raw!r}: {expected}"


def test_committed_needs_a_consumer_group() -> None:
    with pytest.raises(ValueError, match=r"START_OFFSET='committed:latest' .* set CONSUMER_GROUP"):
        IOConfig.from_env(env={"START_OFFSET": "committed:latest"})
    IOConfig.from_env(env={"START_OFFSET": "committed:latest", "CONSUMER_GROUP": "g"})


def test_bad_timestamp_source_is_refused_by_name() -> None:
    with pytest.raises(SettingsError, match=r"^TIMESTAMP_SOURCE='record': expected one of field, kafka$"):
        IOConfig.from_env(env={"TIMESTAMP_SOURCE": "record"})


def test_record_time_needs_kafka_input(tmp_path: Path) -> None:
    cfg = IOConfig.from_env(env={"INPUT_PATH": str(tmp_path / "in.jsonl"), "TIMESTAMP_SOURCE": "kafka"})
    with pytest.raises(ValueError, match=r"TIMESTAMP_SOURCE=kafka takes event time from Kafka records, but this "
                                         r"input is the file '.*in.jsonl' \(INPUT_PATH\)"):
        read_events(Dataflow("file"), "in", cfg)

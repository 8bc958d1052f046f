"""Where both Kafka sinks put output records: by key (librdkafka's default),
by a field (`OUTPUT_PARTITION_BY`), or by a Python partitioner; read back
from the embedded broker's partitions, exactly-once output included."""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any, Optional

import bytewax.operators as op
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from eventio.broker import EmbeddedBroker
from eventio.config import IOConfig
from eventio.flowio import write_dead_letters, write_output
from eventio.partitioning import PartitionerError, output_partitioner
from recovery.transactional_sink import TransactionalKafkaSink
from tests.committed_log import read_committed
from tests.exactly_once_harness import make_events, produce, run_bounded
from tests.topic_reader import read_all

TYPES = ("click", "view", "purchase", "search", "logout")


def _results(n: int = 200) -> list[dict[str, Any]]:
    return [{"user_id": f"u{i % 37}", "event_type": TYPES[i % len(TYPES)], "n": i} for i in range(n)]


def _write(broker: EmbeddedBroker, topic: str, partitioner: Any = None, **env: str) -> list[tuple[int, dict[str, Any]]]:
    """The results written by `write_output` (keyed by `user_id`), read back
    as `(partition, result)` pairs."""
    broker.create_topics({topic: 4, f"{topic}-dlq": 1})
    cfg = IOConfig.from_env(env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "OUTPUT_TOPIC": topic,
                                 "DLQ_TOPIC": f"{topic}-dlq", **env})
    flow = Dataflow("partitioned")
    results = op.input("in", flow, TestingSource(_results()))
    unencodable = write_output("out", results, cfg, key_of=lambda r: r["user_id"], partitioner=partitioner)
    write_dead_letters("dlq", unencodable, cfg)
    run_main(flow)
    return [(r.partition, json.loads(r.value)) for r in read_all(broker.bootstrap_servers, topic)]


def _by(records: list[tuple[int, dict[str, Any]]], field: str) -> dict[Any, set[int]]:
    """The partitions each value of `field` was written to."""
    found: dict[Any, set[int]] = defaultdict(set)
    for partition, result in records:
        found[result[field]].add(partition)
    return found


def test_by_default_results_go_where_librdkafka_puts_their_key(broker: EmbeddedBroker, topic_name: str) -> None:
    records = _write(broker, topic_name)
    assert len(records) == 200
    assert {user: parts for user, parts in _by(records, "user_id").items()} == \
        {f"u{i}": {zlib.crc32(f"u{i}".encode()) % 4} for i in range(37)}
    assert len(_by(records, "event_type")["click"]) > 1


def test_output_partition_by_a_field(broker: EmbeddedBroker, topic_name: str) -> None:
    records = _write(broker, topic_name, OUTPUT_PARTITION_BY="event_type")
    assert len(records) == 200
    assert _by(records, "event_type") == {t: {zlib.crc32(t.encode()) % 4} for t in TYPES}


def test_a_python_partitioner_sees_the_result_and_the_partition_count(broker: EmbeddedBroker,
                                                                      topic_name: str) -> None:
    seen = set()

    def by_n(result: dict[str, Any], key: Optional[bytes], value: Optional[bytes], partitions: int) -> int:
        seen.add((key == result["user_id"].encode(), json.loads(value or b"") == result, partitions))
        return result["n"] % partitions

    records = _write(broker, topic_name, partitioner=by_n, OUTPUT_PARTITION_BY="event_type")
    assert sorted(partition for partition, _ in records) == sorted(n % 4 for n in range(200))
    assert all(partition == result["n"] % 4 for partition, result in records)
    assert seen == {(True, True, 4)}


def test_a_partition_the_topic_lacks_is_an_error(broker: EmbeddedBroker, topic_name: str) -> None:
    with pytest.raises(Exception) as raised:  # Bytewax wraps what the step raised
        _write(broker, topic_name, partitioner=lambda *_: 4)
    cause: Optional[BaseException] = raised.value
    while cause is not None and not isinstance(cause, PartitionerError):
        cause = cause.__cause__
    assert str(cause) == f"the output partitioner chose partition 4 of topic {topic_name!r}, which has partitions 0 to 3"


def test_bad_output_partition_by_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"^OUTPUT_PARTITION_BY='event type': expected the name of a field of "
                                         r"the results$"):
        IOConfig.from_env(env={"OUTPUT_PARTITION_BY": "event type"})
    assert output_partitioner("") is None


def test_exactly_once_placement_follows_the_partitioner_and_keeps_one_producer_per_partition(
    broker: EmbeddedBroker, topic_name: str,
) -> None:
    broker.create_topics({topic_name: 6, f"{topic_name}-dlq": 1})
    sink = TransactionalKafkaSink([broker.bootstrap_servers], topic_name, transactional_id_prefix="p", partitions=4,
                                  partitioner=output_partitioner("event_type"))
    messages = [(r["user_id"], KafkaSinkMessage(r["user_id"].encode(), json.dumps(r).encode())) for r in _results()]
    routed = [sink.placement.route(m) for m in messages]
    by_type: dict[str, set[int]] = defaultdict(set)
    owners: dict[int, set[str]] = defaultdict(set)
    for route, (topic, partition, _, value, _) in routed:
        assert topic == topic_name
        by_type[json.loads(value)["event_type"]].add(partition)
        owners[partition].add(route)
    assert by_type == {t: {zlib.crc32(t.encode()) % 6} for t in TYPES}
    assert all(len(routes) == 1 for routes in owners.values())
    _, dead = sink.placement.route(("k", KafkaSinkMessage(b"u1", b"{}", topic=f"{topic_name}-dlq")))
    assert dead[:2] == (f"{topic_name}-dlq", 0)


def test_the_exactly_once_flow_commits_each_result_on_the_partition_of_its_field(
    broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    """OUTPUT_PARTITION_BY=count on the exactly-once flow: every committed
    result is on the partition its `count` says, each written by one producer."""
    bs = broker.bootstrap_servers
    topic = "eo-partitioned"
    broker.create_topics({f"{topic}-in": 2, f"{topic}-out": 5, f"{topic}-dlq": 1})
    events = make_events(600, 20, seed=3)
    produce(bs, f"{topic}-in", events)
    run_bounded(bs, topic, tmp_path / "state", OUTPUT_PARTITION_BY="count")
    committed = read_committed(bs, f"{topic}-out")
    assert len(committed) == len(events)
    producers: dict[int, set[int]] = defaultdict(set)
    for record in committed:
        count = json.loads(record.value or b"")["count"]
        assert record.partition == zlib.crc32(str(count).encode()) % 5
        producers[record.partition].add(record.producer_id)
    assert len(producers) > 1 and all(len(ids) == 1 for ids in producers.values())

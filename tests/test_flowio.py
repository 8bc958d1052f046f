"""Flow IO: files and Kafka in and out, bad input to the dead-letter output."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main
from confluent_kafka import Consumer, Producer, TopicPartition

from eventio.broker import EmbeddedBroker
from eventio.config import IOConfig
from eventio.flowio import read_events, write_dead_letters, write_output


def _flow(cfg: IOConfig) -> Dataflow:
    """Uppercase each event's type: just enough to see records pass through."""
    flow = Dataflow("io_test")
    src = read_events(flow, "read", cfg)
    out = op.map("shout", src.events, lambda e: {"event_id": e.event_id, "type": e.event_type.upper()})
    write_output("out", out, cfg, key_of=lambda d: d["event_id"])
    write_dead_letters("dlq", src.errors, cfg)
    return flow


GOOD = [{"event_id": f"e{i}", "user_id": "u", "event_type": "click", "timestamp": i} for i in range(50)]
BAD = ["{not json", '{"event_id": "x", "user_id": "u"}', "[]", '{"event_id": "y", "user_id": "u", "event_type": "t", "timestamp": "soon"}']


def test_malformed_lines_go_to_the_error_output_and_the_flow_keeps_going(tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in GOOD]
    for i, bad in enumerate(BAD):
        lines.insert(10 * i + 5, bad)
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(lines) + "\n")
    cfg = IOConfig(input_path=str(inp), output_path=str(tmp_path / "out.jsonl"),
                   error_output_path=str(tmp_path / "err.jsonl"))
    run_main(_flow(cfg))
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [o["event_id"] for o in out] == [e["event_id"] for e in GOOD]
    assert all(o["type"] == "CLICK" for o in out)
    errors = [json.loads(x) for x in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert [e["payload"] for e in errors] == BAD
    assert [e["offset"] for e in errors] == [lines.index(b) + 1 for b in BAD]
    assert all(e["source"] == str(inp) and e["reason"] for e in errors)
    assert "invalid JSON" in errors[0]["reason"] and "event_type" in errors[1]["reason"]
    assert "timestamp" in errors[3]["reason"]
    assert base64.b64decode(errors[0]["payload_b64"]) == BAD[0].encode()


def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expected and time.monotonic() < deadline:
        got += [m for m in consumer.consume(500, 0.2) if m.error() is None]
    consumer.close()
    return got


def test_kafka_in_and_out_with_dead_letters(broker: EmbeddedBroker, topic_name: str) -> None:
    inp, out, dlq = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-dlq"
    broker.create_topics({inp: 2, out: 1, dlq: 1})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for i, e in enumerate(GOOD):
        producer.produce(inp, json.dumps(e).encode(), key=b"u", partition=i % 2)
    producer.produce(inp, b"\xff\xfe garbage", key=b"k1", partition=1)
    producer.flush(10)
    cfg = IOConfig(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=inp,
                   output_topic=out, dlq_topic=dlq, stop_at_end=True)
    run_main(_flow(cfg))
    results = _consume_all(broker.bootstrap_servers, out, len(GOOD))
    assert sorted(json.loads(m.value())["event_id"] for m in results) == sorted(e["event_id"] for e in GOOD)
    assert {m.key() for m in results} == {e["event_id"].encode() for e in GOOD}
    dead = _consume_all(broker.bootstrap_servers, dlq, 1)
    assert len(dead) == 1
    assert dead[0].value() == b"\xff\xfe garbage" and dead[0].key() == b"k1"
    headers = dict(dead[0].headers())
    assert headers["dlq.source.topic"] == inp.encode()
    assert headers["dlq.source.partition"] == b"1"
    assert headers["dlq.error.class"] == b"InvalidJsonError"

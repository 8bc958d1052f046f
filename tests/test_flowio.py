"""Flow IO: files and Kafka in and out, bad input to the dead-letter output."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# --- JSON-lines files: chunked reading, batch decoding, strict output -------


def _read_all(path: Path, resume: Any = None, chunk: int = 1 << 20, batch: int = 1000) -> tuple[list[Any], Any]:
    """Every item of a `JsonLinesSource` partition and its final state."""
    from eventio import flowio
    from eventio.decoding import record_decoder

    saved, flowio.CHUNK_BYTES = flowio.CHUNK_BYTES, chunk
    try:
        part = flowio.JsonLinesSource([str(path)], record_decoder().lines, batch_size=batch).build_part(
            "s", str(path), resume)
        items: list[Any] = []
        try:
            while True:
                items += part.next_batch()
        except StopIteration:
            pass
        return items, part.snapshot()
    finally:
        flowio.CHUNK_BYTES = saved


@given(st.lists(st.sampled_from([json.dumps(GOOD[0]), json.dumps(GOOD[1]) + "\r", "not json", "", "[1]",
                                 '{"event_id":"é","user_id":"ü","event_type":"t","timestamp":3}']), max_size=30),
       st.booleans(), st.integers(1, 64), st.integers(1, 7))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_file_lines_decode_as_one_record_each_across_chunk_boundaries(tmp_path: Path, lines: list[str],
                                                                      last_newline: bool, chunk: int,
                                                                      batch: int) -> None:
    """Whatever the chunk and batch sizes, each line is decoded as the
    decoder decodes that line alone (line numbers from 1, `\\r` cut), and the
    final state is (file size, line count)."""
    from eventio.decoding import record_decoder

    text = "\n".join(lines) + ("\n" if last_newline else "")
    path = tmp_path / f"in-{abs(hash((text, chunk, batch)))}.jsonl"
    path.write_bytes(text.encode())
    items, state = _read_all(path, chunk=chunk, batch=batch)
    decode = record_decoder()
    raw = text.encode().split(b"\n")
    if last_newline or raw[-1] == b"":
        raw.pop()
    expected = [decode(r.rstrip(b"\r"), None, str(path), None, n, str(path)) for n, r in enumerate(raw, 1)]
    assert [(type(i), i.to_dict(), getattr(i, "channel", None)) for i in items] == \
        [(type(i), i.to_dict(), getattr(i, "channel", None)) for i in expected]
    assert state == (len(text.encode()), len(raw))


def test_a_resumed_file_partition_continues_at_its_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in GOOD))
    whole, _ = _read_all(path, batch=7)
    from eventio import flowio
    from eventio.decoding import record_decoder

    part = flowio.JsonLinesSource([str(path)], record_decoder().lines, batch_size=7).build_part("s", str(path), None)
    first = part.next_batch() + part.next_batch()
    rest, _ = _read_all(path, resume=part.snapshot())
    assert [e.event_id for e in first + rest] == [e.event_id for e in whole]
    assert [e.event_id for e in rest] == [e["event_id"] for e in GOOD[14:]]


def test_results_strict_json_cannot_hold_go_to_the_dead_letter_output(tmp_path: Path) -> None:
    """A result with a non-finite number is not written as `Infinity` or
    `null`: it becomes a dead letter naming the output, with its key."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in GOOD[:3]))
    cfg = IOConfig(input_path=str(inp), output_path=str(tmp_path / "out.jsonl"),
                   error_output_path=str(tmp_path / "err.jsonl"))
    flow = Dataflow("unencodable")
    src = read_events(flow, "read", cfg)
    out = op.map("total", src.events, lambda e: {"event_id": e.event_id, "total": 1e308 * (int(e.event_id[1:]) + 1)
                                                 if e.event_id == "e1" else 1.5})
    bad = write_output("out", out, cfg, key_of=lambda d: d["event_id"])
    write_dead_letters("dlq", src.errors, cfg, bad)
    run_main(flow)
    assert (tmp_path / "out.jsonl").read_text().splitlines() == ['{"event_id":"e0","total":1.5}',
                                                                  '{"event_id":"e2","total":1.5}']
    (dead,) = [json.loads(x) for x in (tmp_path / "err.jsonl").read_text().splitlines()]
    assert dead["error_class"] == "UnencodableResultError" and dead["source"] == "output:out"
    assert "out" in dead["reason"] and "Out of range float" in dead["reason"]
    assert dead["payload"] == '{"event_id":"e1","total":Infinity}'
    assert base64.b64decode(dead["key_b64"]) == b"e1"


def test_a_json_flow_loads_no_avro_or_registry_code() -> None:
    import subprocess
    import sys

    code = ("import sys, flows.session_analytics; "
            "print(sorted(m for m in sys.modules if 'schema_registry' in m or m in ('fastavro', 'eventio.avro')))")
    env = {**os.environ, "INPUT_PATH": __file__, "OUTPUT_PATH": "/dev/null"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "[]"

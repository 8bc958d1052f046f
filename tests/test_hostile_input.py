"""Hostile input through whole flows: every output line is strict JSON,
and what cannot be an event, or a result, is a dead letter with its reason;
the flow never stops for it."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from eventio.broker import EmbeddedBroker
from flows import session_analytics
from tests.flow_files import run_on_files

T0 = 1_704_067_200_000


def _event(i: int, user: str, kind: str = "page_view", **extra: object) -> str:
    return json.dumps({"event_id": f"e{i}", "user_id": user, "event_type": kind, "timestamp": T0 + i * 1000, **extra})


HOSTILE = [
    '{"event_id":"s1","user_id":"\\ud800","event_type":"page_view","timestamp":1704067200000}',
    '{"event_id":"s2","user_id":"u","event_type":"purchase","timestamp":1704067200000,"amount":1' + "0" * 400 + "}",
    '{"event_id":"s3","user_id":"u","event_type":"purchase","timestamp":1704067200000,"amount":1e400}',
    '{"event_id":"s4","user_id":"u","event_type":"page_view","timestamp":1704067200000,"tags":' + "[" * 600 + "]" * 600 + "}",
    '{"event_id":"s5","user_id":"u","event_type":"page_view","timestamp":NaN}',
]


def test_session_analytics_on_hostile_lines(tmp_path: Path) -> None:
    lines = [_event(0, "big", "purchase", amount=1e308), _event(1, "big", "purchase", amount=1e308),
             _event(2, "ok", "purchase", amount=12.5), *HOSTILE, _event(3, "ok")]
    out = run_on_files(session_analytics.build, tmp_path, lines)
    for name in ("output", "error_output"):
        for raw in (tmp_path / f"{name}.jsonl").read_bytes().splitlines():
            msgspec.json.decode(raw)  # strict: no NaN, no Infinity, no lone surrogate
    assert [(r["user_id"], r["event_count"], r["total_spent"]) for r in out["output"]] == [("ok", 2, 12.5)]
    dead = {d["payload"][:17]: (d["error_class"], d["reason"]) for d in out["error_output"]}
    assert dead['{"event_id":"s1",'] == ("InvalidJsonError", "invalid JSON: a string holds a lone surrogate escape")
    assert dead['{"event_id":"s2",'][0] == "EventError" and "finite number" in dead['{"event_id":"s2",'][1]
    assert dead['{"event_id":"s3",'] == ("InvalidJsonError", "invalid JSON: a number is beyond the range of a double")
    assert "nested deeper than 500" in dead['{"event_id":"s4",'][1]
    assert dead['{"event_id":"s5",'] == ("InvalidJsonError", "invalid JSON: NaN is not valid JSON")
    (overflow,) = [d for d in out["error_output"] if d["error_class"] == "UnencodableResultError"]
    assert json.loads(overflow["payload"].replace("Infinity", '"inf"'))["total_spent"] == "inf"
    assert overflow["payload"].startswith('{"user_id":"big","session_start":1704067200000,')


def test_a_lone_surrogate_on_kafka_is_a_dead_letter(broker: EmbeddedBroker, topic_name: str, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    topic = f"{topic_name}-in"
    broker.create_topics({topic: 1})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers})
    for line in [HOSTILE[0], _event(0, "ok")]:
        producer.produce(topic, line.encode(), key=b"k")
    producer.flush(10)
    from bytewax.testing import run_main

    paths = {name: tmp_path / f"{name}.jsonl" for name in ("output", "late_output", "error_output")}
    run_main(session_analytics.build(kafka_bootstrap_servers=broker.bootstrap_servers, input_topic=topic,
                                     stop_at_end=True, **{f"{n}_path": str(p) for n, p in paths.items()}))
    (dead,) = [json.loads(x) for x in paths["error_output"].read_text().splitlines()]
    assert (dead["source"], dead["partition"], dead["offset"], dead["error_class"]) == (topic, 0, 0, "InvalidJsonError")
    assert [json.loads(x)["user_id"] for x in paths["output"].read_text().splitlines()] == ["ok"]

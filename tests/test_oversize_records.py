"""Input records too large for one Kafka record of `MAX_MESSAGE_BYTES`
(1,000,000 bytes by default, librdkafka's `message.max.bytes`) become dead
letters cut to fit, with the original size and SHA-256; they never wedge a
flow: every valid output is committed once, before and after a kill -9."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence, Union

import pytest
from bytewax.testing import run_main
from confluent_kafka import Producer

from eventio.broker import EmbeddedBroker
from recovery.directories import init
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
from tests.flow_runs import run_flow
from tests.topic_reader import Record, read_all

pytestmark = pytest.mark.integration

LIMIT = 1_000_000


def oversize(size: int, fill: bytes) -> bytes:
    """A JSON-looking record of `size` bytes, different in every byte position."""
    body = (fill * (size // len(fill) + 1))[: size - 2]
    return b"{" + body + b"}"


def produce_raw(bootstrap: str, topic: str, values: list[bytes], partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 20_000_000})
    for value in values:
        producer.produce(topic, value, key=b"big", partition=partition)
    assert producer.flush(30) == 0


def assert_cut_dead_letters(letters: Sequence[Union[LogRecord, Record]], originals: list[bytes]) -> None:
    """One dead letter per original, each its first bytes, fitting one record, with size and SHA-256."""
    assert len(letters) == len(originals)
    by_size = {len(o): o for o in originals}
    for letter in letters:
        headers = dict(letter.headers)
        original = by_size[int(headers["dlq.original.size"])]
        assert headers["dlq.original.sha256"] == hashlib.sha256(original).hexdigest().encode()
        assert headers["dlq.error.class"] == b"OversizeMessageError"
        assert letter.value is not None and 0 < len(letter.value) < LIMIT and original.startswith(letter.value)
        assert letter.key == b"big"


def test_exactly_once_commits_every_valid_output_once_around_oversize_records_and_after_a_kill(
    broker: EmbeddedBroker, tmp_path: Path, topic_name: str,
) -> None:
    bs = broker.bootstrap_servers
    topic = topic_name
    broker.create_topics({f"{topic}-in": 2, f"{topic}-out": 4, f"{topic}-dlq": 1})
    events = make_events(4000, 40, seed=11)
    big = [oversize(1_040_000, b"abcdefg"), oversize(10_000_000, b"0123456789")]
    produce(bs, f"{topic}-in", events[:2000])
    produce_raw(bs, f"{topic}-in", big[:1], partition=0)
    produce_raw(bs, f"{topic}-in", big[1:], partition=1)
    produce(bs, f"{topic}-in", events[2000:3000])
    init(tmp_path / "state", 1)
    env = flow_env(bs, topic)
    with FlowProcess(FLOW, tmp_path / "state", env) as flow:
        outs = wait_for_outputs(bs, f"{topic}-out", 3000, flow)
        assert_exactly_once(outs, reference(events[:3000]))
        assert_cut_dead_letters(read_committed(bs, f"{topic}-dlq"), big)
        assert flow.alive()
        # Another one, then a kill -9 once its dead letter is in the log.
        third = oversize(2_500_000, b"xyz")
        produce_raw(bs, f"{topic}-in", [third], partition=0)
        produce(bs, f"{topic}-in", events[3000:])
        assert wait_until(lambda: sum(len(p.records) for p in read_topic(bs, f"{topic}-dlq")) >= 3, 30)
        flow.kill()
    with FlowProcess(FLOW, tmp_path / "state", env) as resumed:
        outs = wait_for_outputs(bs, f"{topic}-out", len(events), resumed)
        assert resumed.alive()
    assert_exactly_once(outs, reference(events))
    assert_cut_dead_letters(read_committed(bs, f"{topic}-dlq"), [*big, third])


def _session_events(n: int) -> list[dict[str, Any]]:
    kinds = ["page_view", "click", "purchase", "login"]
    return [{"event_id": f"s{i}", "user_id": f"u{i % 13}", "event_type": kinds[i % 4],
             "timestamp": 1_704_067_200_000 + i * 200_000, **({"amount": 10.5} if i % 4 == 2 else {})}
            for i in range(n)]


def test_session_analytics_writes_every_valid_session_around_oversize_records(
    broker: EmbeddedBroker, tmp_path: Path, topic_name: str,
) -> None:
    """Kafka to Kafka, bounded (STOP_AT_END): the run ends normally with the
    sessions a file run of the valid events gives, and the cut dead letters."""
    bs = broker.bootstrap_servers
    t = {name: f"{topic_name}-{name}" for name in ("in", "out", "late", "dlq")}
    broker.create_topics({t["in"]: 1, t["out"]: 1, t["late"]: 1, t["dlq"]: 1})
    events = _session_events(1500)
    big = [oversize(1_040_000, b"session"), oversize(10_000_000, b"0123456789")]
    produce(bs, t["in"], events[:700])
    produce_raw(bs, t["in"], big, partition=0)
    produce(bs, t["in"], events[700:])
    run = run_flow("flows.session_analytics:flow", {
        "KAFKA_BOOTSTRAP_SERVERS": bs, "INPUT_TOPIC": t["in"], "OUTPUT_TOPIC": t["out"], "LATE_TOPIC": t["late"],
        "DLQ_TOPIC": t["dlq"], "STOP_AT_END": "true"}, timeout_s=180)
    assert run.status == 0, run.output[-3000:]

    from flows.session_analytics import build

    source = tmp_path / "valid.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    run_main(build(input_path=str(source), output_path=str(tmp_path / "want.jsonl")))
    want = sorted((tmp_path / "want.jsonl").read_text().splitlines())
    got = sorted(r.value.decode() for r in read_all(bs, t["out"]) if r.value is not None)
    assert got == want and len(want) > 500
    assert_cut_dead_letters(read_all(bs, t["dlq"]), big)


def test_a_file_run_cuts_oversize_lines_in_its_dead_letters_the_same_way(tmp_path: Path) -> None:
    from flows.session_analytics import build

    big = oversize(1_200_000, b"line")
    source = tmp_path / "in.jsonl"
    source.write_bytes(json.dumps(_session_events(3)[0]).encode() + b"\n" + big + b"\n")
    run_main(build(input_path=str(source), output_path=str(tmp_path / "out.jsonl")))
    (letter,) = [json.loads(line) for line in (tmp_path / "out.dlq.jsonl").read_text().splitlines()]
    assert letter["error_class"] == "OversizeMessageError" and letter["offset"] == 2
    assert (letter["original_size"], letter["original_sha256"]) == (len(big), hashlib.sha256(big).hexdigest())
    kept = base64.b64decode(letter["payload_b64"])
    assert big.startswith(kept) and 0 < len(kept) < LIMIT

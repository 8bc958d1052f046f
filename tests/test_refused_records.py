"""Records the broker refuses for their content never wedge a sink: the
at-least-once and the exactly-once sinks write each one, as a dead letter
with the reason, to the dead-letter topic and go on; the rest of the output
is delivered (once, for exactly-once, also across a kill -9).

The refusals are real: the embedded broker validates the records of a topic
that has a JSON schema in its schema registry and refuses the batches
holding an invalid one with INVALID_RECORD, as a Kafka broker refuses a
whole batch for one bad record.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest
from bytewax.testing import run_main

from eventio.broker import EmbeddedBroker
from recovery.directories import init
from tests.committed_log import read_committed
from tests.exactly_once_harness import (
    FLOW,
    FlowProcess,
    flow_env,
    make_events,
    produce,
    reference,
    wait_until,
)
from tests.flow_runs import run_flow
from tests.topic_reader import read_all

pytestmark = pytest.mark.integration

SESSIONS = "strict-sessions"
COUNTS = "strict-counts"
MAX_EVENTS_PER_SESSION = 2
MAX_COUNT = 25


@pytest.fixture(scope="module")
def strict_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A broker whose topics SESSIONS and COUNTS refuse records over a limit."""
    schemas = tmp_path_factory.mktemp("schemas")
    (schemas / f"{SESSIONS}.json").write_text(json.dumps({"type": "object", "properties": {"value": {
        "type": "object", "properties": {"event_count": {"maximum": MAX_EVENTS_PER_SESSION}}}}}))
    (schemas / f"{COUNTS}.json").write_text(json.dumps({"type": "object", "properties": {"value": {
        "type": "object", "properties": {"count": {"maximum": MAX_COUNT}}}}}))
    with EmbeddedBroker(schema_registry=schemas) as broker:
        yield broker


def _refused(letters: list[Any], topic: str) -> list[dict[str, Any]]:
    """The results in the dead letters of records refused for `topic`."""
    out = []
    for letter in letters:
        headers = dict(letter.headers)
        assert headers["dlq.error.class"] == b"RecordRefusedError"
        assert headers["dlq.source.topic"] == f"output:{topic}".encode()
        assert b"INVALID_RECORD" in headers["dlq.error.message"] or b"validate" in headers["dlq.error.message"]
        out.append(json.loads(letter.value))
    return out


def test_the_at_least_once_sink_sends_refused_records_to_the_dead_letters_and_delivers_the_rest(
    strict_broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    from flows.session_analytics import build

    bs = strict_broker.bootstrap_servers
    strict_broker.create_topics({"sessions-in": 1, SESSIONS: 2, "sessions-dlq": 1, "sessions-late": 1})
    kinds = ["page_view", "click", "purchase"]
    events = [{"event_id": f"s{i}", "user_id": f"u{i % 17}", "event_type": kinds[i % 3],
               "timestamp": 1_704_067_200_000 + i * 7_000 + (i // 40) * 7_200_000} for i in range(900)]
    produce(bs, "sessions-in", events)
    run = run_flow("flows.session_analytics:flow", {
        "KAFKA_BOOTSTRAP_SERVERS": bs, "INPUT_TOPIC": "sessions-in", "OUTPUT_TOPIC": SESSIONS,
        "LATE_TOPIC": "sessions-late", "DLQ_TOPIC": "sessions-dlq", "STOP_AT_END": "true"}, timeout_s=180)
    assert run.status == 0, run.output[-3000:]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    run_main(build(input_path=str(source), output_path=str(tmp_path / "want.jsonl")))
    want = [json.loads(line) for line in (tmp_path / "want.jsonl").read_text().splitlines()]
    accepted = [w for w in want if w["event_count"] <= MAX_EVENTS_PER_SESSION]
    refused = [w for w in want if w["event_count"] > MAX_EVENTS_PER_SESSION]
    assert accepted and refused
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    got = [json.loads(r.value) for r in read_all(bs, SESSIONS)]
    assert sorted(map(key, got)) == sorted(map(key, accepted))
    assert sorted(map(key, _refused(read_all(bs, "sessions-dlq"), SESSIONS))) == sorted(map(key, refused))


def test_the_exactly_once_sink_replaces_refused_records_by_dead_letters_in_the_transaction(
    strict_broker: EmbeddedBroker, tmp_path: Path,
) -> None:
    """Results with a count over the limit are refused: they become dead
    letters committed once, in the same transactions; all other results are
    committed once; a kill -9 in the middle changes nothing."""
    bs = strict_broker.bootstrap_servers
    topic = "counts"
    strict_broker.create_topics({f"{topic}-in": 2, COUNTS: 4, f"{topic}-dlq": 4})
    env = {**flow_env(bs, topic), "OUTPUT_TOPIC": COUNTS}
    events = make_events(900, 30, seed=3)
    want = reference(events)
    accepted = {k: v for k, v in want.items() if v["count"] <= MAX_COUNT}
    refused = {k: v for k, v in want.items() if v["count"] > MAX_COUNT}
    assert accepted and refused
    init(tmp_path / "state", 1)

    def committed() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        outs = [json.loads(r.value) for r in read_committed(bs, COUNTS)]
        return outs, _refused(read_committed(bs, f"{topic}-dlq"), COUNTS)

    produce(bs, f"{topic}-in", events[:450])
    with FlowProcess(FLOW, tmp_path / "state", env) as flow:
        assert wait_until(lambda: sum(map(len, committed())) >= 450, 90), flow.log_tail()
        produce(bs, f"{topic}-in", events[450:])
        assert wait_until(lambda: sum(map(len, committed())) > 450, 60), flow.log_tail()
        flow.kill()
    with FlowProcess(FLOW, tmp_path / "state", env) as flow:
        assert wait_until(lambda: sum(map(len, committed())) >= len(events), 90), flow.log_tail()
        assert flow.alive()
    outs, letters = committed()
    for name, results, expected in (("results", outs, accepted), ("dead letters", letters, refused)):
        counts = Counter(r["event_id"] for r in results)
        assert not [e for e, c in counts.items() if c > 1], f"{name} committed twice"
        assert {r["event_id"]: r for r in results} == expected, name

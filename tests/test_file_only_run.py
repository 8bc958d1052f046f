"""A run with `INPUT_PATH` and `OUTPUT_PATH` and no broker anywhere: every
output goes to files beside the results, the run ends with status 0, and no
Kafka client is made (no librdkafka line is printed)."""

from __future__ import annotations

import json
from pathlib import Path

from eventio.broker import free_port
from tests.flow_runs import run_flow

BASE = 1_704_067_200_000
MINUTE = 60_000


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_session_analytics_on_files_writes_late_events_and_dead_letters_beside_its_output(tmp_path: Path) -> None:
    events = [{"event_id": f"e{i}", "user_id": f"u{i % 5}", "event_type": "click", "timestamp": BASE + i * MINUTE}
              for i in range(120)]
    # A day behind an event-time two hours on: far beyond bound and lateness.
    late = [{"event_id": f"late{i}", "user_id": f"u{i}", "event_type": "click", "timestamp": BASE - 1440 * MINUTE + i}
            for i in range(3)]
    bad = ["{not json", '{"event_id": "x"}', "[1, 2]"]
    lines = [json.dumps(e) for e in events[:60]] + bad[:2] + [json.dumps(e) for e in late] + \
            [json.dumps(e) for e in events[60:]] + bad[2:]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    run = run_flow("flows.session_analytics:flow", {
        "INPUT_PATH": str(source), "OUTPUT_PATH": str(out),
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"})  # nothing listens there: nothing may try
    assert run.status == 0, run.output[-3000:]
    assert "rdkafka" not in run.output and "Kafka" not in run.output, run.output[-3000:]
    assert sorted(e["event_id"] for e in _lines(tmp_path / "out.late.jsonl")) == ["late0", "late1", "late2"]
    dead = _lines(tmp_path / "out.dlq.jsonl")
    assert [d["payload"] for d in dead] == bad
    assert [d["offset"] for d in dead] == [lines.index(b) + 1 for b in bad]
    sessions = _lines(out)
    assert sum(s["event_count"] for s in sessions) == len(events)
    assert sorted({s["user_id"] for s in sessions}) == [f"u{i}" for i in range(5)]

"""Settings fixed for a recovery store: a resumed run given other ones is
refused when it is built, with a message naming the setting and the store's
value (instead of Bytewax's "Key StateKey(...) is not in this worker's
routing map")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eventio.broker import EmbeddedBroker
from recovery.directories import init
from tests.exactly_once_harness import FLOW, FlowProcess, flow_env, make_events, produce, wait_for_outputs
from tests.flow_runs import Finished, run_flow


def _refusal(run: Finished) -> str:
    """The one line a refused run printed (exit 2, no traceback)."""
    assert run.status == 2, run.output[-3000:]
    assert "Traceback" not in run.output and "routing map" not in run.output, run.output[-3000:]
    lines = run.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flows."), run.output[-3000:]
    return lines[0]


def test_other_input_or_output_files_on_a_recovery_store_are_refused_by_name(tmp_path: Path) -> None:
    event = {"event_id": "e1", "user_id": "u", "event_type": "click", "timestamp": 1}
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text(json.dumps(event) + "\n")
    init(tmp_path / "state", 1)
    files = {"INPUT_PATH": str(tmp_path / "a.jsonl"), "OUTPUT_PATH": str(tmp_path / "out.jsonl")}
    first = run_flow("flows.session_analytics:flow", files, recovery=tmp_path / "state")
    assert first.status == 0, first.output[-3000:]
    other_input = run_flow("flows.session_analytics:flow", {**files, "INPUT_PATH": str(tmp_path / "b.jsonl")},
                           recovery=tmp_path / "state")
    assert _refusal(other_input).endswith(
        f"INPUT_PATH has changed: the recovery store {tmp_path / 'state'} was written with "
        f"{str(tmp_path / 'a.jsonl')!r} (step 'session_analytics.read_file'), and INPUT_PATH now gives "
        f"{str(tmp_path / 'b.jsonl')!r}. INPUT_PATH is fixed for the life of a recovery store: set it back, or "
        "start on a new recovery directory")
    other_output = run_flow("flows.session_analytics:flow", {**files, "OUTPUT_PATH": str(tmp_path / "o2.jsonl")},
                            recovery=tmp_path / "state")
    assert "OUTPUT_PATH has changed" in _refusal(other_output)
    again = run_flow("flows.session_analytics:flow", files, recovery=tmp_path / "state")
    assert again.status == 0, again.output[-3000:]


@pytest.mark.integration
@pytest.mark.parametrize("partitions", [2, 8])
def test_another_sink_partition_count_on_a_recovery_store_is_refused_by_name(
    broker: EmbeddedBroker, tmp_path: Path, topic_name: str, partitions: int,
) -> None:
    bs = broker.bootstrap_servers
    broker.create_topics({f"{topic_name}-in": 2, f"{topic_name}-out": 4, f"{topic_name}-dlq": 1})
    init(tmp_path / "state", 1)
    env = flow_env(bs, topic_name)
    produce(bs, f"{topic_name}-in", make_events(100, 10, seed=1))
    with FlowProcess(FLOW, tmp_path / "state", env) as flow:
        wait_for_outputs(bs, f"{topic_name}-out", 100, flow)
    changed = run_flow(FLOW, {**env, "SINK_PARTITIONS": str(partitions)}, recovery=tmp_path / "state")
    assert _refusal(changed).endswith(
        f"SINK_PARTITIONS is {partitions}, but the recovery store {tmp_path / 'state'} was written with "
        "SINK_PARTITIONS=4 (step 'exactly_once.out'); it is fixed for the life of a recovery store: set "
        "SINK_PARTITIONS=4, or start on a new recovery directory")

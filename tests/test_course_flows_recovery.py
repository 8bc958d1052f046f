"""The course flows with event-time (deterministic) results survive SIGKILL:
run under recovery, killed at random points and resumed, each ends with the
same records in every output file as an uninterrupted run (whose values the
flows' own tests check against independent expectations).

`multi_tenant` and `count_or_timeout` are left out: their rate limits and
timeouts run on processing time, so a killed run may rightly differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

import pytest

from eventio import generators
from tests.flow_files import output_multisets
from tests.killed_runs import run_killed_and_resumed

Records = Callable[[], Iterable[dict]]

# Inputs sized so that one uninterrupted run takes about four seconds here: a
# few epochs past start-up, so the first kill (one epoch in) lands mid-run.
CASES: dict[str, Records] = {
    "quarterly_reports": lambda: generators.quarterly(320_000, seed=3),
    "ml_features": lambda: generators.shoppers(40_000, seed=3),
    "iot_anomaly": lambda: generators.iot(100_000, seed=3),
    "multi_output": lambda: generators.mixed(200_000, seed=3),
}


@pytest.mark.parametrize("flow", sorted(CASES))
def test_killed_and_resumed_run_ends_with_the_same_outputs(tmp_path: Path, flow: str) -> None:
    lines = "".join(json.dumps(e) + "\n" for e in CASES[flow]())
    plain, killed = tmp_path / "plain", tmp_path / "killed"
    for run_dir in (plain, killed):
        run_dir.mkdir()
        (run_dir / "in.jsonl").write_text(lines)
    assert run_killed_and_resumed(flow, plain, seed=0, attempts=0) == 0
    kills = run_killed_and_resumed(flow, killed, seed=7, attempts=3)
    assert kills >= 1, "the run finished before it could be killed; make the input larger"
    # Dead letters name the input path, which differs between the two runs.
    expected = output_multisets(plain, "in.jsonl", drop=("source",))
    assert sum(len(c) for c in expected.values()) > 0
    assert output_multisets(killed, "in.jsonl", drop=("source",)) == expected

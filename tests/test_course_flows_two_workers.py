"""The course flows whose results depend only on event time give the same
records in every output file with two Bytewax workers as with one: keyed
state, shards and watermarks are spread over the workers without changing
what is computed. The values themselves are checked against independent
expectations by each flow's own tests. That includes a window firing's
`watermark` field: a shard fires at the watermark Flink's per-event
watermark would show, however Bytewax batched the stream.

`multi_tenant` and `count_or_timeout` are left out: their rate limits and
timeouts run on processing time. `session_analytics` and
`purchase_correlation` have their own two-worker tests.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

import pytest
from bytewax.testing import cluster_main

from eventio import generators
from tests.flow_files import output_multisets

Records = Callable[[], Iterable[dict]]

CASES: dict[str, Records] = {
    "realtime_analytics": lambda: generators.disorder(generators.sessions(20_000, seed=4, users=200), seed=4, late_fraction=0.0),
    "fraud_detection": lambda: generators.fraud(20_000, seed=4, users=400, frauds=40)[0],
    "quarterly_reports": lambda: generators.quarterly(20_000, seed=4),
    "ml_features": lambda: generators.shoppers(20_000, seed=4),
    "iot_anomaly": lambda: generators.iot(20_000, seed=4),
    "multi_output": lambda: generators.mixed(20_000, seed=4),
}


def _run(flow: str, run_dir: Path, lines: str, workers: int) -> dict[str, Counter[str]]:
    """The flow over `lines` with `workers` workers in this process; its
    outputs as multisets, without dead letters' input path (it differs
    between runs)."""
    run_dir.mkdir()
    source = run_dir / "in.jsonl"
    source.write_text(lines)
    module = importlib.import_module(f"flows.{flow}")
    paths = {name: str(run_dir / f"{name}.jsonl") for name in ("output", "late_output", "error_output")}
    cluster_main(module.build(input_path=str(source), **{f"{n}_path": p for n, p in paths.items()}), [], 0,
                 worker_count_per_proc=workers)
    return output_multisets(run_dir, source.name, drop=("source",))


@pytest.mark.parametrize("flow", sorted(CASES))
def test_two_workers_give_the_same_outputs_as_one(tmp_path: Path, flow: str) -> None:
    lines = "".join(json.dumps(e) + "\n" for e in CASES[flow]())
    one = _run(flow, tmp_path / "one", lines, 1)
    two = _run(flow, tmp_path / "two", lines, 2)
    assert sum(one["output.jsonl"].values()) >= 10
    assert two == one

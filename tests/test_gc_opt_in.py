"""The garbage-collector tuning is opt-in: building a dataflow leaves the
process's thresholds alone; `python -m eventio.run` raises them to
`STREAM_GC_THRESHOLD` and otherwise runs the flow as `bytewax.run` does."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from tests.test_keyed_wiring import _flow

REPO = Path(__file__).parent.parent

PROBE = '''
import gc, sys
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource
from eventio.bytewax_run import cli_settings

print("threshold", gc.get_threshold()[0], "bytewax.run", cli_settings() is not None, file=sys.stderr)
flow = Dataflow("probe")
op.output("out", op.input("in", flow, TestingSource([1, 2, 3])), __import__("bytewax.connectors.stdio",
          fromlist=["StdOutSink"]).StdOutSink())
'''


def test_building_an_event_time_step_changes_no_gc_setting() -> None:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        _flow([[("a", 0, 5)]], 2, 1)
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*before)


def _run(tmp_path: Path, module: str, threshold: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "probe.py").write_text(PROBE)
    env = {**os.environ, "PYTHONPATH": str(REPO), "STREAM_GC_THRESHOLD": threshold}
    return subprocess.run([sys.executable, "-m", module, "probe:flow"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_eventio_run_tunes_the_gc_and_runs_the_flow_as_bytewax_run(tmp_path: Path) -> None:
    tuned = _run(tmp_path, "eventio.run", "12345")
    assert tuned.returncode == 0, tuned.stderr
    assert "threshold 12345 bytewax.run True" in tuned.stderr
    assert tuned.stdout.split() == ["1", "2", "3"]
    plain = _run(tmp_path, "bytewax.run", "12345")
    assert f"threshold {gc.get_threshold()[0]} bytewax.run True" in plain.stderr
    assert _run(tmp_path, "eventio.run", "0").stderr.startswith(f"threshold {gc.get_threshold()[0]} ")


def test_an_unusable_threshold_is_refused_with_the_variable(tmp_path: Path) -> None:
    refused = _run(tmp_path, "eventio.run", "lots")
    assert refused.returncode != 0 and "STREAM_GC_THRESHOLD='lots'" in refused.stderr

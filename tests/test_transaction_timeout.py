"""The exactly-once sink's `transaction.timeout.ms` follows the snapshot interval.

A transaction carries one epoch of output, so the coordinator must not abort
it sooner: the timeout is derived from the epoch (snapshot) interval that
`python -m bytewax.run` runs with, and a configured one that is not larger
than the interval stops the flow at start-up, before it touches Kafka.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Optional

import pytest

from recovery.directories import init
from recovery.epoch_interval import epoch_interval_s
from recovery.transactional_sink import (
    TransactionalKafkaSink,
    check_transaction_timeout,
    transaction_timeout_ms,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_derived_timeout_is_two_epochs_and_the_sink_timeout_at_least_a_minute() -> None:
    assert transaction_timeout_ms(None, 30) == 60_000
    assert transaction_timeout_ms(1, 30) == 60_000
    assert transaction_timeout_ms(30, 30) == 90_000
    assert transaction_timeout_ms(300, 30) == 630_000


def test_a_timeout_not_above_the_interval_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must be larger than the snapshot interval \(10 s"):
        check_transaction_timeout(10_000, 10)
    check_transaction_timeout(10_001, 10)
    check_transaction_timeout(1, None)  # interval unknown (not run by bytewax.run): nothing to compare


def test_the_sink_derives_its_timeout_or_checks_the_configured_one() -> None:
    sink = TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="p", epoch_interval_s=120, timeout_s=10)
    assert sink.add_config["transaction.timeout.ms"] == sink.transaction_timeout_ms == 250_000
    mine = TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="p", epoch_interval_s=120,
                                  add_config={"transaction.timeout.ms": 120_001})
    assert mine.add_config["transaction.timeout.ms"] == 120_001
    with pytest.raises(ValueError, match="120 s"):
        TransactionalKafkaSink(["b:1"], "t", transactional_id_prefix="p", epoch_interval_s=120,
                               add_config={"transaction.timeout.ms": 60_000})


def test_the_interval_is_unknown_outside_bytewax_run() -> None:
    assert epoch_interval_s() is None  # pytest is __main__
    other = ModuleType("__main__")
    other.__spec__ = SimpleNamespace(name="something.else")  # type: ignore[assignment]
    other.kwargs = {"epoch_interval": timedelta(seconds=3)}  # type: ignore[attr-defined]
    assert epoch_interval_s(other) is None


PROBE = """
import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource
from recovery.epoch_interval import epoch_interval_s

print("epoch interval", epoch_interval_s(), flush=True)
flow = Dataflow("probe")
op.output("out", op.input("in", flow, TestingSource([1])), TestingSink([]))
"""


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(cwd)]), **env)
    for inherited in ("BYTEWAX_SNAPSHOT_INTERVAL", "BYTEWAX_RECOVERY_DIRECTORY", "BYTEWAX_RECOVERY_BACKUP_INTERVAL"):
        if inherited not in env:
            full.pop(inherited, None)
    return subprocess.run([sys.executable, "-m", "bytewax.run", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "env", "seconds"),
    [
        (["-r", "{dir}", "-s", "5", "-b", "0"], {}, 5.0),
        (["-r", "{dir}", "-b", "0"], {"BYTEWAX_SNAPSHOT_INTERVAL": "7"}, 7.0),
        ([], {}, 10.0),  # no recovery: Bytewax's default epoch
    ],
)
def test_bytewax_run_tells_the_flow_its_epoch_interval(
    tmp_path: Path, args: list[str], env: dict[str, str], seconds: Optional[float],
) -> None:
    (tmp_path / "probe_flow.py").write_text(PROBE)
    init(tmp_path / "state", 1)
    out = _run(["probe_flow:flow", *(a.format(dir=tmp_path / "state") for a in args)], tmp_path, **env)
    assert out.returncode == 0, out.stderr
    assert f"epoch interval {seconds}\n" in out.stdout


def test_the_exactly_once_flow_refuses_a_timeout_below_its_snapshot_interval(tmp_path: Path) -> None:
    init(tmp_path / "state", 1)
    out = _run(["flows.exactly_once:flow", "-r", str(tmp_path / "state"), "-s", "5", "-b", "0"], tmp_path,
               TRANSACTION_TIMEOUT_MS="4000", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert out.returncode != 0
    assert "transaction.timeout.ms (4000 ms) must be larger than the snapshot interval (5 s" in out.stderr

"""Recovery directory helpers: idempotent init, clear errors, inspection."""

from __future__ import annotations

import json
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import TestingSink, TestingSource, run_main

from recovery.directories import init, inspect, main, partition_count


def test_init_creates_once_and_refuses_another_count(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    assert init(d, 3) is True
    assert init(d, 3) is False
    assert partition_count(d) == 3
    with pytest.raises(RuntimeError, match="already holds 3"):
        init(d, 2)
    (d / "part-1.sqlite3").unlink()
    with pytest.raises(RuntimeError, match="2 of 3"):
        partition_count(d)
    with pytest.raises(ValueError):
        init(tmp_path / "c", 0)


def test_inspect_shows_executions_frontiers_and_state(tmp_path: Path) -> None:
    init(tmp_path, 2)
    assert inspect(tmp_path).executions == []
    flow = Dataflow("dirs")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(list(range(10)))), lambda x: str(x % 3))
    counted = op.stateful_map("count", keyed, lambda s, x: ((s or 0) + 1, x))
    op.output("out", counted, TestingSink([]))
    run_main(flow, epoch_interval=None, recovery_config=RecoveryConfig(str(tmp_path)))
    run_main(flow, epoch_interval=None, recovery_config=RecoveryConfig(str(tmp_path)))
    info = inspect(tmp_path)
    assert [e["execution"] for e in info.executions] == [0, 1]
    assert info.executions[1]["resume_epoch"] > 1
    assert info.resume_epoch is not None and info.resume_epoch >= info.executions[1]["resume_epoch"]
    (count_step,) = [name for name in info.steps if name.startswith("dirs.count.")]
    assert info.steps[count_step].keys == 3 and info.steps[count_step].bytes > 0
    cheap = inspect(tmp_path, snapshots=False)
    assert cheap.frontiers_execution == info.frontiers_execution == 1
    assert cheap.frontiers == info.frontiers and cheap.steps == {}
    with pytest.raises(FileNotFoundError):
        inspect(tmp_path / "missing")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["init", str(tmp_path / "r"), "2"])
    assert "created 2" in capsys.readouterr().out
    main(["inspect", str(tmp_path / "r")])
    assert json.loads(capsys.readouterr().out)["partitions"] == 2

"""`python -m flows run NAME --processes N`: real clusters of local
processes, killed with SIGKILL mid-run and resumed on another process count
(2 -> 2 -> 1 -> 2), end with the output of one uninterrupted process; file
outputs are one file per recovery partition (`out.part-P.jsonl`), each
written by the process that holds the partition."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import pytest

from eventio import generators
from eventio.broker import EmbeddedBroker
from tests.exactly_once_harness import assert_exactly_once, committed_outputs, flow_env, make_events, produce, reference
from tests.killed_runs import killed_mid_run

ROOT = Path(__file__).resolve().parent.parent
RESCALES = (2, 2, 1, 2)
"""Process counts of the runs on one recovery store: every one but the last killed."""


class Runner:
    """`python -m flows run NAME OPTIONS` with its stderr in a log file;
    `kill()` SIGKILLs every process of the cluster (the pids the runner
    prints) and the runner."""

    def __init__(self, name: str, options: Sequence[str], env: dict[str, str]) -> None:
        self.args = [sys.executable, "-m", "flows", "run", name, *options]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "QUIET": "true", **env}
        self.log = Path(tempfile.mkstemp(prefix="runner-", suffix=".log")[1])

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as log:
            return subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)

    def pids(self) -> list[int]:
        return [int(pid) for pid in re.findall(r"\(pid (\d+)\)", self.log.read_text(errors="replace"))]

    def alive(self) -> list[int]:
        """The cluster's processes still running (a zombie, killed and not reaped, is not)."""
        def running(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
            except FileNotFoundError:
                return False
        return [pid for pid in self.pids() if running(pid)]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()

    def run(self, timeout_s: float = 120) -> None:
        proc = self.start()
        assert proc.wait(timeout=timeout_s) == 0, self.log.read_text(errors="replace")[-3000:]


def _killed_and_rescaled(name: str, recovery: Path, env: dict[str, str]) -> int:
    """Run `name` on `recovery` with the process counts of `RESCALES`, each
    but the last SIGKILLed one to two epochs into its execution; how many
    runs were killed (one that ended first is simply resumed)."""
    kills = 0
    for n, epochs in zip(RESCALES[:-1], (1, 2, 1)):
        runner = Runner(name, ["--processes", str(n), "-r", str(recovery), "-s", "1", "-b", "0"], env)
        try:
            kills += killed_mid_run(runner.start, runner.kill, recovery, epochs, 0.3)
        except RuntimeError as ex:  # a process failed: say why, from the runner's log
            raise RuntimeError(f"{ex}\n{runner.log.read_text(errors='replace')[-3000:]}") from None
        time.sleep(0.1)
        assert not runner.alive(), "a process survived"
    Runner(name, ["--processes", str(RESCALES[-1]), "-r", str(recovery), "-s", "1", "-b", "0"], env).run()
    return kills


def _lines(path: Path) -> Counter[str]:
    """The lines of `path` as a multiset; none if it was not written."""
    return Counter(path.read_text().splitlines()) if path.exists() else Counter()


def test_session_analytics_killed_and_rescaled_equals_one_uninterrupted_process(tmp_path: Path) -> None:
    events = list(generators.sessions(120_000, seed=5, users=2_000))
    inputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for i, path in enumerate(inputs):
        path.write_text("".join(json.dumps(e) + "\n" for e in events if int(e["user_id"][1:]) % 2 == i))

    def env(run: str) -> dict[str, str]:
        return {"INPUT_PATH": ",".join(map(str, inputs)), "OUTPUT_PATH": str(tmp_path / f"{run}.jsonl"),
                "LATE_OUTPUT_PATH": str(tmp_path / f"{run}-late.jsonl"),
                "ERROR_OUTPUT_PATH": str(tmp_path / f"{run}-err.jsonl")}

    Runner("session_analytics", [], env("one")).run()
    kills = _killed_and_rescaled("session_analytics", tmp_path / "recovery", env("cluster"))
    assert kills >= 1, "no run was killed mid-way: the input is too small for this machine"
    for suffix in ("", "-late", "-err"):
        parts = sorted(tmp_path.glob(f"cluster{suffix}.part-*.jsonl"))
        assert not (tmp_path / f"cluster{suffix}.jsonl").exists(), "each process writes files of its own"
        assert sum(map(_lines, parts), Counter()) == _lines(tmp_path / f"one{suffix}.jsonl"), suffix
    results = [_lines(p) for p in sorted(tmp_path.glob("cluster.part-*.jsonl"))]
    assert len(results) == 2 and all(results), "both processes wrote results"
    assert len((tmp_path / "one.jsonl").read_text().splitlines()) > 5_000


def test_exactly_once_killed_and_rescaled_commits_every_output_once(broker: EmbeddedBroker, topic_name: str,
                                                                    tmp_path: Path) -> None:
    broker.create_topics({f"{topic_name}-in": 4, f"{topic_name}-out": 4})
    events = make_events(40_000, users=500, seed=11)
    produce(broker.bootstrap_servers, f"{topic_name}-in", events)
    env = flow_env(broker.bootstrap_servers, topic_name, STOP_AT_END="true")
    kills = _killed_and_rescaled("exactly_once", tmp_path / "recovery", env)
    assert kills >= 1, "no run was killed mid-way: the input is too small for this machine"
    assert_exactly_once(committed_outputs(broker.bootstrap_servers, f"{topic_name}-out"), reference(events))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_runner_stops_every_process(signum: int, broker: EmbeddedBroker, topic_name: str) -> None:
    broker.create_topics({f"{topic_name}-in": 2})
    runner = Runner("session_analytics", ["--processes", "2"],
                    {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "INPUT_TOPIC": f"{topic_name}-in",
                     "OUTPUT_TOPIC": f"{topic_name}-out", "LATE_TOPIC": f"{topic_name}-late",
                     "DLQ_TOPIC": f"{topic_name}-dlq"})
    proc = runner.start()
    deadline = time.monotonic() + 30
    while len(runner.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)
    assert proc.poll() is None, runner.log.read_text()
    os.kill(proc.pid, signum)
    proc.wait(timeout=30)
    assert not runner.alive(), "a process survived"


def test_the_first_failure_is_the_runners_exit_status() -> None:
    """exactly_once without `-r` refuses to start (exit 2) in every process."""
    runner = Runner("exactly_once", ["--processes", "2"], {"INPUT_TOPIC": "t", "OUTPUT_TOPIC": "o"})
    proc = runner.start()
    assert proc.wait(timeout=60) == 2
    assert "exited with status 2; stopping the others" in runner.log.read_text()

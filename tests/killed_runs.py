"""Run a flow with Bytewax recovery, SIGKILL it at random points of its
progress, resume.

Kill points are counted in completed epochs read from the recovery store, not
in wall-clock seconds, so a faster machine still gets killed mid-run (a timer
let a fast CI machine finish the run before the first kill)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Callable

EPOCH_S = 1


def _progress(recovery: Path) -> tuple[int, int, int] | None:
    """(execution number, resume epoch, highest worker frontier) of the latest
    execution that has recorded a frontier, or None if none has (or the store
    is busy). Reads every partition under `recovery`, also those split over
    `process-K/` directories (`python -m flows run --processes`)."""
    resume: dict[int, int] = {}
    fronts: dict[int, int] = {}
    try:
        for path in sorted(recovery.rglob("part-*.sqlite3")):
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)) as db:
                resume.update(db.execute("SELECT ex_num, resume_epoch FROM exs"))
                for ex, frontier in db.execute("SELECT ex_num, MAX(worker_frontier) FROM fronts GROUP BY ex_num"):
                    fronts[ex] = max(fronts.get(ex, frontier), frontier)
    except sqlite3.OperationalError:
        return None
    if not fronts or max(fronts) not in resume:
        return None
    ex = max(fronts)
    return ex, resume[ex], fronts[ex]


def killed_mid_run(start: Callable[[], subprocess.Popen], kill: Callable[[subprocess.Popen], None],
                   recovery: Path, epochs: int, jitter_s: float) -> bool:
    """`start()` a run and `kill` it `jitter_s` after its execution has
    completed `epochs` epochs past its resume point; False if it ended first
    (an exit status other than 0 raises)."""
    before = _progress(recovery)
    proc = start()
    while proc.poll() is None:
        now = _progress(recovery)
        if now is not None and (before is None or now[0] > before[0]) and now[2] >= now[1] + epochs:
            time.sleep(jitter_s)
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        if proc.returncode != 0:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        return False
    kill(proc)
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_killed_and_resumed(flow: str, tmp_path: Path, *, seed: int, parts: int = 1, attempts: int = 6,
                           epochs: tuple[int, int] = (1, 2)) -> int:
    """Run `python -m bytewax.run flows.<flow>:flow` with recovery (epochs of
    `EPOCH_S`) and file IO under `tmp_path` (`in.jsonl` in; `out.jsonl`,
    `late.jsonl`, `err.jsonl` out). Each attempt is SIGKILLed at a random
    instant within the epoch after it has completed a random number (in
    `epochs`) of epochs past its resume point, the first one early (after
    `epochs[0]` epochs, within the first half of the next) so that a run
    lasting a few epochs is killed at least once; after `attempts` kills the
    flow runs to the end. Returns how many times it was killed."""
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), str(parts)], check=True)
    env = dict(os.environ, INPUT_PATH=str(tmp_path / "in.jsonl"), OUTPUT_PATH=str(tmp_path / "out.jsonl"),
               LATE_OUTPUT_PATH=str(tmp_path / "late.jsonl"), ERROR_OUTPUT_PATH=str(tmp_path / "err.jsonl"))
    cmd = [sys.executable, "-m", "bytewax.run", f"flows.{flow}:flow", "-r", str(recovery), "-s", str(EPOCH_S), "-b", "0"]
    rnd = random.Random(seed)
    for kills in range(attempts):
        target, jitter_s = rnd.randint(*epochs), rnd.uniform(0, EPOCH_S)
        if kills == 0:
            target, jitter_s = epochs[0], jitter_s / 2
        start = lambda: subprocess.Popen(cmd, env=env, start_new_session=True)  # noqa: E731
        if not killed_mid_run(start, _kill_group, recovery, target, jitter_s):
            return kills
    subprocess.run(cmd, env=env, check=True, timeout=300)
    return attempts

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
from pathlib import Path

from recovery.directories import inspect

EPOCH_S = 1


def _progress(recovery: Path) -> tuple[int, int, int] | None:
    """(execution number, resume epoch, highest worker frontier) of the latest
    execution that has recorded a frontier, or None if none has (or the store
    is busy)."""
    try:
        info = inspect(recovery, snapshots=False)
    except sqlite3.OperationalError:
        return None
    ex = info.frontiers_execution
    resume = {e["execution"]: e["resume_epoch"] for e in info.executions}
    if ex is None or ex not in resume:
        return None
    return ex, resume[ex], max(info.frontiers.values())


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
        before = _progress(recovery)
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        target, jitter_s = rnd.randint(*epochs), rnd.uniform(0, EPOCH_S)
        if kills == 0:
            target, jitter_s = epochs[0], jitter_s / 2
        while proc.poll() is None:
            now = _progress(recovery)
            if now is not None and (before is None or now[0] > before[0]) and now[2] >= now[1] + target:
                time.sleep(jitter_s)
                break
            time.sleep(0.02)
        if proc.poll() is not None:
            if proc.returncode != 0:
                raise RuntimeError(f"{flow} exited with {proc.returncode}")
            return kills
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    subprocess.run(cmd, env=env, check=True, timeout=300)
    return attempts

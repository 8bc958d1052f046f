"""Run a flow with Bytewax recovery, SIGKILL it at random instants, resume."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path


def run_killed_and_resumed(flow: str, tmp_path: Path, *, seed: int, parts: int = 1, attempts: int = 6,
                           kill_after_s: tuple[float, float] = (0.6, 2.5)) -> int:
    """Run `python -m bytewax.run flows.<flow>:flow` with recovery and file IO
    under `tmp_path` (`in.jsonl` in; `out.jsonl`, `late.jsonl`, `err.jsonl`
    out), killing it up to `attempts` times, then run it to the end.
    Returns how many times it was killed."""
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), str(parts)], check=True)
    env = dict(os.environ, INPUT_PATH=str(tmp_path / "in.jsonl"), OUTPUT_PATH=str(tmp_path / "out.jsonl"),
               LATE_OUTPUT_PATH=str(tmp_path / "late.jsonl"), ERROR_OUTPUT_PATH=str(tmp_path / "err.jsonl"))
    cmd = [sys.executable, "-m", "bytewax.run", f"flows.{flow}:flow", "-r", str(recovery), "-s", "1", "-b", "0"]
    rnd = random.Random(seed)
    kills = 0
    for _ in range(attempts):
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            if proc.wait(timeout=rnd.uniform(*kill_after_s)) != 0:
                raise RuntimeError(f"{flow} exited with {proc.returncode}")
            return kills
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
    subprocess.run(cmd, env=env, check=True, timeout=300)
    return kills

"""Run a flow as `python -m bytewax.run` to its end and keep what it printed,
for the tests of how runs end (exit status, message, time taken)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
EXIT_UNAVAILABLE = 69


@dataclass(frozen=True)
class Finished:
    status: int
    output: str
    """stdout and stderr, interleaved."""
    seconds: float

    @property
    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else ""


def run_flow(target: str, env: dict[str, str], timeout_s: float = 120, recovery: Optional[Path] = None) -> Finished:
    """`python -m bytewax.run TARGET` (with `-r recovery -s 1 -b 0` if given)
    in the project root with `env` on top of this process's environment."""
    args = [sys.executable, "-m", "bytewax.run", target]
    if recovery is not None:
        args += ["-r", str(recovery), "-s", "1", "-b", "0"]
    started = time.monotonic()
    done = subprocess.run(args, env={**os.environ, "PYTHONPATH": str(ROOT), "RUST_BACKTRACE": "1", **env}, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          timeout=timeout_s)
    return Finished(done.returncode, done.stdout.decode(errors="replace"), time.monotonic() - started)


def assert_stopped_cleanly(run: Finished, message_start: str) -> None:
    """Exit status 69, no traceback or Rust panic, a few lines at most, the
    last one the run's message."""
    assert run.status == EXIT_UNAVAILABLE, run.output[-3000:]
    assert "Traceback" not in run.output and "panicked" not in run.output, run.output[-3000:]
    assert len(run.output.strip().splitlines()) <= 6, run.output[-3000:]
    assert run.last_line.startswith(message_start), run.output[-3000:]

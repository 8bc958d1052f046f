"""Run a dataflow with `python -m bytewax.run` and recovery as a killable subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


class FlowProcess:
    """`python -m bytewax.run TARGET -r DIR -s SNAPSHOT_S -b 0 -w WORKERS` in its
    own process group, so `kill()` takes the workers with it; killed on exit."""

    def __init__(
        self,
        target: str,
        recovery_dir: Path,
        env: dict[str, str],
        workers: int = 1,
        snapshot_s: int = 1,
    ) -> None:
        self.args = [
            sys.executable, "-m", "bytewax.run", target,
            "-r", str(recovery_dir), "-s", str(snapshot_s), "-b", "0", "-w", str(workers),
        ]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._log = tempfile.NamedTemporaryFile(prefix="flow-", suffix=".log", delete=False)

    def start(self) -> "FlowProcess":
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the process group and reap it."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        return Path(self._log.name).read_text(errors="replace")[-chars:]

    def __enter__(self) -> "FlowProcess":
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.kill()
        self._log.close()
        os.unlink(self._log.name)

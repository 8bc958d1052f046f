"""A two-process Bytewax cluster on localhost, addressed as the StatefulSet
does it (`-i` process id, `-a` addresses), gives the same session analytics
results as one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from eventio import generators
from eventio.broker import free_port


def _run_cluster(tmp_path: Path, inputs: list[Path], processes: int) -> Counter:
    out = tmp_path / f"out-{processes}.jsonl"
    env = dict(os.environ, INPUT_PATH=",".join(map(str, inputs)), OUTPUT_PATH=str(out),
               LATE_OUTPUT_PATH=str(tmp_path / f"late-{processes}.jsonl"),
               ERROR_OUTPUT_PATH=str(tmp_path / f"err-{processes}.jsonl"))
    addresses = ";".join(f"localhost:{free_port()}" for _ in range(processes))
    procs = [
        subprocess.Popen([sys.executable, "-m", "bytewax.run", "flows.session_analytics:flow", "-w", "1",
                          "-i", str(i), "-a", addresses], env=env, start_new_session=True)
        for i in range(processes)
    ]
    try:
        for p in procs:
            assert p.wait(timeout=180) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return Counter(out.read_text().splitlines())


def test_two_processes_give_the_same_sessions_as_one(tmp_path: Path) -> None:
    events = list(generators.sessions(20_000, seed=13, users=400))
    # Two input files: each is a partition, so each process reads one.
    inputs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for i, path in enumerate(inputs):
        path.write_text("".join(json.dumps(e) + "\n" for e in events if int(e["user_id"][1:]) % 2 == i))
    one = _run_cluster(tmp_path, inputs, 1)
    two = _run_cluster(tmp_path, inputs, 2)
    assert sum(one.values()) > 1000
    assert one == two

"""A recovery store written by an earlier version resumes: fraud detection
killed mid-input by main at c849cd2 (old event pickles in its CEP state, the
line-by-line file source's and Bytewax FileSink's states), resumed with
today's code, ends with the outputs of an uninterrupted run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from eventio import generators
from tests.flow_files import output_multisets

FIXTURE = Path(__file__).parent / "data" / "fraud_store_c849cd2"
INPUT_MD5 = "03916c3918e5e623a36490aa3da3fb78"


def _run(cwd: Path, *args: str) -> None:
    env = {**os.environ, "INPUT_PATH": "in.jsonl", "OUTPUT_PATH": "out.jsonl", "LATE_OUTPUT_PATH": "late.jsonl",
           "ERROR_OUTPUT_PATH": "err.jsonl", "PYTHONPATH": str(Path(__file__).parent.parent)}
    subprocess.run([sys.executable, "-m", "bytewax.run", "flows.fraud_detection:flow", *args], cwd=cwd, env=env,
                   check=True, timeout=300)


def test_a_store_written_before_the_msgspec_event_resumes_exactly(tmp_path: Path) -> None:
    plain, resumed = tmp_path / "plain", tmp_path / "resumed"
    for run_dir in (plain, resumed):
        run_dir.mkdir()
        generators.main(["fraud", "--count", "60000", "--seed", "11", "--output", str(run_dir / "in.jsonl")])
        assert hashlib.md5((run_dir / "in.jsonl").read_bytes()).hexdigest() == INPUT_MD5, "the generator changed"
    (resumed / "rec").mkdir()
    shutil.copy(FIXTURE / "part-0.sqlite3", resumed / "rec")
    shutil.copy(FIXTURE / "out.jsonl", resumed)
    _run(plain)
    _run(resumed, "-r", "rec", "-s", "1", "-b", "0")
    expected = output_multisets(plain, "in.jsonl")
    assert sum(len(records) for records in expected.values()) > len((FIXTURE / "out.jsonl").read_text().splitlines())
    assert output_multisets(resumed, "in.jsonl") == expected

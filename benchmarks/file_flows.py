"""Whole-process benchmarks on JSON-lines files, as a user runs a flow:
`python -m bytewax.run flows.<name>:flow` with `INPUT_PATH` and
`OUTPUT_PATH` (late events and dead letters to files beside it), timed from
spawn to exit, Python start-up included, one worker.

Each flow's rate is compared with `file_floor_json_loads_<flow>`, the
standard library's `json.loads` alone over the same lines (read from the
same file, nothing else done with them). Beside them, decode-only and
encode-only floors: the flows' record decoder over the same lines, and the
flows' encoder (`eventio.strict_json.encode`) against `json.dumps` with the
same compact options over session results.

Inputs are generated once per machine into `benchmarks/results/data/`
(deterministic: fixed seeds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

from benchmarks.harness import Result, case
from eventio import generators

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "results" / "data"
EVENTS = 1_000_000
USERS = 10_000


def _sessions() -> Iterable[dict[str, Any]]:
    return generators.sessions(EVENTS, seed=7, users=USERS)


def _disordered_sessions() -> Iterable[dict[str, Any]]:
    return generators.disorder(generators.sessions(EVENTS, seed=21, users=USERS), seed=21, late_fraction=0.02)


def _fraud() -> Iterable[dict[str, Any]]:
    return generators.fraud(EVENTS, seed=31, users=USERS, frauds=1_000)[0]


INPUTS: dict[str, tuple[str, Callable[[], Iterable[dict[str, Any]]]]] = {
    "session_analytics": ("sessions, 1,000,000 events, 10,000 users", _sessions),
    "realtime_analytics": ("sessions reordered within 2 min with 2% late by 30-60 min, 1,000,000 events, "
                           "10,000 users (logins have no category: dead letters)", _disordered_sessions),
    "fraud_detection": ("fraud scenario, 1,000,000 events, 10,000 users, 1,000 planted alerts", _fraud),
}


def input_file(flow: str) -> Path:
    """The flow's input lines, generated on first use."""
    path = DATA / f"{flow}-{EVENTS}.jsonl"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with partial.open("w") as out:
            for record in INPUTS[flow][1]():
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
        partial.rename(path)
    return path


def split_by_user(flow: str, files: int) -> list[Path]:
    """The flow's input split into `files` files by user (each user's events
    in one file, in order), generated on first use."""
    paths = [DATA / f"{flow}-{EVENTS}-by-user-{k}-of-{files}.jsonl" for k in range(files)]
    if not all(p.exists() for p in paths):
        whole = input_file(flow)
        partials = [p.with_suffix(".partial") for p in paths]
        outs = [p.open("wb") for p in partials]
        with whole.open("rb") as source:
            for line in source:
                outs[zlib.crc32(json.loads(line)["user_id"].encode()) % files].write(line)
        for out, partial, path in zip(outs, partials, paths):
            out.close()
            partial.rename(path)
    return paths


def whole_process(flow: str, quiet: bool = False, files: int = 1, options: tuple[str, ...] = ()) -> Result:
    """`python -m bytewax.run flows.<flow>:flow OPTIONS` (with `--processes N`:
    `python -m flows run <flow> OPTIONS`, N processes) on the input file, or
    on it split into `files` files by user, spawn to exit; with `quiet`,
    without the progress lines (`QUIET=true`)."""
    sources = [input_file(flow)] if files == 1 else split_by_user(flow, files)
    lines = sum(map(_count_lines, sources))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "INPUT_PATH": ",".join(map(str, sources)),
               "QUIET": str(quiet).lower(), "OUTPUT_PATH": f"{tmp}/out.jsonl",
               "LATE_OUTPUT_PATH": f"{tmp}/out.late.jsonl", "ERROR_OUTPUT_PATH": f"{tmp}/out.dlq.jsonl"}
        started = time.perf_counter()
        command = (["-m", "flows", "run", flow] if "--processes" in options
                   else ["-m", "eventio.run", f"flows.{flow}:flow"])
        done = subprocess.run([sys.executable, *command, *options], env=env, cwd=tmp,
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{flow} exited with {done.returncode}:\n{done.stderr[-3000:]}")
        outputs = {p.name: _count_lines(p) for p in Path(tmp).glob("*.jsonl")}
    return {"events": lines, "seconds": seconds,
            **{f"x_{name.replace('.jsonl', '').replace('.', '_')}": n for name, n in sorted(outputs.items())}}


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def json_loads_floor(flow: str) -> Result:
    """The standard library's `json.loads` of every line of the same file."""
    source = input_file(flow)
    loads = json.loads
    started = time.perf_counter()
    n = 0
    with source.open("rb") as f:
        for line in f:
            loads(line)
            n += 1
    return {"events": n, "seconds": time.perf_counter() - started}


for flow, (what, _) in INPUTS.items():
    case(f"file_floor_json_loads_{flow}", f"json.loads of every line of the {flow} input ({what}), nothing else",
         flow=flow)(json_loads_floor)
    case(f"file_{flow}", f"python -m bytewax.run flows.{flow}:flow, file to file, spawn to exit, {what}",
         baseline=f"file_floor_json_loads_{flow}", flow=flow)(whole_process)
case("file_session_analytics_quiet", "file_session_analytics without the progress lines on stderr (QUIET=true)",
     baseline="file_session_analytics", flow="session_analytics", quiet=True)(whole_process)
SPLIT_WHAT = "file_session_analytics on its input split into 2 files by user, quiet"
case("file_session_analytics_2files_1_worker", f"{SPLIT_WHAT}, 1 process x 1 worker",
     flow="session_analytics", quiet=True, files=2)(whole_process)
case("file_session_analytics_2files_2_workers", f"{SPLIT_WHAT}, 1 process x 2 workers (-w 2)",
     baseline="file_session_analytics_2files_1_worker", flow="session_analytics", quiet=True, files=2,
     options=("-w", "2"))(whole_process)
case("file_session_analytics_2files_2_processes", f"{SPLIT_WHAT}, python -m flows run --processes 2",
     baseline="file_session_analytics_2files_1_worker", flow="session_analytics", quiet=True, files=2,
     options=("--processes", "2"))(whole_process)


def decode_floor(stdlib: bool) -> Result:
    """Decoding only: `json.loads`, or the flows' record decoder (typed
    decoding, validation, `Event`s, dead letters), over the session lines in
    batches of 1,000 as the file source hands them over."""
    from eventio.decoding import record_decoder

    lines = input_file("session_analytics").read_bytes().splitlines()
    started = time.perf_counter()
    if stdlib:
        loads = json.loads
        for line in lines:
            loads(line)
    else:
        decode = record_decoder().lines
        for i in range(0, len(lines), 1000):
            decode(lines[i:i + 1000], "in.jsonl", i + 1)
    return {"events": len(lines), "seconds": time.perf_counter() - started}


def _session_results(n: int) -> list[dict[str, Any]]:
    """Result records shaped as session analytics writes them."""
    return [{"user_id": f"u{i % USERS:05d}", "session_start": 1_704_067_200_000 + i,
             "session_end": 1_704_067_320_000 + i, "duration_ms": 120_000, "event_count": i % 40 + 1,
             "page_views": i % 7, "purchases": i % 3, "total_spent": round(i * 0.37 % 900, 2),
             "is_late_update": False} for i in range(n)]


def encode_floor(stdlib: bool, n: int = 1_000_000) -> Result:
    """Encoding only: `json.dumps` with the compact options, or the flows'
    strict encoder, of `n` session result records to UTF-8."""
    from eventio.strict_json import encode

    records = _session_results(n)
    started = time.perf_counter()
    if stdlib:
        dumps = json.dumps
        for r in records:
            dumps(r, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        for r in records:
            encode(r)
    return {"events": n, "seconds": time.perf_counter() - started}


case("floor_decode_json_loads", "json.loads of the 1,000,000 session_analytics input lines (in memory)",
     stdlib=True)(decode_floor)
case("floor_decode_record_decoder", "the flows' record decoder on the same lines, 1,000 a batch (in memory)",
     baseline="floor_decode_json_loads", stdlib=False)(decode_floor)
case("floor_encode_json_dumps", "json.dumps (compact separators, UTF-8) of 1,000,000 session result records",
     stdlib=True)(encode_floor)
case("floor_encode_strict_json", "eventio.strict_json.encode of the same records",
     baseline="floor_encode_json_dumps", stdlib=False)(encode_floor)


def startup(flow: str) -> Result:
    """`python -m bytewax.run flows.<flow>:flow` on an empty input file,
    spawn to exit: Python, the imports, building and running the dataflow."""
    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.jsonl"
        empty.touch()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "INPUT_PATH": str(empty), "OUTPUT_PATH": f"{tmp}/out.jsonl",
               "LATE_OUTPUT_PATH": f"{tmp}/out.late.jsonl", "ERROR_OUTPUT_PATH": f"{tmp}/out.dlq.jsonl"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "eventio.run", f"flows.{flow}:flow"], env=env, cwd=tmp, check=True,
                       capture_output=True)
        seconds = time.perf_counter() - started
    return {"events": 1, "seconds": seconds, "x_seconds": round(seconds, 3)}


case("file_startup_session_analytics", "start-up: python -m bytewax.run flows.session_analytics:flow on an empty "
     "file, spawn to exit (events/s column: starts per second; x_seconds: the time)", repeat=5,
     flow="session_analytics")(startup)

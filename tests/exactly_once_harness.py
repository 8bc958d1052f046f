"""Harness for the exactly-once flow tests: run the flow as a killable
`python -m bytewax.run` subprocess with recovery, feed it events, read what a
`read_committed` consumer sees and check it against a brute-force reference."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Optional

from confluent_kafka import Consumer, Producer, TopicPartition

from recovery.directories import init
from tests.committed_log import read_committed

ROOT = Path(__file__).resolve().parent.parent
FLOW = "flows.exactly_once:flow"

Outputs = dict[str, dict[str, Any]]
"""Outputs of the flow by `event_id`."""


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

    def stopped(self) -> bool:
        """Whether the flow process is stopped by a signal (state T)."""
        if self.process is None:
            return False
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rpartition(")")[2].split()[0] == "T"

    def signal(self, sig: int) -> None:
        """Send `sig` to the whole process group."""
        if self.process is not None:
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL the process group (stopped or not) and reap it."""
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


def flow_env(bootstrap: str, topic: str, **extra: str) -> dict[str, str]:
    """Environment of the flow reading `{topic}-in` and writing `{topic}-out`."""
    return {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INPUT_TOPIC": f"{topic}-in",
            "OUTPUT_TOPIC": f"{topic}-out", "DLQ_TOPIC": f"{topic}-dlq",
            "TRANSACTIONAL_ID_PREFIX": topic, "SINK_PARTITIONS": "4", **extra}


def run_bounded(bootstrap: str, topic: str, recovery_dir: Path, **extra: str) -> None:
    """One `STOP_AT_END` run of the flow on `{topic}-in` with a fresh
    recovery store in `recovery_dir` and `extra` settings, to its exit 0."""
    init(recovery_dir, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), **flow_env(bootstrap, topic), "STOP_AT_END": "true", **extra}
    subprocess.run([sys.executable, "-m", "bytewax.run", FLOW, "-r", str(recovery_dir), "-s", "1", "-b", "0"],
                   env=env, cwd=ROOT, check=True, timeout=120)


def make_events(n: int, users: int, seed: int) -> list[dict[str, Any]]:
    """`n` events over `users` users; every tenth has no `value`."""
    rnd = random.Random(seed)
    events = []
    for i in range(n):
        event = {"event_id": f"e{i:06d}", "user_id": f"u{rnd.randrange(users):04d}",
                 "event_type": "click", "timestamp": 1_700_000_000_000 + i}
        if i % 10:
            event["value"] = round(rnd.uniform(-50, 150), 3)
        events.append(event)
    return events


def reference(events: list[dict[str, Any]]) -> Outputs:
    """Brute force: for each event, count and average its user's events so far."""
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    out: Outputs = {}
    for e in events:
        history[e["user_id"]].append(e)
        values = [h["value"] for h in history[e["user_id"]] if "value" in h]
        out[e["event_id"]] = {"user_id": e["user_id"], "event_id": e["event_id"],
                              "count": len(history[e["user_id"]]),
                              "running_avg": sum(values) / len(values) if values else None}
    return out


def produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    """Events as JSON keyed by `user_id`, so each user's events share a partition."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10})
    for e in events:
        producer.produce(topic, json.dumps(e).encode(), key=e["user_id"].encode())
    assert producer.flush(30) == 0


def committed_outputs(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in read_committed(bootstrap, topic) if r.value is not None]


def wait_for_outputs(bootstrap: str, topic: str, n: int, flow: FlowProcess, timeout_s: float = 60) -> list[dict[str, Any]]:
    """Committed outputs once there are `n`, after a pause showing no more come."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert flow.alive(), f"flow exited:\n{flow.log_tail()}"
        if len(committed_outputs(bootstrap, topic)) >= n:
            time.sleep(2.5)
            return committed_outputs(bootstrap, topic)
        time.sleep(0.25)
    raise AssertionError(f"fewer than {n} outputs after {timeout_s}s:\n{flow.log_tail()}")


def wait_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `done` every 5 ms; whether it came true in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.005)
    return False


class LogEnd:
    """Sum of a topic's high watermarks: grows as soon as records reach the log."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "log-end"})
        self._parts = [TopicPartition(topic, p) for p in range(partitions)]

    def __call__(self) -> int:
        return sum(self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in self._parts)

    def close(self) -> None:
        self._consumer.close()


def assert_exactly_once(outs: list[dict[str, Any]], expected: Outputs) -> None:
    """Every expected output once, per-user counts 1..n, values as expected."""
    counts = Counter(o["event_id"] for o in outs)
    duplicated = [e for e, c in counts.items() if c > 1]
    missing = sorted(set(expected) - set(counts))
    assert not duplicated, f"{len(duplicated)} event ids committed more than once, e.g. {duplicated[:5]}"
    assert not missing, f"{len(missing)} event ids never committed, e.g. {missing[:5]}"
    per_user: dict[str, list[int]] = defaultdict(list)
    for o in outs:
        per_user[o["user_id"]].append(o["count"])
    for user, seen in per_user.items():
        assert sorted(seen) == list(range(1, len(seen) + 1)), f"counts of {user} have gaps or repeats"
    assert {o["event_id"]: o for o in outs} == expected

"""Throughput of `flows.exactly_once` with exactly-once versus at-least-once
output (Bytewax's plain `KafkaSink`) on the same input, both under recovery
with `-s 1 -b 0`, on the embedded broker.

    python -m benchmarks.exactly_once_bench [--events 200000] [--repeat 3] [--workers 1]

Each run is a fresh `python -m bytewax.run` process with a fresh recovery
directory and output topic, reading the same pre-filled input topic. It is
timed from process start until every output is in the log (and, for
exactly-once, committed); "steady" excludes start-up, timed from the first
output. The input is produced once, before any run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from eventio.broker import EmbeddedBroker, create_topics
from recovery.directories import init

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 3
MODES = ("at_least_once", "exactly_once")


def fill(bootstrap: str, topic: str, n: int, users: int) -> None:
    """`n` JSON events keyed by user, over `users` users."""
    rnd = random.Random(1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 1_000_000})
    for i in range(n):
        user = f"u{rnd.randrange(users):05d}"
        event = {"event_id": f"e{i:08d}", "user_id": user, "event_type": "page_view",
                 "timestamp": 1_704_067_200_000 + i, "value": round(rnd.random() * 100, 2)}
        while True:
            try:
                producer.produce(topic, json.dumps(event).encode(), key=user.encode())
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)


def count_outputs(bootstrap: str, topic: str, n: int, deadline: float) -> tuple[float, float]:
    """(time of first output, time the n-th output was read), reading with
    `read_committed` (transactions in a clean run all commit)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got, first = 0, 0.0
    try:
        while got < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {got} of {n} outputs before the deadline")
            batch = [m for m in consumer.consume(10_000, 0.05) if m.error() is None]
            if batch and not first:
                first = time.monotonic()
            got += len(batch)
        return first, time.monotonic()
    finally:
        consumer.close()


def run_once(bootstrap: str, mode: str, n: int, workers: int, tag: str) -> dict[str, float]:
    out = f"bench-out-{tag}"
    recovery = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    init(recovery, workers)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
           "INPUT_TOPIC": "bench-in", "OUTPUT_TOPIC": out, "DLQ_TOPIC": f"{out}-dlq",
           "DELIVERY_GUARANTEE": mode, "TRANSACTIONAL_ID_PREFIX": tag}
    create_topics(bootstrap, {out: PARTITIONS})
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventio.run", "flows.exactly_once:flow", "-r", str(recovery),
         "-s", "1", "-b", "0", "-w", str(workers)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        first, done = count_outputs(bootstrap, out, n, started + 600)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return {"total": n / (done - started), "steady": n / (done - first), "startup_s": first - started}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # Exit through the context managers (broker, flow processes) on SIGTERM.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap_servers
        broker.create_topics({"bench-in": PARTITIONS})
        fill(bs, "bench-in", args.events, args.users)
        for r in range(args.repeat):
            for mode in MODES:
                res = run_once(bs, mode, args.events, args.workers, f"{mode}-{r}")
                results[mode].append(res)
                print(f"{mode} run {r + 1}: {res['total']:,.0f} events/s end to end, "
                      f"{res['steady']:,.0f} steady, start-up {res['startup_s']:.1f}s", file=sys.stderr)
    summary: dict[str, Any] = {}
    for mode, runs in results.items():
        summary[mode] = {k: statistics.median(r[k] for r in runs) for k in ("total", "steady", "startup_s")}
    for kind in ("total", "steady"):
        summary[f"ratio_{kind}"] = summary["exactly_once"][kind] / summary["at_least_once"][kind]
    print(f"{args.events:,} events, {args.users:,} users, {PARTITIONS} input partitions, "
          f"{args.workers} worker(s), median of {args.repeat}")
    print("| output | events/s end to end | events/s steady | start-up s |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        s = summary[mode]
        print(f"| {mode} | {s['total']:,.0f} | {s['steady']:,.0f} | {s['startup_s']:.1f} |")
    print(f"exactly-once / at-least-once: {summary['ratio_total']:.2f} end to end, {summary['ratio_steady']:.2f} steady")


if __name__ == "__main__":
    main()

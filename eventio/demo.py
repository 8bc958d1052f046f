"""`make demo`: session analytics from Kafka to Kafka, with recovery, end to end.

Starts the embedded broker (unless `KAFKA_BOOTSTRAP_SERVERS` is set), creates
the topics, writes a bounded stream of user-session events (some of them late,
a few malformed), runs `flows.session_analytics` with `python -m bytewax.run`
and Bytewax recovery until the input is consumed, then reads the results back
and prints a summary.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from eventio import generators
from eventio.broker import EmbeddedBroker, create_topics

WORKDIR = Path("demo-out")
DEFAULT_EVENTS = 20_000


@dataclass(frozen=True)
class Topics:
    """The topics of one demo run, named after its start time."""

    events: str
    sessions: str
    late: str
    dlq: str

    @classmethod
    def of_run(cls, run: str) -> "Topics":
        return cls(*(f"demo-{name}-{run}" for name in ("events", "sessions", "late", "dlq")))

    def partitions(self) -> dict[str, int]:
        return {self.events: 3, self.sessions: 1, self.late: 1, self.dlq: 1}


def read_topic(bootstrap: str, topic: str, quiet_s: float = 1.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of every partition of `topic`: read until the reported
    end offsets are reached and then `quiet_s` passes without a record (the
    embedded broker's reported end offset can lag the log)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-reader",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        positions = dict.fromkeys(partitions, 0)
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 120
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(1000, 0.2) if m.error() is None]
            for m in batch:
                records.append((m.key(), m.value()))
                positions[m.partition()] = m.offset() + 1
            now = time.monotonic()
            if batch:
                quiet_since = now
            elif all(positions[p] >= ends[p] for p in ends) and now - quiet_since >= quiet_s:
                break
        return records
    finally:
        consumer.close()


def produce_input(bootstrap: str, topic: str, count: int) -> int:
    """The demo stream: sessions with disorder and late events, plus garbage."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    events = generators.disorder(generators.sessions(count, seed=42, users=800), seed=42,
                                 bound_ms=90_000, late_fraction=0.01, late_by_ms=40 * 60_000)
    count = 0
    for e in events:
        producer.produce(topic, json.dumps(e).encode(), key=e["user_id"].encode())
        producer.poll(0)
        count += 1
    for bad in (b"{truncated", b"\x00\x01binary", b'{"event_id": "x", "user_id": "u"}'):
        producer.produce(topic, bad, key=b"bad")
    producer.flush(60)
    return count


def run_flow(bootstrap: str, topics: Topics) -> float:
    """Run the session analytics flow with recovery until the input ends."""
    recovery = WORKDIR / "recovery"
    shutil.rmtree(WORKDIR, ignore_errors=True)
    recovery.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "bytewax.recovery", str(recovery), "1"], check=True)
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        INPUT_TOPIC=topics.events,
        OUTPUT_TOPIC=topics.sessions,
        LATE_TOPIC=topics.late,
        DLQ_TOPIC=topics.dlq,
        STOP_AT_END="true",
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "eventio.run", "flows.session_analytics:flow",
         "-r", str(recovery), "-s", "1", "-b", "0"],
        check=True, env=env, timeout=150,
    )
    return time.monotonic() - started


def summarize(bootstrap: str, topics: Topics, produced: int, seconds: float) -> str:
    """A readable summary of what the flow wrote."""
    firings = [json.loads(v) for _, v in read_topic(bootstrap, topics.sessions) if v]
    # Apply each firing as a table would: drop the sessions it supersedes
    # (its own earlier firing, sessions a late event merged), keep it.
    windows: dict[tuple[str, int, int], dict] = {}
    for f in firings:
        for start, end in f["supersedes"]:
            windows.pop((f["user_id"], start, end), None)
        windows[(f["user_id"], f["session_start"], f["session_end"])] = f
    spend: Counter[str] = Counter()
    for w in windows.values():
        spend[w["user_id"]] += w["total_spent"]
    late = read_topic(bootstrap, topics.late)
    dead = read_topic(bootstrap, topics.dlq)
    updates = sum(1 for f in firings if f["is_late_update"])
    lines = [
        "",
        "Session analytics demo (Kafka -> flows.session_analytics -> Kafka, recovery on)",
        f"  input events          {produced:>10,}  (+3 malformed)",
        f"  session firings       {len(firings):>10,}  ({updates:,} late updates)",
        f"  session windows       {len(windows):>10,}",
        f"  late events (output)  {len(late):>10,}",
        f"  dead letters          {len(dead):>10,}",
        f"  throughput            {produced / seconds:>10,.0f} events/s  ({seconds:.1f} s incl. start-up)",
        "  top users by spend (sum over their session windows):",
    ]
    for user, total in spend.most_common(5):
        lines.append(f"    {user}  {total:>10,.2f}")
    return "\n".join(lines)


def main() -> int:
    """The demo: `DEMO_EVENTS` events (default 20,000) through the flow, on
    the embedded broker unless `KAFKA_BOOTSTRAP_SERVERS` is set."""
    raw = os.environ.get("DEMO_EVENTS", "").strip() or str(DEFAULT_EVENTS)
    if not raw.isdigit() or int(raw) < 1:
        print(f"DEMO_EVENTS={raw!r}: expected a positive integer", file=sys.stderr)
        return 2
    topics = Topics.of_run(time.strftime("%Y%m%d%H%M%S"))
    with ExitStack() as stack:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            bootstrap = stack.enter_context(EmbeddedBroker()).bootstrap_servers
            print(f"embedded broker on {bootstrap}")
        create_topics(bootstrap, topics.partitions())
        produced = produce_input(bootstrap, topics.events, int(raw))
        print(f"produced {produced:,} events to {topics.events}")
        seconds = run_flow(bootstrap, topics)
        print(summarize(bootstrap, topics, produced, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())

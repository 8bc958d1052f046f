"""Kafka end-to-end benchmarks: the flows reading from and writing to the
embedded broker (`eventio.broker.EmbeddedBroker`, one per repetition).

Registered cases (`python -m benchmarks.run kafka_`):

- `kafka_session_analytics_at_least_once_{1p,3p}`: `flows.session_analytics`
  Kafka -> Kafka on a pre-filled topic, `STOP_AT_END`, one worker in
  process; `_3p_recovery` adds recovery with 1 s epochs. Compared with
  `kafka_raw_consume`, the machine's plain consumer rate.
- `kafka_exactly_once_{at_least_once,exactly_once}`: `flows.exactly_once`
  with Bytewax's plain sink or the transactional one, both under recovery
  with 1 s epochs.
- `kafka_exactly_once_latency_{transactional,at_least_once}_{20k,10k}`: the
  flow as a `python -m bytewax.run` process, input produced at a fixed rate
  with its send time, latency until the output is visible to a
  `read_committed` reader (`x_p50_ms`, `x_p99_ms`); `kafka_raw_latency_*`
  times the broker alone under the same load.
- `kafka_floor_{json_loads,record_decoder}`: decoding the same input values
  without Kafka or Bytewax, a limit for the flow's share of raw consume.
- `kafka_session_analytics_{3p,4p}_{1_worker,2_workers,2_processes}`: one worker
  against two threads (`-w 2`) and two processes (`python -m flows run --processes 2`).
- `kafka_session_analytics_resume_{10k,100k,1m}_keys`: time for a resumed
  run to load N keys' open sessions and process its first event.

Rates exclude filling the input topic; a repetition fails if the flow did
not see every input record. The knobs (batch size, decoding, producer
settings) are measured by `python -m benchmarks.kafka_flows tuning`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import run_main
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.harness import Result, case
from eventio import generators
from eventio.broker import EmbeddedBroker, free_port
from eventio.run import tune_gc
from recovery.directories import init as init_recovery

ROOT = Path(__file__).resolve().parent.parent
USERS = 2_000
SEED = 7
EPOCH = timedelta(seconds=1)
Record = tuple[bytes, bytes]
"""(key, value) of one input record."""


# --- input and output -------------------------------------------------------


@functools.lru_cache(maxsize=2)
def session_records(n: int, users: int = USERS) -> list[Record]:
    """`n` session events from `eventio.generators.sessions` as JSON, keyed by user."""
    return [
        (e["user_id"].encode(), json.dumps(e, separators=(",", ":")).encode())
        for e in generators.sessions(n, seed=SEED, users=users)
    ]


def produce_all(bootstrap: str, topic: str, records: list[Record], **config: Any) -> float:
    """Produce `records` (partitioned by key); seconds until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                         "queue.buffering.max.messages": 1_000_000, **config})
    produce, poll = producer.produce, producer.poll
    started = time.perf_counter()
    for key, value in records:
        while True:
            try:
                produce(topic, value, key)
                break
            except BufferError:
                poll(0.01)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"{left} input records not acknowledged")
    return time.perf_counter() - started


def count_visible(bootstrap: str, topic: str, expected: int, quiet_s: float = 1.0, timeout_s: float = 120) -> int:
    """Records of `topic` a `read_committed` consumer sees: read until
    `expected` arrived and then `quiet_s` passed without more."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        got, quiet_since, deadline = 0, time.monotonic(), time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = [m for m in consumer.consume(10_000, 0.1) if m.error() is None]
            now = time.monotonic()
            if batch:
                got += len(batch)
                quiet_since = now
            elif got >= expected and now - quiet_since >= quiet_s:
                break
        return got
    finally:
        consumer.close()


def events_in(step: str) -> float:
    """Events the shards of window step `step` have received in this process."""
    return REGISTRY.get_sample_value("stream_events_in_total", {"step": step}) or 0.0


@contextmanager
def broker_with(topics: dict[str, int]) -> Iterator[str]:
    """A fresh embedded broker with `topics` created; yields its address."""
    with EmbeddedBroker() as broker:
        broker.create_topics(topics)
        yield broker.bootstrap_servers


def timed_run(flow: Dataflow, recovery_dir: Optional[Path] = None) -> float:
    """Seconds `run_main(flow)` takes, with recovery (1 s epochs) if a directory is given;
    the process's GC tuned as `python -m eventio.run` tunes it."""
    tune_gc()
    started = time.perf_counter()
    if recovery_dir is None:
        run_main(flow)
    else:
        run_main(flow, epoch_interval=EPOCH, recovery_config=RecoveryConfig(str(recovery_dir)))
    return time.perf_counter() - started


def fresh_recovery_dir(parent: str, name: str = "recovery", partitions: int = 1) -> Path:
    path = Path(parent) / name
    init_recovery(path, partitions)
    return path


# --- 1. session analytics Kafka -> Kafka ------------------------------------


def session_analytics_io(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """`flows.session_analytics.build` overrides for the `in` topic."""
    return dict(kafka_bootstrap_servers=bootstrap, input_topic="in", output_topic="out", late_topic="late",
                dlq_topic="dlq", stop_at_end=True, **extra)


def session_analytics(n: int, partitions: int, recovery: bool = False, batch_size: int = 1000) -> Result:
    """`flows.session_analytics` in this process over `n` pre-filled events."""
    from flows import session_analytics as flow_module

    records = session_records(n)
    with broker_with({"in": partitions, "out": partitions, "late": 1, "dlq": 1}) as bs, \
            tempfile.TemporaryDirectory() as tmp:
        fill_s = produce_all(bs, "in", records)
        flow = flow_module.build(**session_analytics_io(bs, kafka_batch_size=batch_size))
        before = events_in("sessions")
        seconds = timed_run(flow, fresh_recovery_dir(tmp) if recovery else None)
        seen = events_in("sessions") - before
    if seen != n:
        raise RuntimeError(f"the flow processed {seen:.0f} of {n} events")
    return {"events": n, "seconds": seconds, "x_fill_s": round(fill_s, 2)}


case("kafka_session_analytics_at_least_once_1p",
     "flows.session_analytics Kafka -> Kafka, 500,000 session events (2,000 users), 1 partition, 1 worker, STOP_AT_END",
     baseline="kafka_raw_consume", n=500_000, partitions=1)(session_analytics)
case("kafka_session_analytics_at_least_once_3p",
     "as _1p with 3 input partitions (3 watermark channels)",
     baseline="kafka_raw_consume", n=500_000, partitions=3)(session_analytics)
case("kafka_session_analytics_at_least_once_3p_recovery",
     "as _3p with recovery on, 1 s epochs (-s 1)",
     baseline="kafka_session_analytics_at_least_once_3p", n=500_000, partitions=3, recovery=True)(session_analytics)


def decoding_floor(n: int, whole: bool) -> Result:
    """Decoding alone, no Kafka, no Bytewax: the stdlib `json.loads` of each
    of the session analytics input values, or (`whole`) the flows' record
    decoder, which also checks the JSON, upcasts and builds the `Event`. A
    limit for the flow's share of the raw consume rate."""
    from eventio.decoding import record_decoder

    values = [value for _, value in session_records(n)]
    decode = record_decoder("json")
    loads = json.loads
    started = time.perf_counter()
    if whole:
        for offset, value in enumerate(values):
            decode(value, None, "in", 0, offset)
    else:
        for value in values:
            loads(value)
    return {"events": n, "seconds": time.perf_counter() - started}


case("kafka_floor_json_loads", "json.loads of the 500,000 session analytics input values, no Kafka, no Bytewax",
     baseline="kafka_raw_consume", n=500_000, whole=False)(decoding_floor)
case("kafka_floor_record_decoder", "the flows' record decoder (JSON, upcast, Event) on the same values, no Kafka, no Bytewax",
     baseline="kafka_raw_consume", n=500_000, whole=True)(decoding_floor)


# --- 2. exactly-once flow: transactional vs plain output ---------------------


def exactly_once_throughput(n: int, guarantee: str, partitions: int = 3) -> Result:
    """`flows.exactly_once` in this process under recovery (1 s epochs) over
    `n` pre-filled events. A bounded run leaves its last epoch's
    transaction pending (committed by the next execution): a second run on
    the same recovery directory commits it, timed as `x_last_commit_s`, and
    every output is then checked to be visible exactly once by count."""
    from flows import exactly_once as flow_module

    records = session_records(n)
    with broker_with({"in": partitions, "out": partitions, "dlq": 1}) as bs, tempfile.TemporaryDirectory() as tmp:
        produce_all(bs, "in", records)
        recovery = fresh_recovery_dir(tmp)

        def build() -> Dataflow:
            return flow_module.build(kafka_bootstrap_servers=bs, input_topic="in", output_topic="out",
                                     dlq_topic="dlq", stop_at_end=True, delivery_guarantee=guarantee,
                                     transactional_id_prefix=f"bench-{guarantee}")

        seconds = timed_run(build(), recovery)
        last_commit_s = timed_run(build(), recovery)
        visible = count_visible(bs, "out", n)
    if visible != n:
        raise RuntimeError(f"{visible} outputs visible, expected {n}")
    return {"events": n, "seconds": seconds, "x_last_commit_s": round(last_commit_s, 2)}


case("kafka_exactly_once_at_least_once",
     "flows.exactly_once, DELIVERY_GUARANTEE=at_least_once (Bytewax KafkaSink), 300,000 events, 3 partitions, recovery -s 1",
     baseline="kafka_raw_consume", n=300_000, guarantee="at_least_once")(exactly_once_throughput)
case("kafka_exactly_once_exactly_once",
     "flows.exactly_once, transactional sink, 4 sink partitions, 300,000 events, 3 partitions, recovery -s 1",
     baseline="kafka_exactly_once_at_least_once", n=300_000, guarantee="exactly_once")(exactly_once_throughput)


# --- 3. latency at a fixed input rate ----------------------------------------


class FlowProcesses:
    """`python -m eventio.run TARGET ARGS` (bytewax.run, GC tuned), or with `processes` above one
    `python -m flows run NAME --processes N ARGS` (the cluster members die
    with it), in its own process group; killed on exit if still running."""

    def __init__(self, target: str, args: list[str], env: dict[str, str], processes: int = 1) -> None:
        if processes > 1:
            name = target.removeprefix("flows.").removesuffix(":flow")
            self.commands = [[sys.executable, "-m", "flows", "run", name, "--processes", str(processes), *args]]
        else:
            self.commands = [[sys.executable, "-m", "eventio.run", target, *args]]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = tempfile.TemporaryFile()

    def __enter__(self) -> "FlowProcesses":
        self.procs = [
            subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
            for cmd in self.commands
        ]
        return self

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def wait(self, timeout_s: float) -> None:
        for p in self.procs:
            if p.wait(timeout=timeout_s) != 0:
                raise RuntimeError(f"flow process exited with {p.returncode}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-chars:]

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        self.log.close()


def exactly_once_env(bootstrap: str, guarantee: str) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "INPUT_TOPIC": "in", "OUTPUT_TOPIC": "out", "DLQ_TOPIC": "dlq",
            "DELIVERY_GUARANTEE": guarantee, "TRANSACTIONAL_ID_PREFIX": "latency", "SINK_PARTITIONS": "4"}


_EVENT = b'{"event_id":"l%d","user_id":"%s","event_type":"page_view","timestamp":%d,"value":%d.5}'
_EVENT_NUMBER = re.compile(rb'"event_id":"l(-?[0-9]+)"')
"""Latency input is formatted, and its output's event id found, without a
JSON round trip: the load generator shares the machine with the flow."""


def _event(i: int, user: bytes, now_ms: int) -> bytes:
    return _EVENT % (i, user, now_ms, i % 100)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))]


def _clients(bootstrap: str, topic: str, partitions: int) -> tuple[Producer, Consumer]:
    """The latency runs' producer (1 ms linger) and a `read_committed` reader of `topic`."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-latency", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return producer, consumer


def _latencies(sent_at: list[float], seen_at: list[float]) -> Result:
    lat = sorted((seen - sent) * 1000 for sent, seen in zip(sent_at, seen_at))
    return {"events": len(lat), "seconds": max(seen_at) - sent_at[0], "x_p50_ms": round(percentile(lat, 0.5)),
            "x_p99_ms": round(percentile(lat, 0.99)), "x_max_ms": round(lat[-1])}


def latency(guarantee: str, rate: int, seconds: float, partitions: int = 3) -> Result:
    """End-to-end latency of `flows.exactly_once` (`-r DIR -s 1 -b 0`) at
    `rate` events/s: input produced with its send time, latency = when a
    `read_committed` reader sees the output minus when the input was
    produced. The broker holds back open transactions from such readers but
    does not filter aborted ones, so afterwards the raw log is checked
    (`tests/committed_log.py`) to hold no aborted record: every output the
    reader timed was committed."""
    from tests.committed_log import read_topic

    users = [f"u{i:05d}".encode() for i in range(USERS)]
    with broker_with({"in": partitions, "out": partitions, "dlq": 1}) as bs, tempfile.TemporaryDirectory() as tmp:
        recovery = fresh_recovery_dir(tmp)
        args = ["-r", str(recovery), "-s", str(int(EPOCH.total_seconds())), "-b", "0"]
        producer, consumer = _clients(bs, "out", partitions)
        with FlowProcesses("flows.exactly_once:flow", args, exactly_once_env(bs, guarantee)) as flow:
            _warm_up(producer, consumer, flow)
            sent_at, seen_at = _paced_run(producer, consumer, flow, int(rate * seconds), rate, users)
        consumer.close()
        aborted = sum(len(log.aborted()) for log in read_topic(bs, "out"))
    if aborted:
        raise RuntimeError(f"{aborted} aborted output records: the reader's timings are not read_committed")
    bound_ms = (2 * EPOCH.total_seconds() + 1) * 1000 if guarantee == "exactly_once" else 1000.0
    return {**_latencies(sent_at, seen_at), "x_rate": rate, "x_target_p99_ms": round(bound_ms)}


def raw_latency(rate: int, seconds: float, partitions: int = 3) -> Result:
    """The broker alone under the same load: the same events produced at
    `rate` and read back from the same topic by the same reader. The flow's
    path crosses the broker twice (input, output), so this is a floor."""
    users = [f"u{i:05d}".encode() for i in range(USERS)]
    with broker_with({"in": partitions}) as bs:
        producer, consumer = _clients(bs, "in", partitions)
        sent_at, seen_at = _paced_run(producer, consumer, None, int(rate * seconds), rate, users)
        consumer.close()
    return {**_latencies(sent_at, seen_at), "x_rate": rate}


def _warm_up(producer: Producer, consumer: Consumer, flow: FlowProcesses, timeout_s: float = 60) -> None:
    """One event through the flow, so start-up is not measured."""
    producer.produce("in", _event(-1, b"warm-up", int(time.time() * 1000)), b"warm-up")
    producer.flush(10)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not flow.alive():
            raise RuntimeError(f"flow exited:\n{flow.log_tail()}")
        if any(m.error() is None for m in consumer.consume(100, 0.1)):
            return
    raise RuntimeError(f"no output within {timeout_s}s of start:\n{flow.log_tail()}")


def _paced_run(producer: Producer, consumer: Consumer, flow: Optional[FlowProcesses], n: int, rate: int,
               users: list[bytes]) -> tuple[list[float], list[float]]:
    """Produce `n` events at `rate`/s while reading outputs (of `flow`, or
    the input itself without one); (send, seen) times by event."""
    sent_at = [0.0] * n
    seen_at = [0.0] * n
    sent = seen = 0
    started = time.monotonic()
    deadline = started + n / rate + 120
    number = _EVENT_NUMBER.search
    while seen < n:
        now = time.monotonic()
        if now > deadline or (flow is not None and not flow.alive()):
            raise RuntimeError(f"{seen} of {n} outputs seen:\n{flow.log_tail() if flow else ''}")
        due = min(n, int((now - started) * rate) + 1)
        wall_ms = int(time.time() * 1000)
        while sent < due:
            user = users[sent % len(users)]
            while True:
                try:
                    producer.produce("in", _event(sent, user, wall_ms), user)
                    break
                except BufferError:
                    producer.poll(0.001)
            sent_at[sent] = time.monotonic()
            sent += 1
        producer.poll(0)
        batch = consumer.consume(10_000, 0.001)
        if batch:
            now = time.monotonic()
            for m in batch:
                if m.error() is None:
                    i = int(number(m.value()).group(1))
                    if i >= 0:
                        if seen_at[i]:
                            raise RuntimeError(f"output of event {i} seen twice")
                        seen_at[i] = now
                        seen += 1
    return sent_at, seen_at


for rate in (20_000, 10_000):
    case(f"kafka_raw_latency_{rate // 1000}k",
         f"the embedded broker alone: produce at {rate:,} events/s for 10 s to 3 partitions, latency until the same "
         "read_committed reader sees the record", rate=rate, seconds=10)(raw_latency)
    for guarantee, output in (("exactly_once", "transactional"), ("at_least_once", "at_least_once")):
        case(f"kafka_exactly_once_latency_{output}_{rate // 1000}k",
             f"flows.exactly_once as `bytewax.run -r -s 1`, {output.replace('_', '-')} output, input at {rate:,} "
             "events/s for 10 s, latency until read_committed-visible",
             rate=rate, seconds=10, guarantee=guarantee)(latency)


# --- 4. one worker vs two -----------------------------------------------------


def session_analytics_workers(n: int, partitions: int, workers: int = 1, processes: int = 1) -> Result:
    """`python -m bytewax.run flows.session_analytics:flow` with `workers`
    threads per process and `processes` processes, timed from spawn to exit
    (Python start-up included for every variant). `x_outputs`, the session
    firings written, is the same for every variant."""
    records = session_records(n)
    with broker_with({"in": partitions, "out": partitions, "late": 1, "dlq": 1}) as bs:
        produce_all(bs, "in", records)
        env = {"KAFKA_BOOTSTRAP_SERVERS": bs, "INPUT_TOPIC": "in", "OUTPUT_TOPIC": "out", "LATE_TOPIC": "late",
               "DLQ_TOPIC": "dlq", "STOP_AT_END": "true"}
        started = time.perf_counter()
        with FlowProcesses("flows.session_analytics:flow", ["-w", str(workers)], env, processes) as flow:
            flow.wait(timeout_s=300)
        seconds = time.perf_counter() - started
        outputs = count_visible(bs, "out", 1)
    return {"events": n, "seconds": seconds, "x_outputs": outputs}


WORKERS_WHAT = "flows.session_analytics as `python -m bytewax.run`, 500,000 events, 3 partitions, spawn to exit"
case("kafka_session_analytics_3p_1_worker", f"{WORKERS_WHAT}, 1 process x 1 worker",
     n=500_000, partitions=3)(session_analytics_workers)
case("kafka_session_analytics_3p_2_workers", f"{WORKERS_WHAT}, 1 process x 2 workers (-w 2)",
     baseline="kafka_session_analytics_3p_1_worker", n=500_000, partitions=3, workers=2)(session_analytics_workers)
case("kafka_session_analytics_3p_2_processes", f"{WORKERS_WHAT}, 2 processes x 1 worker (-i/-a)",
     baseline="kafka_session_analytics_3p_1_worker", n=500_000, partitions=3, processes=2)(session_analytics_workers)
SCALE_WHAT = "flows.session_analytics Kafka to Kafka, 500,000 events, 4 input partitions, spawn to exit"
case("kafka_session_analytics_4p_1_worker", f"{SCALE_WHAT}, 1 process x 1 worker",
     n=500_000, partitions=4)(session_analytics_workers)
case("kafka_session_analytics_4p_2_workers", f"{SCALE_WHAT}, 1 process x 2 workers (-w 2)",
     baseline="kafka_session_analytics_4p_1_worker", n=500_000, partitions=4, workers=2)(session_analytics_workers)
case("kafka_session_analytics_4p_2_processes", f"{SCALE_WHAT}, python -m flows run --processes 2",
     baseline="kafka_session_analytics_4p_1_worker", n=500_000, partitions=4, processes=2)(session_analytics_workers)


# --- 5. time to resume versus state size --------------------------------------


def open_sessions(keys: int) -> list[Record]:
    """One page view per key within one minute: every session stays open
    (watermark bound 2 min, gap 10 min)."""
    base = generators.BASE_TS
    return [
        (f"k{i}".encode(), json.dumps({"event_id": f"s{i}", "user_id": f"k{i}", "event_type": "page_view",
                                       "timestamp": base + i * 60_000 // keys}).encode())
        for i in range(keys)
    ]


def metric(port: int, name: str, labels: dict[str, str]) -> float:
    """A sample from a flow's Prometheus endpoint (0 if absent or not up yet)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _wait(condition: Callable[[], bool], flow: FlowProcesses, timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not flow.alive():
            raise RuntimeError(f"flow exited while waiting for {what}:\n{flow.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}:\n{flow.log_tail()}")
        time.sleep(poll_s)


def _commit_epoch(recovery: Path) -> int:
    """Newest epoch whose snapshots are durable (0 while unreadable)."""
    from recovery.directories import inspect

    try:
        return min(inspect(recovery).commit_epochs.values(), default=0)
    except Exception:  # noqa: BLE001 - the store is being written; ask again
        return 0


SHARDS = 32
"""Shards of the session window step (the flow's default `SHARDS`)."""


def late_event_per_shard() -> list[Record]:
    """One event per window shard, an hour behind the restored watermark:
    each goes straight to the late output."""
    from operators.runtime.keyed import shard_of

    users: dict[str, str] = {}
    i = 0
    while len(users) < SHARDS:
        users.setdefault(shard_of(f"late-{i}", SHARDS), f"late-{i}")
        i += 1
    return [
        (u.encode(), json.dumps({"event_id": f"late-{u}", "user_id": u, "event_type": "page_view",
                                 "timestamp": generators.BASE_TS - 3_600_000}).encode())
        for u in users.values()
    ]


def _until_late(consumer: Consumer, seen: list[Any], count: int, flow: FlowProcesses) -> float:
    """Read the late topic until `count` records were seen; when that was."""
    def done() -> bool:
        seen.extend(m for m in consumer.consume(SHARDS, 0.005) if m.error() is None)
        return len(seen) >= count

    _wait(done, flow, 300, f"{count} late events", poll_s=0)
    return time.perf_counter()


def resume(keys: int, epoch_s: int = 1) -> Result:
    """Fill `keys` open sessions, run session analytics with recovery (1 s
    epochs) until they are in a durable snapshot, kill it, then time a
    resumed run from spawn until it has processed one new event on every
    shard (late events, which go straight to the late topic), so every
    shard's state is loaded; `x_first_event_s` is until the first of them.
    The resumed run must not replay any input (`x_replayed`)."""
    with broker_with({"in": 1, "out": 1, "late": 1, "dlq": 1}) as bs, tempfile.TemporaryDirectory() as tmp:
        produce_all(bs, "in", open_sessions(keys))
        recovery = fresh_recovery_dir(tmp)
        args = ["-r", str(recovery), "-s", str(epoch_s), "-b", "0"]
        port = free_port()
        env = {"KAFKA_BOOTSTRAP_SERVERS": bs, "INPUT_TOPIC": "in", "OUTPUT_TOPIC": "out", "LATE_TOPIC": "late",
               "DLQ_TOPIC": "dlq", "METRICS_PORT": str(port)}
        started = time.perf_counter()
        shards = {"step": "sessions"}
        with FlowProcesses("flows.session_analytics:flow", args, env) as filling:
            _wait(lambda: metric(port, "stream_events_in_total", shards) >= keys, filling, 300, f"{keys} events in")
            fill_run_s = time.perf_counter() - started
            epoch = _commit_epoch(recovery)
            _wait(lambda: _commit_epoch(recovery) >= epoch + 2, filling, 120, "a snapshot after the last event", 0.2)
            snapshots = metric(port, "stream_snapshot_duration_seconds_sum", shards)
            epochs = metric(port, "stream_snapshot_duration_seconds_count", shards) / SHARDS
        state_mb = sum(f.stat().st_size for f in recovery.iterdir()) / 2**20
        produce_all(bs, "in", late_event_per_shard())
        consumer = Consumer({"bootstrap.servers": bs, "group.id": "bench-resume", "enable.auto.commit": False})
        consumer.assign([TopicPartition("late", 0, 0)])
        seen: list[Any] = []
        started = time.perf_counter()
        with FlowProcesses("flows.session_analytics:flow", args, env) as resumed:
            first = _until_late(consumer, seen, 1, resumed) - started
            seconds = _until_late(consumer, seen, SHARDS, resumed) - started
            _wait(lambda: metric(port, "stream_events_in_total", shards) >= SHARDS, resumed, 30, "the metrics")
            replayed = metric(port, "stream_events_in_total", shards) - SHARDS
        consumer.close()
    return {"events": keys, "seconds": seconds, "x_first_event_s": round(first, 2),
            "x_all_shards_s": round(seconds, 2), "x_state_mb": round(state_mb, 1),
            "x_first_run_s": round(fill_run_s, 1), "x_snapshot_s": round(snapshots / max(epochs, 1), 2),
            "x_replayed": int(replayed)}


RESUME_EPOCH_S = 5
for label, keys, repeat in (("10k", 10_000, 3), ("100k", 100_000, 3), ("1m", 1_000_000, 1)):
    case(f"kafka_session_analytics_resume_{label}_keys",
         f"resume of flows.session_analytics with {keys:,} open sessions (recovery -s {RESUME_EPOCH_S}): spawn until "
         "one new event per shard is processed; events/s = keys restored per second",
         keys=keys, epoch_s=RESUME_EPOCH_S, repeat=repeat)(resume)


# --- 6. tuning: python -m benchmarks.kafka_flows tuning -----------------------


def _median_rate(run: Callable[[], Result], repeat: int) -> float:
    return statistics.median(r["events"] / r["seconds"] for r in (run() for _ in range(repeat)))


def tune_batch_size(n: int, repeat: int) -> list[str]:
    rows = ["| KAFKA_BATCH_SIZE | session analytics events/s, 1 partition |", "|---:|---:|"]
    for size in (100, 1_000, 10_000):
        rows.append(f"| {size:,} | {_median_rate(lambda: session_analytics(n, 1, batch_size=size), repeat):,.0f} |")
    return rows


def tune_decoding(n: int, repeat: int) -> list[str]:
    """Microseconds per event of each step of a flow's decoder on session events."""
    import timeit

    from eventio.decoding import parse_json, record_decoder
    from eventio.event import Event
    from eventio.upcasting import upcast

    values = [v for _, v in session_records(n)]
    dicts = [json.loads(v) for v in values]
    decode = record_decoder()
    steps: dict[str, Callable[[], object]] = {
        "json.loads (stdlib, no options)": lambda: [json.loads(v) for v in values],
        "parse_json (UTF-8 check, NaN rejected)": lambda: [parse_json(v) for v in values],
        "upcast (on a copy)": lambda: [upcast(dict(d)) for d in dicts],
        "Event.from_dict": lambda: [Event.from_dict(d) for d in dicts],
        "the decoder, all of it": lambda: [decode(v, None, "t", 0, 0) for v in values],
    }
    rows = ["| step | us per event |", "|---|---:|"]
    for name, fn in steps.items():
        rows.append(f"| {name} | {min(timeit.repeat(fn, number=1, repeat=repeat)) / n * 1e6:.2f} |")
    return rows


def sink_rate(n: int, batch: int, config: dict[str, Any]) -> float:
    """Records/s through the flows' at-least-once sink (`CheckedKafkaSink`,
    which waits for every batch's acknowledgements), `batch` records a call."""
    from eventio.flowio import Encoded
    from eventio.kafka_sink import CheckedKafkaSink

    records = [(k, v, None, None) for k, v in session_records(n)]
    with broker_with({"out": 3}) as bs:
        part = CheckedKafkaSink([bs], "out", add_config=config).build("bench", 0, 1)
        started = time.perf_counter()
        for i in range(0, n, batch):
            part.write_batch([Encoded(records[i:i + batch], [])])
        seconds = time.perf_counter() - started
        part.close()
    return n / seconds


def tune_producer(n: int, repeat: int) -> list[str]:
    rows = ["| linger.ms | compression | records per write_batch | CheckedKafkaSink records/s |", "|---:|---|---:|---:|"]
    grid = [(linger, comp, 1_000) for comp in ("none", "lz4", "zstd") for linger in (0, 5, 20)]
    grid += [(5, "lz4", 100), (5, "lz4", 10_000)]
    for linger, comp, batch in grid:
        config = {"linger.ms": str(linger), "compression.type": comp}
        rate = statistics.median(sink_rate(n, batch, config) for _ in range(repeat))
        rows.append(f"| {linger} | {comp} | {batch:,} | {rate:,.0f} |")
    return rows


def tuning(argv: Optional[list[str]] = None) -> None:
    """Print the tuning tables (markdown) for the README."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kafka_flows tuning")
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for title, table in (("Decoding one event", tune_decoding(50_000, args.repeat)),
                         ("Consumer batch size", tune_batch_size(args.events, args.repeat)),
                         ("Producer settings", tune_producer(args.events, args.repeat))):
        print(f"\n{title}\n")
        print("\n".join(table), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] != ["tuning"]:
        raise SystemExit("usage: python -m benchmarks.kafka_flows tuning [--events N] [--repeat R]")
    tuning(sys.argv[2:])

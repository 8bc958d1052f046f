"""The registered benchmark cases (see `benchmarks/harness.py`)."""

from __future__ import annotations

import gc
import time
from datetime import datetime, timedelta, timezone
from operator import attrgetter, itemgetter
from typing import Any, Sized

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import windowing as bw
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSink, TestingSource, run_main

from benchmarks.data import keyed_events
from benchmarks.harness import Result, case

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
BATCH = 1000


class _CountingPartition(StatelessSinkPartition[Any]):
    def __init__(self, sink: "CountingSink") -> None:
        self._sink = sink

    def write_batch(self, items: list[Any]) -> None:
        self._sink.count += len(items)


class CountingSink(DynamicSink[Any]):
    """Counts the results and lets them go, as a Kafka sink does. Keeping a
    million results in a list (`TestingSink`) made the garbage collector
    walk them again and again: 1.3 s of a 5 s run at 1M keys (ad hoc)."""

    def __init__(self) -> None:
        self.count = 0

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountingPartition:
        return _CountingPartition(self)

    def __len__(self) -> int:
        return self.count


def _timed(flow: Dataflow, events: int, outputs: Sized, **run_options: Any) -> Result:
    """One `run_main`; `outputs` is the sink's list or a `CountingSink`."""
    started = time.perf_counter()
    run_main(flow, **run_options)
    return {"events": events, "seconds": time.perf_counter() - started, "x_outputs": len(outputs)}


def _builtin(n: int, keys: int, windower: bw.Windower[Any]) -> Result:
    items = keyed_events(n, keys)
    flow = Dataflow("builtin")
    src = op.input("in", flow, TestingSource(items, batch_size=BATCH))
    clock = bw.EventClock(lambda x: EPOCH + timedelta(milliseconds=x[1]), wait_for_system_duration=timedelta(minutes=2))
    counts = bw.count_window("count", src, clock, windower, key=lambda x: x[0])
    sink = CountingSink()
    op.output("out", counts.down, sink)
    return _timed(flow, n, sink)


BUILTIN_WINDOWERS: dict[str, tuple[str, bw.Windower[Any]]] = {
    "tumbling_count": ("tumbling 1 min", bw.TumblingWindower(timedelta(minutes=1), EPOCH)),
    "sessions": ("sessions gap 10 min", bw.SessionWindower(timedelta(minutes=10))),
    "sliding": ("sliding 1 h / 5 min", bw.SlidingWindower(timedelta(hours=1), timedelta(minutes=5), EPOCH)),
}
BUILTIN_KEYS = {100: 3, 1_000: 3, 10_000: 1}
"""Key counts the built-in runs at, and how often: the same 1,000,000 events
as our cases; at 10k keys it needs minutes per run, so it runs once there,
and at 1M keys it would need hours."""

for kind, (label, windower) in BUILTIN_WINDOWERS.items():
    for keys, repeat in BUILTIN_KEYS.items():
        case(f"bytewax_{kind}_{keys}_keys", f"Bytewax 0.21 count_window, {label}, 1,000,000 events, {keys:,} keys",
             repeat=repeat, n=1_000_000, keys=keys, windower=windower)(_builtin)


@case("kafka_raw_produce", "confluent-kafka produce to the embedded broker, 500,000 x 150 B, linger 20 ms", n=500_000)
def kafka_raw_produce(n: int) -> Result:
    from benchmarks.kafka import raw_produce

    return raw_produce(n)


@case("kafka_raw_consume", "confluent-kafka consume from the embedded broker, 500,000 x 150 B, 1 partition, assign()", n=500_000)
def kafka_raw_consume(n: int) -> Result:
    from benchmarks.kafka import raw_consume

    return raw_consume(n)


MINUTE = 60_000
GAPS = {"login": 30 * MINUTE, "purchase": 60 * MINUTE, "page_view": 10 * MINUTE, "idle": 2 * MINUTE}


def _ours(n: int, keys: int, kind: str, recovery: bool = False) -> Result:
    """Our window operator: count per key, fed by TestingSource."""
    import tempfile

    from bytewax.recovery import RecoveryConfig, init_db_dir

    from operators.time.eventtime import BoundedOutOfOrderness
    from operators.windows.assigners import EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows
    from operators.windows.functions import Aggregate
    from operators.windows.wiring import window

    assigners = {
        "tumbling": TumblingEventTimeWindows(MINUTE),
        "sliding": SlidingEventTimeWindows(60 * MINUTE, 5 * MINUTE),
        "sessions": EventTimeSessionWindows.with_dynamic_gap(lambda x: GAPS.get(x[3], 15 * MINUTE)),
    }
    items = keyed_events(n, keys)
    flow = Dataflow("ours")
    src = op.input("in", flow, TestingSource(items, batch_size=BATCH))
    out = window("count", op.key_on("key", src, itemgetter(0)), assigner=assigners[kind],
                 aggregate=Aggregate.count(), timestamp_of=itemgetter(1),
                 watermarks=lambda: BoundedOutOfOrderness(2 * MINUTE))
    sink = CountingSink()
    op.output("out", out.down, sink)
    if not recovery:
        return _timed(flow, n, sink)
    with tempfile.TemporaryDirectory() as d:
        init_db_dir(d, 1)
        return _timed(flow, n, sink, epoch_interval=timedelta(seconds=10), recovery_config=RecoveryConfig(d))


OURS = {
    "tumbling": ("tumbling_count", "tumbling 1 min count", "bytewax_tumbling_count"),
    "sessions": ("dynamic_sessions", "dynamic-gap sessions count", "bytewax_sessions"),
    "sliding": ("sliding_1h_5m", "sliding 1 h / 5 min count", "bytewax_sliding"),
}
for kind, (name, label, builtin) in OURS.items():
    for keys in (100, 1_000, 10_000, 1_000_000):
        case(f"{name}_{keys}_keys", f"our window(), {label}, 1,000,000 events, {keys:,} keys",
             baseline=f"{builtin}_{keys}_keys" if keys in BUILTIN_KEYS else None,
             n=1_000_000, keys=keys, kind=kind)(_ours)
case("dynamic_sessions_10000_keys_recovery", "as dynamic_sessions_10000_keys with recovery on, epoch (-s) 10 s",
     baseline="dynamic_sessions_10000_keys", n=1_000_000, keys=10_000, kind="sessions", recovery=True)(_ours)


def _session_floor(n: int, keys: int) -> Result:
    """The least Python work any session operator does on these events, as a
    limit to compare with: per event one dict lookup and one store, per
    session one timer, one lookup, one result tuple and one delete; a fixed
    10-minute gap, no watermark, no Bytewax, results kept in a list."""
    items = keyed_events(n, keys)
    gc.freeze()  # the input is not the loop's to collect
    started = time.perf_counter()
    state: dict[str, tuple[int, int, int]] = {}
    timers: list[tuple[int, str]] = []
    results = []
    for key, ts, _, _ in items:
        session = state.get(key)
        if session is None:
            state[key] = (ts, ts + 10 * MINUTE, 1)
            timers.append((ts + 10 * MINUTE, key))
        else:
            state[key] = (session[0], ts + 10 * MINUTE, session[2] + 1)
    for _, key in timers:
        session = state.pop(key, None)
        if session is not None:
            results.append((key, *session))
    seconds = time.perf_counter() - started
    gc.unfreeze()
    return {"events": n, "seconds": seconds, "x_outputs": len(results)}


for keys in (1_000, 1_000_000):
    case(f"python_floor_sessions_{keys}_keys", "a bare Python loop doing the dict work of sessions (no operator, "
         f"no Bytewax), 1,000,000 events, {keys:,} keys",
         baseline=f"dynamic_sessions_{keys}_keys", n=1_000_000, keys=keys)(_session_floor)


def _interval_join(keys: int) -> Result:
    """`operators.joins.wiring.interval_join` as a Bytewax step: 1M left and 200k
    right events in timestamp order, `[0, 10 s]` (see `benchmarks/join_bench.py`)."""
    from benchmarks.join_bench import events, pipeline_flow

    stream = events(1_000_000, 200_000, keys)
    flow, pairs = pipeline_flow(stream)
    return _timed(flow, len(stream), pairs)


def _cep_fraud(keys: int) -> Result:
    """`operators.cep.wiring.match_pattern` as a Bytewax step: the fraud
    pattern of `benchmarks/cep_bench.py` over 1M events arriving up to 2 s out
    of order, 1,000 planted matches; fails unless exactly those are found."""
    from operators.cep.wiring import match_pattern
    from operators.time.eventtime import BoundedOutOfOrderness

    from benchmarks.cep_bench import FRAUD, generate

    stream, planted = generate(1_000_000, keys, 1_000, 2_000)
    flow = Dataflow("cep_bench")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(stream, batch_size=BATCH)), attrgetter("user"))
    out = match_pattern("fraud", keyed, FRAUD, timestamp_of=attrgetter("ts"),
                        watermarks=lambda: BoundedOutOfOrderness(2_000),
                        select=lambda key, m: (m["login"][0].id, m["tx"][0].id))
    alerts: list[Any] = []
    op.output("out", out.down, TestingSink(alerts))
    result = _timed(flow, len(stream), alerts)
    if {pair for _, pair in alerts} != planted:
        raise RuntimeError(f"found {len(alerts)} alerts, not the {len(planted)} planted")
    return result


for keys in (1_000, 10_000, 1_000_000):
    case(f"interval_join_{keys}_keys", f"our interval_join, 1,000,000 left + 200,000 right events, [0, 10 s], {keys:,} keys",
         keys=keys)(_interval_join)
    case(f"cep_fraud_{keys}_keys", f"our match_pattern, fraud pattern (login then transaction > 10k within 10 min), "
         f"1,000,000 events 2 s out of order, {keys:,} keys, 1,000 planted", keys=keys)(_cep_fraud)

import benchmarks.file_flows  # noqa: F401
import benchmarks.kafka_flows  # noqa: F401

"""The registered benchmark cases (see `benchmarks/harness.py`)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import windowing as bw
from bytewax.testing import TestingSink, TestingSource, run_main

from benchmarks.data import keyed_events
from benchmarks.harness import Result, case

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
BATCH = 1000


def _timed(flow: Dataflow, events: int, **extra: Any) -> Result:
    started = time.perf_counter()
    run_main(flow)
    return {"events": events, "seconds": time.perf_counter() - started, **extra}


def _builtin(n: int, keys: int, windower: bw.Windower[Any]) -> Result:
    items = keyed_events(n, keys)
    flow = Dataflow("builtin")
    src = op.input("in", flow, TestingSource(items, batch_size=BATCH))
    clock = bw.EventClock(lambda x: EPOCH + timedelta(milliseconds=x[1]), wait_for_system_duration=timedelta(minutes=2))
    counts = bw.count_window("count", src, clock, windower, key=lambda x: x[0])
    out: list[Any] = []
    op.output("out", counts.down, TestingSink(out))
    return _timed(flow, n, x_outputs=len(out))


for keys, n in ((100, 1_000_000), (10_000, 100_000)):
    case(f"bytewax_tumbling_count_{keys}_keys", f"Bytewax 0.21 count_window, tumbling 1 min, {n:,} events, {keys:,} keys",
         n=n, keys=keys, windower=bw.TumblingWindower(timedelta(minutes=1), EPOCH))(_builtin)
    case(f"bytewax_sessions_{keys}_keys", f"Bytewax 0.21 count_window, sessions gap 10 min, {n:,} events, {keys:,} keys",
         n=n, keys=keys, windower=bw.SessionWindower(timedelta(minutes=10)))(_builtin)


@case("kafka_raw_produce", "confluent-kafka produce to the embedded broker, 500,000 x 150 B, linger 20 ms", n=500_000)
def kafka_raw_produce(n: int) -> Result:
    from benchmarks.kafka import raw_produce

    return raw_produce(n)


@case("kafka_raw_consume", "confluent-kafka consume from the embedded broker, 500,000 x 150 B, 1 partition, assign()", n=500_000)
def kafka_raw_consume(n: int) -> Result:
    from benchmarks.kafka import raw_consume

    return raw_consume(n)

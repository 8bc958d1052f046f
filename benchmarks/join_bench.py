"""Throughput and state size of the interval join core, driven directly.

    python -m benchmarks.join_bench [--left N] [--right N] [--keys N] [--long N] [--pipeline]

1. Throughput: `--left` left and `--right` right events over `--keys` keys, in
   timestamp order (one event per millisecond, so one per key every ~10 s),
   a right event joining the left events of its key up to a minute before it
   (`lower=0, upper=60_000`: about five partners each). The watermark (2 s out-of-order
   bound) advances before every event, as the wiring does on an in-order
   stream, which is the costliest case for cleanup.
2. Flatness: `--long` in-order events, printing buffered elements every tenth
   of the stream; the numbers must stay flat.
3. `--pipeline`: the same events through the whole Bytewax step
   (`operators.joins.wiring.interval_join`, one worker, one source whose elements
   are split into the left and right inputs, output counted).

Times are CPU seconds of this process, best of `--repeat` runs: the machine
is shared, and wall time measures the neighbours as much as the code.
"""

from __future__ import annotations

import argparse
import random
import time
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from eventio.run import tune_gc
from operators.joins.interval_join import IntervalJoin

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow

BOUND_MS = 2_000
LOWER_MS = 0
UPPER_MS = 10_000


def events(left: int, right: int, keys: int, seed: int = 7) -> list[tuple[int, str, int, int]]:
    """(side, key, ts, value) in timestamp order, sides mixed at random."""
    rng = random.Random(seed)
    names = [f"user-{i}" for i in range(keys)]
    sides = [0] * left + [1] * right
    rng.shuffle(sides)
    return [(side, rng.choice(names), ts, ts) for ts, side in enumerate(sides)]


def drive(join: IntervalJoin, stream: list[tuple[int, str, int, int]]) -> int:
    """Feed `stream`, advancing the watermark before each event; returns pairs."""
    pairs = 0
    on_element = join.on_element
    on_watermark = join.on_watermark
    for side, key, ts, value in stream:
        wm = ts - BOUND_MS - 1
        if wm > join.watermark:
            on_watermark(wm)
        on_element(key, ts, value, side)
        if len(join.emitted) > 10_000:
            pairs += len(join.emitted)
            join.emitted = []
    pairs += len(join.emitted)
    join.emitted = []
    return pairs


def throughput(left: int, right: int, keys: int, repeat: int) -> None:
    stream = events(left, right, keys)
    elapsed = float("inf")
    for _ in range(repeat):
        join = IntervalJoin(LOWER_MS, UPPER_MS)
        start = time.process_time()
        pairs = drive(join, stream)
        elapsed = min(elapsed, time.process_time() - start)
    print(
        f"throughput: {len(stream):,} events over {keys:,} keys in {elapsed:.2f} s = "
        f"{len(stream) / elapsed:,.0f} events/s; {pairs:,} pairs; "
        f"{join.state_size():,} elements buffered at the end"
    )


def flatness(total: int, keys: int) -> None:
    join = IntervalJoin(LOWER_MS, UPPER_MS)
    chunk = max(1, total // 10)
    sizes = []
    start = time.process_time()
    for offset in range(0, total, chunk):
        stream = [(s, k, ts + offset, v) for s, k, ts, v in events(chunk * 5 // 6, chunk // 6, keys, seed=offset)]
        drive(join, stream)
        sizes.append(join.state_size())
    elapsed = time.process_time() - start
    print(f"flatness: {total:,} in-order events in {elapsed:.1f} s; buffered after each tenth: {sizes}")


def pipeline_flow(stream: list[tuple[int, str, int, int]]) -> tuple[Dataflow, list[Any]]:
    """`stream` through the whole Bytewax step (`operators.joins.wiring.interval_join`,
    one source split into the left and right inputs); the flow and the list
    its pairs are written to."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource

    from operators.joins.wiring import interval_join
    from operators.time.eventtime import BoundedOutOfOrderness

    flow = Dataflow("join_bench")
    sides = op.branch("split", op.input("in", flow, TestingSource(stream, batch_size=1_000)), lambda e: e[0] == 0)
    key = itemgetter(1)
    out = interval_join(
        "join",
        op.key_on("key_left", sides.trues, key),
        op.key_on("key_right", sides.falses, key),
        lower_ms=LOWER_MS,
        upper_ms=UPPER_MS,
        timestamp_of=itemgetter(2),
        watermarks=lambda: BoundedOutOfOrderness(BOUND_MS),
    )
    pairs: list[Any] = []
    op.output("out", out.down, TestingSink(pairs))
    return flow, pairs


def pipeline(left: int, right: int, keys: int, repeat: int) -> None:
    from bytewax.testing import run_main

    tune_gc()  # as `python -m eventio.run` does
    stream = events(left, right, keys)
    elapsed = wall = float("inf")
    for _ in range(repeat):
        flow, pairs = pipeline_flow(stream)
        start, wall_start = time.process_time(), time.perf_counter()
        run_main(flow)
        elapsed = min(elapsed, time.process_time() - start)
        wall = min(wall, time.perf_counter() - wall_start)
    print(
        f"pipeline: {len(stream):,} events through the Bytewax step in {elapsed:.2f} s CPU "
        f"({wall:.2f} s wall) = {len(stream) / elapsed:,.0f} events/s; {len(pairs):,} pairs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--left", type=int, default=1_000_000)
    parser.add_argument("--right", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--long", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pipeline", action="store_true")
    args = parser.parse_args()
    throughput(args.left, args.right, args.keys, args.repeat)
    if args.pipeline:
        pipeline(args.left, args.right, args.keys, args.repeat)
    if args.long:
        flatness(args.long, args.keys)


if __name__ == "__main__":
    main()

"""Throughput and state size of the interval join core, driven directly.

    python -m benchmarks.join_bench [--left N] [--right N] [--keys N] [--long N]

1. Throughput: `--left` left and `--right` right events over `--keys` keys, in
   timestamp order (one event per millisecond, so one per key every ~10 s),
   a right event joining the left events of its key up to a minute before it
   (`lower=0, upper=60_000`: about five partners each). The watermark (2 s out-of-order
   bound) advances before every event, as the wiring does on an in-order
   stream, which is the costliest case for cleanup.
2. Flatness: `--long` in-order events, printing buffered elements every tenth
   of the stream; the numbers must stay flat.
"""

from __future__ import annotations

import argparse
import random
import time

from operators.interval_join import IntervalJoin

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


def throughput(left: int, right: int, keys: int) -> None:
    stream = events(left, right, keys)
    join = IntervalJoin(LOWER_MS, UPPER_MS)
    start = time.perf_counter()
    pairs = drive(join, stream)
    elapsed = time.perf_counter() - start
    print(
        f"throughput: {len(stream):,} events over {keys:,} keys in {elapsed:.2f} s = "
        f"{len(stream) / elapsed:,.0f} events/s; {pairs:,} pairs; "
        f"{join.state_size():,} elements buffered at the end"
    )


def flatness(total: int, keys: int) -> None:
    join = IntervalJoin(LOWER_MS, UPPER_MS)
    chunk = max(1, total // 10)
    sizes = []
    start = time.perf_counter()
    for offset in range(0, total, chunk):
        stream = [(s, k, ts + offset, v) for s, k, ts, v in events(chunk * 5 // 6, chunk // 6, keys, seed=offset)]
        drive(join, stream)
        sizes.append(join.state_size())
    elapsed = time.perf_counter() - start
    print(f"flatness: {total:,} in-order events in {elapsed:.1f} s; buffered after each tenth: {sizes}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--left", type=int, default=1_000_000)
    parser.add_argument("--right", type=int, default=200_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--long", type=int, default=10_000_000)
    args = parser.parse_args()
    throughput(args.left, args.right, args.keys)
    if args.long:
        flatness(args.long, args.keys)


if __name__ == "__main__":
    main()

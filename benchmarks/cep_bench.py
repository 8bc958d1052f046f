"""Throughput and state size of the CEP operator core, driven directly.

    python -m benchmarks.cep_bench [--events N] [--keys N] [--frauds N] [--bound MS]

The fraud pattern: a login from a location new to the user, or with failed
attempts, strictly followed by a transaction over 10,000 within 10 minutes.
`--events` events over `--keys` users, one event per millisecond of event
time, arriving out of order by up to `--bound` ms; the watermark
(max timestamp - bound - 1) advances before every element, as the wiring does,
which is the costliest case for the buffer. `--frauds` planted scenarios must
all be found and nothing else. The "new location" flag is computed while
generating (upstream of CEP, as in Flink: a condition sees only the partial
match), so the numbers are for the CEP core alone.

Prints events/s per CPU second and per wall second (best of `--repeat`
runs: the machine may be shared), the peak of the operator's open state (buffered elements
plus partial matches) sampled every 1% of the stream, and the final state.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Optional

from operators.cep.operator import CepOperator
from operators.cep.patterns import Pattern
from operators.time.eventtime import MAX_WATERMARK

MINUTE = 60_000
LOCATIONS = ("berlin", "paris", "london", "lima", "tokyo", "sydney")


class Txn:
    """A login or transaction event (as the flows' events, minus unused fields)."""

    __slots__ = ("id", "user", "kind", "ts", "location", "failed_attempts", "amount", "new_location")

    def __init__(self, id: int, user: str, kind: str, ts: int, location: str, failed: int, amount: float, new: bool) -> None:
        self.id, self.user, self.kind, self.ts = id, user, kind, ts
        self.location, self.failed_attempts, self.amount, self.new_location = location, failed, amount, new


FRAUD = (
    Pattern.begin("login")
    .where(lambda e: e.kind == "login" and (e.new_location or e.failed_attempts > 0))
    .next("tx")
    .where(lambda e: e.kind == "transaction" and e.amount > 10_000)
    .within(10 * MINUTE)
)


def generate(events: int, keys: int, frauds: int, bound: int, seed: int = 7) -> tuple[list[Txn], set[tuple[int, int]]]:
    """Events in arrival order (timestamps jittered by up to `bound`) and the
    planted (login id, transaction id) pairs."""
    rng = random.Random(seed)
    users = [f"u{i:05d}" for i in range(keys)]
    home = {u: LOCATIONS[i % 3] for i, u in enumerate(users)}
    seen: dict[str, set[str]] = {}
    plant_at = set(rng.sample(range(events // 10, events - 1), frauds))  # skipped if the user is new
    out: list[Txn] = []
    planted: set[tuple[int, int]] = set()
    quiet_until: dict[str, int] = {}
    active: set[str] = set()
    ts = 0
    while len(out) < events:
        ts += 1
        user = users[rng.randrange(keys)]
        if quiet_until.get(user, -1) >= ts:
            continue
        n = len(out)
        if n in plant_at and user in active and len(out) + 2 <= events:
            failed = rng.random() < 0.3
            loc = home[user] if failed else f"{LOCATIONS[3 + rng.randrange(3)]}-{n}"
            tx_ts = ts + rng.randint(1, 9 * MINUTE)
            login = Txn(n, user, "login", ts, loc, rng.randint(1, 3) if failed else 0, 0.0, False)
            tx = Txn(n + 1, user, "transaction", tx_ts, loc, 0, rng.uniform(10_001, 50_000), False)
            out += [login, tx]
            planted.add((login.id, tx.id))
            quiet_until[user] = tx_ts
            continue
        active.add(user)
        if rng.random() < 0.5:
            out.append(Txn(n, user, "login", ts, home[user], 0, 0.0, False))
        else:
            out.append(Txn(n, user, "transaction", ts, home[user], 0, rng.uniform(1, 9_000), False))
    out.sort(key=lambda e: e.ts)
    for e in out:
        known = seen.setdefault(e.user, set())
        e.new_location = bool(known) and e.location not in known
        known.add(e.location)
    jittered = sorted(out, key=lambda e: (e.ts + rng.randint(0, bound), e.id))
    return jittered, planted


def run(stream: list[Txn], bound: int, samples: int = 100) -> tuple[float, float, set[tuple[int, int]], int, int]:
    """(wall seconds, CPU seconds, alerts found, peak open state, final open state)."""
    op = CepOperator(FRAUD, select=lambda k, m: (m["login"][0].id, m["tx"][0].id))
    found: set[tuple[int, int]] = set()
    on_element = op.on_element
    on_watermark = op.on_watermark
    every = max(1, len(stream) // samples)
    peak = 0
    max_ts: Optional[int] = None
    start = time.perf_counter()
    cpu_start = time.process_time()
    for i, e in enumerate(stream):
        ts = e.ts
        if max_ts is not None:
            wm = max_ts - bound - 1
            if wm > op.watermark:
                on_watermark(wm)
        on_element(e.user, ts, e)
        if max_ts is None or ts > max_ts:
            max_ts = ts
        if op.emitted:
            found.update(item for port, (_, item) in op.emitted if port == "down")
            op.emitted.clear()
        if i % every == 0:
            peak = max(peak, op.state_size())
    on_watermark(MAX_WATERMARK)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    found.update(item for port, (_, item) in op.emitted if port == "down")
    return elapsed, cpu, found, peak, op.state_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--frauds", type=int, default=1_000)
    parser.add_argument("--bound", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    args = parser.parse_args()
    stream, planted = generate(args.events, args.keys, args.frauds, args.bound)
    runs = [run(stream, args.bound) for _ in range(args.repeat)]
    elapsed, cpu, found, peak, final = min(runs, key=lambda r: r[1])
    print(f"events           {len(stream):>12,}")
    print(f"keys             {args.keys:>12,}")
    print(f"wall seconds     {elapsed:>12.2f}  (best of {args.repeat} by CPU time)")
    print(f"CPU seconds      {cpu:>12.2f}")
    print(f"events/s (CPU)   {len(stream) / cpu:>12,.0f}")
    print(f"events/s (wall)  {len(stream) / elapsed:>12,.0f}")
    print(f"alerts           {len(found):>12,}  (planted {len(planted):,}, all found: {found == planted})")
    print(f"peak open state  {peak:>12,}")
    print(f"final open state {final:>12,}")


if __name__ == "__main__":
    main()

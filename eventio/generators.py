"""Deterministic event generators for demos, tests and benchmarks.

    python -m eventio.generators sessions --count 20000 --seed 7 --output events.jsonl
    python -m eventio.generators disorder --late-fraction 0.02 --topic events
    python -m eventio.generators correlated --output actions.jsonl --purchases-output purchases.jsonl
    python -m eventio.generators fraud --output fraud.jsonl --truth planted.jsonl
    python -m eventio.generators load --rate 20000 --seconds 30 --topic events

The same `--seed` gives the same events. Kafka output is keyed by `user_id`.
Every scenario is also a Python generator function returning event dicts.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import time
from typing import Any, Callable, Iterable, Iterator, Optional

BASE_TS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE = 60_000
CATEGORIES = ("electronics", "books", "clothing", "home", "sports", "toys")
REGIONS = ("emea", "amer", "apac")
LOCATIONS = ("berlin", "paris", "london", "new-york", "tokyo", "sydney", "lagos", "lima")

Record = dict[str, Any]


def _user_session(rnd: random.Random, user: str, start: int, seq: Iterator[int]) -> list[Record]:
    """One session: login, page views and idles, maybe purchases, logout."""
    ts = start
    region = REGIONS[int(user[1:]) % len(REGIONS)]
    events = [_ev(next(seq), user, "login", ts, region=region, location=LOCATIONS[int(user[1:]) % 4])]
    for _ in range(rnd.randint(2, 12)):
        ts += rnd.randint(5_000, 4 * MINUTE)
        kind = rnd.choices(("page_view", "purchase", "idle"), weights=(80, 8, 12))[0]
        extra: dict[str, Any] = {"category": rnd.choice(CATEGORIES), "region": region}
        if kind == "purchase":
            extra["amount"] = round(rnd.uniform(5, 500), 2)
        extra["value"] = round(rnd.uniform(0, 100), 2)
        events.append(_ev(next(seq), user, kind, ts, **extra))
    ts += rnd.randint(1_000, MINUTE)
    events.append(_ev(next(seq), user, "logout", ts, region=region))
    return events


def _ev(n: int, user: str, kind: str, ts: int, **fields: Any) -> Record:
    return {"event_id": f"e{n:08d}", "user_id": user, "event_type": kind, "timestamp": ts, **fields}


def _counter() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def sessions(count: int = 20_000, seed: int = 7, users: int = 500) -> Iterator[Record]:
    """About `count` user-session events in timestamp order: each user has
    sessions separated by breaks of 20 minutes to 3 hours."""
    rnd = random.Random(seed)
    seq = _counter()
    heap: list[tuple[int, int, Record]] = []
    order = _counter()
    produced = 0
    next_start = {f"u{i:05d}": BASE_TS + rnd.randint(0, 30 * MINUTE) for i in range(users)}
    pending: list[tuple[int, str]] = [(t, u) for u, t in next_start.items()]
    heapq.heapify(pending)
    while produced < count and pending:
        start, user = heapq.heappop(pending)
        # Flush events that can no longer be overtaken by a later session.
        while heap and heap[0][0] <= start:
            yield heapq.heappop(heap)[2]
            produced += 1
            if produced >= count:
                return
        session = _user_session(rnd, user, start, seq)
        for e in session:
            heapq.heappush(heap, (e["timestamp"], next(order), e))
        heapq.heappush(pending, (session[-1]["timestamp"] + rnd.randint(20 * MINUTE, 180 * MINUTE), user))
    while heap and produced < count:
        yield heapq.heappop(heap)[2]
        produced += 1


def disorder(
    events: Iterable[Record],
    seed: int = 7,
    bound_ms: int = 2 * MINUTE,
    late_fraction: float = 0.02,
    late_by_ms: int = 30 * MINUTE,
) -> Iterator[Record]:
    """Reorder events within `bound_ms` and hold back `late_fraction` of them
    by more than `late_by_ms`, so they arrive after their windows closed."""
    rnd = random.Random(seed)
    heap: list[tuple[int, int, Record]] = []
    for i, e in enumerate(events):
        late = rnd.random() < late_fraction
        delay = late_by_ms + rnd.randint(0, late_by_ms) if late else rnd.randint(0, bound_ms)
        heapq.heappush(heap, (e["timestamp"] + delay, i, e))
        while heap and heap[0][0] <= e["timestamp"]:
            yield heapq.heappop(heap)[2]
    while heap:
        yield heapq.heappop(heap)[2]


def correlated(
    count: int = 10_000, seed: int = 7, users: int = 200, purchase_fraction: float = 0.2
) -> tuple[list[Record], list[Record]]:
    """User actions and purchases by the same users, a purchase within ±5
    minutes of some action of its user; returns (actions, purchases)."""
    rnd = random.Random(seed)
    actions: list[Record] = []
    purchases: list[Record] = []
    ts = BASE_TS
    for n in range(count):
        ts += rnd.randint(0, 2_000)
        user = f"u{rnd.randrange(users):05d}"
        kind = rnd.choice(("page_view", "add_to_cart", "click"))
        actions.append(_ev(n, user, kind, ts, category=rnd.choice(CATEGORIES)))
        if rnd.random() < purchase_fraction:
            pts = ts + rnd.randint(-5 * MINUTE, 5 * MINUTE)
            purchases.append(
                {
                    "event_id": f"p{len(purchases):08d}",
                    "user_id": user,
                    "event_type": "purchase",
                    "timestamp": pts,
                    "amount": round(rnd.uniform(5, 900), 2),
                }
            )
    purchases.sort(key=lambda p: p["timestamp"])
    return actions, purchases


def fraud(count: int = 10_000, seed: int = 7, users: int = 300, frauds: int = 25) -> tuple[list[Record], list[Record]]:
    """Normal logins and small transactions plus `frauds` planted scenarios:
    a login from a new location (or with failed attempts) strictly followed
    by a transaction over 10,000 within 10 minutes. Returns (events,
    planted) where planted holds the expected alerts' event ids."""
    rnd = random.Random(seed)
    home = {f"u{i:05d}": LOCATIONS[i % 3] for i in range(users)}
    events: list[Record] = []
    planted: list[Record] = []
    ts = BASE_TS
    seq = _counter()
    fraud_at = set(rnd.sample(range(count // 4, count), frauds))
    last_fraud_user_ts: dict[str, int] = {}
    visited: dict[str, set[str]] = {}
    for n in range(count):
        ts += rnd.randint(100, 3_000)
        user = rnd.choice(list(home))
        if n in fraud_at and ts - last_fraud_user_ts.get(user, -10**15) > 60 * MINUTE:
            last_fraud_user_ts[user] = ts
            visited.setdefault(user, set())
            unseen = [loc for loc in LOCATIONS[3:] if loc not in visited[user]]
            failed = rnd.random() < 0.3 or not unseen
            login = _ev(next(seq), user, "login", ts,
                        location=home[user] if failed else unseen[len(planted) % len(unseen)],
                        failed_attempts=rnd.randint(1, 4) if failed else 0)
            tx = _ev(next(seq), user, "transaction", ts + rnd.randint(MINUTE, 9 * MINUTE),
                     amount=round(rnd.uniform(10_001, 50_000), 2), location=login["location"])
            visited[user].add(login["location"])
            events += [login, tx]
            planted.append({"user_id": user, "login_event_id": login["event_id"],
                            "transaction_event_id": tx["event_id"], "amount": tx["amount"]})
            # Keep the user quiet until the transaction, so it strictly follows.
            last_fraud_user_ts[user] = tx["timestamp"]
            continue
        if ts <= last_fraud_user_ts.get(user, -1):
            continue
        if rnd.random() < 0.5:
            events.append(_ev(next(seq), user, "login", ts, location=home[user], failed_attempts=0))
        else:
            events.append(_ev(next(seq), user, "transaction", ts, amount=round(rnd.uniform(1, 9_000), 2),
                              location=home[user]))
    events.sort(key=lambda e: (e["timestamp"], e["event_id"]))
    return events, planted


def load(rate: float, seconds: float, seed: int = 7, users: int = 10_000) -> Iterator[Record]:
    """Events paced at `rate` per second of wall time for `seconds`; event
    timestamps are the wall time of their emission."""
    rnd = random.Random(seed)
    start = time.monotonic()
    t0 = time.time_ns() // 1_000_000
    n = 0
    total = int(rate * seconds)
    while n < total:
        due = start + n / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        yield _ev(n, f"u{rnd.randrange(users):05d}", rnd.choice(("page_view", "click", "purchase")),
                  t0 + int((time.monotonic() - start) * 1000), value=round(rnd.uniform(0, 100), 2),
                  category=rnd.choice(CATEGORIES))
        n += 1


class _Writer:
    """JSON lines to a file or a Kafka topic keyed by user_id, with progress."""

    def __init__(self, output: Optional[str], topic: Optional[str], bootstrap: str, total: Optional[int]):
        self.total = total
        self.count = 0
        self.file = open(output, "w", encoding="utf-8") if output else None
        self.topic = topic
        self.producer = None
        if not self.file:
            if not topic:
                raise SystemExit("give --output FILE or --topic TOPIC")
            from confluent_kafka import Producer

            self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})

    def write(self, record: Record) -> None:
        line = json.dumps(record, separators=(",", ":"))
        if self.file:
            self.file.write(line + "\n")
        else:
            assert self.producer is not None
            while True:
                try:
                    self.producer.produce(self.topic, line.encode(), key=str(record.get("user_id", "")).encode())
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.count += 1
        if self.total and self.total >= 100_000 and self.count % (self.total // 10) == 0:
            print(f"  {self.count:,}/{self.total:,} events", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.producer is not None:
            self.producer.flush(60)


def write_records(records: Iterable[Record], output: Optional[str], topic: Optional[str],
                  bootstrap: str, total: Optional[int] = None) -> int:
    """Write records to a file or topic; return how many were written."""
    writer = _Writer(output, topic, bootstrap, total)
    try:
        for r in records:
            writer.write(r)
    finally:
        writer.close()
    return writer.count


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eventio.generators", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=("sessions", "disorder", "correlated", "fraud", "load", *APP_SCENARIOS))
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--output", help="JSON-lines file to write")
    parser.add_argument("--topic", help="Kafka topic to write (keyed by user_id)")
    parser.add_argument("--bootstrap", default="localhost:9092")
    parser.add_argument("--bound-ms", type=int, default=2 * MINUTE, help="disorder bound")
    parser.add_argument("--late-fraction", type=float, default=0.02)
    parser.add_argument("--purchases-output", help="correlated: purchases file")
    parser.add_argument("--purchases-topic", help="correlated: purchases topic")
    parser.add_argument("--truth", help="fraud: file for the planted alerts")
    parser.add_argument("--rate", type=float, default=1000.0, help="load: events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="load: duration")
    _add_app_arguments(parser)
    args = parser.parse_args(argv)
    users: Callable[[int], int] = lambda d: args.users or d
    out = (args.output, args.topic, args.bootstrap)
    if args.scenario == "sessions":
        n = write_records(sessions(args.count, args.seed, users(500)), *out, total=args.count)
    elif args.scenario == "disorder":
        recs = disorder(sessions(args.count, args.seed, users(500)), args.seed, args.bound_ms, args.late_fraction)
        n = write_records(recs, *out, total=args.count)
    elif args.scenario == "correlated":
        actions, purchases = correlated(args.count, args.seed, users(200))
        n = write_records(actions, *out)
        n += write_records(purchases, args.purchases_output, args.purchases_topic, args.bootstrap)
    elif args.scenario == "fraud":
        events, planted = fraud(args.count, args.seed, users(300))
        n = write_records(events, *out)
        if args.truth:
            write_records(planted, args.truth, None, args.bootstrap)
    elif args.scenario in APP_SCENARIOS:
        n = APP_SCENARIOS[args.scenario](args, out)
    else:
        n = write_records(load(args.rate, args.seconds, args.seed, users(10_000)), *out,
                          total=int(args.rate * args.seconds))
    print(f"wrote {n:,} {args.scenario} events", file=sys.stderr)


# Scenarios of the application flows (flows/quarterly_reports.py ... flows/iot_anomaly.py).

DAY = 24 * 60 * MINUTE
SHOP_TYPES = ("page_view", "click", "add_to_cart", "purchase")
KNOWN_TYPES = ("page_view", "click", "add_to_cart", "purchase", "login", "logout", "idle", "role_change")


def quarterly(count: int = 20_000, seed: int = 7, users: int = 500, days: int = 730) -> Iterator[Record]:
    """Purchases (with `amount`) and page views (without) from every region,
    in timestamp order, spread over `days` days from 2024-01-01 so they span
    several calendar quarters."""
    rnd = random.Random(seed)
    step = max(1, days * DAY // max(count, 1))
    ts = BASE_TS
    for n in range(count):
        ts += rnd.randint(0, 2 * step)
        user = f"u{rnd.randrange(users):05d}"
        if rnd.random() < 0.8:
            yield _ev(n, user, "purchase", ts, region=rnd.choice(REGIONS), amount=round(rnd.uniform(1, 500), 2))
        else:
            yield _ev(n, user, "page_view", ts, region=rnd.choice(REGIONS))


def bursts(count: int = 20_000, seed: int = 7, users: int = 50) -> Iterator[Record]:
    """Users active in bursts of 1 to 250 events (some longer than a batch of
    100), interleaved, in timestamp order, each with an `amount`."""
    rnd = random.Random(seed)
    ts = BASE_TS
    left: dict[str, int] = {}
    for n in range(count):
        ts += rnd.randint(20, 1_500)
        if not left or (len(left) < 5 and rnd.random() < 0.05):
            user = f"u{rnd.randrange(users):05d}"
            left[user] = left.get(user, 0) + rnd.choice((rnd.randint(1, 30), rnd.randint(90, 250)))
        user = rnd.choice(sorted(left))
        left[user] -= 1
        if left[user] <= 0:
            del left[user]
        yield _ev(n, user, rnd.choice(SHOP_TYPES), ts, amount=round(rnd.uniform(1, 100), 2))


def mixed(count: int = 20_000, seed: int = 7, users: int = 300) -> Iterator[Record]:
    """Shop events in timestamp order with what the multi-output flow sorts
    out: about 2% of an unknown type, 1% with a negative amount, purchases of
    up to 2,000 (some high-value), 3% by admin users."""
    rnd = random.Random(seed)
    ts = BASE_TS
    for n in range(count):
        ts += rnd.randint(0, 400)
        user = f"u{rnd.randrange(users):05d}"
        fields: dict[str, Any] = {"category": rnd.choice(CATEGORIES)}
        roll = rnd.random()
        if roll < 0.02:
            kind = rnd.choice(("teleport", "unknown", "PURCHASE"))
        elif roll < 0.05:
            kind = rnd.choice(("login", "role_change"))
            fields["user_type"] = "admin"
        else:
            kind = rnd.choice(KNOWN_TYPES[:6])
        if kind == "purchase":
            fields["amount"] = round(rnd.uniform(5, 2_000), 2)
        if rnd.random() < 0.01:
            fields["amount"] = -round(rnd.uniform(1, 100), 2)
        yield _ev(n, user, kind, ts, **fields)


def shoppers(count: int = 20_000, seed: int = 7, users: int = 200) -> Iterator[Record]:
    """Shopping sessions (login, page views, clicks, add-to-carts, purchases
    with `amount`, every event with a `category`) separated by breaks of 10
    minutes to 3 hours, in timestamp order."""
    rnd = random.Random(seed)
    seq = _counter()
    heap: list[tuple[int, int, Record]] = []
    for u in range(users):
        user = f"u{u:05d}"
        ts = BASE_TS + rnd.randint(0, 60 * MINUTE)
        for _ in range(count // (users * 4) + 1):
            heapq.heappush(heap, (ts, next(seq), _ev(0, user, "login", ts, category=rnd.choice(CATEGORIES))))
            for _ in range(rnd.randint(3, 12)):
                ts += rnd.randint(2_000, 3 * MINUTE)
                kind = rnd.choices(SHOP_TYPES, weights=(50, 30, 12, 8))[0]
                fields: dict[str, Any] = {"category": rnd.choice(CATEGORIES)}
                if kind == "purchase":
                    fields["amount"] = round(rnd.uniform(5, 400), 2)
                heapq.heappush(heap, (ts, next(seq), _ev(0, user, kind, ts, **fields)))
            ts += rnd.randint(10 * MINUTE, 180 * MINUTE)
    n = 0
    while heap and n < count:
        event = heapq.heappop(heap)[2]
        event["event_id"] = f"e{n:08d}"
        yield event
        n += 1


def tenants(count: int = 20_000, seed: int = 7, tenant_count: int = 8, users: int = 500) -> Iterator[Record]:
    """Events of `tenant_count` tenants of very different volume (tenant
    `t00` sends the most), in timestamp order; 1% have no `tenant_id`."""
    rnd = random.Random(seed)
    names = [f"t{i:02d}" for i in range(tenant_count)]
    weights = [1 / (i + 1) for i in range(tenant_count)]
    ts = BASE_TS
    for n in range(count):
        ts += rnd.randint(0, 50)
        fields: dict[str, Any] = {}
        if rnd.random() >= 0.01:
            fields["tenant_id"] = rnd.choices(names, weights)[0]
        yield _ev(n, f"u{rnd.randrange(users):05d}", rnd.choice(("page_view", "click", "purchase", "idle")),
                  ts, **fields)


def tenant_configs(tenant_count: int = 8) -> list[Record]:
    """Tenant configurations for `tenants`: the default and a few tenants
    with their own limits, tier and dropped event types."""
    configs: list[Record] = [
        {"tenant_id": "*", "rate_per_second": 100, "burst": 200, "tier": "standard", "drop_event_types": []}
    ]
    for i in range(0, tenant_count, 3):
        configs.append({"tenant_id": f"t{i:02d}", "rate_per_second": 20 * (i + 1), "burst": 50 * (i + 1),
                        "tier": "gold" if i % 2 == 0 else "silver", "drop_event_types": ["idle"]})
    return configs


def iot(count: int = 20_000, seed: int = 7, devices: int = 20) -> Iterator[Record]:
    """Sensor readings (`device_id`, `value`) every 5 to 15 seconds per
    device, in timestamp order; each device has its own level and noise, and
    about one minute in 60 carries a spike of 4 to 8 standard deviations."""
    rnd = random.Random(seed)
    level = {f"d{i:04d}": (rnd.uniform(10, 90), rnd.uniform(0.5, 3)) for i in range(devices)}
    heap = [(BASE_TS + rnd.randint(0, 15_000), d) for d in level]
    heapq.heapify(heap)
    spiked: dict[tuple[str, int], float] = {}
    for n in range(count):
        ts, device = heapq.heappop(heap)
        mean, sd = level[device]
        minute = ts // MINUTE
        if (device, minute) not in spiked:
            spiked[(device, minute)] = rnd.choice((-1, 1)) * rnd.uniform(4, 8) * sd if rnd.random() < 1 / 60 else 0.0
        value = round(rnd.gauss(mean, sd) + spiked[(device, minute)], 3)
        yield _ev(n, f"owner-{device}", "reading", ts, device_id=device, value=value)
        heapq.heappush(heap, (ts + rnd.randint(5_000, 15_000), device))


def _add_app_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenants", type=int, default=8, help="tenants: number of tenants")
    parser.add_argument("--config-output", help="tenants: file for the tenant configurations")
    parser.add_argument("--devices", type=int, default=20, help="iot: number of devices")


def _write_tenants(args: argparse.Namespace, out: tuple[Optional[str], Optional[str], str]) -> int:
    if args.config_output:
        write_records(tenant_configs(args.tenants), args.config_output, None, args.bootstrap)
    return write_records(tenants(args.count, args.seed, args.tenants, args.users or 500), *out, total=args.count)


APP_SCENARIOS: dict[str, Callable[[argparse.Namespace, tuple[Optional[str], Optional[str], str]], int]] = {
    "quarterly": lambda a, out: write_records(quarterly(a.count, a.seed, a.users or 500), *out, total=a.count),
    "bursts": lambda a, out: write_records(bursts(a.count, a.seed, a.users or 50), *out, total=a.count),
    "mixed": lambda a, out: write_records(mixed(a.count, a.seed, a.users or 300), *out, total=a.count),
    "shoppers": lambda a, out: write_records(shoppers(a.count, a.seed, a.users or 200), *out, total=a.count),
    "tenants": _write_tenants,
    "iot": lambda a, out: write_records(iot(a.count, a.seed, a.devices), *out, total=a.count),
}


if __name__ == "__main__":
    main()

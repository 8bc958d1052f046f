"""Throughput and memory of the window operator core, called directly.

Each (scenario, key count) runs in its own process so peak RSS is its own.
Events are generated before timing and frozen out of the garbage collector's
view (`gc.freeze`), so only the operator's own objects cost collection time.
The watermark follows the stream with a bounded out-of-orderness of 2 s,
advanced after every element as the wiring does, and jumps to the maximum at
the end (closing every window).

    python benchmarks/window_core_bench.py [--events N] [--keys 1000,10000,1000000]
        [--scenarios tumbling,sessions,sliding,open-sessions] [--repeat R]

Scenarios, all counting per window: `tumbling` 1-minute windows; `sessions`
event-time sessions whose gap comes from each element (5 to 60 s); `sliding`
1-hour windows every 5 minutes; `open-sessions` sessions of 30 to 60 minutes
with keys visited round-robin, so every key holds one open session when the
loop ends (memory of N open sessions). Keys are otherwise drawn at random;
with as many keys as events, nearly every event opens, fires and frees its
own window. Reported: events/s over the element loop (watermark calls and
firings included; best of R runs), events/s including the final flush, open
windows before the flush, results, peak RSS and RSS of the input alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.time.eventtime import MAX_WATERMARK  # noqa: E402
from operators.windows.assigners import (  # noqa: E402
    EventTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    WindowAssigner,
)
from operators.windows.functions import Aggregate  # noqa: E402
from operators.windows.operator import WindowOperator  # noqa: E402

BOUND_MS = 2_000
SCENARIOS = ("tumbling", "sessions", "sliding", "open-sessions")


def session_gap(value: tuple[int, int]) -> int:
    return value[1]


def assigner_for(scenario: str) -> WindowAssigner:
    if scenario == "tumbling":
        return TumblingEventTimeWindows(60_000)
    if scenario in ("sessions", "open-sessions"):
        return EventTimeSessionWindows.with_dynamic_gap(session_gap)
    return SlidingEventTimeWindows(3_600_000, 300_000)


def make_events(n: int, keys: int, scenario: str) -> list[tuple[str, int, Any]]:
    """`n` events over `keys` users; 10 events per ms of event time for
    sliding windows (so hours pass), one per ms otherwise; up to 1 s of
    disorder."""
    rng = random.Random(7)
    names = [f"user-{i:07d}" for i in range(keys)]
    step = 10 if scenario == "sliding" else 1
    gaps = (1_800_000, 3_600_000) if scenario == "open-sessions" else (5_000, 60_000)
    base = 1_700_000_000_000
    events = []
    for i in range(n):
        ts = base + i * step - rng.randrange(1000)
        key = names[i % keys] if scenario == "open-sessions" else names[rng.randrange(keys)]
        events.append((key, ts, (i, rng.randrange(*gaps))))
    return events


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(scenario: str, keys: int, n: int) -> dict[str, Any]:
    events = make_events(n, keys, scenario)
    gc.collect()
    gc.freeze()
    input_rss = rss_mb()
    core = WindowOperator(assigner_for(scenario), aggregate=Aggregate.count())
    on_element = core.on_element
    on_watermark = core.on_watermark
    max_ts = -(2**63)
    fired = 0
    start = time.perf_counter()
    for key, ts, value in events:
        on_element(key, ts, value)
        if ts > max_ts:
            max_ts = ts
            wm = ts - BOUND_MS - 1
            if wm > core.watermark:
                on_watermark(wm)
        if len(core.emitted) > 10_000:
            fired += len(core.emitted)
            core.emitted = []
    loop_s = time.perf_counter() - start
    open_windows = core.state_size()
    open_rss = current_rss_mb()
    on_watermark(MAX_WATERMARK)
    fired += len(core.emitted)
    total_s = time.perf_counter() - start
    return {
        "scenario": scenario,
        "keys": keys,
        "events": n,
        "events_per_s": round(n / loop_s),
        "events_per_s_with_flush": round(n / total_s),
        "open_windows": open_windows,
        "open_rss_mb": round(open_rss),
        "results": fired,
        "peak_rss_mb": round(rss_mb()),
        "input_rss_mb": round(input_rss),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", default="1000,10000,1000000")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--one", nargs=2, metavar=("SCENARIO", "KEYS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.events)))
        return
    header = (
        f"{'scenario':<14}{'keys':>9}{'events/s':>11}{'w/ flush':>11}{'open':>10}{'results':>10}"
        f"{'open MB':>9}{'peak MB':>9}{'input MB':>10}"
    )
    print(header)
    for scenario in args.scenarios.split(","):
        for keys in args.keys.split(","):
            runs = [
                json.loads(
                    subprocess.run(
                        [sys.executable, __file__, "--events", str(args.events), "--one", scenario, keys],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for _ in range(args.repeat)
            ]
            r = max(runs, key=lambda run: run["events_per_s"])
            print(
                f"{r['scenario']:<14}{r['keys']:>9}{r['events_per_s']:>11}{r['events_per_s_with_flush']:>11}"
                f"{r['open_windows']:>10}{r['results']:>10}{r['open_rss_mb']:>9}{r['peak_rss_mb']:>9}"
                f"{r['input_rss_mb']:>10}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""The join, co-process and broadcast steps in real Bytewax dataflows, on one
worker and on two (which must give the same results), and across a resume."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main

from operators.joins.wiring import broadcast_process, co_process, interval_join, window_join
from operators.process.broadcast_state import BroadcastContext, KeyedBroadcastContext, KeyedBroadcastProcessFunction
from operators.process.co_process import Collector, Context, KeyedCoProcessFunction
from operators.time.eventtime import BoundedOutOfOrderness, MAX_WATERMARK
from operators.windows.assigners import TumblingEventTimeWindows
from operators.windows.results import WindowResult
from tests.join_reference import all_pairs

Item = tuple[str, int, str]
"""(key, ts, id)."""


def generated(side: int, count: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    return [(f"k{rng.randrange(6)}", rng.randrange(2_000), f"{'LR'[side]}{i}") for i in range(count)]


def run(flow: Dataflow, workers: int) -> None:
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)


def two_inputs(
    flow: Dataflow, left: list[Any], right: list[Any]
) -> tuple[op.KeyedStream[Item], op.KeyedStream[Item]]:
    streams = []
    for side, items in enumerate((left, right)):
        src = op.input(f"in{side}", flow, TestingSource(items, batch_size=7))
        streams.append(op.key_on(f"key{side}", src, lambda item: item[0]))
    return streams[0], streams[1]


def collect(flow: Dataflow, name: str, stream: Any) -> list[Any]:
    sink: list[Any] = []
    op.output(name, stream, TestingSink(sink))
    return sink


TS: Callable[[Item], int] = lambda item: item[1]
NO_LATENESS = lambda: BoundedOutOfOrderness(10_000)  # noqa: E731 — wider than the data


@pytest.mark.parametrize("workers", [1, 2])
def test_interval_join_gives_every_pair_on_one_and_two_workers(workers: int) -> None:
    left, right = generated(0, 150, 1), generated(1, 150, 2)
    flow = Dataflow("interval")
    lstream, rstream = two_inputs(flow, left, right)
    out = interval_join(
        "join", lstream, rstream, lower_ms=-30, upper_ms=20, upper_inclusive=False,
        timestamp_of=TS, watermarks=NO_LATENESS, shards=4,
        select=lambda l, r: (l[2], r[2]),
    )
    down = collect(flow, "down", out.down)
    late = collect(flow, "late", out.late)
    run(flow, workers)
    events = [(0, k, ts, i) for k, ts, i in left] + [(1, k, ts, i) for k, ts, i in right]
    assert sorted(down) == sorted(all_pairs(events, -30, 20, True, False).elements())
    assert late == []


def test_interval_join_routes_late_elements() -> None:
    left: list[Item] = [("k", 1_000 + 10 * i, f"L{i}") for i in range(50)] + [("k", 0, "late")]
    right: list[Item] = [("k", 1_005, "R0"), ("k", 50_000, "R1")]
    flow = Dataflow("late")
    lstream, rstream = two_inputs(flow, left, right)
    out = interval_join(
        "join", lstream, rstream, lower_ms=0, upper_ms=5, timestamp_of=TS,
        watermarks=lambda: BoundedOutOfOrderness(100),
    )
    down = collect(flow, "down", out.down)
    late = collect(flow, "late", out.late)
    run_main(flow)
    assert late == [("k", (0, ("k", 0, "late")))]
    assert [(k, (l[2], r[2])) for k, (l, r) in down] == [("k", ("L0", "R0"))]


def test_bad_interval_is_refused_while_building() -> None:
    flow = Dataflow("bad")
    lstream, rstream = two_inputs(flow, [], [])
    with pytest.raises(ValueError, match="lower_ms"):
        interval_join("join", lstream, rstream, lower_ms=5, upper_ms=1, timestamp_of=TS, watermarks=NO_LATENESS)


@pytest.mark.parametrize("workers", [1, 2])
def test_window_join_pairs_elements_sharing_a_tumbling_window(workers: int) -> None:
    left, right = generated(0, 80, 3), generated(1, 80, 4)
    flow = Dataflow("window")
    lstream, rstream = two_inputs(flow, left, right)
    out = window_join(
        "join", lstream, rstream, assigner=TumblingEventTimeWindows(100),
        timestamp_of=TS, watermarks=NO_LATENESS, shards=3,
    )
    down = collect(flow, "down", out.down)
    run(flow, workers)
    got = sorted((key, r.window_start, r.value[0][2], r.value[1][2]) for key, r in down)
    expected = sorted(
        (lk, lts // 100 * 100, li, ri)
        for lk, lts, li in left
        for rk, rts, ri in right
        if lk == rk and lts // 100 == rts // 100
    )
    assert got == expected
    assert all(isinstance(r, WindowResult) and not r.is_late_update for _, r in down)


class Counts(KeyedCoProcessFunction[Item, Item]):
    """Counts each side per key; reports at the end of input, and each right
    element that arrives after a left one on the side output `after`."""

    def process_element1(self, value: Item, ctx: Context, out: Collector) -> None:
        self._count(0, ctx)

    def process_element2(self, value: Item, ctx: Context, out: Collector) -> None:
        self._count(1, ctx)

    def _count(self, side: int, ctx: Context) -> None:
        counts = ctx.state.setdefault("counts", [0, 0])
        counts[side] += 1
        ctx.timer_service.register_event_time_timer(MAX_WATERMARK)
        if side == 1 and counts[0]:
            ctx.output("after", ctx.timestamp)

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        out.collect(tuple(ctx.state["counts"]))


@pytest.mark.parametrize("workers", [1, 2])
def test_co_process_shares_state_per_key_and_fires_timers_at_end_of_input(workers: int) -> None:
    left, right = generated(0, 60, 5), generated(1, 40, 6)
    flow = Dataflow("co")
    lstream, rstream = two_inputs(flow, left, right)
    out = co_process(
        "co", lstream, rstream, function=Counts(), side_outputs=["after"],
        timestamp_of=TS, watermarks=NO_LATENESS, shards=4,
    )
    down = collect(flow, "down", out.down)
    after = collect(flow, "after", out.side["after"])
    run(flow, workers)
    keys = {k for k, _, _ in left + right}
    expected = {k: (sum(1 for x in left if x[0] == k), sum(1 for x in right if x[0] == k)) for k in keys}
    assert sorted(down) == sorted(expected.items())
    assert all(key in keys for key, _ in after)


class Rules(KeyedBroadcastProcessFunction[Item, tuple[str, int]]):
    """Rules `(name, threshold)`; each key reports, at the end of input, its
    element count and the rules it then sees."""

    def process_broadcast_element(self, value: tuple[str, int], ctx: BroadcastContext) -> None:
        name, threshold = value
        ctx.broadcast_state[name] = threshold

    def process_element(self, value: Item, ctx: KeyedBroadcastContext, out: Collector) -> None:
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        ctx.timer_service.register_event_time_timer(MAX_WATERMARK)

    def on_timer(self, timestamp: int, ctx: KeyedBroadcastContext, out: Collector) -> None:
        out.collect((ctx.state["count"], sorted(ctx.broadcast_state.items())))


def broadcast_flow(events: list[Any], rules: list[Any]) -> tuple[Dataflow, list[Any]]:
    flow = Dataflow("broadcast")
    src = op.input("events", flow, TestingSource(events, batch_size=3))
    keyed = op.key_on("key", src, lambda item: item[0])
    rule_stream = op.input("rules", flow, TestingSource(rules))
    out = broadcast_process(
        "rules", keyed, rule_stream, function=Rules(), timestamp_of=TS,
        watermarks=NO_LATENESS, shards=8,
    )
    return flow, collect(flow, "down", out.down)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_shard_receives_every_broadcast_element(workers: int) -> None:
    events = generated(0, 100, 7)
    rules = [("r1", 5), ("r2", 7), ("r1", 9)]
    flow, down = broadcast_flow(events, rules)
    run(flow, workers)
    keys = {k for k, _, _ in events}
    assert sorted(down) == sorted(
        (k, (sum(1 for e in events if e[0] == k), [("r1", 9), ("r2", 7)])) for k in keys
    )


def test_broadcast_state_survives_an_abort_and_resume(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    events: list[Any] = generated(0, 80, 8)
    crashing = events[:60] + [TestingSource.ABORT()] + events[60:]
    rules = [("r1", 5), ("r2", 7)]
    flow, first = broadcast_flow(crashing, rules)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    assert first == []
    flow, second = broadcast_flow(crashing, rules)
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    keys = {k for k, _, _ in events}
    assert sorted(second) == sorted(
        (k, (sum(1 for e in events if e[0] == k), [("r1", 5), ("r2", 7)])) for k in keys
    )

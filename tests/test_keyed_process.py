"""Keyed process function: state with a processing-time TTL against a plain
per-key model, event-time timers, snapshot and restore."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.process.co_process import Collector, Context, TimeDomain
from operators.process.keyed_process import KeyedProcess, KeyedProcessFunction
from operators.time.eventtime import MAX_WATERMARK

TTL = 100


class CountWithTtl(KeyedProcessFunction[int]):
    """Counts a key's elements; the count is forgotten `TTL` ms of processing
    time after the key's last element."""

    def process_element(self, value: int, ctx: Context, out: Collector) -> None:
        state = ctx.state
        timers = ctx.timer_service
        if "expires" in state:
            timers.delete_processing_time_timer(state["expires"])
        state["count"] = state.get("count", 0) + 1
        state["expires"] = timers.current_processing_time() + TTL
        timers.register_processing_time_timer(state["expires"])
        out.collect(state["count"])

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        assert ctx.time_domain is TimeDomain.PROCESSING_TIME
        ctx.state.clear()
        ctx.output("expired", timestamp)


ops = st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 150)), max_size=60)


def model(items: list[tuple[str, int]]) -> list[tuple[str, Any]]:
    """A key's count restarts once `TTL` ms passed since its last element;
    the expiry is reported when processing time first reaches it."""
    now = 0
    last: dict[str, int] = {}
    counts: dict[str, int] = {}
    out: list[tuple[str, Any]] = []
    for key, advance in items:
        now += advance
        for k in sorted(last, key=lambda k: (last[k], k)):
            if last[k] + TTL <= now:
                out.append(("expired", (k, last[k] + TTL)))
                del last[k]
                del counts[k]
        counts[key] = counts.get(key, 0) + 1
        last[key] = now
        out.append(("down", (key, counts[key])))
    return out


def drive(items: list[tuple[str, int]], cut: int = -1) -> list[tuple[str, Any]]:
    now = [0]
    make = lambda: KeyedProcess(CountWithTtl(), clock=lambda: now[0], side_outputs=("expired",))  # noqa: E731
    core = make()
    out: list[tuple[str, Any]] = []
    for i, (key, advance) in enumerate(items):
        if i == cut:
            state = pickle.dumps(core.snapshot())
            core = make()
            core.restore(pickle.loads(state))
        now[0] += advance
        due = core.next_processing_time()
        if due is not None and due <= now[0]:
            core.on_processing_time(now[0])
        core.on_element(key, 0, 0)
        out += core.emitted
        core.emitted = []
    return out


@settings(max_examples=200, deadline=None)
@given(items=ops, cut=st.integers(-1, 60))
def test_state_expires_after_its_ttl_of_processing_time(items: list[tuple[str, int]], cut: int) -> None:
    assert drive(items, cut) == model(items)


class Remind(KeyedProcessFunction[str]):
    """Emits each element again at event time `ts + 10`."""

    def process_element(self, value: str, ctx: Context, out: Collector) -> None:
        ctx.state.setdefault("pending", []).append(value)
        ctx.timer_service.register_event_time_timer(ctx.timestamp + 10)

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        out.collect((timestamp, ctx.state.pop("pending")))


def test_event_time_timers_fire_with_the_watermark_and_empty_state_is_freed() -> None:
    core = KeyedProcess(Remind(), clock=lambda: 0)
    core.on_element("k", 5, "a")
    core.on_element("k", 5, "b")
    core.on_element("j", 30, "c")
    core.on_watermark(14)
    assert core.emitted == []
    core.on_watermark(15)
    assert core.emitted == [("down", ("k", (15, ["a", "b"])))]
    assert core.state_size() == 2  # key j's state and its timer
    core.on_watermark(MAX_WATERMARK)
    assert core.emitted[-1] == ("down", ("j", (40, ["c"])))
    assert core.state_size() == 0


class SeeWatermark(KeyedProcessFunction[str]):
    """Registers a timer at the element's time; reports the watermark its timer fires at."""

    def process_element(self, value: str, ctx: Context, out: Collector) -> None:
        ctx.timer_service.register_event_time_timer(ctx.timestamp)

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        out.collect((timestamp, ctx.timer_service.current_watermark()))


def test_a_batched_advance_fires_each_timer_at_the_first_watermark_past_it() -> None:
    """The wiring hands a shard the watermark values it skipped: a timer sees
    the first of them at or past its time, as with Flink's per-event watermarks."""
    core = KeyedProcess(SeeWatermark(), clock=lambda: 0)
    for key, ts in [("a", 10), ("b", 12), ("c", 19), ("d", 30)]:
        core.on_element(key, ts, "x")
    core.advance(25, [3, 9, 11, 13, 20, 25])
    assert core.emitted == [("down", ("a", (10, 11))), ("down", ("b", (12, 13))), ("down", ("c", (19, 20)))]
    assert core.watermark == 25
    core.emitted = []
    core.on_element("e", 7, "x")  # a timer the watermark already passed fires at the next one
    core.advance(40, [20, 26, 31, 40])
    assert core.emitted == [("down", ("e", (7, 26))), ("down", ("d", (30, 31)))]


def test_only_keyed_process_functions_are_accepted() -> None:
    with pytest.raises(TypeError):
        KeyedProcess(lambda v: v, clock=lambda: 0)  # type: ignore[arg-type]

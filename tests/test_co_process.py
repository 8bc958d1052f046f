"""Keyed co-process core: timer semantics against a brute-force model,
combine-latest against enumeration, state, side outputs, snapshot/restore."""

from __future__ import annotations

import pickle
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.process.co_process import Collector, Context, KeyedCoProcess, KeyedCoProcessFunction, TimeDomain
from operators.time.eventtime import MAX_WATERMARK

settings.register_profile("co_process", max_examples=200, deadline=None)
settings.load_profile("co_process")

KEYS = ("a", "b", "c")


class CombineLatest(KeyedCoProcessFunction[Any, Any]):
    """Keeps the latest value of each side per key and emits
    `(latest_left, latest_right)` on every element; a side not seen yet is
    None."""

    def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
        state = ctx.state
        state["left"] = value
        out.collect((value, state.get("right")))

    def process_element2(self, value: Any, ctx: Context, out: Collector) -> None:
        state = ctx.state
        state["right"] = value
        out.collect((state.get("left"), value))


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Scripted(KeyedCoProcessFunction[Any, Any]):
    """Does what each element says: `(action, ts)` with action one of
    reg_event, del_event, reg_proc, del_proc; timers report on `down`."""

    def _act(self, value: tuple[str, int], ctx: Context, out: Collector) -> None:
        action, ts = value
        timers = ctx.timer_service
        {
            "reg_event": timers.register_event_time_timer,
            "del_event": timers.delete_event_time_timer,
            "reg_proc": timers.register_processing_time_timer,
            "del_proc": timers.delete_processing_time_timer,
        }[action](ts)

    process_element1 = _act
    process_element2 = _act

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        assert ctx.timestamp == timestamp
        out.collect((ctx.time_domain, timestamp))


action = st.tuples(st.sampled_from(["reg_event", "del_event", "reg_proc", "del_proc"]), st.integers(0, 25))
operation = st.one_of(
    st.tuples(st.just("element"), st.integers(0, 1), st.sampled_from(KEYS), action),
    st.tuples(st.just("watermark"), st.integers(0, 10)),
    st.tuples(st.just("clock"), st.integers(0, 10)),
)


def model(operations: list[tuple[Any, ...]]) -> list[list[tuple[str, tuple[TimeDomain, int]]]]:
    """What fires after each operation: pending timers are a set of
    (domain, key, ts); a watermark that strictly advances, or any look at the
    clock, fires every pending timer of that domain with ts <= the time,
    earliest first."""
    pending: set[tuple[TimeDomain, str, int]] = set()
    times = {TimeDomain.EVENT_TIME: -1, TimeDomain.PROCESSING_TIME: 0}
    fired_per_step = []
    for op in operations:
        fired: list[tuple[str, tuple[TimeDomain, int]]] = []
        if op[0] == "element":
            _, _, key, (what, ts) = op
            domain = TimeDomain.EVENT_TIME if what.endswith("event") else TimeDomain.PROCESSING_TIME
            if what.startswith("reg"):
                pending.add((domain, key, ts))
            else:
                pending.discard((domain, key, ts))
        else:
            domain = TimeDomain.EVENT_TIME if op[0] == "watermark" else TimeDomain.PROCESSING_TIME
            times[domain] += op[1]
            if domain is TimeDomain.EVENT_TIME and op[1] == 0:
                fired_per_step.append(fired)
                continue
            due = sorted((ts, key) for d, key, ts in pending if d == domain and ts <= times[domain])
            for ts, key in due:
                pending.discard((domain, key, ts))
                fired.append(("down", (key, (domain, ts))))
        fired_per_step.append(fired)
    return fired_per_step


def drive(core: KeyedCoProcess, clock: FakeClock, operations: list[tuple[Any, ...]], wm: int) -> tuple[list[list[Any]], int]:
    outputs = []
    for op in operations:
        if op[0] == "element":
            _, side, key, value = op
            core.on_element(key, 0, value, side)
        elif op[0] == "watermark":
            wm += op[1]
            if wm > core.watermark:
                core.on_watermark(wm)
        else:
            clock.now += op[1]
            due = core.next_processing_time()
            if due is not None and due <= clock.now:
                core.on_processing_time(clock.now)
        outputs.append(core.emitted)
        core.emitted = []
    return outputs, wm


@given(st.lists(operation, max_size=50))
def test_timers_fire_once_when_their_time_is_reached_in_time_order(operations: list[tuple[Any, ...]]) -> None:
    clock = FakeClock()
    got, _ = drive(KeyedCoProcess(Scripted(), clock=clock), clock, operations, -1)
    expected = model(operations)
    assert [sorted(step) for step in got] == [sorted(step) for step in expected]
    for step in got:
        stamps = [ts for _, (_, (_, ts)) in step]
        assert stamps == sorted(stamps)


@given(st.lists(operation, max_size=50), st.integers(0, 50))
def test_snapshot_and_restore_mid_stream_changes_nothing(operations: list[tuple[Any, ...]], cut: int) -> None:
    clock = FakeClock()
    straight, _ = drive(KeyedCoProcess(Scripted(), clock=clock), clock, operations, -1)
    clock = FakeClock()
    first = KeyedCoProcess(Scripted(), clock=clock)
    before, wm = drive(first, clock, operations[:cut], -1)
    resumed = KeyedCoProcess(Scripted(), clock=clock)
    resumed.restore(pickle.loads(pickle.dumps(first.snapshot())))
    resumed.watermark = first.watermark
    after, _ = drive(resumed, clock, operations[cut:], wm)
    assert before + after == straight


@given(st.lists(st.tuples(st.integers(0, 1), st.sampled_from(KEYS), st.integers()), max_size=40))
def test_combine_latest_emits_the_latest_of_both_sides_on_every_element(
    events: list[tuple[int, str, int]]
) -> None:
    core = KeyedCoProcess(CombineLatest(), clock=FakeClock())
    for side, key, value in events:
        core.on_element(key, 0, value, side)
    expected = []
    for i, (_, key, _) in enumerate(events):
        seen = [(s, v) for s, k, v in events[: i + 1] if k == key]
        latest: list[Optional[int]] = [None, None]
        for s, v in seen:
            latest[s] = v
        expected.append(("down", (key, tuple(latest))))
    assert core.emitted == expected
    assert core.state_size() == len({key for _, key, _ in events})


class Expiring(KeyedCoProcessFunction[Any, Any]):
    """Counts elements per key; an event-time timer 10 ms after the first
    element reports the count on the side output and clears the key."""

    def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
        state = ctx.state
        if "count" not in state:
            ctx.timer_service.register_event_time_timer(ctx.timestamp + 10)
        state["count"] = state.get("count", 0) + 1
        assert ctx.current_key == value

    process_element2 = process_element1

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        ctx.output("counts", ctx.state["count"])
        ctx.state.clear()


def test_state_is_shared_by_both_sides_and_freed_when_cleared() -> None:
    core = KeyedCoProcess(Expiring(), clock=FakeClock(), side_outputs=["counts"])
    core.on_element("a", 100, "a", 0)
    core.on_element("a", 105, "a", 1)
    core.on_element("b", 107, "b", 1)
    assert core.state_size() == 4  # two keys with state, two timers
    core.on_watermark(110)
    assert core.emitted == [("counts", ("a", 2))]
    assert core.state_size() == 2
    core.on_watermark(MAX_WATERMARK)
    assert core.emitted == [("counts", ("a", 2)), ("counts", ("b", 1))]
    assert core.state_size() == 0


def test_undeclared_side_output_is_a_clear_error() -> None:
    core = KeyedCoProcess(Expiring(), clock=FakeClock())
    core.on_element("a", 100, "a", 0)
    with pytest.raises(ValueError, match="side output 'counts' is not declared"):
        core.on_watermark(200)


@pytest.mark.parametrize("ports", [["down"], ["x", "x"], [""]])
def test_bad_side_output_names_are_refused_at_build_time(ports: list[str]) -> None:
    with pytest.raises(ValueError):
        KeyedCoProcess(CombineLatest(), clock=FakeClock(), side_outputs=ports)


class Chained(KeyedCoProcessFunction[Any, Any]):
    """A timer that registers a due timer and a future one while firing."""

    def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
        ctx.timer_service.register_event_time_timer(ctx.timestamp)

    process_element2 = process_element1

    def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
        out.collect((timestamp, ctx.timer_service.current_watermark()))
        if timestamp < 3:
            ctx.timer_service.register_event_time_timer(timestamp + 1)


def test_timers_registered_while_firing_fire_in_the_same_advance_when_due() -> None:
    core = KeyedCoProcess(Chained(), clock=FakeClock())
    core.on_element("k", 0, None, 0)
    core.on_watermark(1)
    assert core.emitted == [("down", ("k", (0, 1))), ("down", ("k", (1, 1)))]
    core.emitted = []
    core.on_watermark(5)
    assert core.emitted == [("down", ("k", (2, 5))), ("down", ("k", (3, 5)))]


def test_late_elements_still_reach_the_function_with_their_timestamp() -> None:
    seen = []

    class Record(KeyedCoProcessFunction[Any, Any]):
        def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
            seen.append((ctx.timestamp, ctx.timer_service.current_watermark()))

        process_element2 = process_element1

    core = KeyedCoProcess(Record(), clock=FakeClock())
    core.on_watermark(50)
    core.on_element("k", 10, None, 1)
    assert seen == [(10, 50)]


def test_processing_time_timers_follow_the_injected_clock() -> None:
    clock = FakeClock(1_000)

    class Remind(KeyedCoProcessFunction[Any, Any]):
        def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
            now = ctx.timer_service.current_processing_time()
            ctx.timer_service.register_processing_time_timer(now + value)

        process_element2 = process_element1

        def on_timer(self, timestamp: int, ctx: Context, out: Collector) -> None:
            out.collect((ctx.time_domain, timestamp))

    core = KeyedCoProcess(Remind(), clock=clock)
    core.on_element("k", 0, 500, 0)
    core.on_element("j", 0, 200, 1)
    assert core.next_processing_time() == 1_200
    core.on_processing_time(1_300)
    assert core.emitted == [("down", ("j", (TimeDomain.PROCESSING_TIME, 1_200)))]
    assert core.next_processing_time() == 1_500
    core.on_watermark(MAX_WATERMARK)
    assert core.next_processing_time() == 1_500


def test_non_integer_timer_is_a_clear_error() -> None:
    class Bad(KeyedCoProcessFunction[Any, Any]):
        def process_element1(self, value: Any, ctx: Context, out: Collector) -> None:
            ctx.timer_service.register_event_time_timer(1.5)  # type: ignore[arg-type]

        process_element2 = process_element1

    with pytest.raises(TypeError, match="int epoch milliseconds"):
        KeyedCoProcess(Bad(), clock=FakeClock()).on_element("k", 0, None, 0)

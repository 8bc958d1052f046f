"""Example tests of the window operator core: Flink's documented behaviour,
triggers, processing time with a fake clock, window functions, state cleanup,
snapshot and restore, and build-time errors."""

from __future__ import annotations

import pickle
from typing import Any, Optional

import pytest

from operators.time.eventtime import MAX_WATERMARK
from operators.windows.assigners import (
    CalendarWindows,
    EventTimeSessionWindows,
    GLOBAL_WINDOW,
    GlobalWindows,
    ProcessingTimeSessionWindows,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    TumblingProcessingTimeWindows,
    Window,
    WindowAssigner,
)
from operators.windows.functions import Aggregate, AggregateFunction
from operators.windows.operator import WindowOperator
from operators.windows.results import WindowResult
from operators.windows.triggers import (
    CONTINUE,
    CountOrTimeoutTrigger,
    CountTrigger,
    EventTimeTrigger,
    FIRE,
    ProcessingTimeTrigger,
    PurgingTrigger,
    Trigger,
    TriggerContext,
    TriggerResult,
)


class FakeClock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def collect() -> Aggregate[Any, list, list]:
    return Aggregate.collect()


def results(core: WindowOperator[Any]) -> list[tuple[str, int, int, Any, bool]]:
    """Drain `down` as (key, start, end, value, late)."""
    out = [(k, r.window_start, r.window_end, r.value, r.is_late_update) for p, (k, r) in core.emitted if p == "down"]
    core.emitted = [e for e in core.emitted if e[0] != "down"]
    return out


def side(core: WindowOperator[Any], port: str) -> list[Any]:
    out = [item for p, item in core.emitted if p == port]
    core.emitted = [e for e in core.emitted if e[0] != port]
    return out


def feed(core: WindowOperator[Any], key: str, ts: int, value: Any, wm: Optional[int] = None) -> None:
    """One element, then (optionally) a watermark advance."""
    core.on_element(key, ts, value)
    if wm is not None and wm > core.watermark:
        core.on_watermark(wm)


# --- event-time windows, Flink's documented examples -------------------------


def test_tumbling_windows_fire_when_the_watermark_passes_their_end() -> None:
    core = WindowOperator(TumblingEventTimeWindows(5_000), aggregate=Aggregate.count())
    feed(core, "a", 1_000, "x")
    feed(core, "a", 2_000, "y")
    feed(core, "b", 4_999, "z", wm=4_998)
    assert results(core) == []
    core.on_watermark(4_999)
    assert sorted(results(core)) == [("a", 0, 5_000, 2, False), ("b", 0, 5_000, 1, False)]
    assert core.state_size() == 0


def test_tumbling_offset_aligns_days_to_a_time_zone() -> None:
    # Flink's docs: TumblingEventTimeWindows.of(Time.days(1), Time.hours(-8)) for UTC+8.
    day, eight_hours = 86_400_000, 8 * 3_600_000
    core = WindowOperator(TumblingEventTimeWindows(day, -eight_hours), aggregate=Aggregate.count())
    ts = 1_704_103_200_000  # 2024-01-01T10:00Z, 18:00 in UTC+8
    feed(core, "a", ts, 1, wm=MAX_WATERMARK)
    ((_, start, end, _, _),) = results(core)
    assert start == 1_704_038_400_000 == 1_704_067_200_000 - eight_hours  # 2023-12-31T16:00Z
    assert end - start == day


def test_sliding_windows_count_each_element_in_every_window_it_falls_in() -> None:
    core = WindowOperator(SlidingEventTimeWindows(10_000, 5_000), aggregate=Aggregate.count())
    feed(core, "a", 7_000, 1)
    feed(core, "a", 12_000, 2, wm=MAX_WATERMARK)
    assert sorted(results(core)) == [
        ("a", 0, 10_000, 1, False),
        ("a", 5_000, 15_000, 2, False),
        ("a", 10_000, 20_000, 1, False),
    ]


def test_negative_timestamps_use_floor_alignment() -> None:
    core = WindowOperator(TumblingEventTimeWindows(10), aggregate=collect())
    feed(core, "a", -1, "m1")
    feed(core, "a", -10, "m10")
    feed(core, "a", -11, "m11", wm=MAX_WATERMARK)
    assert sorted(results(core)) == [("a", -20, -10, ["m11"], False), ("a", -10, 0, ["m1", "m10"], False)]


def test_allowed_lateness_refires_and_then_sends_to_late() -> None:
    core = WindowOperator(TumblingEventTimeWindows(10), allowed_lateness_ms=5, aggregate=Aggregate.count())
    feed(core, "a", 3, "x", wm=9)
    assert results(core) == [("a", 0, 10, 1, False)]
    feed(core, "a", 5, "late-but-allowed", wm=12)
    assert results(core) == [("a", 0, 10, 2, True)]
    core.on_watermark(14)  # cleanup time 9 + 5
    assert core.state_size() == 0
    feed(core, "a", 6, "too-late")
    assert results(core) == []
    assert side(core, "late") == [("a", "too-late")]


def test_element_late_without_lateness_goes_to_the_late_port_never_dropped() -> None:
    core = WindowOperator(SlidingEventTimeWindows(10, 5), aggregate=Aggregate.count())
    core.on_watermark(18)
    feed(core, "a", 7, "v")  # windows [0,10) and [5,15) both late
    assert side(core, "late") == [("a", "v")]
    feed(core, "a", 12, "w")  # [5,15) late, [10,20) still open
    assert side(core, "late") == []
    core.on_watermark(MAX_WATERMARK)
    assert results(core) == [("a", 10, 20, 1, False)]


def test_late_update_carries_the_watermark_in_force() -> None:
    core = WindowOperator(TumblingEventTimeWindows(10), allowed_lateness_ms=100, aggregate=Aggregate.count())
    feed(core, "a", 1, "x", wm=50)
    feed(core, "a", 2, "y")
    first, late = [r for _, (_, r) in core.emitted]
    assert first == WindowResult("a", 0, 10, 1, (), 50)  # the window's first result: replaces nothing
    assert late == WindowResult("a", 0, 10, 2, ((0, 10),), 50)
    assert late.window == Window(0, 10) and late.is_late_update and not first.is_late_update


# --- sessions -----------------------------------------------------------------


def test_sessions_merge_touching_windows_and_close_after_the_gap() -> None:
    core = WindowOperator(EventTimeSessionWindows.with_gap(5), aggregate=collect())
    feed(core, "a", 0, "s1")
    feed(core, "a", 5, "touches")  # [0,5) and [5,10) touch: one session
    feed(core, "a", 11, "apart", wm=MAX_WATERMARK)
    assert sorted(results(core)) == [("a", 0, 10, ["s1", "touches"], False), ("a", 11, 16, ["apart"], False)]


def test_dynamic_gap_is_computed_per_element() -> None:
    core = WindowOperator(EventTimeSessionWindows.with_dynamic_gap(lambda v: v["gap"]), aggregate=Aggregate.count())
    feed(core, "a", 0, {"gap": 100})
    feed(core, "a", 90, {"gap": 1})  # inside [0,100)
    feed(core, "a", 150, {"gap": 10}, wm=MAX_WATERMARK)
    assert sorted(results(core)) == [("a", 0, 100, 2, False), ("a", 150, 160, 1, False)]


def test_late_element_bridging_two_sessions_merges_them_and_refires() -> None:
    core = WindowOperator(EventTimeSessionWindows.with_gap(5), allowed_lateness_ms=50, aggregate=Aggregate.count())
    feed(core, "a", 0, 1)
    feed(core, "a", 12, 2, wm=30)
    assert sorted(results(core)) == [("a", 0, 5, 1, False), ("a", 12, 17, 1, False)]
    feed(core, "a", 6, 3)  # [6,11) touches neither [0,5) nor [12,17): a first result, though late
    assert results(core) == [("a", 6, 11, 1, False)]
    feed(core, "a", 4, 4)  # [4,9) touches [0,5) and [6,11)
    (merged,) = [r for _, (_, r) in core.emitted]
    assert (merged.window, merged.value, merged.supersedes) == ((0, 11), 3, ((0, 5), (6, 11)))
    assert core.state_size() == 2


@pytest.mark.parametrize("trigger", [None, EventTimeTrigger()], ids=["fast", "general"])
def test_session_ending_exactly_at_the_watermark_fires_at_once(trigger: Optional[Trigger]) -> None:
    class General(EventTimeTrigger):
        pass

    core = WindowOperator(
        EventTimeSessionWindows.with_gap(5), trigger=trigger and General(), allowed_lateness_ms=10,
        aggregate=Aggregate.count(),
    )
    core.on_watermark(20)
    feed(core, "a", 16, 1)  # [16,21): max timestamp 20 == watermark
    assert [(r, r.watermark) for _, (_, r) in core.emitted] == [(WindowResult("a", 16, 21, 1, (), 20), 20)]


@pytest.mark.parametrize("general", [False, True])
def test_extending_a_fired_session_within_lateness_refires_it(general: bool) -> None:
    class General(EventTimeTrigger):
        pass

    core = WindowOperator(
        EventTimeSessionWindows.with_gap(5), trigger=General() if general else None, allowed_lateness_ms=10,
        aggregate=Aggregate.count(),
    )
    feed(core, "a", 0, 1, wm=9)
    feed(core, "a", 2, 2)  # [2,7) extends the fired [0,5) to [0,7): still behind the watermark
    feed(core, "a", 6, 3)  # [6,11) extends it beyond the watermark: fires again on time
    core.on_watermark(10)
    fired = [(r.window, r.value, r.supersedes, r.is_late_update) for _, (_, r) in core.emitted]
    assert fired == [
        ((0, 5), 1, (), False),
        ((0, 7), 2, ((0, 5),), True),
        ((0, 11), 3, ((0, 7),), True),  # on time, yet it replaces the result of [0, 7)
    ]
    core.on_watermark(20)
    assert core.state_size() == 0


@pytest.mark.parametrize("gap", [0, -5, "7", None, 1.5])
def test_unusable_dynamic_gap_goes_to_invalid_with_a_reason(gap: Any) -> None:
    for trigger in (None, CountTrigger(1)):
        core = WindowOperator(
            EventTimeSessionWindows.with_dynamic_gap(lambda v: v["gap"]), trigger=trigger, aggregate=Aggregate.count()
        )
        feed(core, "a", 0, {"gap": gap})
        feed(core, "a", 1, {"no gap": 1})
        invalid = side(core, "invalid")
        assert [(k, v) for k, (v, _) in invalid] == [("a", {"gap": gap}), ("a", {"no gap": 1})]
        assert "gap" in invalid[0][1][1] and "KeyError" in invalid[1][1][1]
        assert core.emitted == []


# --- triggers -------------------------------------------------------------------


def test_count_trigger_fires_without_purging_and_purging_wrapper_purges() -> None:
    for trigger, expected in [
        (CountTrigger(2), [2, 4, 6]),
        (PurgingTrigger(CountTrigger(2)), [2, 2, 2]),
    ]:
        core = WindowOperator(GlobalWindows(), trigger=trigger, aggregate=Aggregate.count())
        for i in range(7):
            feed(core, "a", i, i)
        core.on_watermark(MAX_WATERMARK)
        assert [v for _, _, _, v, _ in results(core)] == expected
        assert core.state_size() == 1  # global windows are never cleaned up


def test_global_window_with_event_time_trigger_fires_at_end_of_input() -> None:
    core = WindowOperator(GlobalWindows(), trigger=EventTimeTrigger(), aggregate=Aggregate.count())
    feed(core, "a", 1, 1, wm=1_000_000)
    assert results(core) == []
    core.on_watermark(MAX_WATERMARK)
    assert results(core) == [("a", GLOBAL_WINDOW.start, GLOBAL_WINDOW.end, 1, False)]


def test_count_or_timeout_fires_on_count_or_after_timeout_and_resets_the_timer() -> None:
    clock = FakeClock(1_000)
    core = WindowOperator(
        GlobalWindows(), trigger=CountOrTimeoutTrigger(3, 100), aggregate=collect(), clock=clock
    )
    feed(core, "a", 0, "a1")
    clock.now = 1_050
    feed(core, "a", 0, "a2")
    assert core.next_processing_time() == 1_100  # first buffered element + timeout
    clock.now = 1_100
    core.on_processing_time(1_100)
    assert results(core) == [("a", GLOBAL_WINDOW.start, GLOBAL_WINDOW.end, ["a1", "a2"], False)]
    assert core.next_processing_time() is None
    clock.now = 1_500
    for v in ("b1", "b2", "b3"):
        feed(core, "a", 0, v)
    assert [v for *_, v, _ in results(core)] == [["b1", "b2", "b3"]]
    assert core.next_processing_time() is None  # timer deleted with the purge
    clock.now = 2_000
    feed(core, "a", 0, "c1")
    assert core.next_processing_time() == 2_100


def test_count_or_timeout_merging_sessions_keep_the_earliest_deadline() -> None:
    clock = FakeClock(0)
    core = WindowOperator(
        EventTimeSessionWindows.with_gap(10), trigger=CountOrTimeoutTrigger(10, 100), aggregate=collect(), clock=clock
    )
    feed(core, "a", 0, "x")  # [0,10), deadline 100
    clock.now = 50
    feed(core, "a", 30, "y")  # [30,40), deadline 150
    feed(core, "a", 15, "bridge")  # [15,25) touches neither
    feed(core, "a", 10, "b2")  # [10,20) touches [0,10) and [15,25)
    feed(core, "a", 25, "b3")  # [25,35) touches [0,25) and [30,40): one session [0,40)
    assert core.state_size() == 1
    clock.now = 100
    core.on_processing_time(100)
    ((key, start, end, elements, late),) = results(core)
    assert (key, start, end, sorted(elements), late) == ("a", 0, 40, ["b2", "b3", "bridge", "x", "y"], False)
    clock.now = 150
    assert core.next_processing_time() is None


def test_processing_time_tumbling_windows_use_the_injected_clock() -> None:
    clock = FakeClock(100)
    core = WindowOperator(TumblingProcessingTimeWindows(1_000), aggregate=Aggregate.count(), clock=clock)
    feed(core, "a", 5_000_000, 1)  # event time is irrelevant
    clock.now = 950
    feed(core, "a", 0, 2)
    assert core.next_processing_time() == 999
    clock.now = 1_001
    core.on_processing_time(1_001)
    feed(core, "a", 0, 3)
    core.on_watermark(MAX_WATERMARK)  # event time does not close processing-time windows
    assert results(core) == [("a", 0, 1_000, 2, False)]
    assert core.next_processing_time() == 1_999


def test_processing_time_sessions_merge_by_arrival_time() -> None:
    clock = FakeClock(0)
    core = WindowOperator(ProcessingTimeSessionWindows.with_gap(5), aggregate=Aggregate.count(), clock=clock)
    feed(core, "a", 999, 1)
    clock.now = 3
    feed(core, "a", -999, 2)
    assert core.next_processing_time() == 7
    core.on_processing_time(7)
    assert results(core) == [("a", 0, 8, 2, False)]
    assert core.state_size() == 0


def test_processing_time_trigger_on_event_time_windows() -> None:
    clock = FakeClock(0)
    core = WindowOperator(
        TumblingEventTimeWindows(10), trigger=ProcessingTimeTrigger(), aggregate=Aggregate.count(), clock=clock
    )
    feed(core, "a", 3, 1)
    core.on_processing_time(9)
    assert results(core) == [("a", 0, 10, 1, False)]


class EveryElement(Trigger):
    """A custom trigger: fire on every element, never on time."""

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        ctx.state = (ctx.state or 0) + 1
        return FIRE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE


class EvenOdd(WindowAssigner):
    """A custom assigner: even and odd timestamps in two eternal windows."""

    def assign(self, ts: int, value: Any, now_ms: int) -> list[Window]:
        return [Window(ts % 2, ts % 2 + 1)]


def test_custom_trigger_and_custom_assigner() -> None:
    core = WindowOperator(EvenOdd(), trigger=EveryElement(), aggregate=Aggregate.count())
    for ts in (1, 2, 3):
        feed(core, "a", ts, ts)
    assert results(core) == [("a", 1, 2, 1, False), ("a", 0, 1, 1, False), ("a", 1, 2, 2, True)]


def test_custom_assigner_with_no_window_drops_unless_behind() -> None:
    class Nothing(WindowAssigner):
        def assign(self, ts: int, value: Any, now_ms: int) -> list[Window]:
            return []

    core = WindowOperator(Nothing(), aggregate=Aggregate.count())
    feed(core, "a", 5, "dropped", wm=10)
    feed(core, "a", 5, "behind")
    assert side(core, "late") == [("a", "behind")]


class EveryOtherTenStart(TumblingEventTimeWindows):
    """Tumbling windows of 10 whose starts are shifted by 5: a user rule."""

    def last_start(self, ts: int) -> int:
        return ts - (ts - 5) % 10

    def starts(self, ts: int) -> range:
        return range(self.last_start(ts), ts - self.size_ms, -self.slide_ms)


class ShiftedSliding(SlidingEventTimeWindows):
    """Sliding windows that keep only the latest window of each element."""

    def starts(self, ts: int) -> range:
        return range(self.last_start(ts), self.last_start(ts) - 1, -self.slide_ms)


class GapByKind(EventTimeSessionWindows):
    """A fixed gap of 5, except 20 for elements marked "long"."""

    def gap(self, value: Any) -> int:
        return 20 if value == "long" else 5


@pytest.mark.parametrize(
    "assigner, events, expected",
    [
        (EveryOtherTenStart(10), [1, 4, 6, 14, 16], [(-5, 5, 2), (5, 15, 2), (15, 25, 1)]),
        (ShiftedSliding(20, 10), [1, 12, 25], [(0, 20, 1), (10, 30, 1), (20, 40, 1)]),
        (GapByKind.with_gap(5), [(0, "long"), (15, "short"), (30, "short")], [(0, 20, 2), (30, 35, 1)]),
    ],
)
def test_an_assigner_subclass_gets_windows_by_its_override(assigner: WindowAssigner, events: list[Any],
                                                            expected: list[tuple[int, int, int]]) -> None:
    core = WindowOperator(assigner, aggregate=Aggregate.count())
    for event in events:
        ts, value = event if isinstance(event, tuple) else (event, event)
        feed(core, "a", ts, value)
    core.on_watermark(MAX_WATERMARK)
    assert sorted((start, end, n) for _, start, end, n, _ in results(core)) == expected


def test_an_assigner_owns_its_default_trigger() -> None:
    class EveryTwo(TumblingEventTimeWindows):
        def default_trigger(self) -> Trigger:
            return CountTrigger(2)

    core = WindowOperator(EveryTwo(10), aggregate=Aggregate.count())
    for ts in (1, 2, 3):
        feed(core, "a", ts, ts)
    assert results(core) == [("a", 0, 10, 2, False)]


# --- window functions -------------------------------------------------------------


def test_process_function_sees_key_window_elements_and_watermark() -> None:
    seen = []

    def process(key: str, window: Window, elements: list, wm: int) -> list:
        seen.append((key, window, list(elements), wm))
        return [len(elements), sum(elements)]

    core = WindowOperator(TumblingEventTimeWindows(10), process=process)
    feed(core, "a", 1, 5)
    feed(core, "a", 2, 7, wm=9)
    assert seen == [("a", Window(0, 10), [5, 7], 9)]
    assert results(core) == [("a", 0, 10, 2, False), ("a", 0, 10, 12, False)]


def test_aggregate_and_process_combined_receive_the_one_aggregate() -> None:
    core = WindowOperator(
        EventTimeSessionWindows.with_gap(5),
        aggregate=Aggregate(lambda: 0, lambda acc, v: acc + v, lambda a, b: a + b),
        process=lambda key, w, elements, wm: [(key, w.start, elements)],
    )
    feed(core, "a", 0, 3)
    feed(core, "a", 2, 4, wm=MAX_WATERMARK)
    assert results(core) == [("a", 0, 7, ("a", 0, [7]), False)]


def test_emitted_collected_values_are_not_mutated_by_later_elements() -> None:
    core = WindowOperator(TumblingEventTimeWindows(10), allowed_lateness_ms=50, aggregate=collect())
    feed(core, "a", 1, "x", wm=20)
    first = results(core)[0][3]
    feed(core, "a", 2, "y")
    assert first == ["x"]
    assert results(core)[0][3] == ["x", "y"]


class Average(AggregateFunction[float, tuple[float, int], float]):
    def create(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, acc: tuple[float, int], value: float) -> tuple[float, int]:
        return (acc[0] + value, acc[1] + 1)

    def merge(self, a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc: tuple[float, int]) -> float:
        return acc[0] / acc[1]


def test_aggregate_function_subclass_merges_sessions() -> None:
    core = WindowOperator(EventTimeSessionWindows.with_gap(3), aggregate=Average())
    feed(core, "a", 0, 1.0)
    feed(core, "a", 6, 3.0)
    feed(core, "a", 3, 5.0, wm=MAX_WATERMARK)  # bridges both
    assert results(core) == [("a", 0, 9, 3.0, False)]


# --- calendar windows through the operator ---------------------------------------


def test_calendar_quarters_in_berlin_start_at_local_midnight() -> None:
    core = WindowOperator(CalendarWindows("quarter", "Europe/Berlin"), aggregate=Aggregate.count())
    feed(core, "a", 1_711_922_399_000, 1)  # 2024-03-31T21:59:59Z = 23:59:59 CEST: Q1
    feed(core, "a", 1_711_922_400_000, 2)  # 2024-03-31T22:00:00Z = 00:00 CEST Apr 1: Q2
    core.on_watermark(MAX_WATERMARK)
    assert results(core) == [
        ("a", 1_704_063_600_000, 1_711_922_400_000, 1, False),  # 2023-12-31T23:00Z ..
        ("a", 1_711_922_400_000, 1_719_784_800_000, 1, False),  # .. 2024-06-30T22:00Z
    ]


# --- state, snapshots and errors -----------------------------------------------------

ENGINES = [
    pytest.param(lambda clock: WindowOperator(TumblingEventTimeWindows(10), aggregate=collect()), id="tumbling"),
    pytest.param(lambda clock: WindowOperator(SlidingEventTimeWindows(10, 3), aggregate=collect()), id="sliding"),
    pytest.param(
        lambda clock: WindowOperator(EventTimeSessionWindows.with_gap(4), allowed_lateness_ms=6, aggregate=collect()),
        id="sessions",
    ),
    pytest.param(
        lambda clock: WindowOperator(
            ProcessingTimeSessionWindows.with_gap(4), trigger=PurgingTrigger(ProcessingTimeTrigger()),
            aggregate=collect(), clock=clock,
        ),
        id="processing-sessions",
    ),
    pytest.param(
        lambda clock: WindowOperator(CalendarWindows("day", "Europe/Berlin"), aggregate=collect()), id="calendar"
    ),
    pytest.param(
        lambda clock: WindowOperator(
            GlobalWindows(), trigger=CountOrTimeoutTrigger(3, 7), aggregate=collect(), clock=clock
        ),
        id="count-or-timeout",
    ),
]


def _run(make: Any, restart_at: Optional[int]) -> list[Any]:
    clock = FakeClock(0)
    core = make(clock)
    out: list[Any] = []
    stream = [("k%d" % (i % 3), (i * 37) % 50 + i * 2 - 20 + 86_400_000 * (i % 2), i) for i in range(60)]
    for i, (key, ts, value) in enumerate(stream):
        if i == restart_at:
            out += core.emitted
            state = pickle.dumps(core.snapshot())
            fresh = make(clock)
            fresh.restore(pickle.loads(state))
            fresh.watermark = core.watermark
            core = fresh
        clock.now += 2
        due = core.next_processing_time()
        if due is not None and due <= clock.now:
            core.on_processing_time(clock.now)
        core.on_element(key, ts, value)
        if ts - 6 > core.watermark:
            core.on_watermark(ts - 6)
    core.on_watermark(MAX_WATERMARK)
    clock.now += 1_000
    core.on_processing_time(clock.now)
    return out + core.emitted


@pytest.mark.parametrize("make", ENGINES)
@pytest.mark.parametrize("restart_at", [1, 17, 40])
def test_snapshot_restore_mid_stream_continues_identically(make: Any, restart_at: int) -> None:
    uninterrupted = _run(make, None)
    assert any(port == "down" for port, _ in uninterrupted)
    assert _run(make, restart_at) == uninterrupted


def test_snapshot_of_another_engine_is_refused() -> None:
    a = WindowOperator(TumblingEventTimeWindows(10), aggregate=Aggregate.count())
    b = WindowOperator(EventTimeSessionWindows.with_gap(10), aggregate=Aggregate.count())
    with pytest.raises(ValueError, match="snapshot was taken by"):
        b.restore(a.snapshot())


def test_state_is_freed_at_cleanup_time() -> None:
    core = WindowOperator(
        EventTimeSessionWindows.with_gap(5), trigger=PurgingTrigger(EventTimeTrigger()),
        allowed_lateness_ms=10, aggregate=Aggregate.count(),
    )
    feed(core, "a", 0, 1)
    feed(core, "b", 100, 1, wm=13)
    assert core.state_size() == 2
    core.on_watermark(14)  # [0,5): 4 + 10
    assert core.state_size() == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"assigner": TumblingEventTimeWindows(10)}, "window function"),
        ({"assigner": TumblingEventTimeWindows(10), "allowed_lateness_ms": -1, "aggregate": collect()}, ">= 0"),
        ({"assigner": TumblingProcessingTimeWindows(10), "aggregate": collect()}, "give a clock"),
        (
            {"assigner": GlobalWindows(), "trigger": PurgingTrigger(CountOrTimeoutTrigger(2, 5)), "aggregate": collect()},
            "give a clock",
        ),
        ({"assigner": EventTimeSessionWindows.with_gap(5), "aggregate": Aggregate(int, max)}, "with merge"),
        (
            {"assigner": EventTimeSessionWindows.with_gap(5), "trigger": EveryElement(), "aggregate": collect()},
            "cannot be used with merging",
        ),
    ],
)
def test_bad_configuration_is_refused_at_build_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WindowOperator(**kwargs)


def test_aggregate_subclass_without_merge_is_refused_for_sessions() -> None:
    class Sum(AggregateFunction[int, int, int]):
        def create(self) -> int:
            return 0

        def add(self, acc: int, value: int) -> int:
            return acc + value

        def result(self, acc: int) -> int:
            return acc

    with pytest.raises(ValueError, match="with merge"):
        WindowOperator(EventTimeSessionWindows.with_gap(5), aggregate=Sum())
    WindowOperator(TumblingEventTimeWindows(5), aggregate=Sum())


def test_window_result_is_a_small_picklable_value() -> None:
    r = WindowResult("k", 0, 10, [1], (Window(0, 10),), 9)
    assert pickle.loads(pickle.dumps(r)) == r
    assert (r.key, r.window_start, r.window_end, r.value, r.supersedes, r.watermark) == ("k", 0, 10, [1], ((0, 10),), 9)
    assert r.is_late_update and not r._replace(supersedes=()).is_late_update


class EchoInThePast(Trigger):
    """Fires at the window's end and, from that firing, sets a timer 5 ms
    before it, which is already due and fires the window once more."""

    def on_element(self, value: Any, ts: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        ctx.register_event_time_timer(window.max_timestamp)
        return CONTINUE

    def on_event_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        if time == window.max_timestamp:
            ctx.register_event_time_timer(time - 5)
        return FIRE if time <= window.max_timestamp else CONTINUE  # not at cleanup

    def on_processing_time(self, time: int, window: Window, ctx: TriggerContext) -> TriggerResult:
        return CONTINUE


def test_a_timer_set_in_the_past_while_firing_fires_at_the_same_watermark() -> None:
    """As Flink's timer service loops while the head timer is <= the new
    watermark: the echo fires with watermark 12, not at the earlier value 6
    the batch also passed."""
    core = WindowOperator(TumblingEventTimeWindows(10), trigger=EchoInThePast(), allowed_lateness_ms=50,
                          aggregate=Aggregate.count())
    core.on_element("a", 1, "x")
    core.advance(100, [3, 6, 12, 50])
    fired = [(r.window_start, r.value, r.watermark) for port, (_, r) in core.emitted if port == "down"]
    assert fired == [(0, 1, 12), (0, 1, 12)]


def test_deferred_sessions_fire_at_the_path_value_and_before_their_keys_next_element() -> None:
    """`advance_deferred` fires nothing; a key's own next element first
    fires the session the watermark passed (so the element opens a new
    session, not a late update), and `flush` fires the rest, each at the
    first value of the batch's path at or past its max timestamp, as one
    `advance` per value would."""
    core = WindowOperator(EventTimeSessionWindows.with_gap(5), aggregate=Aggregate.count())
    steps = [-1, 4, 6, 9, 12]
    core.advance_deferred(-1, steps)
    core.on_element("a", 0, "a1")  # [0, 5): due at 4
    core.on_element("b", 2, "b1")  # [2, 7): due at 6
    core.on_element("c", 3, "c1")  # [3, 8): due at 7
    for wm in (4, 6, 9):
        core.advance_deferred(wm, steps)
    assert core.emitted == []
    core.on_element("b", 9, "b2")  # b's [2, 7) fired at 6 first; [9, 14) is new
    fired = [(r.key, r.window_start, r.value, r.watermark) for _, (_, r) in core.emitted]
    assert fired == [("b", 2, 1, 6)]
    core.advance_deferred(12, steps)
    core.flush()
    fired = [(r.key, r.window_start, r.value, r.watermark) for _, (_, r) in core.emitted[1:]]
    assert fired == [("a", 0, 1, 4), ("c", 3, 1, 9)]
    core.advance(MAX_WATERMARK)
    assert [(r.key, r.window_start, r.value) for _, (_, r) in core.emitted[3:]] == [("b", 9, 1)]


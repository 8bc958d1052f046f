"""Windows and assigners (Flink's window start math, session merging,
calendar periods across DST and year boundaries) and the Bytewax `window`
operator, checked against the brute-force reference in 1 and 2 workers."""

from __future__ import annotations

import pickle
from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.time.eventtime import BoundedOutOfOrderness
from operators.windows.assigners import (
    CalendarWindows,
    EventTimeSessionWindows,
    GLOBAL_WINDOW,
    GlobalWindows,
    InvalidElement,
    SlidingEventTimeWindows,
    TumblingEventTimeWindows,
    Window,
    merge_overlapping,
)
from operators.windows.functions import Aggregate
from operators.windows.results import WindowResult
from operators.windows.triggers import CountTrigger, PurgingTrigger, TriggerResult
from operators.windows.wiring import count_window, window
from tests.windowing_reference import Reference, Spec, windows_of



def ms(text: str) -> int:
    """Epoch ms of an ISO-8601 instant with offset."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# --- Window ----------------------------------------------------------------------


def test_window_is_a_half_open_hashable_picklable_tuple() -> None:
    w = Window(0, 10)
    assert w.max_timestamp == 9
    assert w == (0, 10) and hash(w) == hash((0, 10))
    assert pickle.loads(pickle.dumps(w)) == w
    assert w.intersects(Window(10, 20)) and not w.intersects(Window(11, 20))
    assert w.cover(Window(5, 30)) == Window(0, 30)
    assert GLOBAL_WINDOW.max_timestamp == 2**63 - 1


# --- fixed-size assigners -------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(1, 50),
    slide=st.integers(1, 50),
    offset_fraction=st.floats(-0.99, 0.99),
    ts=st.integers(-10_000, 10_000),
)
def test_sliding_assigns_exactly_the_windows_containing_the_timestamp(
    size: int, slide: int, offset_fraction: float, ts: int
) -> None:
    offset = int(offset_fraction * slide)
    got = SlidingEventTimeWindows(size, slide, offset).assign(ts, None, 0)
    expected = windows_of(Spec("sliding", size=size, slide=slide, offset=offset), ts, None)
    assert sorted(got) == sorted(expected)
    assert all(w.start <= ts < w.end for w in got)


@given(size=st.integers(1, 50), ts=st.integers(-10_000, 10_000))
def test_tumbling_assigns_one_aligned_window(size: int, ts: int) -> None:
    (w,) = TumblingEventTimeWindows(size).assign(ts, None, 0)
    assert w.start % size == 0 and w.start <= ts < w.end == w.start + size


@pytest.mark.parametrize(
    "build",
    [
        lambda: TumblingEventTimeWindows(0),
        lambda: TumblingEventTimeWindows(10, 10),
        lambda: SlidingEventTimeWindows(10, 0),
        lambda: SlidingEventTimeWindows(10, 5, -5),
        lambda: EventTimeSessionWindows.with_gap(0),
        lambda: EventTimeSessionWindows(),
        lambda: CalendarWindows("fortnight"),
    ],
)
def test_bad_assigner_parameters_are_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


# --- sessions ---------------------------------------------------------------------------


def test_merge_overlapping_merges_touching_and_chained_windows() -> None:
    windows = [Window(0, 5), Window(5, 8), Window(7, 12), Window(13, 20), Window(30, 31)]
    assert merge_overlapping(windows) == [(Window(0, 12), [Window(0, 5), Window(5, 8), Window(7, 12)])]
    assert merge_overlapping([Window(0, 5), Window(6, 8)]) == []


def test_dynamic_gap_validation() -> None:
    sessions = EventTimeSessionWindows.with_dynamic_gap(lambda v: v)
    assert sessions.assign(10, 5, 0) == [Window(10, 15)]
    for bad in (0, -1, 2.0, "3", True):
        with pytest.raises(InvalidElement):
            sessions.assign(10, bad, 0)


# --- calendar windows -------------------------------------------------------------------


def test_quarter_in_berlin_starts_at_local_midnight() -> None:
    quarters = CalendarWindows("quarter", "Europe/Berlin")
    (w,) = quarters.assign(ms("2024-05-15T12:00:00+02:00"), None, 0)
    assert w == Window(ms("2024-04-01T00:00:00+02:00"), ms("2024-07-01T00:00:00+02:00"))
    (q1,) = quarters.assign(ms("2024-02-01T00:00:00+01:00"), None, 0)
    assert q1 == Window(ms("2024-01-01T00:00:00+01:00"), ms("2024-04-01T00:00:00+02:00"))
    assert q1.end - q1.start == (91 * 24 - 1) * 3_600_000  # the spring-forward hour is missing


def test_year_boundary_follows_the_zone_not_utc() -> None:
    years = CalendarWindows("year", "Europe/Berlin")
    new_year_berlin = ms("2024-01-01T00:30:00+01:00")  # still 2023 in UTC
    (w,) = years.assign(new_year_berlin, None, 0)
    assert w == Window(ms("2024-01-01T00:00:00+01:00"), ms("2025-01-01T00:00:00+01:00"))
    (before,) = years.assign(w.start - 1, None, 0)
    assert before.end == w.start and before.start == ms("2023-01-01T00:00:00+01:00")


@pytest.mark.parametrize(
    "zone, day, hours",
    [
        ("Europe/Berlin", "2024-03-31", 23),
        ("Europe/Berlin", "2024-10-27", 25),
        ("America/New_York", "2024-11-03", 25),
        ("America/Santiago", "2024-09-08", 23),  # midnight itself is skipped
    ],
)
def test_days_across_dst_last_23_or_25_hours(zone: str, day: str, hours: int) -> None:
    days = CalendarWindows("day", zone)
    noon = datetime.fromisoformat(day + "T12:00:00").replace(tzinfo=ZoneInfo(zone))
    (w,) = days.assign(int(noon.timestamp() * 1000), None, 0)
    assert w.end - w.start == hours * 3_600_000
    start = datetime.fromtimestamp(w.start / 1000, ZoneInfo(zone))
    assert start.date().isoformat() == day and start.hour in (0, 1)


def test_month_in_a_zone_west_of_utc() -> None:
    months = CalendarWindows("month", "America/New_York")
    (w,) = months.assign(ms("2024-03-01T03:00:00+00:00"), None, 0)  # Feb 29, 22:00 in New York
    assert w == Window(ms("2024-02-01T00:00:00-05:00"), ms("2024-03-01T00:00:00-05:00"))


def test_weeks_start_on_monday() -> None:
    (w,) = CalendarWindows("week", "UTC").assign(ms("2024-01-03T10:00:00+00:00"), None, 0)  # a Wednesday
    assert w == Window(ms("2024-01-01T00:00:00+00:00"), ms("2024-01-08T00:00:00+00:00"))


@settings(max_examples=300, deadline=None)
@given(
    unit=st.sampled_from(["day", "week", "month", "quarter", "year"]),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata"]),
    ts=st.integers(ms("1990-01-01T00:00:00+00:00"), ms("2040-01-01T00:00:00+00:00")),
)
def test_calendar_windows_tile_time_from_local_period_starts(unit: str, zone: str, ts: int) -> None:
    calendar = CalendarWindows(unit, zone)
    (w,) = calendar.assign(ts, None, 0)
    assert w.start <= ts < w.end
    assert calendar.window_of(w.end).start == w.end and calendar.window_of(w.start - 1).end == w.start
    tz = ZoneInfo(zone)
    local_start = datetime.fromtimestamp(w.start / 1000, tz)
    just_before = datetime.fromtimestamp((w.start - 1) / 1000, tz)
    assert local_start.date() != just_before.date()  # each period starts at the first instant of a day
    assert local_start.day == 1 or unit in ("day", "week")
    assert pickle.loads(pickle.dumps(calendar)).window_of(ts) == w


def test_global_windows_put_everything_in_one_window() -> None:
    assert GlobalWindows().assign(-5, None, 0) == (GLOBAL_WINDOW,)


def test_trigger_result_flags() -> None:
    flags = {r: (r.is_fire, r.is_purge) for r in TriggerResult}
    assert flags == {
        TriggerResult.CONTINUE: (False, False),
        TriggerResult.FIRE: (True, False),
        TriggerResult.PURGE: (False, True),
        TriggerResult.FIRE_AND_PURGE: (True, True),
    }


# --- the Bytewax operator ------------------------------------------------------------------

BOUND = 3


def _dataflow(items: list[tuple[str, int, int]], spec: Spec, batch: int, shards: int) -> tuple[Dataflow, list, list]:
    flow = Dataflow("windows")
    src = op.input("in", flow, TestingSource(items, batch_size=batch))
    keyed = op.key_on("key", src, lambda item: item[0])
    assigner = {
        "tumbling": lambda: TumblingEventTimeWindows(spec.size, spec.offset),
        "sliding": lambda: SlidingEventTimeWindows(spec.size, spec.slide, spec.offset),
        "session": lambda: EventTimeSessionWindows.with_gap(spec.gap),
    }[spec.kind]()
    trigger = {"event": None, "count": CountTrigger(spec.count), "purging_count": PurgingTrigger(CountTrigger(spec.count))}
    out = window(
        "w",
        keyed,
        assigner=assigner,
        trigger=trigger[spec.trigger],
        allowed_lateness_ms=spec.lateness,
        aggregate=Aggregate(list, lambda acc, item: acc + [item[2]], lambda a, b: a + b, lambda acc: tuple(sorted(acc))),
        timestamp_of=lambda item: item[1],
        watermarks=lambda: BoundedOutOfOrderness(BOUND),
        shards=shards,
        clock=lambda: 0,
    )
    down: list[tuple[str, WindowResult]] = []
    late: list[tuple[str, Any]] = []
    op.output("down", out.down, TestingSink(down))
    op.output("late", out.late, TestingSink(late))
    return flow, down, late


specs = st.builds(
    Spec,
    kind=st.sampled_from(["tumbling", "sliding", "session"]),
    size=st.integers(2, 12),
    slide=st.integers(1, 6),
    gap=st.integers(1, 8),
    lateness=st.sampled_from([0, 4]),
    trigger=st.sampled_from(["event", "event", "count", "purging_count"]),
    count=st.integers(1, 3),
    bound=st.just(BOUND),
)
streams = st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 60)), max_size=30)


def _expected(items: list[tuple[str, int, int]], spec: Spec) -> tuple[Counter, Counter]:
    spec.evaluate = lambda elements: tuple(sorted(item[2] for item in elements))
    firings, late = Reference(spec).run([(item[0], item[1], item, 0) for item in items])
    return Counter(firings), Counter((k, item) for k, item in late)


def _observed(down: list[tuple[str, WindowResult]], late: list[tuple[str, Any]]) -> tuple[Counter, Counter]:
    return (
        Counter((k, r.window_start, r.window_end, r.value, r.supersedes, r.watermark) for k, r in down),
        Counter((k, tuple(v)) for k, v in late),
    )


@settings(max_examples=200, deadline=None)
@given(spec=specs, evs=streams, batch=st.sampled_from([1, 5, 100]), shards=st.sampled_from([1, 4]))
def test_dataflow_matches_the_reference(spec: Spec, evs: list[tuple[str, int]], batch: int, shards: int) -> None:
    spec.slide = min(spec.slide, spec.size)
    items = [(k, ts, i) for i, (k, ts) in enumerate(evs)]
    flow, down, late = _dataflow(items, spec, batch, shards)
    run_main(flow)
    assert _observed(down, late) == _expected(items, spec)


@pytest.mark.parametrize("kind", ["tumbling", "session"])
def test_dataflow_on_two_workers_matches_the_reference(kind: str) -> None:
    spec = Spec(kind, size=10, gap=4, lateness=5, bound=BOUND)
    evs = [("abc"[i % 3], (i * 7) % 23 + i // 2) for i in range(80)] + [("a", 1), ("b", 2)]
    items = [(k, ts, i) for i, (k, ts) in enumerate(evs)]
    flow, down, late = _dataflow(items, spec, batch=4, shards=8)
    cluster_main(flow, [], 0, worker_count_per_proc=2)
    observed = _observed(down, late)
    assert observed == _expected(items, spec)
    assert sum(observed[1].values()) > 0 and any(key[4] for key in observed[0])  # late data and late updates


def test_count_window_and_invalid_elements_in_a_dataflow() -> None:
    flow = Dataflow("count")
    items = [("a", 1, 5), ("a", 2, 0), ("a", 3, 2), ("b", 4, 1), ("a", 5, 3)]
    keyed = op.key_on("key", op.input("in", flow, TestingSource(items)), lambda item: item[0])
    counted = count_window(
        "per2", keyed, 2, aggregate=Aggregate.count(),
        timestamp_of=lambda item: item[1], watermarks=lambda: BoundedOutOfOrderness(0), clock=lambda: 0,
    )
    sessions = window(
        "sessions", keyed, assigner=EventTimeSessionWindows.with_dynamic_gap(lambda item: item[2]),
        aggregate=Aggregate.count(), timestamp_of=lambda item: item[1],
        watermarks=lambda: BoundedOutOfOrderness(0),
    )
    down: list[Any] = []
    invalid: list[Any] = []
    op.output("down", counted.down, TestingSink(down))
    op.output("invalid", sessions.invalid, TestingSink(invalid))
    run_main(flow)
    assert sorted((k, r.value) for k, r in down) == [("a", 2), ("a", 2)]
    assert [(k, v) for k, (v, _) in invalid] == [("a", ("a", 2, 0))]


def test_bad_configuration_fails_when_the_dataflow_is_built() -> None:
    flow = Dataflow("bad")
    keyed = op.key_on("key", op.input("in", flow, TestingSource([])), lambda item: item[0])
    with pytest.raises(ValueError, match="w: give a window function"):
        window(
            "w", keyed, assigner=TumblingEventTimeWindows(10),
            timestamp_of=lambda item: item[1], watermarks=lambda: BoundedOutOfOrderness(0),
        )

"""Window join core: the window operator over both inputs, against the
brute-force enumeration of `tests/join_reference.py`."""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.joins.window_join import WindowJoin
from operators.time.eventtime import MAX_WATERMARK
from operators.windows.assigners import EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows
from operators.windows.results import WindowResult
from tests.join_reference import Event, watermarks_before, window_join_pairs

settings.register_profile("window_join", max_examples=200, deadline=None)
settings.load_profile("window_join")

events_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from("ab"), st.integers(0, 60)), max_size=50
).map(lambda raw: [(side, key, ts, ("LR"[side], i)) for i, (side, key, ts) in enumerate(raw)])


@st.composite
def fixed_windows(draw: st.DrawFn) -> tuple[int, int, int]:
    size = draw(st.integers(1, 15))
    slide = draw(st.integers(1, size))
    return size, slide, draw(st.integers(0, slide - 1))


def run(join: WindowJoin, events: list[Event], wms: list[int]) -> list[tuple[str, Any]]:
    emitted = []
    for (side, key, ts, value), wm in zip(events, wms):
        if wm > join.watermark:
            join.on_watermark(wm)
        join.on_element(key, ts, value, side)
        emitted.extend(join.emitted)
        join.emitted = []
    join.on_watermark(MAX_WATERMARK)
    return emitted + join.emitted


@given(events=events_strategy, windows=fixed_windows(), bound=st.integers(0, 10), cut=st.integers(0, 50))
def test_pairs_and_late_elements_match_enumeration_across_a_restore(
    events: list[Event], windows: tuple[int, int, int], bound: int, cut: int
) -> None:
    size, slide, offset = windows
    wms = watermarks_before(events, bound)
    first = WindowJoin(SlidingEventTimeWindows(size, slide, offset))
    emitted: list[tuple[str, Any]] = []
    for (side, key, ts, value), wm in zip(events[:cut], wms[:cut]):
        if wm > first.watermark:
            first.on_watermark(wm)
        first.on_element(key, ts, value, side)
    emitted.extend(first.emitted)
    resumed = WindowJoin(SlidingEventTimeWindows(size, slide, offset))
    resumed.restore(pickle.loads(pickle.dumps(first.snapshot())))
    resumed.watermark = first.watermark
    emitted.extend(run(resumed, events[cut:], wms[cut:]))
    pairs, late = window_join_pairs(events, wms, size, slide, offset)
    results = [(key, r) for port, (key, r) in emitted if port == "down"]
    assert Counter((key, r.window_start, *r.value) for key, r in results) == pairs
    assert all(isinstance(r, WindowResult) and r.window_end - 1 <= r.watermark for _, r in results)
    assert [item for port, item in emitted if port == "late"] == late
    assert resumed.state_size() == 0


def test_select_and_one_sided_windows() -> None:
    join = WindowJoin(TumblingEventTimeWindows(10), select=lambda left, right: left + right)
    join.on_element("k", 1, 1, 0)
    join.on_element("k", 2, 2, 0)
    join.on_element("k", 5, 10, 1)
    join.on_element("k", 15, 100, 0)
    join.on_watermark(MAX_WATERMARK)
    assert [(key, r.window_start, r.value) for _, (key, r) in join.emitted] == [("k", 0, 11), ("k", 0, 12)]


def test_session_windows_merge_both_sides() -> None:
    join = WindowJoin(EventTimeSessionWindows.with_gap(5))
    join.on_element("k", 0, "l0", 0)
    join.on_element("k", 8, "r8", 1)
    join.on_element("k", 4, "l4", 0)  # bridges the two sessions
    join.on_watermark(MAX_WATERMARK)
    assert sorted((r.window_start, r.window_end, r.value) for _, (_, r) in join.emitted) == [
        (0, 13, ("l0", "r8")),
        (0, 13, ("l4", "r8")),
    ]

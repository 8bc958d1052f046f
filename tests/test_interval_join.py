"""Interval join core: properties against the brute-force reference, examples."""

from __future__ import annotations

import pickle
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.joins.interval_join import IntervalJoin, effective_bounds
from operators.time.eventtime import MAX_WATERMARK
from tests.join_reference import (
    Event,
    all_pairs,
    expected_outputs,
    still_needed,
    watermarks_before,
)

settings.register_profile("joins", max_examples=300, deadline=None)
settings.load_profile("joins")

KEYS = ("a", "b", "c")


@st.composite
def bounds(draw: st.DrawFn) -> tuple[int, int, bool, bool]:
    """Interval options that can hold a timestamp: negative, zero, positive."""
    lower = draw(st.integers(-15, 15))
    upper = draw(st.integers(lower, lower + 20))
    lower_inclusive = draw(st.booleans())
    upper_inclusive = draw(st.booleans())
    if upper - lower < (not lower_inclusive) + (not upper_inclusive):
        lower_inclusive = upper_inclusive = True
    return lower, upper, lower_inclusive, upper_inclusive


def tag(raw: list[tuple[int, str, int]]) -> list[Event]:
    """Give every event a unique value naming its side and position."""
    return [(side, key, ts, ("L" if side == 0 else "R", i)) for i, (side, key, ts) in enumerate(raw)]


any_order = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(KEYS), st.integers(0, 60)), max_size=60
).map(tag)


@st.composite
def within_bound(draw: st.DrawFn, bound: int) -> list[Event]:
    """Two inputs, each out of order by at most `bound`, interleaved."""
    raw: list[tuple[int, str, int]] = []
    bases = [0, 0]
    for side in draw(st.lists(st.integers(0, 1), max_size=60)):
        bases[side] += draw(st.integers(0, 4))
        ts = max(0, bases[side] - draw(st.integers(0, bound)))
        raw.append((side, draw(st.sampled_from(KEYS)), ts))
    return tag(raw)


def run(
    join: IntervalJoin, events: list[Event], watermarks: list[int]
) -> list[list[tuple[str, Any]]]:
    """Feed events after advancing the watermark; what each event emitted."""
    outputs = []
    for (side, key, ts, value), wm in zip(events, watermarks):
        if wm > join.watermark:
            join.on_watermark(wm)
        join.on_element(key, ts, value, side)
        outputs.append(join.emitted)
        join.emitted = []
    return outputs


def new_join(options: tuple[int, int, bool, bool]) -> IntervalJoin:
    lower, upper, lower_inclusive, upper_inclusive = options
    return IntervalJoin(
        lower, upper, lower_inclusive=lower_inclusive, upper_inclusive=upper_inclusive
    )


@given(options=bounds(), events=any_order, bound=st.integers(0, 10))
def test_emits_exactly_what_the_reference_emits_per_event(
    options: tuple[int, int, bool, bool], events: list[Event], bound: int
) -> None:
    wms = watermarks_before(events, bound)
    got = run(new_join(options), events, wms)
    expected = expected_outputs(events, wms, *options)
    assert [sorted(o) for o in got] == [sorted(o) for o in expected]


@given(options=bounds(), events=any_order, bound=st.integers(0, 10))
def test_state_follows_flink_cleanup_and_empties_at_end_of_input(
    options: tuple[int, int, bool, bool], events: list[Event], bound: int
) -> None:
    wms = watermarks_before(events, bound)
    join = new_join(options)
    for i, ((side, key, ts, value), wm) in enumerate(zip(events, wms)):
        if wm > join.watermark:
            join.on_watermark(wm)
            assert join.state_size() == still_needed(events[:i], wms[:i], wm, *options)
        join.on_element(key, ts, value, side)
    join.on_watermark(MAX_WATERMARK)
    assert join.state_size() == 0


@given(data=st.data(), options=bounds(), bound=st.integers(0, 10))
def test_input_out_of_order_within_the_bound_joins_every_pair(
    data: st.DataObject, options: tuple[int, int, bool, bool], bound: int
) -> None:
    events = data.draw(within_bound(bound))
    outputs = run(new_join(options), events, watermarks_before(events, bound))
    emitted = [item for output in outputs for item in output]
    assert all(port == "down" for port, _ in emitted)
    assert sorted(item for _, item in emitted) == sorted(all_pairs(events, *options).elements())


@given(
    options=bounds(), events=any_order, bound=st.integers(0, 10), cut=st.integers(0, 60)
)
def test_snapshot_and_restore_mid_stream_changes_nothing(
    options: tuple[int, int, bool, bool], events: list[Event], bound: int, cut: int
) -> None:
    wms = watermarks_before(events, bound)
    uninterrupted = new_join(options)
    straight = run(uninterrupted, events, wms)
    cut = min(cut, len(events))
    first = new_join(options)
    before = run(first, events[:cut], wms[:cut])
    resumed = new_join(options)
    resumed.restore(pickle.loads(pickle.dumps(first.snapshot())))
    resumed.watermark = first.watermark
    after = run(resumed, events[cut:], wms[cut:])
    assert before + after == straight
    assert resumed.state_size() == uninterrupted.state_size()


def test_flink_documentation_example_between_minus_two_and_one() -> None:
    join = IntervalJoin(-2, 1)
    for ts in (0, 1, 6, 7):
        join.on_element("k", ts, f"orange@{ts}", 0)
    for ts in (0, 1, 2, 3, 4, 5, 6, 7):
        join.on_element("k", ts, f"green@{ts}", 1)
    assert sorted(item for _, (_, item) in join.emitted) == sorted(
        [
            ("orange@0", "green@0"),
            ("orange@0", "green@1"),
            ("orange@1", "green@0"),
            ("orange@1", "green@1"),
            ("orange@1", "green@2"),
            ("orange@6", "green@4"),
            ("orange@6", "green@5"),
            ("orange@6", "green@6"),
            ("orange@6", "green@7"),
            ("orange@7", "green@5"),
            ("orange@7", "green@6"),
            ("orange@7", "green@7"),
        ]
    )


@pytest.mark.parametrize(
    ("lower_inclusive", "upper_inclusive", "gaps"),
    [(True, True, [-2, -1, 0, 1]), (False, True, [-1, 0, 1]), (True, False, [-2, -1, 0]), (False, False, [-1, 0])],
)
def test_exclusive_bounds_drop_the_boundary(
    lower_inclusive: bool, upper_inclusive: bool, gaps: list[int]
) -> None:
    join = IntervalJoin(-2, 1, lower_inclusive=lower_inclusive, upper_inclusive=upper_inclusive)
    join.on_element("k", 10, "left", 0)
    for ts in range(5, 15):
        join.on_element("k", ts, ts, 1)
    assert [right - 10 for _, (_, (_, right)) in join.emitted] == gaps


def test_select_builds_the_result_and_keys_do_not_mix() -> None:
    join = IntervalJoin(0, 5, select=lambda left, right: f"{left}+{right}")
    join.on_element("a", 10, "a-left", 0)
    join.on_element("b", 11, "b-right", 1)
    join.on_element("a", 12, "a-right", 1)
    assert join.emitted == [("down", ("a", "a-left+a-right"))]


def test_late_elements_go_to_the_late_port_and_join_nothing() -> None:
    join = IntervalJoin(-5, 5)
    join.on_element("k", 100, "left", 0)
    join.on_watermark(100)
    join.on_element("k", 99, "too late", 1)
    join.on_element("k", 100, "on time", 1)
    assert join.emitted == [
        ("late", ("k", (1, "too late"))),
        ("down", ("k", ("left", "on time"))),
    ]


def test_element_at_the_watermark_still_meets_a_partner_at_its_bound() -> None:
    """Not late (ts == watermark) and its partner not yet freed: see the
    README's note on cleanup one millisecond after Flink's timer."""
    join = IntervalJoin(0, 10)
    join.on_element("k", 0, "left", 0)
    join.on_watermark(10)
    join.on_element("k", 10, "right", 1)
    assert join.emitted == [("down", ("k", ("left", "right")))]
    join.on_watermark(11)
    assert join.state_size() == 0


def test_state_stays_flat_on_an_unbounded_in_order_stream() -> None:
    join = IntervalJoin(-50, 50)
    sizes = []
    for ts in range(20_000):
        join.on_watermark(ts - 11)
        join.on_element(f"k{ts % 97}", ts, ts, ts % 2)
        join.emitted = []
        if ts % 5_000 == 4_999:
            sizes.append(join.state_size())
    assert max(sizes) <= 2 * 50 + 11 + 2
    assert len(set(sizes)) == 1


@pytest.mark.parametrize(
    ("lower", "upper", "lower_inclusive", "upper_inclusive", "message"),
    [
        (5, 1, True, True, "must be <="),
        (0, 0, False, True, "holds no timestamp"),
        (3, 4, False, False, "holds no timestamp"),
        (0.5, 1, True, True, "must be an int"),
        (0, True, True, True, "must be an int"),
    ],
)
def test_bad_bounds_are_refused_at_build_time(
    lower: Any, upper: Any, lower_inclusive: bool, upper_inclusive: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        IntervalJoin(lower, upper, lower_inclusive=lower_inclusive, upper_inclusive=upper_inclusive)


@pytest.mark.parametrize(
    ("options", "expected"),
    [((-3, 3, True, True), (-3, 3)), ((-3, 3, False, False), (-2, 2)), ((0, 1, False, True), (1, 1))],
)
def test_effective_bounds(options: tuple[int, int, bool, bool], expected: Optional[tuple[int, int]]) -> None:
    assert effective_bounds(*options) == expected
